//! The RNN controller of PPO and REINFORCE (Zoph & Le 2017; Ramachandran et al. 2017): a
//! one-layer LSTM that emits one token per step of a [`TokenSpace`] sequence, feeding in the
//! embedding of the token it chose before (a start token first). At each step the logits over
//! the shared vocabulary are masked to the choices that step allows, so every sampled
//! sequence is valid.
//!
//! [`Controller::sample`] draws sequences without gradients and returns their log-probability
//! under the policy that drew them; [`Controller::log_probs`] recomputes log-probabilities
//! and entropies of given sequences with gradients (teacher forcing), which is what the
//! policy-gradient losses in `ppo` and `reinforce` differentiate.

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, sigmoid};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::space::TokenSpace;
use crate::model::state::host_f32;

/// Sizes of the controller.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ControllerConfig {
    pub embedding: usize,
    pub hidden: usize,
    /// Initial weights are uniform in [-init, init] (ENAS uses 0.1).
    pub init: f64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig { embedding: 32, hidden: 64, init: 0.1 }
    }
}

#[derive(Module, Debug)]
pub struct Controller {
    /// Token embeddings `[vocab + 1, embedding]`; the last row is the start token.
    pub embed: Param<Tensor<2>>,
    /// Input and recurrent weights of the four gates (input, forget, cell, output).
    pub w_input: Param<Tensor<2>>,
    pub w_hidden: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
    /// The output layer `[hidden, vocab]`.
    pub head: Param<Tensor<2>>,
    pub head_bias: Param<Tensor<1>>,
}

/// Sequences drawn by the controller: choice indices per step (as `TokenSpace::decode`
/// takes them) and the log-probability of each under the policy that drew it.
pub struct Sampled {
    pub sequences: Vec<Vec<usize>>,
    pub log_probs: Vec<f64>,
}

