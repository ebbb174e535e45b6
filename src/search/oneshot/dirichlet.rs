//! The host-side mathematics of DrNAS' sampled mixing weights: Gamma samples with their
//! implicit reparameterization gradient (Figurnov et al. 2018), from which a Dirichlet sample
//! is the normalized vector of Gamma samples, and the KL divergence of a Dirichlet to the
//! uniform Dirichlet(1) anchor with its gradient.
//!
//! Implicit reparameterization: a sample z of Gamma(a, 1) satisfies F(z; a) = u for a fixed
//! uniform u, so dz/da = -(dF/da) / p(z; a). F is the regularized lower incomplete gamma
//! function P(a, z) (from `statrs`, chosen because no listed dependency has it); dF/da is
//! taken by a central difference in f64 and p is the Gamma density.

use rand::Rng;
use rand_distr::{Distribution, Gamma};
use statrs::function::gamma::{digamma, gamma_lr, ln_gamma};

/// Smallest concentration sampled: below it f64 Gamma samples underflow to 0.
pub const MIN_CONCENTRATION: f64 = 1e-3;

/// One Gamma(a, 1) sample and dz/da.
pub fn gamma_sample(rng: &mut impl Rng, a: f64) -> (f64, f64) {
    let a = a.max(MIN_CONCENTRATION);
    let z = Gamma::new(a, 1.0).expect("a positive, finite shape").sample(rng).max(1e-30);
    (z, gamma_sample_grad(z, a))
}

/// dz/da at a Gamma(a, 1) sample z, by implicit differentiation of the CDF.
pub fn gamma_sample_grad(z: f64, a: f64) -> f64 {
    let h = 1e-5 * a.max(1e-2);
    let df_da = (gamma_lr(a + h, z) - gamma_lr((a - h).max(1e-12), z)) / (a + h - (a - h).max(1e-12));
    let log_density = (a - 1.0) * z.ln() - z - ln_gamma(a);
    let grad = -df_da / log_density.exp();
    // Far in a tail the density underflows; z/a is the exact gradient of the scale family
    // z = a * (z/a), the right order of magnitude there.
    if grad.is_finite() { grad } else { z / a }
}

/// A Dirichlet(conc) sample and the Jacobian's building blocks: returns the Gamma samples
/// `z` and their derivatives `dz/dconc` (elementwise); the sample is `z / sum(z)`.
pub fn dirichlet_gammas(rng: &mut impl Rng, conc: &[f64]) -> (Vec<f64>, Vec<f64>) {
    conc.iter().map(|&a| gamma_sample(rng, a)).unzip()
}

/// KL(Dir(conc) || Dir(1, ..., 1)) and its gradient with respect to `conc`:
///
/// ```text
/// KL = lnΓ(c0) - Σ lnΓ(c_k) - lnΓ(K) + Σ (c_k - 1)(ψ(c_k) - ψ(c0))
/// dKL/dc_k = (c_k - 1) ψ'(c_k) - (c0 - K) ψ'(c0)
/// ```
pub fn kl_to_uniform(conc: &[f64]) -> (f64, Vec<f64>) {
    let k = conc.len() as f64;
    let c0: f64 = conc.iter().sum();
    let value = ln_gamma(c0) - conc.iter().map(|&c| ln_gamma(c)).sum::<f64>() - ln_gamma(k)
        + conc.iter().map(|&c| (c - 1.0) * (digamma(c) - digamma(c0))).sum::<f64>();
    let grad = conc.iter().map(|&c| (c - 1.0) * trigamma(c) - (c0 - k) * trigamma(c0)).collect();
    (value, grad)
}

/// ψ'(x) for x > 0: the recurrence ψ'(x) = ψ'(x+1) + 1/x² up to x >= 6, then the asymptotic
/// series.
pub fn trigamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 6.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let x2 = 1.0 / (x * x);
    acc + 1.0 / x + x2 / 2.0 + (1.0 / 6.0 - x2 * (1.0 / 30.0 - x2 * (1.0 / 42.0 - x2 / 30.0))) * x2 / x
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn trigamma_is_the_derivative_of_digamma() {
        for x in [0.05, 0.3, 1.0, 2.5, 7.0, 40.0] {
            let h = 1e-5 * x;
            let fd = (digamma(x + h) - digamma(x - h)) / (2.0 * h);
            assert!((trigamma(x) - fd).abs() < 1e-6 * fd.abs().max(1.0), "x={x}: {} vs {fd}", trigamma(x));
        }
    }

    /// E[z] = a and E[z^2] = a(a+1) for Gamma(a, 1), so the reparameterized gradients must
    /// average to d/da E[z] = 1 and d/da E[z^2] = E[2 z dz/da] = 2a + 1.
    #[test]
    fn gamma_gradient_matches_the_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 40_000;
        for a in [0.3, 1.0, 2.0, 6.0] {
            let (mut g1, mut g2, mut m) = (0.0, 0.0, 0.0);
            for _ in 0..n {
                let (z, dz) = gamma_sample(&mut rng, a);
                m += z;
                g1 += dz;
                g2 += 2.0 * z * dz;
            }
            let (m, g1, g2) = (m / n as f64, g1 / n as f64, g2 / n as f64);
            assert!((m - a).abs() < 0.03 * a.max(1.0), "a={a}: mean {m}");
            assert!((g1 - 1.0).abs() < 0.03, "a={a}: E[dz/da] = {g1}, expected 1");
            assert!((g2 - (2.0 * a + 1.0)).abs() < 0.05 * (2.0 * a + 1.0), "a={a}: {g2} vs {}", 2.0 * a + 1.0);
        }
    }

    /// Against a finite difference of the CDF-defined sample: z(a) = F^{-1}(u; a) with u fixed.
    #[test]
    fn gamma_gradient_matches_finite_differences_of_the_inverse_cdf() {
        let invert = |u: f64, a: f64| {
            let (mut lo, mut hi) = (0.0f64, 200.0f64);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if gamma_lr(a, mid) < u { lo = mid } else { hi = mid }
            }
            0.5 * (lo + hi)
        };
        for (a, u) in [(0.5, 0.3), (1.5, 0.7), (4.0, 0.5), (4.0, 0.05)] {
            let z = invert(u, a);
            let h = 1e-4;
            let fd = (invert(u, a + h) - invert(u, a - h)) / (2.0 * h);
            let got = gamma_sample_grad(z, a);
            assert!((got - fd).abs() < 1e-4 * fd.abs().max(1.0), "a={a} u={u}: {got} vs {fd}");
        }
    }

    #[test]
    fn kl_is_zero_at_the_anchor_and_its_gradient_matches_finite_differences() {
        let (v, g) = kl_to_uniform(&[1.0, 1.0, 1.0]);
        assert!(v.abs() < 1e-12 && g.iter().all(|x| x.abs() < 1e-12));
        let c = [0.7, 2.0, 1.3, 3.1];
        let (_, g) = kl_to_uniform(&c);
        for k in 0..c.len() {
            let (mut up, mut down) = (c, c);
            up[k] += 1e-6;
            down[k] -= 1e-6;
            let fd = (kl_to_uniform(&up).0 - kl_to_uniform(&down).0) / 2e-6;
            assert!((g[k] - fd).abs() < 1e-5, "{k}: {} vs {fd}", g[k]);
        }
    }
}
