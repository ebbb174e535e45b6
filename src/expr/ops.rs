//! The op table: every scalar function's value and derivative, defined side by side.
//!
//! This is the single source of truth for what `sqrt`, `sinc`, `max`, ... mean. Formula
//! evaluation (`expr`), the fused CPU kernels and the burn-tensor reference path are all built
//! from these definitions, so each arm below holds a value and its derivative together (in the
//! style of llm.c). Everything is generic over [`Real`] (`f32` and `f64`).
//!
//! Semantics follow the seed PyTorch project: `sqrt` and `log` clamp their input to
//! [`EPS`] from below (`torch.clamp(x, min=EPS)`, gradient 0 where clamped), `sinc` is the
//! normalized `torch.sinc`, `relu`'s derivative at 0 is 0, `max`/`min` split the gradient
//! 0.5/0.5 at a tie (`torch.maximum`). Overflow: `exp`, `sinh` and `cosh` return infinity once
//! the result exceeds the type's range (f32: |x| above about 88.7; f64: above about 709.8);
//! every other function is finite for every finite input.

use burn::prelude::Tensor;

/// Lower clamp of `sqrt` and `log` inputs (the seed's `EPS`).
pub const EPS: f64 = 1e-10;

/// A floating-point scalar the op table is evaluated on: `f32` and `f64` (through the
/// standard library), and `kernels::fast32::F32x` (branch-free polynomial versions of the
/// same functions, so that loops of op-table evaluations vectorize in the fused kernels).
pub trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// Converts a constant.
    fn c(v: f64) -> Self;
    fn zero() -> Self {
        Self::c(0.0)
    }
    fn one() -> Self {
        Self::c(1.0)
    }
    fn nan() -> Self {
        Self::c(f64::NAN)
    }
    fn abs(self) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn exp_m1(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn sinh(self) -> Self;
    fn cosh(self) -> Self;
    fn tanh(self) -> Self;
    fn asinh(self) -> Self;
    fn atan(self) -> Self;
    /// The error function.
    fn erf(self) -> Self;
    /// The complementary error function `1 - erf(x)`, accurate where `erf(x)` is near 1.
    fn erfc(self) -> Self;
    /// The larger of two values; NaN only if both are NaN (IEEE maxNum).
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
    fn powi(self, n: i32) -> Self;
    /// Round half away from zero.
    fn round(self) -> Self;
    fn is_finite(self) -> bool;
    fn is_nan(self) -> bool;
}

