//! What every sample-based method is to the search loop (`sample::run`): it proposes
//! sequences of a [`TokenSpace`](super::space::TokenSpace), learns from their rewards, and
//! saves and restores its whole state (weights, optimizer, population, random generator) as
//! JSON, so that a resumed search takes the same decisions as an uninterrupted one.
//!
//! The methods never see a child, an executor or the store: only sequences and rewards.

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a method reports after learning from a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Learned {
    /// The policy's mean per-step entropy (PPO, REINFORCE), in nats.
    pub entropy: Option<f64>,
}

pub trait Method {
    /// Up to `n` sequences to try next; fewer only when the method has nothing left to
    /// propose (exhaustive at the end of its space).
    fn propose(&mut self, n: usize) -> Result<Vec<Vec<usize>>>;

    /// The rewards of proposals from the last [`Method::propose`], in order (those the search
    /// kept: it may drop the tail of a batch at the end of the budget).
    fn learn(&mut self, batch: &[(Vec<usize>, f64)]) -> Result<Learned>;

    fn state(&self) -> Result<serde_json::Value>;

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()>;
}

/// A seeded generator whose position can be saved and restored exactly.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The generator's state as JSON.
pub fn rng_state(rng: &ChaCha8Rng) -> serde_json::Value {
    let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({ "seed": seed, "stream": rng.get_stream(), "word_pos": rng.get_word_pos().to_string() })
}

/// The generator [`rng_state`] saved.
pub fn rng_from_state(v: &serde_json::Value) -> Result<ChaCha8Rng> {
    let seed_hex = v["seed"].as_str().context("the random generator's state lacks its seed")?;
    if seed_hex.len() != 64 {
        bail!("the random generator's seed must be 64 hex digits");
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16).context("bad seed digits")?;
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(v["stream"].as_u64().context("the random generator's state lacks its stream")?);
    let pos: u128 = v["word_pos"].as_str().context("the random generator's state lacks its position")?.parse()?;
    rng.set_word_pos(pos);
    Ok(rng)
}

/// A uniformly drawn sequence: one choice per step, `sizes[i]` choices at step `i`.
pub fn uniform_sequence(sizes: &[usize], rng: &mut ChaCha8Rng) -> Vec<usize> {
    use rand::Rng;
    sizes.iter().map(|&n| rng.random_range(0..n)).collect()
}

/// Sequence number `index` in mixed-radix counting order, the last step changing fastest.
pub fn nth_sequence(sizes: &[usize], mut index: u128) -> Vec<usize> {
    let mut out = vec![0; sizes.len()];
    for (slot, &n) in out.iter_mut().zip(sizes).rev() {
        *slot = (index % n as u128) as usize;
        index /= n as u128;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn the_generator_resumes_where_it_stopped() {
        let mut a = rng(42);
        for _ in 0..37 {
            a.random::<u32>();
        }
        let mut b = rng_from_state(&rng_state(&a)).unwrap();
        let xs: Vec<u64> = (0..10).map(|_| a.random()).collect();
        let ys: Vec<u64> = (0..10).map(|_| b.random()).collect();
        assert_eq!(xs, ys);
        assert!(rng_from_state(&serde_json::json!({"seed": "00"})).is_err());
    }
}
