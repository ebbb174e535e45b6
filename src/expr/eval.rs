//! Evaluating formulas: values, derivatives and a numeric fingerprint.
//!
//! Every value and derivative comes from the `expr::ops` table ([`Func::eval`],
//! [`BinOp::eval`], [`powi_eval`]), so formulas mean exactly what the kernels compute.
//! A parameter or template argument index beyond the given slice reads as NaN, and its gradient
//! is dropped; so [`Formula::eval`] of a template (which passes no arguments) is NaN, never a
//! panic.

use super::{Expr, Formula};
use crate::expr::ops::{Real, powi_eval};

impl Formula {
    /// The value at `x` with parameter values `params` (one per slot).
    pub fn eval<T: Real>(&self, x: T, params: &[T]) -> T {
        value(&self.expr, x, &[], params)
    }

    /// The value of a template at `x` with argument `k` ([`Expr::Arg`]) set to `args[k]`.
    pub fn eval_args<T: Real>(&self, x: T, args: &[T], params: &[T]) -> T {
        value(&self.expr, x, args, params)
    }

    /// Returns `(value, d/dx)` at `x` by forward mode, and adds `d value / d params[i]` to
    /// `dparams[i]` for every slot (a reverse sweep over a tape of local partials).
    pub fn eval_grad<T: Real>(&self, x: T, params: &[T], dparams: &mut [T]) -> (T, T) {
        self.eval_args_grad(x, &[], params, &mut [], dparams)
    }

    /// [`Formula::eval_grad`] of a template: also adds `d value / d args[k]` to `dargs[k]`.
    /// The returned `d/dx` is the derivative with respect to `x` alone (arguments held fixed).
    pub fn eval_args_grad<T: Real>(
        &self,
        x: T,
        args: &[T],
        params: &[T],
        dargs: &mut [T],
        dparams: &mut [T],
    ) -> (T, T) {
        let record = !self.params.is_empty() || !dargs.is_empty();
        let mut sweep = Sweep { x, args, params, record, tape: Vec::new() };
        let (v, dx) = sweep.forward(&self.expr);
        if sweep.record {
            let mut grads = Grads { dargs, dparams };
            backward(&self.expr, &sweep.tape, sweep.tape.len(), T::one(), &mut grads);
        }
        (v, dx)
    }

    /// A hash of the values at 64 points spread over [-5, 5] with every parameter at 1,
    /// rounded to 6 significant digits, so numerically identical formulas written differently
    /// (`x + x`, `2*x`) collide. `None` if any value is not finite.
    pub fn fingerprint(&self) -> Option<u64> {
        const POINTS: usize = 64;
        let ones = vec![1.0f64; self.params.len()];
        let mut hash = Fnv::new();
        for i in 0..POINTS {
            let x = -5.0 + 10.0 * i as f64 / (POINTS - 1) as f64;
            let v = self.eval(x, &ones);
            if !v.is_finite() {
                return None;
            }
            // Values that differ from 0 by rounding noise count as 0 (and -0 as 0).
            let rounded = if v.abs() < 1e-9 { "0".to_string() } else { format!("{v:.5e}") };
            hash.write(rounded.as_bytes());
            hash.write(b";");
        }
        Some(hash.0)
    }
}

fn value<T: Real>(e: &Expr, x: T, args: &[T], params: &[T]) -> T {
    match e {
        Expr::X => x,
        Expr::Arg(k) => slot(args, *k),
        Expr::Num(c) => T::c(*c),
        Expr::Param(i) => slot(params, *i),
        Expr::Neg(a) => -value(a, x, args, params),
        Expr::Pow(a, n) => powi_eval(value(a, x, args, params), *n).0,
        Expr::Call(f, a) => f.value(value(a, x, args, params)),
        Expr::Bin(op, a, b) => op.eval(value(a, x, args, params), value(b, x, args, params)).0,
    }
}

/// `values[i]`, or NaN past the end.
fn slot<T: Real>(values: &[T], i: usize) -> T {
    values.get(i).copied().unwrap_or_else(T::nan)
}

/// The local partial derivatives of one node with respect to its operands, recorded in
/// post-order during the forward pass.
#[derive(Clone, Copy)]
struct Local<T> {
    /// d node / d first operand.
    da: T,
    /// d node / d second operand (binary nodes only).
    db: T,
    /// Number of tape entries of this node's subtree, itself included.
    size: usize,
    /// True if a parameter or an argument occurs in the subtree.
    has_leaf: bool,
}