/// `Real` for a standard float type, each method calling the inherent one.
macro_rules! std_real {
    ($t:ty, $erf:path, $erfc:path) => {
        impl Real for $t {
            #[inline]
            fn c(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn exp_m1(self) -> Self {
                <$t>::exp_m1(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline]
            fn sinh(self) -> Self {
                <$t>::sinh(self)
            }
            #[inline]
            fn cosh(self) -> Self {
                <$t>::cosh(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn asinh(self) -> Self {
                <$t>::asinh(self)
            }
            #[inline]
            fn atan(self) -> Self {
                <$t>::atan(self)
            }
            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline]
            fn erfc(self) -> Self {
                $erfc(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline]
            fn powi(self, n: i32) -> Self {
                <$t>::powi(self, n)
            }
            #[inline]
            fn round(self) -> Self {
                <$t>::round(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}

std_real!(f32, libm::erff, libm::erfcf);
std_real!(f64, libm::erf, libm::erfc);

/// The parameter-free unary functions callable by name in formulas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    Abs,
    Sqrt,
    Exp,
    Log,
    Sin,
    Cos,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Atan,
    Sinc,
    Erf,
    Sigmoid,
    Softplus,
    Relu,
    Silu,
    Gelu,
    Elu,
    LeakyRelu,
}

impl Func {
    /// Every function, in the order listed by `actsearch functions`.
    pub const ALL: &[Func] = &[
        Func::Abs,
        Func::Sqrt,
        Func::Exp,
        Func::Log,
        Func::Sin,
        Func::Cos,
        Func::Sinh,
        Func::Cosh,
        Func::Tanh,
        Func::Asinh,
        Func::Atan,
        Func::Sinc,
        Func::Erf,
        Func::Sigmoid,
        Func::Softplus,
        Func::Relu,
        Func::Silu,
        Func::Gelu,
        Func::Elu,
        Func::LeakyRelu,
    ];

    /// Value and derivative at `x`, from one table: each arm holds both.
    #[inline(always)]
    pub fn eval<T: Real>(self, x: T) -> (T, T) {
        let zero = T::zero();
        let one = T::one();
        match self {
            Func::Abs => (x.abs(), sign(x)),
            Func::Sqrt => {
                let eps = T::c(EPS);
                let r = x.max(eps).sqrt();
                (r, if x < eps { zero } else { T::c(0.5) / r })
            }
            Func::Exp => {
                let e = x.exp();
                (e, e)
            }
            Func::Log => {
                let eps = T::c(EPS);
                let m = x.max(eps);
                (m.ln(), if x < eps { zero } else { one / m })
            }
            Func::Sin => (x.sin(), x.cos()),
            Func::Cos => (x.cos(), -x.sin()),
            Func::Sinh => (x.sinh(), x.cosh()),
            Func::Cosh => (x.cosh(), x.sinh()),
            Func::Tanh => {
                let t = x.tanh();
                (t, one - t * t)
            }
            Func::Asinh => (x.asinh(), one / (one + x * x).sqrt()),
            Func::Atan => (x.atan(), one / (one + x * x)),
            Func::Sinc => sinc(x),
            Func::Erf => (Real::erf(x), T::c(std::f64::consts::FRAC_2_SQRT_PI) * (-x * x).exp()),
            Func::Sigmoid => {
                let s = sigmoid(x);
                (s, s * (one - s))
            }
            Func::Softplus => (x.max(zero) + (-x.abs()).exp().ln_1p(), sigmoid(x)),
            Func::Relu => {
                if x > zero {
                    (x, one)
                } else {
                    (zero, zero)
                }
            }
            Func::Silu => {
                let s = sigmoid(x);
                (x * s, s * (one + x * (one - s)))
            }
            Func::Gelu => {
                // Phi(x) = erfc(-x/sqrt2)/2 stays accurate in the left tail, where erf is near -1.
                let phi_cdf = T::c(0.5) * Real::erfc(-x * T::c(std::f64::consts::FRAC_1_SQRT_2));
                let pdf = T::c(0.398_942_280_401_432_7) * (T::c(-0.5) * x * x).exp();
                (x * phi_cdf, phi_cdf + x * pdf)
            }
            Func::Elu => {
                if x > zero {
                    (x, one)
                } else {
                    (x.exp_m1(), x.exp())
                }
            }
            Func::LeakyRelu => {
                let slope = T::c(0.01);
                if x > zero { (x, one) } else { (slope * x, slope) }
            }
        }
    }

    /// Value at `x` (the first half of [`Func::eval`]).
    #[inline(always)]
    pub fn value<T: Real>(self, x: T) -> T {
        self.eval(x).0
    }

    /// The lowercase name used in formulas, e.g. `"leaky_relu"`.
    pub fn name(self) -> &'static str {
        match self {
            Func::Abs => "abs",
            Func::Sqrt => "sqrt",
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Sinh => "sinh",
            Func::Cosh => "cosh",
            Func::Tanh => "tanh",
            Func::Asinh => "asinh",
            Func::Atan => "atan",
            Func::Sinc => "sinc",
            Func::Erf => "erf",
            Func::Sigmoid => "sigmoid",
            Func::Softplus => "softplus",
            Func::Relu => "relu",
            Func::Silu => "silu",
            Func::Gelu => "gelu",
            Func::Elu => "elu",
            Func::LeakyRelu => "leaky_relu",
        }
    }

    /// The function with this formula name (exact, lowercase), if any.
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// One line stating the exact semantics.
    pub fn doc(self) -> &'static str {
        match self {
            Func::Abs => "|x| (derivative 0 at 0)",
            Func::Sqrt => "sqrt(max(x, 1e-10)) (derivative 0 where x < 1e-10)",
            Func::Exp => "e^x (overflows to inf above x = 88.7 in f32, 709.8 in f64)",
            Func::Log => "log(max(x, 1e-10)) (derivative 0 where x < 1e-10)",
            Func::Sin => "sin(x)",
            Func::Cos => "cos(x)",
            Func::Sinh => "sinh(x)",
            Func::Cosh => "cosh(x)",
            Func::Tanh => "tanh(x)",
            Func::Asinh => "asinh(x) = log(x + sqrt(x^2 + 1))",
            Func::Atan => "atan(x)",
            Func::Sinc => "normalized sinc: sin(pi*x)/(pi*x), sinc(0) = 1 (torch.sinc)",
            Func::Erf => "erf(x) = 2/sqrt(pi) * integral of e^(-t^2) from 0 to x",
            Func::Sigmoid => "1/(1 + e^-x)",
            Func::Softplus => "log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|)",
            Func::Relu => "max(x, 0) (derivative 0 at 0)",
            Func::Silu => "x*sigmoid(x) (also called swish)",
            Func::Gelu => "x*Phi(x), Phi the standard normal CDF (exact erf form)",
            Func::Elu => "x if x > 0 else e^x - 1 (alpha = 1)",
            Func::LeakyRelu => "x if x > 0 else 0.01*x (derivative 0.01 at 0)",
        }
    }
}

/// Binary operations. `Max`/`Min` are written as calls, the others infix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl BinOp {
    /// Every binary operation.
    pub const ALL: &[BinOp] = &[BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div, BinOp::Max, BinOp::Min];

    /// `(value, d/da, d/db)`. A tie of `max`/`min` splits the gradient 0.5/0.5
    /// (as `torch.maximum`); a NaN operand gives NaN. Division is plain `a/b`.
    #[inline(always)]
    pub fn eval<T: Real>(self, a: T, b: T) -> (T, T, T) {
        let zero = T::zero();
        let one = T::one();
        let half = T::c(0.5);
        match self {
            BinOp::Add => (a + b, one, one),
            BinOp::Sub => (a - b, one, -one),
            BinOp::Mul => (a * b, b, a),
            BinOp::Div => {
                let q = a / b;
                (q, one / b, -q / b)
            }
            BinOp::Max => {
                if a > b {
                    (a, one, zero)
                } else if b > a {
                    (b, zero, one)
                } else if a == b {
                    (a, half, half)
                } else {
                    (T::nan(), half, half)
                }
            }
            BinOp::Min => {
                if a < b {
                    (a, one, zero)
                } else if b < a {
                    (b, zero, one)
                } else if a == b {
                    (a, half, half)
                } else {
                    (T::nan(), half, half)
                }
            }
        }
    }

    /// The lowercase name: `"add"`, `"sub"`, `"mul"`, `"div"`, `"max"`, `"min"`.
    pub fn name(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
            BinOp::Div => "div",
            BinOp::Max => "max",
            BinOp::Min => "min",
        }
    }

    /// The infix symbol (`+ - * /`), or `None` for `max`/`min`, which are written as calls.
    pub fn symbol(self) -> Option<&'static str> {
        match self {
            BinOp::Add => Some("+"),
            BinOp::Sub => Some("-"),
            BinOp::Mul => Some("*"),
            BinOp::Div => Some("/"),
            BinOp::Max | BinOp::Min => None,
        }
    }
}

/// `(x^n, n*x^(n-1))` for an integer power; `x^0` is 1 with derivative 0.
#[inline(always)]
pub fn powi_eval<T: Real>(x: T, n: i32) -> (T, T) {
    match n {
        0 => (T::one(), T::zero()),
        1 => (x, T::one()),
        // n - 1 would overflow; x^(n-1) is 0 or inf for every |x| != 1 anyway.
        i32::MIN => (x.powi(n), T::c(n as f64) * x.powi(n) / x),
        _ => (x.powi(n), T::c(n as f64) * x.powi(n - 1)),
    }
}

/// -1, 0 or 1 (0 at 0, as `torch.sign`, so `abs` has derivative 0 there).
#[inline(always)]
fn sign<T: Real>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

/// Overflow-safe logistic function: `1/(1 + e^-x)` for x >= 0, `e^x/(1 + e^x)` below, from
/// one exponential (`e^-|x|`) and one division, so that the kernels' loops stay branch-free.
#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    let e = (-x.abs()).exp();
    let numerator = if x >= T::zero() { T::one() } else { e };
    numerator / (T::one() + e)
}

/// Normalized sinc and its derivative: a Taylor series in `u = pi*x` near 0, otherwise
/// `sin(pi x)/(pi x)` and `(cos(pi x) - sinc(x))/x` with exact range reduction of `pi x`.
#[inline(always)]
fn sinc<T: Real>(x: T) -> (T, T) {
    // Both forms are computed and one is chosen, so that the kernels' loops stay branch-free.
    let pi = T::c(std::f64::consts::PI);
    let u = pi * x;
    let u2 = u * u;
    // sin(u)/u = sum (-1)^k u^(2k)/(2k+1)!, truncated after u^10 (error < 2e-16 for |x| < 0.1).
    let series = T::one()
        - u2 / T::c(6.0)
            * (T::one()
                - u2 / T::c(20.0)
                    * (T::one() - u2 / T::c(42.0) * (T::one() - u2 / T::c(72.0) * (T::one() - u2 / T::c(110.0)))));
    // d/du of the series above.
    let series_du = -u / T::c(3.0)
        * (T::one()
            - u2 / T::c(10.0)
                * (T::one() - u2 / T::c(28.0) * (T::one() - u2 / T::c(54.0) * (T::one() - u2 / T::c(88.0)))));
    let (s, c) = sin_cos_pi(x);
    let ratio = s / u;
    let ratio_dx = (c - ratio) / x;
    if x.abs() < T::c(0.1) { (series, series_du * pi) } else { (ratio, ratio_dx) }
}

/// `(sin(pi x), cos(pi x))`, reducing `x` modulo 2 exactly first so large `x` stays accurate.
#[inline(always)]
fn sin_cos_pi<T: Real>(x: T) -> (T, T) {
    let two = T::c(2.0);
    let half = T::c(0.5);
    let pi = T::c(std::f64::consts::PI);
    // r in [-1, 1], exact.
    let r = x - two * (x / two).round();
    // Fold into [-1/2, 1/2]: sin(pi r) = sin(pi (±1 - r)), cos(pi r) = -cos(pi (±1 - r)).
    let flip = r > half || r < -half;
    let toward = if r > half { T::one() } else { -T::one() };
    let r = if flip { toward - r } else { r };
    let s = (pi * r).sin();
    // cos(pi r) = sin(pi (1/2 - |r|)) keeps relative accuracy near |r| = 1/2.
    let c = (pi * (half - r.abs())).sin();
    (s, if flip { -c } else { c })
}

// ---------------------------------------------------------------------------------------------
// The tensor form of each op (reference path, every backend, autodiff). Semantics must match
// `eval` above; tests compare the autodiff gradient of this form with `eval`'s derivative.

impl Func {
    pub fn tensor<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        use burn::tensor::activation as act;
        match self {
            Func::Abs => x.abs(),
            Func::Sqrt => x.clamp_min(EPS).sqrt(),
            Func::Exp => x.exp(),
            Func::Log => x.clamp_min(EPS).log(),
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Sinh => x.sinh(),
            Func::Cosh => x.cosh(),
            Func::Tanh => x.tanh(),
            Func::Asinh => x.asinh(),
            Func::Atan => x.atan(),
            Func::Sinc => sinc_tensor(x),
            Func::Erf => x.erf(),
            Func::Sigmoid => act::sigmoid(x),
            Func::Softplus => act::softplus(x, 1.0),
            Func::Relu => act::relu(x),
            Func::Silu => act::silu(x),
            Func::Gelu => act::gelu(x),
            Func::Elu => act::elu(x, 1.0),
            Func::LeakyRelu => act::leaky_relu(x, 0.01),
        }
    }
}

