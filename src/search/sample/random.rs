//! Random search: every sequence drawn uniformly (each step's choice independently), the
//! control that a learned method has to beat at the same budget.

use anyhow::Result;
use rand_chacha::ChaCha8Rng;

use super::method::{Learned, Method, rng, rng_from_state, rng_state, uniform_sequence};

pub struct RandomSearch {
    sizes: Vec<usize>,
    rng: ChaCha8Rng,
}

impl RandomSearch {
    /// `sizes[i]`: the number of choices at step `i`.
    pub fn new(sizes: Vec<usize>, seed: u64) -> RandomSearch {
        RandomSearch { sizes, rng: rng(seed) }
    }
}

impl Method for RandomSearch {
    fn propose(&mut self, n: usize) -> Result<Vec<Vec<usize>>> {
        Ok((0..n).map(|_| uniform_sequence(&self.sizes, &mut self.rng)).collect())
    }

    fn learn(&mut self, _batch: &[(Vec<usize>, f64)]) -> Result<Learned> {
        Ok(Learned::default())
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({ "rng": rng_state(&self.rng) }))
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.rng = rng_from_state(&state["rng"])?;
        Ok(())
    }
}
