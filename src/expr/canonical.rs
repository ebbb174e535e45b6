//! Semantics-preserving simplification of formulas.
//!
//! Bottom-up rewriting: constant folding (only where the result is finite), `a + 0`, `0 + a`,
//! `a - 0`, `0 - a` → `-a`, `a*1`, `1*a`, `a/1`, `a*(-1)` → `-a`, `--a`, `-(number)`, `a^1`,
//! sign normalization (`a + -b` → `a - b`, `a - -b` → `a + b`, `a + (-2)` → `a - 2`), and
//! clamps that cannot bind (`min(a, c)` → `a` when `a <= c` everywhere, by [`range`]; likewise
//! `max`), which strips the GRAFS clamp from bounded ops such as `tanh`, `max(a, a)` and
//! `min(a, a)` → `a`, nested clamps by numbers (`min(min(a, 10), 5)` → `min(a, 5)`), the number
//! written second in `max`/`min`, `abs(a)` → `a` when `a >= 0` everywhere, and
//! `abs(abs(a))`, `relu(relu(a))`, `abs(relu(a))` → the inner call.
//!
//! Every rule keeps NaN where there was NaN (`max`, `min` and `abs` pass NaN through, and
//! `relu(NaN)` is 0 on both sides of the `relu` rules), so values agree everywhere, not just
//! where they are finite; the tests check each rule against the numeric fingerprint.
//!
//! Rewriting never removes a parameter occurrence. Then the slot renumbering pass of
//! [`slots`](super::slots) puts the slots in reading order and names them (`b2*x + b1` →
//! `b1*x + b2`); for a parsed formula the slots keep their order.

use super::range::range;
use super::slots::renumber;
use super::{BinOp, Expr, Formula, Func};
use crate::expr::ops::powi_eval;

impl Formula {
    /// The simplified formula; it evaluates to the same values as `self` (with the parameter
    /// values permuted as [`Formula::canonical_traced`] says; parsed formulas keep their order).
    pub fn canonical(&self) -> Formula {
        self.canonical_traced().0
    }

    /// [`Formula::canonical`], also returning for each slot of the result the slot of `self` it
    /// came from.
    pub fn canonical_traced(&self) -> (Formula, Vec<usize>) {
        renumber(&simplify(&self.expr), &self.params)
    }
}

/// Simplifies the children, then the node itself.
fn simplify(e: &Expr) -> Expr {
    let e = match e {
        Expr::X | Expr::Num(_) | Expr::Param(_) | Expr::Arg(_) => e.clone(),
        Expr::Neg(a) => Expr::Neg(Box::new(simplify(a))),
        Expr::Pow(a, n) => Expr::Pow(Box::new(simplify(a)), *n),
        Expr::Call(f, a) => Expr::Call(*f, Box::new(simplify(a))),
        Expr::Bin(op, a, b) => Expr::Bin(*op, Box::new(simplify(a)), Box::new(simplify(b))),
    };
    rewrite(e)
}

/// Applies the rewrite rules at the top of `e`, whose children are already simplified.
fn rewrite(e: Expr) -> Expr {
    if let Some(folded) = fold(&e) {
        return Expr::Num(folded);
    }
    match e {
        Expr::Neg(a) => match *a {
            Expr::Neg(inner) => *inner,
            other => Expr::Neg(Box::new(other)),
        },
        Expr::Pow(a, 1) => *a,
        Expr::Call(f, a) => rewrite_call(f, *a),
        Expr::Bin(op, a, b) => rewrite_bin(op, *a, *b),
        other => other,
    }
}

fn rewrite_call(f: Func, a: Expr) -> Expr {
    match (f, a) {
        (Func::Abs, a) if range(&a).lo >= 0.0 => a,
        // The inner call's values are already what the outer one would make of them.
        (Func::Abs, inner @ Expr::Call(Func::Abs | Func::Relu, _))
        | (Func::Relu, inner @ Expr::Call(Func::Relu, _)) => inner,
        (f, a) => Expr::Call(f, Box::new(a)),
    }
}