impl BinOp {
    pub fn tensor<const D: usize>(self, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Max => {
                let b_wins = b.clone().greater(a.clone());
                tie_split(a.clone().mask_where(b_wins, b.clone()), a, b)
            }
            BinOp::Min => {
                let b_wins = b.clone().lower(a.clone());
                tie_split(a.clone().mask_where(b_wins, b.clone()), a, b)
            }
        }
    }
}

/// `picked` (a or b, whichever won) except at ties, where it is `(a + b) / 2`: the same value,
/// but the gradient splits 0.5/0.5 as in `BinOp::eval` (burn's `max_pair` would give it all
/// to one side).
fn tie_split<const D: usize>(picked: Tensor<D>, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let tie = a.clone().equal(b.clone());
    picked.mask_where(tie, (a + b).mul_scalar(0.5))
}

/// x^n for an integer n, as products where that is cheapest.
pub fn powi_tensor<const D: usize>(x: Tensor<D>, n: i32) -> Tensor<D> {
    match n {
        0 => x.ones_like(),
        1 => x,
        2 => x.clone() * x,
        3 => x.clone() * x.clone() * x,
        _ => x.powi_scalar(n),
    }
}

/// Normalized sinc sin(pi x)/(pi x), with sinc(0) = 1 and a finite gradient at 0.
fn sinc_tensor<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let px = x.mul_scalar(std::f64::consts::PI);
    let near_zero = px.clone().abs().lower_elem(1e-4);
    // Where |pi x| is tiny, evaluate at a safe point and then replace by the limit 1.
    let safe = px.clone().mask_fill(near_zero.clone(), 1.0);
    let value = safe.clone().sin() / safe;
    value.mask_fill(near_zero, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test points: a grid over [-6, 6] offset from the kinks, large magnitudes, and near 0.
    fn points() -> Vec<f64> {
        let mut v: Vec<f64> = (0..=120).map(|i| -6.0 + 0.1 * i as f64 + 0.0123).collect();
        v.extend([-50.0, 50.0, -37.5, 37.5, -20.25, 20.25]);
        v.extend([1e-3, -1e-3, 1e-2, -1e-2, 0.03, -0.03, 0.05, -0.05, 0.1, -0.1, 0.0999, 0.1001]);
        v.extend([1e-5, -1e-5, 1e-8, -1e-8]);
        v
    }

    /// True if `x` lies within a few finite-difference steps of one of `f`'s kinks.
    fn near_kink(f: Func, x: f64, h: f64) -> bool {
        let k = 4.0 * h;
        match f {
            Func::Abs | Func::Relu | Func::LeakyRelu | Func::Elu => x.abs() < k,
            Func::Sqrt | Func::Log => (x - EPS).abs() < k,
            _ => false,
        }
    }

    /// Central-difference step: relative to |x| near 0, where `sqrt` and `log` are steep.
    fn step(x: f64) -> f64 {
        if x.abs() < 1e-3 { 1e-4 * x.abs() } else { 1e-6 * x.abs().max(1.0) }
    }

    /// `got` matches the finite difference `want` to 1e-5 relative, allowing for the rounding
    /// noise of a difference quotient of values of size `v` over step `h`.
    fn assert_close(what: &str, x: f64, got: f64, want: f64, v: f64, h: f64) {
        let tol = 1e-5 * want.abs() + 1e-14 * v.abs() / h + 1e-12;
        assert!((got - want).abs() <= tol, "{what} at x = {x}: got {got}, finite difference {want}");
    }

    #[test]
    fn func_derivatives_match_finite_differences() {
        for &f in Func::ALL {
            for x in points() {
                let h = step(x);
                if near_kink(f, x, h) {
                    continue;
                }
                let (v, d) = f.eval(x);
                let fd = (f.value(x + h) - f.value(x - h)) / (2.0 * h);
                assert_close(f.name(), x, d, fd, v, h);
            }
        }
    }

    #[test]
    fn binop_derivatives_match_finite_differences() {
        let vals = [-3.7, -1.2, -0.3, 0.0, 0.45, 1.0, 2.6, 5.9];
        for &op in BinOp::ALL {
            for &a in &vals {
                for &b in &vals {
                    if matches!(op, BinOp::Max | BinOp::Min) && (a - b).abs() < 1e-3 {
                        continue;
                    }
                    if op == BinOp::Div && b == 0.0 {
                        continue;
                    }
                    let h = 1e-6;
                    let (v, da, db) = op.eval(a, b);
                    let fa = (op.eval(a + h, b).0 - op.eval(a - h, b).0) / (2.0 * h);
                    let fb = (op.eval(a, b + h).0 - op.eval(a, b - h).0) / (2.0 * h);
                    assert_close(op.name(), a, da, fa, v, h);
                    assert_close(op.name(), b, db, fb, v, h);
                }
            }
        }
    }

    #[test]
    fn max_min_split_ties() {
        assert_eq!(BinOp::Max.eval(2.0, 2.0), (2.0, 0.5, 0.5));
        assert_eq!(BinOp::Min.eval(-1.0f32, -1.0), (-1.0, 0.5, 0.5));
        assert_eq!(BinOp::Max.eval(3.0, 2.0), (3.0, 1.0, 0.0));
        assert_eq!(BinOp::Min.eval(3.0, 2.0), (2.0, 0.0, 1.0));
        assert!(BinOp::Max.eval(f64::NAN, 2.0).0.is_nan());
    }

    #[test]
    fn kinks_follow_torch() {
        assert_eq!(Func::Relu.eval(0.0), (0.0, 0.0));
        assert_eq!(Func::Abs.eval(0.0), (0.0, 0.0));
        assert_eq!(Func::LeakyRelu.eval(0.0), (0.0, 0.01));
        assert_eq!(Func::Elu.eval(0.0), (0.0, 1.0));
        assert_eq!(Func::Sqrt.eval(-1.0), (1e-5, 0.0));
        assert_eq!(Func::Log.eval(0.0).1, 0.0);
        assert_eq!(Func::Log.eval(0.0).0, EPS.ln());
        assert_eq!(Func::Sinc.eval(0.0), (1.0, 0.0));
        assert!((Func::Sinc.value(1.0f64)).abs() < 1e-16);
        assert!((Func::Sinc.value(0.5f64) - 2.0 / std::f64::consts::PI).abs() < 1e-15);
    }

    #[test]
    fn sinc_series_meets_closed_form() {
        // Both sides of the switch agree closely in value and derivative.
        for x in [0.0999999f64, 0.1, -0.0999999, -0.1] {
            let (v, d) = sinc(x);
            let u = std::f64::consts::PI * x;
            let want_v = u.sin() / u;
            let want_d = (u.cos() - want_v) / x;
            assert!((v - want_v).abs() < 1e-14, "{x}: {v} vs {want_v}");
            assert!((d - want_d).abs() < 1e-12, "{x}: {d} vs {want_d}");
        }
    }

    #[test]
    fn f32_and_f64_values_agree() {
        for &f in Func::ALL {
            for x in points() {
                let x32 = x as f32;
                let v32 = f.value(x32) as f64;
                let v64 = f.value(x32 as f64);
                assert!((v32 - v64).abs() <= 1e-5 * v64.abs() + 1e-30, "{} at {x}: f32 {v32} vs f64 {v64}", f.name());
            }
        }
        for &op in BinOp::ALL {
            let (v32, _, _) = op.eval(1.5f32, -0.25);
            let (v64, _, _) = op.eval(1.5f64, -0.25);
            assert!((v32 as f64 - v64).abs() <= 1e-6 * v64.abs());
        }
    }

    #[test]
    fn saturating_functions_stay_finite() {
        for x in [-100.0f64, 100.0, -1e6, 1e6] {
            for f in [Func::Sigmoid, Func::Softplus, Func::Silu, Func::Tanh, Func::Gelu, Func::Elu] {
                let (v, d) = f.eval(x);
                assert!(v.is_finite() && d.is_finite(), "{} at {x}", f.name());
                let (v, d) = f.eval(x as f32);
                assert!(v.is_finite() && d.is_finite(), "{} at {x} (f32)", f.name());
            }
        }
        // exp is finite at ±100 in f64; in f32 e^100 exceeds f32::MAX and overflows (documented).
        assert!(Func::Exp.eval(100.0f64).0.is_finite());
        assert!(Func::Exp.eval(-100.0f64).0 > 0.0);
        assert_eq!(Func::Exp.eval(100.0f32).0, f32::INFINITY);
        assert!(Func::Exp.eval(-100.0f32).0.is_finite());
        assert_eq!(Func::Softplus.value(100.0f64), 100.0);
        assert!(Func::Softplus.value(-100.0f64) > 0.0);
    }

    #[test]
    fn every_finite_input_is_finite_except_exp_sinh_cosh() {
        for &f in Func::ALL {
            for x in [-1e30f64, -710.0, -89.0, 89.0, 710.0, 1e30, f64::MIN_POSITIVE, -0.0] {
                let (v, d) = f.eval(x);
                let overflows = matches!(f, Func::Exp | Func::Sinh | Func::Cosh) && x.abs() > 709.0;
                assert!(overflows || (v.is_finite() && d.is_finite()), "{} at {x}", f.name());
            }
        }
    }

    #[test]
    fn powi_matches_finite_differences() {
        for n in -4..=5 {
            for x in [-2.3, -0.7, 0.4, 1.9] {
                let (v, d) = powi_eval(x, n);
                assert!((v - x.powi(n)).abs() <= 1e-12 * v.abs());
                let h = 1e-6;
                let fd = (powi_eval(x + h, n).0 - powi_eval(x - h, n).0) / (2.0 * h);
                assert_close("powi", x, d, fd, v, h);
            }
        }
        assert_eq!(powi_eval(0.0, 0), (1.0, 0.0));
        assert!(powi_eval(2.0, i32::MIN).1.is_finite());
    }

    #[test]
    fn names_round_trip() {
        for &f in Func::ALL {
            assert_eq!(Func::from_name(f.name()), Some(f));
            assert!(!f.doc().is_empty());
        }
        assert_eq!(Func::from_name("max"), None);
        assert_eq!(BinOp::Mul.symbol(), Some("*"));
        assert_eq!(BinOp::Max.symbol(), None);
    }
}
