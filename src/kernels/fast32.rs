//! [`Fast`]: an `f32` whose transcendental functions are branch-free polynomial
//! approximations (Cody-Waite range reduction plus minimax or Taylor polynomials, in the style
//! of Cephes and SLEEF). The op table (`expr::ops`) evaluated on `Fast` inside a loop over a
//! slice compiles to vector code, where the standard library's `f32::sin` and friends are
//! opaque calls that stay scalar. That is what makes the fused kernels fast.
//!
//! Accuracy: a few ulp (relative error below 1e-6; absolute below 1e-7 near zeros of sin and
//! cos) for |x| up to about 1e5 for sin/cos and over the whole range elsewhere; the tests
//! compare every function with f64 on a dense grid. Special values follow the standard
//! library: exp overflows to inf above 88.72, ln(0) = -inf, ln of a negative number is NaN.

#![allow(clippy::excessive_precision)] // coefficients as published

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::expr::ops::Real;

/// An `f32` with vectorizable math (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct Fast(pub f32);

macro_rules! binary_op {
    ($trait:ident, $method:ident, $op:tt) => {
        impl $trait for Fast {
            type Output = Fast;
            #[inline(always)]
            fn $method(self, other: Fast) -> Fast {
                Fast(self.0 $op other.0)
            }
        }
    };
}

binary_op!(Add, add, +);
binary_op!(Sub, sub, -);
binary_op!(Mul, mul, *);
binary_op!(Div, div, /);

impl Neg for Fast {
    type Output = Fast;
    #[inline(always)]
    fn neg(self) -> Fast {
        Fast(-self.0)
    }
}

/// `if c { a } else { b }` written so that it compiles to a select.
#[inline(always)]
fn select(c: bool, a: f32, b: f32) -> f32 {
    if c { a } else { b }
}

/// Round to the nearest integer, ties to even, for |x| < 2^22 (larger values are integers).
#[inline(always)]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let r = (x + MAGIC) - MAGIC;
    select(x.abs() < 4_194_304.0, r, x)
}

/// a*b + c with one rounding. The kernels' AVX2 and AVX-512 builds enable FMA, where this is
/// one instruction; the baseline build calls libm's exact `fmaf`, so every build computes the
/// same numbers.
#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// 2^n for an integer-valued n in [-126, 127].
///
/// n + 1.5*2^23 holds n in its low mantissa bits, so integer arithmetic on the bits gives the
/// exponent field. (`n as i32` would be a saturating conversion, which LLVM scalarizes.)
#[inline(always)]
fn pow2i(n: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let biased = (n + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127);
    f32::from_bits(biased << 23)
}

/// e^x over the whole range from one polynomial: 2^n is applied as 2^n1 * 2^n2 (each a
/// normal number), so overflow to inf and the subnormal tail come out of the last rounding.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-104.0, 89.0);
    let n = round_even(xc * LOG2E); // [-150, 128]
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let n1 = round_even(n * 0.5);
    let e = exp_poly(r) * pow2i(n1) * pow2i(n - n1);
    let e = select(x < -104.0, 0.0, e);
    select(x.is_nan(), x, e)
}

/// e^r for |r| <= ln2/2 (the Cephes expf polynomial).
#[inline(always)]
fn exp_poly(r: f32) -> f32 {
    let p = 1.987_569_1e-4_f32;
    let p = fma(p, r, 1.398_199_9e-3);
    let p = fma(p, r, 8.333_452e-3);
    let p = fma(p, r, 4.166_579_6e-2);
    let p = fma(p, r, 1.666_666_5e-1);
    let p = fma(p, r, 5.000_000_1e-1);
    p * r * r + r + 1.0
}

#[inline(always)]
fn ln(x: f32) -> f32 {
    // x = m * 2^e with m in [sqrt(1/2), sqrt(2)) (subnormals scaled up first).
    let tiny = x < 1.175_494_4e-38;
    let xs = select(tiny, x * 16_777_216.0, x); // 2^24
    let bits = xs.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 as f32 - 127.0;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    let big = m > std::f32::consts::SQRT_2;
    m = select(big, m * 0.5, m);
    e = select(big, e + 1.0, e);
    e = select(tiny, e - 24.0, e);
    let f = m - 1.0;
    // Cephes logf polynomial for log(1+f) - f + f^2/2 on [sqrt(1/2)-1, sqrt(2)-1].
    let z = f * f;
    let p = 7.037_683_6e-2_f32;
    let p = fma(p, f, -1.151_461e-1);
    let p = fma(p, f, 1.167_699_9e-1);
    let p = fma(p, f, -1.242_014_1e-1);
    let p = fma(p, f, 1.424_932_3e-1);
    let p = fma(p, f, -1.666_805_8e-1);
    let p = fma(p, f, 2.000_071_5e-1);
    let p = fma(p, f, -2.499_999_4e-1);
    let p = fma(p, f, 3.333_333e-1);
    let y = f * z * p - 0.5 * z;
    let r = (f + y) + e * std::f32::consts::LN_2;
    let r = select(x == f32::INFINITY, f32::INFINITY, r);
    let r = select(x == 0.0, f32::NEG_INFINITY, r);
    select(x < 0.0 || x.is_nan(), f32::NAN, r)
}