impl Controller {
    /// A controller for `space` with weights drawn from `rng`.
    pub fn new(space: &TokenSpace, config: ControllerConfig, rng: &mut ChaCha8Rng, device: &Device) -> Controller {
        let vocab = space.vocab().len();
        let (e, h) = (config.embedding, config.hidden);
        let mut uniform = |shape: &[usize]| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = match config.init > 0.0 {
                true => (0..n).map(|_| rng.random_range(-config.init..config.init) as f32).collect(),
                false => vec![0.0; n],
            };
            values
        };
        let p2 = |v: Vec<f32>, s: [usize; 2]| Param::from_data(TensorData::new(v, s), device);
        let p1 = |v: Vec<f32>, s: usize| Param::from_data(TensorData::new(v, [s]), device);
        Controller {
            embed: p2(uniform(&[vocab + 1, e]), [vocab + 1, e]),
            w_input: p2(uniform(&[e, 4 * h]), [e, 4 * h]),
            w_hidden: p2(uniform(&[h, 4 * h]), [h, 4 * h]),
            bias: p1(uniform(&[4 * h]), 4 * h),
            head: p2(uniform(&[h, vocab]), [h, vocab]),
            head_bias: p1(uniform(&[vocab]), vocab),
        }
    }

    fn hidden(&self) -> usize {
        self.w_hidden.dims()[0]
    }

    fn vocab(&self) -> usize {
        self.head.dims()[1]
    }

    /// One LSTM step: `(h, c)` after reading `input` `[batch, embedding]`.
    fn cell(&self, input: Tensor<2>, h: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let gates = input.matmul(self.w_input.val()) + h.matmul(self.w_hidden.val()) + self.bias.val().unsqueeze_dim(0);
        let mut g = gates.chunk(4, 1).into_iter();
        let (i, f, z, o) = (g.next().unwrap(), g.next().unwrap(), g.next().unwrap(), g.next().unwrap());
        let c = sigmoid(f) * c + sigmoid(i) * z.tanh();
        let h = sigmoid(o) * c.clone().tanh();
        (h, c)
    }

    /// Masked log-softmax over the vocabulary at step `step` `[batch, vocab]`: entries the
    /// step does not allow get (practically) zero probability.
    fn step_log_probs(&self, space: &TokenSpace, step: usize, h: Tensor<2>) -> Tensor<2> {
        let device = h.device();
        let mut mask = vec![-1e9f32; self.vocab()];
        for &id in space.mask(step) {
            mask[id] = 0.0;
        }
        let mask = Tensor::<1>::from_data(TensorData::new(mask, [self.vocab()]), &device).unsqueeze_dim(0);
        let logits = h.matmul(self.head.val()) + self.head_bias.val().unsqueeze_dim(0) + mask;
        log_softmax(logits, 1)
    }

    /// The embeddings of vocabulary ids (the start token is `vocab`).
    fn embed_ids(&self, ids: &[usize], device: &Device) -> Tensor<2> {
        let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let n = ids.len();
        self.embed.val().select(0, Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), device))
    }

    /// Runs the LSTM over `sequences` (choice indices) with teacher forcing and returns, per
    /// step, the masked log-probabilities `[batch, vocab]`.
    fn unroll(&self, space: &TokenSpace, sequences: &[Vec<usize>], device: &Device) -> Vec<Tensor<2>> {
        let batch = sequences.len();
        let hidden = self.hidden();
        let mut h = Tensor::<2>::zeros([batch, hidden], device);
        let mut c = Tensor::<2>::zeros([batch, hidden], device);
        let mut input = self.embed_ids(&vec![self.vocab(); batch], device);
        let mut out = Vec::with_capacity(space.steps().len());
        for step in 0..space.steps().len() {
            (h, c) = self.cell(input, h, c);
            out.push(self.step_log_probs(space, step, h.clone()));
            let chosen: Vec<usize> = sequences.iter().map(|s| space.vocab_id(step, s[step])).collect();
            input = self.embed_ids(&chosen, device);
        }
        out
    }

    /// Log-probability `[batch]` and mean per-step entropy `[batch]` of each sequence, with
    /// gradients.
    pub fn log_probs(&self, space: &TokenSpace, sequences: &[Vec<usize>], device: &Device) -> (Tensor<1>, Tensor<1>) {
        let batch = sequences.len();
        let steps = space.steps().len();
        let mut total: Option<Tensor<2>> = None;
        let mut entropy: Option<Tensor<2>> = None;
        for (step, logp) in self.unroll(space, sequences, device).into_iter().enumerate() {
            let ids: Vec<i64> = sequences.iter().map(|s| space.vocab_id(step, s[step]) as i64).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, 1]), device);
            let chosen = logp.clone().gather(1, ids);
            let h = (logp.clone().exp() * logp).sum_dim(1).neg();
            total = Some(match total {
                Some(t) => t + chosen,
                None => chosen,
            });
            entropy = Some(match entropy {
                Some(t) => t + h,
                None => h,
            });
        }
        let total = total.expect("a space has at least one step").reshape([batch]);
        let entropy = entropy.expect("a space has at least one step").reshape([batch]).div_scalar(steps as f64);
        (total, entropy)
    }

    /// Draws `n` sequences (no gradients).
    pub fn sample(&self, space: &TokenSpace, n: usize, rng: &mut ChaCha8Rng, device: &Device) -> Sampled {
        let batch = n;
        let hidden = self.hidden();
        let mut h = Tensor::<2>::zeros([batch, hidden], device);
        let mut c = Tensor::<2>::zeros([batch, hidden], device);
        let mut input = self.embed_ids(&vec![self.vocab(); batch], device);
        let mut sequences = vec![Vec::with_capacity(space.steps().len()); batch];
        let mut log_probs = vec![0.0f64; batch];
        for step in 0..space.steps().len() {
            (h, c) = self.cell(input, h, c);
            let logp = host_f32(self.step_log_probs(space, step, h.clone()));
            let vocab = self.vocab();
            let mut chosen_ids = Vec::with_capacity(batch);
            for (b, row) in logp.chunks_exact(vocab).enumerate() {
                let allowed = space.mask(step);
                let probs: Vec<f64> = allowed.iter().map(|&id| (row[id] as f64).exp()).collect();
                let k = draw(&probs, rng);
                sequences[b].push(k);
                log_probs[b] += row[allowed[k]] as f64;
                chosen_ids.push(allowed[k]);
            }
            input = self.embed_ids(&chosen_ids, device);
        }
        Sampled { sequences, log_probs }
    }
}

/// An index drawn with probability proportional to `weights`.
fn draw(weights: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sampled_sequences_are_valid_and_their_log_probs_agree() {
        let device = Device::flex();
        for name in ["core1", "core2", "grafs"] {
            let space = TokenSpace::parse(name).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let c = Controller::new(&space, ControllerConfig::default(), &mut rng, &device);
            let s = c.sample(&space, 16, &mut rng, &device);
            assert_eq!(s.sequences.len(), 16);
            for seq in &s.sequences {
                space.check(seq).unwrap();
                space.decode(seq).unwrap();
            }
            let (logp, entropy) = c.log_probs(&space, &s.sequences, &device);
            let logp = host_f32(logp);
            for (a, b) in logp.iter().zip(&s.log_probs) {
                assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
            }
            // Near-uniform at the start: each step's entropy is close to the log of its choices.
            let h = host_f32(entropy);
            let uniform: f64 =
                space.steps().iter().map(|st| (st.choices.len() as f64).ln()).sum::<f64>() / space.steps().len() as f64;
            assert!((h[0] as f64 - uniform).abs() < 0.1, "{} vs {uniform}", h[0]);
        }
    }
}
