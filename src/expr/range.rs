//! The interval of values an expression can take for every input, parameter and argument
//! value: interval arithmetic over the op table's semantics.
//!
//! [`Formula::canonical`](super::Formula::canonical) uses it to drop clamps that cannot bind,
//! such as the bounded ops' `max(min(tanh(x), 10), -10)` of the GRAFS space. The interval is
//! conservative (it may be wider than the true range, never narrower) and says nothing about
//! NaN, which every rule that uses it passes through unchanged.

use super::{BinOp, Expr, Func};
use crate::expr::ops::powi_eval;

/// An interval `[lo, hi]`; either end may be infinite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
}

/// Every value.
const ALL: Range = Range { lo: f64::NEG_INFINITY, hi: f64::INFINITY };

impl Range {
    fn new(lo: f64, hi: f64) -> Range {
        if lo.is_nan() || hi.is_nan() { ALL } else { Range { lo, hi } }
    }
}

/// The values `e` can take, where `x`, parameters and arguments may be anything.
pub fn range(e: &Expr) -> Range {
    match e {
        Expr::X | Expr::Param(_) | Expr::Arg(_) => ALL,
        Expr::Num(c) => Range::new(*c, *c),
        Expr::Neg(a) => {
            let r = range(a);
            Range::new(-r.hi, -r.lo)
        }
        Expr::Pow(a, n) => pow(range(a), *n),
        Expr::Call(f, a) => call(*f, range(a)),
        Expr::Bin(op, a, b) => bin(*op, range(a), range(b)),
    }
}

fn pow(r: Range, n: i32) -> Range {
    let p = |v: f64| powi_eval(v, n).0;
    match n {
        0 => Range::new(1.0, 1.0),
        n if n < 0 => ALL,
        n if n % 2 == 1 => Range::new(p(r.lo), p(r.hi)),
        _ if r.lo >= 0.0 => Range::new(p(r.lo), p(r.hi)),
        _ if r.hi <= 0.0 => Range::new(p(r.hi), p(r.lo)),
        _ => Range::new(0.0, p(r.lo).max(p(r.hi))),
    }
}

fn call(f: Func, r: Range) -> Range {
    match f {
        // Non-decreasing everywhere (sqrt and log clamp their input first).
        Func::Sqrt
        | Func::Exp
        | Func::Log
        | Func::Sinh
        | Func::Tanh
        | Func::Asinh
        | Func::Atan
        | Func::Erf
        | Func::Sigmoid
        | Func::Softplus
        | Func::Relu
        | Func::Elu
        | Func::LeakyRelu => Range::new(f.value(r.lo), f.value(r.hi)),
        Func::Abs => abs(r),
        Func::Cosh => {
            let a = abs(r);
            Range::new(f.value(a.lo), f.value(a.hi))
        }
        Func::Sin | Func::Cos => Range::new(-1.0, 1.0),
        // The global minima of sinc, silu and gelu, rounded outwards.
        Func::Sinc => Range::new(-0.2173, 1.0),
        Func::Silu => Range::new(-0.2785, f64::INFINITY),
        Func::Gelu => Range::new(-0.1700, f64::INFINITY),
    }
}

fn abs(r: Range) -> Range {
    if r.lo >= 0.0 {
        r
    } else if r.hi <= 0.0 {
        Range::new(-r.hi, -r.lo)
    } else {
        Range::new(0.0, (-r.lo).max(r.hi))
    }
}

fn bin(op: BinOp, a: Range, b: Range) -> Range {
    match op {
        BinOp::Add => Range::new(a.lo + b.lo, a.hi + b.hi),
        BinOp::Sub => Range::new(a.lo - b.hi, a.hi - b.lo),
        BinOp::Mul => mul(a, b),
        BinOp::Div if b.lo > 0.0 || b.hi < 0.0 => div(a, b),
        BinOp::Div => ALL,
        BinOp::Max => Range::new(a.lo.max(b.lo), a.hi.max(b.hi)),
        BinOp::Min => Range::new(a.lo.min(b.lo), a.hi.min(b.hi)),
    }
}

/// Products of the ends; `0 * inf` counts as 0 (a finite factor near 0 times a large one).
/// Computed with the same floating-point operation as evaluation, whose rounding is monotone,
/// so evaluated values stay inside.
fn mul(a: Range, b: Range) -> Range {
    let p = |u: f64, v: f64| {
        let w = u * v;
        if w.is_nan() { 0.0 } else { w }
    };
    hull([p(a.lo, b.lo), p(a.lo, b.hi), p(a.hi, b.lo), p(a.hi, b.hi)])
}

/// Quotients of the ends, for a divisor range that excludes 0; `inf/inf` could be anything.
fn div(a: Range, b: Range) -> Range {
    let ends = [a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi];
    if ends.iter().any(|v| v.is_nan()) { ALL } else { hull(ends) }
}

fn hull(ends: [f64; 4]) -> Range {
    Range::new(
        ends.iter().copied().fold(f64::INFINITY, f64::min),
        ends.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

#[cfg(test)]
mod tests {
    use super::super::Formula;
    use super::super::random_tree::TreeGen;
    use super::*;

    fn r(text: &str) -> (f64, f64) {
        let f = Formula::parse(text).unwrap();
        let r = range(&f.expr);
        (r.lo, r.hi)
    }

    #[test]
    fn known_ranges() {
        let inf = f64::INFINITY;
        assert_eq!(r("tanh(x)"), (-1.0, 1.0));
        assert_eq!(r("sigmoid(b)*x"), (-inf, inf));
        assert_eq!(r("max(min(x, 10), -10)"), (-10.0, 10.0));
        assert_eq!(r("max(min(x, 10), -10)*tanh(x)"), (-10.0, 10.0));
        assert_eq!(r("x^2"), (0.0, inf));
        assert_eq!(r("exp(x)"), (0.0, inf));
        assert_eq!(r("sqrt(max(x, 0.001))").0, 0.001f64.sqrt());
        assert_eq!(r("1/(x^2 + 1)"), (0.0, 1.0));
        assert_eq!(r("1/x"), (-inf, inf));
        assert_eq!(r("sigmoid(x)*max(min(x, 10), -10)"), (-10.0, 10.0));
        assert_eq!(r("cosh(x)"), (1.0, inf));
    }

    #[test]
    fn random_trees_stay_inside_their_range() {
        let mut g = TreeGen::new(11, false);
        for _ in 0..3000 {
            let f = g.formula(5);
            let range = range(&f.expr);
            for p in [0.3, 1.7, -2.0] {
                let params = vec![p; f.num_params()];
                for i in 0..41 {
                    let x = -10.0 + 0.5 * i as f64 + 0.01;
                    let v = f.eval(x, &params);
                    if !v.is_nan() {
                        assert!(v >= range.lo && v <= range.hi, "{f} at {x}: {v} outside {range:?}");
                    }
                }
            }
        }
    }
}