#[inline(always)]
fn ln_1p(y: f32) -> f32 {
    // log(u) - ((u - 1) - y)/u corrects the rounding of u = 1 + y.
    let u = 1.0 + y;
    let corrected = ln(u) - ((u - 1.0) - y) / u;
    let r = select(u == 1.0, y, corrected);
    select(u == f32::INFINITY, f32::INFINITY, r)
}

#[inline(always)]
fn exp_m1(x: f32) -> f32 {
    // Taylor series for |x| < 0.5 (error below 3e-9), e^x - 1 beyond.
    let t = x
        * (1.0
            + x * (0.5
                + x * (1.0 / 6.0
                    + x * (1.0 / 24.0 + x * (1.0 / 120.0 + x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x / 40320.0)))))));
    select(x.abs() < 0.5, t, exp(x) - 1.0)
}

/// (sin, cos) of x: reduction by pi/2 in three parts, then the Cephes polynomials.
#[inline(always)]
fn sin_cos(x: f32) -> (f32, f32) {
    const DP1: f32 = 1.570_312_5;
    const DP2: f32 = 4.837_513e-4;
    const DP3: f32 = 7.549_79e-8;
    let j = round_even(x * std::f32::consts::FRAC_2_PI);
    let r = ((x - j * DP1) - j * DP2) - j * DP3;
    let z = r * r;
    let s = ((-1.951_529_6e-4_f32 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * r + r;
    let c = ((2.443_315_7e-5_f32 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    // The quadrant j mod 4, exactly, in floating point (`j as i32` would be a saturating
    // conversion, which LLVM scalarizes).
    let q = j - 4.0 * (j * 0.25).floor();
    let odd = q == 1.0 || q == 3.0;
    let sin = select(odd, c, s);
    let sin = select(q >= 2.0, -sin, sin);
    let cos = select(odd, s, c);
    let cos = select(q == 1.0 || q == 2.0, -cos, cos);
    let bad = !x.is_finite();
    (select(bad, f32::NAN, sin), select(bad, f32::NAN, cos))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    let a = x.abs();
    // |x| < 0.625: Cephes tanhf polynomial; beyond: 1 - 2/(e^2|x| + 1).
    let z = x * x;
    let p = -5.704_988_7e-3_f32;
    let p = fma(p, z, 2.063_908_8e-2);
    let p = fma(p, z, -5.373_971_6e-2);
    let p = fma(p, z, 1.333_144_5e-1);
    let p = fma(p, z, -3.333_328_2e-1);
    let small = p * z * x + x;
    let large = 1.0 - 2.0 / (exp(2.0 * a.min(10.0)) + 1.0);
    let large = f32::from_bits(large.to_bits() | (x.to_bits() & 0x8000_0000));
    let r = select(a < 0.625, small, large);
    select(x.is_nan(), x, r)
}

#[inline(always)]
fn atan(x: f32) -> f32 {
    // Cephes atanf: reduce |x| to [0, tan(pi/8)] via tan(3pi/8) and tan(pi/8) thresholds.
    let a = x.abs();
    let big = a > 2.414_213_6;
    let mid = !big && a > 0.414_213_57;
    let y0 = select(big, std::f32::consts::FRAC_PI_2, select(mid, std::f32::consts::FRAC_PI_4, 0.0));
    let t = select(big, -1.0 / a, select(mid, (a - 1.0) / (a + 1.0), a));
    let z = t * t;
    let p = 8.053_744_5e-2_f32;
    let p = fma(p, z, -1.387_768_5e-1);
    let p = fma(p, z, 1.997_771_1e-1);
    let p = fma(p, z, -3.333_294_9e-1);
    let r = y0 + (p * z * t + t);
    let r = f32::from_bits(r.to_bits() | (x.to_bits() & 0x8000_0000));
    select(x.is_nan(), x, r)
}

#[inline(always)]
fn asinh(x: f32) -> f32 {
    let a = x.abs();
    // asinh(a) = log1p(a + a^2 / (1 + sqrt(1 + a^2))); for huge a, log(a) + log(2). One ln for
    // both: of u = 1 + y (with log1p's correction) or of a.
    let huge = a > 1e18;
    let ac = a.min(1e18);
    let s = (1.0 + ac * ac).sqrt();
    let y = ac + ac * ac / (1.0 + s);
    let u = 1.0 + y;
    let l = ln(select(huge, a, u));
    let small = select(u == 1.0, y, l - ((u - 1.0) - y) / u);
    let r = select(huge, l + std::f32::consts::LN_2, small);
    let r = f32::from_bits(r.to_bits() | (x.to_bits() & 0x8000_0000));
    select(x.is_nan(), x, r)
}

#[inline(always)]
fn sinh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let series = x * (1.0 + z * (1.0 / 6.0 + z * (1.0 / 120.0 + z * (1.0 / 5040.0 + z / 362_880.0))));
    // 0.5 e^a - 0.5 e^-a, with e^a computed as (e^(a/2))^2 * ... kept simple: e^a overflows
    // exactly where sinh does (a > 89.4 gives inf a little early, as e^a/2 < f32::MAX there).
    let e = exp(a - std::f32::consts::LN_2);
    let big = e - 0.25 / e;
    let big = f32::from_bits(big.to_bits() | (x.to_bits() & 0x8000_0000));
    let r = select(a < 1.0, series, big);
    select(x.is_nan(), x, r)
}

#[inline(always)]
fn cosh(x: f32) -> f32 {
    let e = exp(x.abs() - std::f32::consts::LN_2);
    e + 0.25 / e
}

/// erfc for x >= 0 (Numerical Recipes' Chebyshev fit, relative error below 1.2e-7).
#[inline(always)]
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = 0.170_872_77_f32;
    let p = fma(p, t, -0.822_152_23);
    let p = fma(p, t, 1.488_515_87);
    let p = fma(p, t, -1.135_203_98);
    let p = fma(p, t, 0.278_868_07);
    let p = fma(p, t, -0.186_288_06);
    let p = fma(p, t, 0.096_784_18);
    let p = fma(p, t, 0.374_091_96);
    let p = fma(p, t, 1.000_023_68);
    let p = fma(p, t, -1.265_512_23);
    // e^(-z^2) with z^2 split exactly (hi^2 is exact for a 12-bit hi), so that large z keeps
    // its relative accuracy.
    let hi = f32::from_bits(z.to_bits() & 0xffff_f000);
    t * exp(-hi * hi) * exp(-(z - hi) * (z + hi) + p)
}

/// erf's Taylor series, for |x| < 0.5 (error below 2e-9).
#[inline(always)]
fn erf_series(x: f32) -> f32 {
    let z = x * x;
    std::f32::consts::FRAC_2_SQRT_PI
        * x
        * (1.0 - z * (1.0 / 3.0 - z * (1.0 / 10.0 - z * (1.0 / 42.0 - z * (1.0 / 216.0 - z / 1320.0)))))
}

#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let big = 1.0 - erfc_pos(a.min(10.0));
    let big = f32::from_bits(big.to_bits() | (x.to_bits() & 0x8000_0000));
    let r = select(a < 0.5, erf_series(x), big);
    select(x.is_nan(), x, r)
}

#[inline(always)]
fn erfc(x: f32) -> f32 {
    let a = x.abs();
    let pos = erfc_pos(a.min(10.0));
    let pos = select(a >= 10.0, 0.0, pos);
    let r = select(x >= 0.0, pos, 2.0 - pos);
    // 1 - erf(x) where erf takes its series (both selects run both sides: calling erf here
    // would evaluate erfc_pos twice).
    let r = select(a < 0.5, 1.0 - erf_series(x), r);
    select(x.is_nan(), x, r)
}

impl Real for Fast {
    #[inline(always)]
    fn c(v: f64) -> Self {
        Fast(v as f32)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Fast(self.0.abs())
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Fast(self.0.sqrt())
    }
    #[inline(always)]
    fn exp(self) -> Self {
        Fast(exp(self.0))
    }
    #[inline(always)]
    fn exp_m1(self) -> Self {
        Fast(exp_m1(self.0))
    }
    #[inline(always)]
    fn ln(self) -> Self {
        Fast(ln(self.0))
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        Fast(ln_1p(self.0))
    }
    #[inline(always)]
    fn sin(self) -> Self {
        Fast(sin_cos(self.0).0)
    }
    #[inline(always)]
    fn cos(self) -> Self {
        Fast(sin_cos(self.0).1)
    }
    #[inline(always)]
    fn sinh(self) -> Self {
        Fast(sinh(self.0))
    }
    #[inline(always)]
    fn cosh(self) -> Self {
        Fast(cosh(self.0))
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        Fast(tanh(self.0))
    }
    #[inline(always)]
    fn asinh(self) -> Self {
        Fast(asinh(self.0))
    }
    #[inline(always)]
    fn atan(self) -> Self {
        Fast(atan(self.0))
    }
    #[inline(always)]
    fn erf(self) -> Self {
        Fast(erf(self.0))
    }
    #[inline(always)]
    fn erfc(self) -> Self {
        Fast(erfc(self.0))
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        Fast(self.0.max(other.0))
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        Fast(self.0.min(other.0))
    }
    #[inline(always)]
    fn powi(self, n: i32) -> Self {
        // Small powers as products (what formulas use); others by repeated squaring.
        let x = self.0;
        Fast(match n {
            2 => x * x,
            3 => x * x * x,
            4 => {
                let s = x * x;
                s * s
            }
            _ => x.powi(n),
        })
    }
    #[inline(always)]
    fn round(self) -> Self {
        // Half away from zero, as f32::round.
        let x = self.0;
        let t = round_even(x);
        let tie = (x - t).abs() == 0.5;
        Fast(select(tie, t + (x - t).signum(), t))
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        self.0.is_finite()
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.0.is_nan()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points from -range to range, denser near 0, plus edge values.
    fn grid(range: f64) -> Vec<f32> {
        let mut xs = vec![0.0f32, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0];
        let n = 20_000;
        for i in 0..=n {
            let t = i as f64 / n as f64;
            let v = range * t * t * t;
            xs.push(v as f32);
            xs.push(-v as f32);
        }
        xs
    }

    fn check(name: &str, range: f64, fast: impl Fn(f32) -> f32, exact: impl Fn(f64) -> f64, abs_floor: f64) {
        let mut worst = (0.0, 0.0f32);
        for x in grid(range) {
            let want = exact(x as f64);
            let got = fast(x) as f64;
            if !want.is_finite() || want.abs() > f32::MAX as f64 {
                let same = (want.is_nan() && got.is_nan()) || want.clamp(-3.5e38, 3.5e38) == got.clamp(-3.5e38, 3.5e38);
                assert!(same || (got.is_infinite() && want.abs() > 3.3e38), "{name}({x}) = {got}, want {want}");
                continue;
            }
            let err = (got - want).abs() / want.abs().max(abs_floor);
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(worst.0 < 2e-6, "{name}: relative error {:.3e} at x = {}", worst.0, worst.1);
    }

    #[test]
    fn every_function_is_accurate_against_f64() {
        check("exp", 110.0, exp, f64::exp, 1e-37);
        check("exp_m1", 20.0, exp_m1, f64::exp_m1, 1e-37);
        check("ln", 1e30, |x| ln(x.abs()), |x| x.abs().ln(), 1e-30);
        check("ln_1p", 1e6, |x| ln_1p(x.abs()), |x| x.abs().ln_1p(), 1e-37);
        check("sin", 1e4, |x| sin_cos(x).0, f64::sin, 1e-6);
        check("cos", 1e4, |x| sin_cos(x).1, f64::cos, 1e-6);
        check("tanh", 30.0, tanh, f64::tanh, 1e-37);
        check("atan", 1e8, atan, f64::atan, 1e-37);
        check("asinh", 1e20, asinh, f64::asinh, 1e-37);
        check("sinh", 95.0, sinh, f64::sinh, 1e-37);
        check("cosh", 95.0, cosh, f64::cosh, 1e-37);
        check("erf", 12.0, erf, libm::erf, 1e-37);
        check("erfc", 9.0, erfc, libm::erfc, 1e-37);
    }

    #[test]
    fn special_values_follow_the_standard_library() {
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(-200.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(sin_cos(f32::INFINITY).0.is_nan());
        assert_eq!(tanh(1e30), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
        assert_eq!(Fast(2.5).round().0, 3.0);
        assert_eq!(Fast(-2.5).round().0, -3.0);
        assert_eq!(Fast(-0.4).round().0, -0.0);
    }
}