fn rewrite_bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    use BinOp::*;
    match (op, a, b) {
        (Max | Min, a, b) if a == b => a,
        // The number second, so that the clamp rules below see one shape.
        (Max | Min, Expr::Num(c), b) if !matches!(b, Expr::Num(_)) => rewrite_bin(op, b, Expr::Num(c)),
        (Min, Expr::Bin(Min, a, c1), Expr::Num(c2)) if matches!(*c1, Expr::Num(_)) => {
            let c1 = num(&c1).expect("a number");
            rewrite_bin(Min, *a, Expr::Num(c1.min(c2)))
        }
        (Max, Expr::Bin(Max, a, c1), Expr::Num(c2)) if matches!(*c1, Expr::Num(_)) => {
            let c1 = num(&c1).expect("a number");
            rewrite_bin(Max, *a, Expr::Num(c1.max(c2)))
        }
        (Add, a, b) if is_num(&b, 0.0) => a,
        (Add, a, b) if is_num(&a, 0.0) => b,
        (Sub, a, b) if is_num(&b, 0.0) => a,
        (Sub, a, b) if is_num(&a, 0.0) => rewrite(Expr::Neg(Box::new(b))),
        (Mul, a, b) if is_num(&b, 1.0) => a,
        (Mul, a, b) if is_num(&a, 1.0) => b,
        (Mul, a, b) if is_num(&b, -1.0) => rewrite(Expr::Neg(Box::new(a))),
        (Mul, a, b) if is_num(&a, -1.0) => rewrite(Expr::Neg(Box::new(b))),
        (Div, a, b) if is_num(&b, 1.0) => a,
        (Add, a, Expr::Neg(b)) => rewrite_bin(Sub, a, *b),
        (Sub, a, Expr::Neg(b)) => rewrite_bin(Add, a, *b),
        (Add, a, Expr::Num(v)) if v < 0.0 => Expr::Bin(Sub, Box::new(a), Box::new(Expr::Num(-v))),
        (Sub, a, Expr::Num(v)) if v < 0.0 => Expr::Bin(Add, Box::new(a), Box::new(Expr::Num(-v))),
        (Min, a, Expr::Num(c)) | (Min, Expr::Num(c), a) if range(&a).hi <= c => a,
        (Max, a, Expr::Num(c)) | (Max, Expr::Num(c), a) if range(&a).lo >= c => a,
        (op, a, b) => Expr::Bin(op, Box::new(a), Box::new(b)),
    }
}

fn is_num(e: &Expr, v: f64) -> bool {
    matches!(e, Expr::Num(c) if *c == v)
}

/// The value of a node whose operands are all numbers, if it is finite.
fn fold(e: &Expr) -> Option<f64> {
    let v = match e {
        Expr::Neg(a) => -num(a)?,
        Expr::Pow(a, n) => powi_eval(num(a)?, *n).0,
        Expr::Call(f, a) => f.value(num(a)?),
        Expr::Bin(op, a, b) => op.eval(num(a)?, num(b)?).0,
        Expr::X | Expr::Num(_) | Expr::Param(_) | Expr::Arg(_) => return None,
    };
    v.is_finite().then_some(v)
}

