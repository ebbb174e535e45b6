//! REINFORCE (Williams 1992) with a baseline, as Zoph & Le trained their first controller:
//! the loss `-mean(A log p)` over a batch of proposals, one gradient step per batch.

use burn::prelude::*;

/// The policy-gradient loss (a one-element tensor) of sequences with log-probabilities `log_p`
/// and advantages `advantages`.
pub fn policy_gradient_loss(log_p: Tensor<1>, advantages: Tensor<1>) -> Tensor<1> {
    (log_p * advantages).mean().neg()
}

/// Advantages of `rewards` against the moving-average `baseline`.
pub fn advantages(rewards: &[f64], baseline: f64) -> Vec<f64> {
    rewards.iter().map(|r| r - baseline).collect()
}

/// The exponential moving average of batch mean rewards: `decay * baseline + (1 - decay) *
/// mean`; the first batch sets it to its mean.
pub fn update_baseline(baseline: Option<f64>, rewards: &[f64], decay: f64) -> Option<f64> {
    if rewards.is_empty() {
        return baseline;
    }
    let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
    Some(match baseline {
        Some(b) => decay * b + (1.0 - decay) * mean,
        None => mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_and_the_baseline_on_hand_made_numbers() {
        assert_eq!(advantages(&[0.5, 0.25, 1.0], 0.5), vec![0.0, -0.25, 0.5]);
        let b = update_baseline(None, &[0.2, 0.4], 0.9).unwrap();
        assert!((b - 0.3).abs() < 1e-12);
        let b = update_baseline(Some(b), &[1.0], 0.9).unwrap();
        assert!((b - (0.27 + 0.1)).abs() < 1e-12);
        assert_eq!(update_baseline(Some(0.5), &[], 0.9), Some(0.5));
    }

    #[test]
    fn the_loss_on_hand_made_numbers() {
        let device = Device::flex();
        let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device);
        let loss = policy_gradient_loss(t(vec![-1.0, -2.0]), t(vec![0.5, -1.0])).into_scalar::<f32>();
        assert!((loss - (-(-0.5 + 2.0) / 2.0)).abs() < 1e-6);
    }
}
