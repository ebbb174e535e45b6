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

    /// PyTorch's `nn.Conv2d` default (kaiming-uniform with a = sqrt(5)):
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = cin*k*k. Matching PyTorch's default keeps
    /// results comparable with the PyTorch twin and the seed project; with BatchNorm after
    /// every convolution, the scale of the weights sets their effective learning rate.
    pub fn conv(&mut self, shape: [usize; 4], device: &Device) -> Param<Tensor<4>> {
        let fan_in = shape[1] * shape[2] * shape[3];
        let values = self.uniform(&shape, fan_in);
        Param::from_data(TensorData::new(values, shape), device)
    }

    /// PyTorch's `nn.Linear` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    pub fn uniform(&mut self, shape: &[usize], fan_in: usize) -> Vec<f32> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let n = shape.iter().product();
        (0..n).map(|_| self.rng.random_range(-bound..bound) as f32).collect()
    }

    /// `n` samples of N(0, std^2) (Box-Muller).
    pub fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u1: f64 = 1.0 - self.rng.random::<f64>();
                let u2: f64 = self.rng.random::<f64>();
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
            })
            .collect()
    }
}
