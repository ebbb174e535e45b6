//! Features of a function that need no training: its outputs on [`OUTPUT_SAMPLES`] fixed
//! N(0, 1) inputs, the same for every function and every search, clipped to [-5, 5] (a value
//! that is not finite counts as the bound it overflows towards, and NaN as 0), so that
//! functions that behave alike on the inputs a network feeds them lie close together.

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::expr::Formula;

/// How many inputs a function is described by.
pub const OUTPUT_SAMPLES: usize = 1000;

/// The bound the outputs are clipped to.
const CLIP: f64 = 5.0;

/// The fixed N(0, 1) inputs (a seeded generator: the same in every process).
fn inputs() -> &'static [f64] {
    static INPUTS: OnceLock<Vec<f64>> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(0x0A05_5F00);
        (0..OUTPUT_SAMPLES).map(|_| rng.sample::<f64, _>(StandardNormal)).collect()
    })
}

/// `formula`'s outputs, with its parameters at `init`, on the fixed inputs, clipped.
pub fn output_features(formula: &Formula, init: &[f64]) -> Vec<f64> {
    inputs()
        .iter()
        .map(|&x| {
            let y = formula.eval(x, init);
            if y.is_nan() { 0.0 } else { y.clamp(-CLIP, CLIP) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_fixed_clipped_and_finite() {
        let relu = Formula::parse("max(x, 0)").unwrap();
        let f = output_features(&relu, &[]);
        assert_eq!(f.len(), OUTPUT_SAMPLES);
        assert_eq!(f, output_features(&relu, &[]));
        let x = output_features(&Formula::parse("x").unwrap(), &[]);
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.15, "mean {mean}, variance {var}");
        assert!(f.iter().zip(&x).all(|(r, x)| *r == x.max(0.0)));
        let big = output_features(&Formula::parse("exp(100*x)").unwrap(), &[]);
        assert!(big.iter().all(|v| v.is_finite() && (0.0..=5.0).contains(v)));
        assert!(big.contains(&5.0));
        let nan = output_features(&Formula::parse("log(x)").unwrap(), &[]);
        assert!(nan.iter().all(|v| v.is_finite()));
    }
}