struct Sweep<'a, T> {
    x: T,
    args: &'a [T],
    params: &'a [T],
    record: bool,
    tape: Vec<Local<T>>,
}

impl<T: Real> Sweep<'_, T> {
    /// `(value, d/dx)` of `e`, recording local partials when `record` is set.
    fn forward(&mut self, e: &Expr) -> (T, T) {
        let zero = T::zero();
        let one = T::one();
        let start = self.tape.len();
        let (v, dx, da, db) = match e {
            Expr::X => (self.x, one, zero, zero),
            Expr::Arg(k) => (slot(self.args, *k), zero, zero, zero),
            Expr::Num(c) => (T::c(*c), zero, zero, zero),
            Expr::Param(i) => (slot(self.params, *i), zero, zero, zero),
            Expr::Neg(a) => {
                let (va, dxa) = self.forward(a);
                (-va, -dxa, -one, zero)
            }
            Expr::Pow(a, n) => {
                let (va, dxa) = self.forward(a);
                let (v, d) = powi_eval(va, *n);
                (v, chain(d, dxa), d, zero)
            }
            Expr::Call(f, a) => {
                let (va, dxa) = self.forward(a);
                let (v, d) = f.eval(va);
                (v, chain(d, dxa), d, zero)
            }
            Expr::Bin(op, a, b) => {
                let (va, dxa) = self.forward(a);
                let (vb, dxb) = self.forward(b);
                let (v, da, db) = op.eval(va, vb);
                (v, chain(da, dxa) + chain(db, dxb), da, db)
            }
        };
        if self.record {
            let n = self.tape.len();
            let has_leaf = match e {
                Expr::Param(_) | Expr::Arg(_) => true,
                Expr::X | Expr::Num(_) => false,
                Expr::Neg(_) | Expr::Pow(..) | Expr::Call(..) => self.tape[n - 1].has_leaf,
                Expr::Bin(..) => {
                    let b = self.tape[n - 1];
                    b.has_leaf || self.tape[n - 1 - b.size].has_leaf
                }
            };
            let size = n - start + 1;
            self.tape.push(Local { da, db, size, has_leaf });
        }
        (v, dx)
    }
}

/// `d * inner`, with a zero partial cutting off the path even when `inner` is infinite
/// (the branch `max` did not take contributes nothing).
fn chain<T: Real>(d: T, inner: T) -> T {
    if d == T::zero() { d } else { d * inner }
}

/// Where the reverse sweep accumulates gradients.
struct Grads<'a, T> {
    dargs: &'a mut [T],
    dparams: &'a mut [T],
}

/// Adds `scale * d e / d leaf` to the gradients of the parameters and arguments in the subtree
/// `e` whose tape entries end (exclusive) at `end`.
fn backward<T: Real>(e: &Expr, tape: &[Local<T>], end: usize, scale: T, grads: &mut Grads<T>) {
    let k = end - 1;
    let local = tape[k];
    if !local.has_leaf || scale == T::zero() {
        return;
    }
    match e {
        Expr::Param(i) => add(grads.dparams, *i, scale),
        Expr::Arg(i) => add(grads.dargs, *i, scale),
        Expr::X | Expr::Num(_) => {}
        Expr::Neg(a) | Expr::Pow(a, _) | Expr::Call(_, a) => {
            backward(a, tape, k, chain(local.da, scale), grads);
        }
        Expr::Bin(_, a, b) => {
            let b_size = tape[k - 1].size;
            backward(b, tape, k, chain(local.db, scale), grads);
            backward(a, tape, k - b_size, chain(local.da, scale), grads);
        }
    }
}

/// `grads[i] += v`, ignoring indices past the end.
fn add<T: Real>(grads: &mut [T], i: usize, v: T) {
    if let Some(d) = grads.get_mut(i) {
        *d = *d + v;
    }
}

