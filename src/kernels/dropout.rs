//! Dropout with masks drawn in parallel on the `flex` CPU backend. burn's `Dropout` draws its
//! Bernoulli mask element by element from one generator on one thread, then multiplies and
//! scales in two more passes: in a translation model's training step, which drops out 17
//! tensors, that serial draw was about a tenth of the CPU samples and left the second core
//! idle.
//!
//! Here each call draws one 64-bit key from the backend's generator (so the masks follow the
//! seed a training step sets, and a resumed run draws the same), and element `i` is kept when
//! a hash of `(key, i)` (SplitMix64's finalizer) falls below `keep · 2^64`. The mask, holding
//! 0 or `1 / keep`, is filled by rayon in chunks and multiplied in once; it depends on the key
//! and the index only, so not on the thread count. The gradient is the mask times the upstream
//! gradient (autodiff's product with a constant).

use burn::nn::Dropout;
use burn::prelude::*;
use burn::tensor::Distribution;
use rayon::prelude::*;

/// `drop` applied to `x`: identity unless `drop` is in training mode, `x` is on an autodiff
/// device and the probability is above 0 (burn's conditions); then the parallel mask where
/// [`super::available`] holds, burn's `Dropout::forward` elsewhere.
pub fn apply<const D: usize>(drop: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !active(drop, &device) {
        return x;
    }
    if !super::available(&device) {
        return drop.forward(x);
    }
    let bits = Tensor::<1>::random([2], Distribution::Default, &device).into_data();
    let bits = bits.as_slice::<f32>().expect("dropout: f32 key");
    let key = ((bits[0].to_bits() as u64) << 32) | bits[1].to_bits() as u64;
    let shape = x.shape();
    let mask = mask(key, 1.0 - drop.prob, shape.num_elements());
    x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
}

/// Whether `drop` drops anything on `device`: in training mode, on an autodiff device, with a
/// probability above 0.
pub fn active(drop: &Dropout, device: &Device) -> bool {
    drop.training.is_enabled() && device.is_autodiff() && drop.prob > 0.0
}

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// `n` mask values for `key`: `1 / keep` where element `i` is kept, 0 where it is dropped.
pub fn mask(key: u64, keep: f64, n: usize) -> Vec<f32> {
    // Kept when the hash is below keep * 2^64 (keep < 1, so this fits in a u64).
    let threshold = (keep * 2f64.powi(64)) as u64;
    let scale = (1.0 / keep) as f32;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        for (j, v) in chunk.iter_mut().enumerate() {
            let i = (c * CHUNK + j) as u64;
            *v = if mix(key ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) < threshold { scale } else { 0.0 };
        }
    });
    out
}

/// SplitMix64's finalizer: a bijection of u64 whose output bits each depend on every input bit.
fn mix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_p_of_the_elements_drop_and_the_rest_are_scaled() {
        let m = mask(7, 0.9, 200_000);
        let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / m.len() as f64;
        assert!((kept - 0.9).abs() < 0.005, "kept {kept}");
        assert!(m.iter().all(|&v| v == 0.0 || v == (1.0 / 0.9) as f32));
        // Neighbours are independent: P(both kept) is about keep².
        let both = m.windows(2).filter(|w| w[0] != 0.0 && w[1] != 0.0).count() as f64 / (m.len() - 1) as f64;
        assert!((both - 0.81).abs() < 0.005, "both kept {both}");
    }

    #[test]
    fn training_tensors_are_dropped_with_their_gradient_and_others_pass() {
        let drop = burn::nn::DropoutConfig::new(0.25).init();
        let device = Device::flex().autodiff();
        device.seed(5);
        let x = Tensor::<2>::ones([100, 100], &device).require_grad();
        let y = apply(&drop, x.clone());
        let grads = y.clone().sum().backward();
        let (y, dx) = (
            y.into_data().try_to_vec::<f32>().unwrap(),
            x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap(),
        );
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        assert!((dropped - 0.25).abs() < 0.02, "dropped {dropped}");
        assert_eq!(y, dx, "the gradient of a sum is the mask");
        device.seed(5);
        let again = apply(&drop, Tensor::<2>::ones([100, 100], &device)).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, again, "the same seed draws the same mask");
        let plain = Tensor::<2>::ones([4, 4], &Device::flex());
        assert_eq!(apply(&drop, plain.clone()).into_data(), plain.into_data(), "no dropout outside training");
    }

    #[test]
    fn the_mask_depends_on_the_key_and_not_on_the_thread_count() {
        let on = |threads: usize, key: u64| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| mask(key, 0.8, 100_000))
        };
        assert_eq!(on(1, 3), on(3, 3));
        assert_ne!(on(1, 3), on(1, 4));
    }
}