fn num(e: &Expr) -> Option<f64> {
    match e {
        Expr::Num(v) => Some(*v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::ParamName;
    use super::super::random_tree::TreeGen;
    use super::*;

    fn canon(s: &str) -> String {
        Formula::parse(s).unwrap().canonical().to_string()
    }

    #[test]
    fn simplifies_the_listed_patterns() {
        assert_eq!(canon("x + 0"), "x");
        assert_eq!(canon("0 + x"), "x");
        assert_eq!(canon("x - 0"), "x");
        assert_eq!(canon("0 - x"), "-x");
        assert_eq!(canon("x*1"), "x");
        assert_eq!(canon("1*x"), "x");
        assert_eq!(canon("x/1"), "x");
        assert_eq!(canon("--x"), "x");
        assert_eq!(canon("---x"), "-x");
        assert_eq!(canon("x^1"), "x");
        assert_eq!(canon("2*3 + x"), "6 + x");
        assert_eq!(canon("sqrt(4)*x"), "2*x");
        assert_eq!(canon("-(2)*x"), "-2*x");
        assert_eq!(canon("x + -b"), "x - b");
        assert_eq!(canon("x - -x"), "x + x");
        assert_eq!(canon("x + (-2)"), "x - 2");
        assert_eq!(canon("x*(-1)"), "-x");
        assert_eq!(canon("1*(x - 0)^1 + 0*1"), "x");
        assert_eq!(canon("(1 - 1)*b + x"), "0*b + x");
        assert_eq!(canon("1/0 + x"), "1/0 + x");
        assert_eq!(canon("b1*x + (abs(x)*abs(x) + b2)"), "b1*x + (abs(x)*abs(x) + b2)");
    }

    #[test]
    fn drops_clamps_that_cannot_bind() {
        assert_eq!(canon("max(min(tanh(x), 10), -10)"), "tanh(x)");
        assert_eq!(canon("max(min(x, 10), -10)"), "max(min(x, 10), -10)");
        assert_eq!(canon("max(min(sqrt(max(x, 0.001)), 10), -10)"), "min(sqrt(max(x, 0.001)), 10)");
        assert_eq!(canon("max(-10, min(10, sigmoid(x)*max(min(x, 10), -10)))"), "sigmoid(x)*max(min(x, 10), -10)");
        assert_eq!(canon("max(x^2, 0)"), "x^2");
        assert_eq!(canon("min(x^2, 0)"), "min(x^2, 0)");
        assert_eq!(canon("max(b, 0)"), "max(b, 0)");
    }

    /// Each readability rule on its own, with the numeric fingerprint (64 points over [-5, 5])
    /// equal before and after, and values equal on a finer grid that includes NaN inputs.
    #[test]
    fn readability_rules_keep_the_function() {
        let cases = [
            ("max(elu(x), elu(x))", "elu(x)"),
            ("min(sin(x)*x, sin(x)*x)", "sin(x)*x"),
            (
                "max(leaky_relu(max(min(elu(x), 10), min(elu(x), 10))), min(gelu(x), 10))",
                "max(leaky_relu(min(elu(x), 10)), min(gelu(x), 10))",
            ),
            ("min(min(x, 10), 5)", "min(x, 5)"),
            ("min(min(x, 5), 10)", "min(x, 5)"),
            ("max(max(x, -10), -3)", "max(x, -3)"),
            ("max(-3, max(-10, x))", "max(x, -3)"),
            ("min(10, elu(x))", "min(elu(x), 10)"),
            ("max(min(sigmoid(x), 10), -10)", "sigmoid(x)"),
            ("min(exp(-x^2), 10)", "exp(-x^2)"),
            ("max(min(atan(x)*2, 10), -10)", "atan(x)*2"),
            ("abs(x^2)", "x^2"),
            ("abs(abs(x))", "abs(x)"),
            ("abs(relu(x))", "relu(x)"),
            ("relu(relu(x - 1))", "relu(x - 1)"),
            ("abs(cosh(x))", "cosh(x)"),
        ];
        for (before, after) in cases {
            let f = Formula::parse(before).unwrap();
            let c = f.canonical();
            assert_eq!(c.to_string(), after, "{before}");
            assert_eq!(c.fingerprint(), f.fingerprint(), "{before} -> {after}");
            assert!(f.fingerprint().is_some(), "{before}");
            for i in 0..=400 {
                let x = -20.0 + 0.1 * i as f64;
                let (a, b) = (f.eval(x, &[]), c.eval(x, &[]));
                assert!(a == b, "{before} -> {after} at {x}: {a} vs {b}");
            }
            assert!(f.eval(f64::NAN, &[]).is_nan() == c.eval(f64::NAN, &[]).is_nan(), "{before} at NaN");
        }
        // What the rules must leave alone: different operands, parameters, clamps that bind.
        for kept in [
            "max(elu(x), gelu(x))",
            "max(b*x, b*x)",
            "min(elu(x), 10)",
            "relu(abs(x) - 1)",
            "abs(sin(x))",
            "min(max(x, 0), 5)",
        ] {
            assert_eq!(canon(kept), kept);
        }
    }

    #[test]
    fn renumbers_named_parameters_in_reading_order() {
        assert_eq!(canon("b2*x + b1"), "b1*x + b2");
        assert_eq!(canon("b2*x + b + b2 + beta + b7"), "b1*x + b + b1 + b + b2");
        // Slots are already in reading order after parsing: the slot order is kept.
        let (c, trace) = Formula::parse("b3*x + b + b3").unwrap().canonical_traced();
        assert_eq!(c.to_string(), "b1*x + b + b1");
        assert_eq!(trace, vec![0, 1]);
        // A hand-built formula with slots out of reading order gets them reordered.
        let f = Formula {
            expr: Expr::Bin(BinOp::Add, Box::new(Expr::Param(1)), Box::new(Expr::Param(0))),
            params: vec![ParamName::Anon, ParamName::Named(4)],
        };
        let (c, trace) = f.canonical_traced();
        assert_eq!(c.to_string(), "b1 + b");
        assert_eq!(trace, vec![1, 0]);
        assert_eq!(Formula::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn keeps_parameters_and_values() {
        let f = Formula::parse("b*0 + b1 + b^1 - -b1").unwrap();
        let c = f.canonical();
        assert_eq!(c.params, f.params);
        assert_eq!(c.to_string(), "b*0 + b1 + b + b1");
    }

    #[test]
    fn random_trees_keep_values_round_trip_and_are_idempotent() {
        let mut g = TreeGen::new(5, false);
        for _ in 0..3000 {
            let f = g.formula(5);
            let c = f.canonical();
            let anon = |f: &Formula| f.params.iter().map(|p| *p == ParamName::Anon).collect::<Vec<_>>();
            assert_eq!(anon(&c), anon(&f), "{f} -> {c}");
            assert_eq!(c.canonical(), c, "{f} -> {c}");
            assert_eq!(Formula::parse(&c.to_string()).as_ref(), Ok(&c), "{c}");
            let params: Vec<f64> = (0..f.num_params()).map(|i| 0.5 + 0.25 * i as f64).collect();
            for x in [-2.2, -0.3, 0.0, 0.8, 3.1] {
                let (a, b) = (f.eval(x, &params), c.eval(x, &params));
                let same = a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
                assert!(same, "{f} -> {c} at {x}: {a} vs {b}");
            }
        }
    }
}
