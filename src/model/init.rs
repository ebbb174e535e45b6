//! Seeded weight initialisation. Weights are drawn from our own ChaCha8 stream (not the
//! backend's RNG) so that the same seed gives bit-identical initial weights on every backend
//! and thread count.

use burn::module::Param;
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded source of initial weights.
pub struct Init {
    rng: ChaCha8Rng,
}

impl Init {
    pub fn new(seed: u64) -> Self {
        Init { rng: ChaCha8Rng::seed_from_u64(seed ^ 0x1a17_5ea2) }
    }

    /// Kaiming-normal with fan-out (torchvision's ResNet convention): N(0, 2 / (cout*k*k)).
    pub fn conv(&mut self, shape: [usize; 4], device: &Device) -> Param<Tensor<4>> {
        let fan_out = (shape[0] * shape[2] * shape[3]) as f64;
        let std = (2.0 / fan_out).sqrt();
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| (self.normal() * std) as f32).collect();
        Param::from_data(TensorData::new(values, shape), device)
    }

    /// PyTorch's `nn.Linear` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    pub fn uniform(&mut self, shape: &[usize], fan_in: usize) -> Vec<f32> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let n = shape.iter().product();
        (0..n).map(|_| self.rng.random_range(-bound..bound) as f32).collect()
    }

    /// A standard normal sample (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
