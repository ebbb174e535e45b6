//! PPO's clipped surrogate objective (Schulman et al. 2017), as Ramachandran et al. trained
//! their controller: with `r = exp(log p_new - log p_old)` per sequence and advantage `A`,
//! the loss is `-mean(min(r A, clip(r, 1 - eps, 1 + eps) A))`. Several optimization epochs
//! run over each batch of proposals (`policy`), each against the policy that drew them.

use burn::prelude::*;

/// The clipping range used by PPO's paper and by Ramachandran et al.
pub const CLIP: f64 = 0.2;

/// The clipped surrogate loss (a one-element tensor) of sequences with log-probabilities
/// `log_p` now and `log_p_old` when drawn, and advantages `advantages`.
pub fn clipped_loss(log_p: Tensor<1>, log_p_old: Tensor<1>, advantages: Tensor<1>, clip: f64) -> Tensor<1> {
    let ratio = (log_p - log_p_old).exp();
    let unclipped = ratio.clone() * advantages.clone();
    let clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages;
    unclipped.min_pair(clipped).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }

    #[test]
    fn the_clipped_loss_on_hand_made_numbers() {
        // ratios 1.5 (A = +1: clipped to 1.2), 0.5 (A = +1: 0.5, unclipped is smaller),
        // 1.5 (A = -1: -1.5 is smaller than -1.2), 0.5 (A = -1: clipped to -0.8).
        let ln = |r: f32| r.ln();
        let log_p = t(&[ln(1.5), ln(0.5), ln(1.5), ln(0.5)]);
        let old = t(&[0.0; 4]);
        let adv = t(&[1.0, 1.0, -1.0, -1.0]);
        let loss = clipped_loss(log_p, old, adv, 0.2).into_scalar::<f32>();
        let want = -(1.2 + 0.5 - 1.5 - 0.8) / 4.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        // Inside the clip range it is the plain importance-weighted objective.
        let loss = clipped_loss(t(&[ln(1.1)]), t(&[0.0]), t(&[2.0]), 0.2).into_scalar::<f32>();
        assert!((loss + 2.2).abs() < 1e-6);
    }

    #[test]
    fn the_clip_stops_the_gradient_outside_its_range() {
        let device = Device::flex().autodiff();
        let log_p =
            Tensor::<1>::from_data(TensorData::new(vec![1.5f32.ln(), 1.1f32.ln()], [2]), &device).require_grad();
        let old = Tensor::<1>::from_data(TensorData::new(vec![0.0f32; 2], [2]), &device);
        let adv = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 1.0], [2]), &device);
        let grads = clipped_loss(log_p.clone(), old, adv, 0.2).backward();
        let g = crate::model::state::host_f32(log_p.grad(&grads).unwrap());
        // d/dlogp of -r/2 is -r/2 inside the range; zero where the clipped term is the minimum.
        assert_eq!(g[0], 0.0);
        assert!((g[1] + 0.55).abs() < 1e-6, "{g:?}");
    }
}