/// 64-bit FNV-1a: stable across Rust versions, so fingerprints can be stored.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::named::NAMED;
    use super::super::random_tree::TreeGen;
    use super::*;

    fn parse(s: &str) -> Formula {
        Formula::parse(s).unwrap()
    }

    #[test]
    fn values_match_hand_computation() {
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        assert_eq!(parse("(x + b)^2").eval(2.0, &[1.0]), 9.0);
        assert_eq!(parse("b1*x + (abs(x)*abs(x) + b2)").eval(-3.0, &[2.0, 0.5]), -6.0 + 9.0 + 0.5);
        assert_eq!(parse("max(x, 0) + max(x, 0)").eval(-1.5, &[]), 0.0);
        assert_eq!(parse("max(x, 0) + max(x, 0)").eval(1.5, &[]), 3.0);
        assert_eq!(parse("x + (min(-x, sqrt(x)) + b)").eval(4.0, &[0.5]), 0.5);
        let g = parse("sigmoid(sigmoid(x))*sigmoid(x)").eval(0.7, &[]);
        assert!((g - sig(sig(0.7)) * sig(0.7)).abs() < 1e-15);
        let m = parse("x*tanh(softplus(x))").eval(1.0, &[]);
        assert!((m - (1.0f64.exp().ln_1p()).tanh()).abs() < 1e-15);
        assert_eq!(parse("-2^2").eval(0.0, &[]), -4.0);
        assert_eq!(parse("2^-1 + x^(-1)").eval(4.0, &[]), 0.75);
        assert_eq!(parse("x - 1 - 2").eval(0.0, &[]), -3.0);
        assert_eq!(parse("12/2/3").eval(0.0, &[]), 2.0);
        assert_eq!(parse("b1*x + b1").eval(2.0, &[3.0]), 9.0);
        assert_eq!(parse("sinc(x)").eval(0.0, &[]), 1.0);
        assert_eq!(parse("log(x)").eval(-1.0f64, &[]), 1e-10f64.ln());
    }

    #[test]
    fn f32_agrees_with_f64() {
        for named in NAMED {
            let f = parse(named.formula);
            let p64 = vec![0.75; f.num_params()];
            let p32 = vec![0.75f32; f.num_params()];
            for x in [-2.5f32, -0.4, 0.3, 1.7] {
                let a = f.eval(x, &p32) as f64;
                let b = f.eval(x as f64, &p64);
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-3), "{}: {a} vs {b}", named.name);
            }
        }
    }

    /// Checks d/dx and every d/dparam against central differences of `eval`.
    fn check_grad(f: &Formula, x: f64, params: &[f64]) {
        let h = 1e-6;
        let mut dparams = vec![0.0; params.len()];
        let (v, dx) = f.eval_grad(x, params, &mut dparams);
        assert_eq!(v.to_bits(), f.eval(x, params).to_bits(), "{f}");
        let tol = |want: f64| 1e-5 * want.abs() + 1e-7 * (1.0 + v.abs());
        let fd = (f.eval(x + h, params) - f.eval(x - h, params)) / (2.0 * h);
        assert!((dx - fd).abs() <= tol(fd), "{f} d/dx at {x}: {dx} vs {fd}");
        for i in 0..params.len() {
            let mut up = params.to_vec();
            let mut down = params.to_vec();
            up[i] += h;
            down[i] -= h;
            let fd = (f.eval(x, &up) - f.eval(x, &down)) / (2.0 * h);
            assert!((dparams[i] - fd).abs() <= tol(fd), "{f} d/dp{i} at {x}: {} vs {fd}", dparams[i]);
        }
    }

    #[test]
    fn named_gradients_match_finite_differences() {
        for named in NAMED {
            let f = parse(named.formula);
            let params: Vec<f64> = (0..f.num_params()).map(|i| 0.7 + 0.3 * i as f64).collect();
            for x in [-3.3, -1.7, -0.45, 0.37, 1.3, 2.9] {
                check_grad(&f, x, &params);
            }
        }
    }

    #[test]
    fn random_smooth_tree_gradients_match_finite_differences() {
        let mut g = TreeGen::new(99, true);
        for _ in 0..400 {
            let f = g.formula(4);
            let params: Vec<f64> = (0..f.num_params()).map(|i| 0.6 + 0.17 * i as f64).collect();
            for x in [-1.9, -0.6, 0.2, 1.1] {
                check_grad(&f, x, &params);
            }
        }
    }

    #[test]
    fn param_gradients_accumulate_and_share() {
        let f = parse("b1*x + b1 + b*x");
        let mut d = vec![0.0; 2];
        f.eval_grad(2.0, &[1.5, 4.0], &mut d);
        assert_eq!(d, vec![3.0, 2.0]);
        f.eval_grad(2.0, &[1.5, 4.0], &mut d);
        assert_eq!(d, vec![6.0, 4.0]);
        // The branch max does not take gets no gradient.
        let f = parse("max(b*x, b)");
        let mut d = vec![0.0; 2];
        let (_, dx) = f.eval_grad(3.0, &[2.0, 1.0], &mut d);
        assert_eq!((dx, d), (2.0, vec![3.0, 0.0]));
    }

    #[test]
    fn template_gradients_match_finite_differences() {
        let h = 1e-6;
        for text in ["b1*x1 + (1 - b1)*x2", "sigmoid(x1)*x2", "exp(-b*(x1 - x2)^2)", "x1/(x2 + 3) + b*x"] {
            let t = Formula::parse_template(text, &["x1", "x2"]).unwrap();
            let params: Vec<f64> = (0..t.num_params()).map(|i| 0.7 + 0.2 * i as f64).collect();
            for (x, args) in [(0.3, [0.4, -1.1]), (-1.2, [-0.8, 0.9]), (2.0, [1.7, 0.2])] {
                let mut dargs = [0.0; 2];
                let mut dparams = vec![0.0; params.len()];
                let (v, dx) = t.eval_args_grad(x, &args, &params, &mut dargs, &mut dparams);
                assert_eq!(v, t.eval_args(x, &args, &params));
                let fd_x = (t.eval_args(x + h, &args, &params) - t.eval_args(x - h, &args, &params)) / (2.0 * h);
                assert!((dx - fd_x).abs() < 1e-6, "{text} d/dx");
                for k in 0..2 {
                    let (mut up, mut down) = (args, args);
                    up[k] += h;
                    down[k] -= h;
                    let fd = (t.eval_args(x, &up, &params) - t.eval_args(x, &down, &params)) / (2.0 * h);
                    assert!((dargs[k] - fd).abs() < 1e-6, "{text} d/dx{}: {} vs {fd}", k + 1, dargs[k]);
                }
                let mut dp = vec![0.0; params.len()];
                t.eval_args_grad(x, &args, &params, &mut [], &mut dp);
                assert_eq!(dp, dparams, "{text}: parameter gradients without argument gradients");
            }
        }
        // Without arguments a template evaluates to NaN instead of panicking.
        assert!(Formula::parse_template("x1 + 1", &["x1"]).unwrap().eval(1.0f32, &[]).is_nan());
    }

    #[test]
    fn mismatched_slices_do_not_panic() {
        let f = parse("b*x + b");
        assert!(f.eval(1.0f64, &[]).is_nan());
        let mut short = vec![0.0; 1];
        let (v, _) = f.eval_grad(1.0, &[1.0, 2.0], &mut short);
        assert_eq!((v, short), (3.0, vec![1.0]));
        let (v, dx) = f.eval_grad(1.0f32, &[1.0, 2.0], &mut []);
        assert_eq!((v, dx), (3.0, 1.0));
    }

    #[test]
    fn fingerprints_collide_exactly_for_equal_functions() {
        let fp = |s: &str| parse(s).fingerprint();
        assert_eq!(fp("x + x"), fp("2*x"));
        assert_eq!(fp("x*sigmoid(x)"), fp("silu(x)"));
        assert_eq!(fp("relu(x)"), fp("max(x, 0)"));
        assert_eq!(fp("(x + 1)^2"), fp("x^2 + 2*x + 1"));
        assert_eq!(fp("(x + b)^2"), fp("(x + 1)^2"));
        assert_eq!(fp("tanh(x)"), fp("2*sigmoid(2*x) - 1"));
        assert_eq!(fp("x - x"), fp("0"));
        assert_ne!(fp("x"), fp("2*x"));
        assert_ne!(fp("relu(x)"), fp("leaky_relu(x)"));
        assert_ne!(fp("silu(x)"), fp("gelu(x)"));
        assert_ne!(fp("x^2"), fp("x^2 + 1e-4"));
        assert!(fp("log(x)").is_some());
        assert_eq!(fp("1/(x - x)"), None);
        assert_eq!(fp("exp(exp(exp(x)))"), None);
    }
}
