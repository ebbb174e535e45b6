//! The character GPT of the language-model task, exactly `transformers_ref.GPT` of
//! `../shared/reference` (nanoGPT without biases): token and learned position embeddings, causal
//! pre-LN blocks (`transformer::Block`, no biases), a final LayerNorm without bias, and the
//! output head tied to the token embedding (`logits = ln_f(t) wte^T`). Every MLP hidden layer
//! is an activation site, as in the ViT.
//!
//! Initialization follows the reference (GPT-2): N(0, 0.02) for every weight of two or more
//! dimensions, the attention and MLP output projections N(0, 0.02 / sqrt(2 layers)),
//! LayerNorm weights 1; drawn from our own seeded stream. Parameter names are the reference's
//! `state_dict` keys ([`GptNames`]).

use std::collections::HashMap;

use anyhow::{Result, bail};
use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, LayerNorm};
use burn::prelude::*;

use super::activation::Site;
use super::init::Init;
use super::net::Net;
use super::state::{self, NamedTensor, Naming};
use super::transformer::{Block, BlockShape, LN_EPSILON, Mlp, MlpBlock, TransformerNames, layer_norm};
use crate::kernels::{dropout, layer_norm as ln_kernel, linear as linear_kernel};

/// The GPT sizes of the reference (`SIZES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GptSize {
    GptMicro,
    GptMini,
}

/// The shape of one GPT size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptShape {
    pub layers: usize,
    pub heads: usize,
    pub d_model: usize,
    /// The hidden width of a standard MLP.
    pub hidden: usize,
    /// The longest context, in characters (the learned positions).
    pub block: usize,
}

impl GptSize {
    pub fn name(self) -> &'static str {
        match self {
            GptSize::GptMicro => "gpt-micro",
            GptSize::GptMini => "gpt-mini",
        }
    }

    pub fn shape(self) -> GptShape {
        match self {
            GptSize::GptMicro => GptShape { layers: 4, heads: 4, d_model: 128, hidden: 512, block: 64 },
            GptSize::GptMini => GptShape { layers: 6, heads: 6, d_model: 384, hidden: 1536, block: 256 },
        }
    }
}

#[derive(Module, Debug)]
pub struct Gpt<A: Site> {
    /// The token embedding `[vocab, d]`, also the output head.
    pub wte: Param<Tensor<2>>,
    /// The learned positions `[block, d]`.
    pub wpe: Param<Tensor<2>>,
    pub blocks: Vec<Block<A>>,
    pub ln_f: LayerNorm,
    /// After the embeddings (the blocks hold their own).
    pub drop: Dropout,
}

impl<A: Site> Gpt<A> {
    /// A freshly initialised GPT over `vocab` tokens whose sites come from `site(width)`, in
    /// forward order (one per block).
    pub fn with_sites(
        size: GptSize,
        mlp: Mlp,
        vocab: usize,
        seed: u64,
        device: &Device,
        mut site: impl FnMut(usize) -> A,
    ) -> Self {
        let GptShape { layers, heads, d_model: d, hidden, block } = size.shape();
        let mut init = Init::new(seed);
        let mut normal = |shape: &[usize], std: f64| init.normal(shape.iter().product(), std);
        let wte = Param::from_data(TensorData::new(normal(&[vocab, d], 0.02), [vocab, d]), device);
        let wpe = Param::from_data(TensorData::new(normal(&[block, d], 0.02), [block, d]), device);
        let shape = BlockShape {
            std: 0.02,
            cross: false,
            dropout: 0.0,
            d,
            heads,
            width: mlp.width(hidden),
            mlp,
            bias: false,
            causal: true,
            residual_layers: Some(layers),
        };
        let blocks = (0..layers).map(|_| Block::new(&shape, &mut normal, &mut site, device)).collect();
        Gpt { wte, wpe, blocks, ln_f: layer_norm(d, false, device), drop: DropoutConfig::new(0.0).init() }
    }

    /// The GPT with dropout `p` where the reference places it: after the embeddings, on the
    /// attention weights and after every residual branch. It acts in training only, where the
    /// blocks then take the composed attention path ([`Block::forward_masked`]), since the
    /// attention kernel has no dropout.
    pub fn with_dropout(self, p: f64) -> Self {
        let blocks = self.blocks.into_iter().map(|b| Block { drop: DropoutConfig::new(p).init(), ..b }).collect();
        Gpt { blocks, drop: DropoutConfig::new(p).init(), ..self }
    }

    /// The longest context the positions cover.
    pub fn block_size(&self) -> usize {
        self.wpe.dims()[0]
    }

    pub fn vocab_size(&self) -> usize {
        self.wte.dims()[0]
    }

    /// Logits `[batch * tokens, vocab]`, row `b * tokens + t` predicting the character after
    /// `ids[b][t]`, for ids `[batch, tokens]` (tokens at most the block size).
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        let [batch, tokens] = ids.dims();
        let d = self.wte.dims()[1];
        assert!(tokens <= self.block_size(), "gpt: {tokens} tokens exceed the block of {}", self.block_size());
        let embedded = self.wte.val().select(0, ids.reshape([batch * tokens])).reshape([batch, tokens, d]);
        let positions = self.wpe.val().narrow(0, 0, tokens).reshape([1, tokens, d]);
        let mut t = embedded + positions;
        if dropout::active(&self.drop, &t.device()) {
            // Dropout in training: the composed attention, which drops attention weights.
            let mut causal = vec![0f32; tokens * tokens];
            for q in 0..tokens {
                causal[q * tokens + q + 1..(q + 1) * tokens].fill(f32::NEG_INFINITY);
            }
            let bias = Tensor::<4>::from_data(TensorData::new(causal, [1, 1, tokens, tokens]), &t.device());
            t = dropout::apply(&self.drop, t);
            for block in &self.blocks {
                t = block.forward_masked(t, bias.clone(), None, None);
            }
        } else {
            for block in &self.blocks {
                t = block.forward(t);
            }
        }
        let t = ln_kernel::apply(&self.ln_f, LN_EPSILON, t.reshape([batch * tokens, d]));
        linear_kernel::affine(t, self.wte.val().transpose(), None)
    }

    /// `count` ids sampled after `prompt` (not included), as nanoGPT's `generate`: each from
    /// the softmax of the last position's logits divided by `temperature`, the context cropped
    /// to the last block of ids, drawn by a generator seeded with `seed`. Call it on the
    /// inference copy (`valid()`).
    pub fn generate(&self, prompt: &[u32], count: usize, temperature: f64, seed: u64) -> Vec<u32> {
        use rand::{Rng, SeedableRng};
        let device = self.wte.val().device();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut ids: Vec<u32> = prompt.to_vec();
        let block = self.block_size();
        for _ in 0..count {
            let context: Vec<i64> = ids[ids.len().saturating_sub(block)..].iter().map(|&i| i as i64).collect();
            let n = context.len();
            let logits = self.forward(Tensor::<2, Int>::from_data(TensorData::new(context, [1, n]), &device));
            let last = super::state::host_f32(logits.narrow(0, n - 1, 1));
            let top = last.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let weights: Vec<f64> = last.iter().map(|&v| ((v as f64 - top) / temperature).exp()).collect();
            let mut pick = rng.random_range(0.0..weights.iter().sum::<f64>());
            let mut next = weights.len() - 1;
            for (i, w) in weights.iter().enumerate() {
                if pick < *w {
                    next = i;
                    break;
                }
                pick -= w;
            }
            ids.push(next as u32);
        }
        ids.split_off(prompt.len())
    }

    /// All activation sites in forward order.
    pub fn sites(&self) -> Vec<&A> {
        self.blocks.iter().map(|b| &b.mlp.act).collect()
    }

    /// Replace every activation site by `f(index, site)`, in forward order.
    pub fn map_sites(self, mut f: impl FnMut(usize, A) -> A) -> Self {
        let blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| Block { mlp: MlpBlock { act: f(i, b.mlp.act), ..b.mlp }, ..b })
            .collect();
        Gpt { blocks, ..self }
    }
}

/// The reference's `state_dict` names: those of every transformer (`TransformerNames`), and
/// the embeddings, plain parameters here, are `nn.Embedding` weights there (`wte.weight`).
pub struct GptNames;

impl Naming for GptNames {
    fn torch_name(&self, path: &str) -> String {
        match path {
            "wte" | "wpe" => format!("{path}.weight"),
            _ => TransformerNames.torch_name(path),
        }
    }

    fn transposed(&self, path: &str) -> bool {
        TransformerNames.transposed(path)
    }
}

impl<A: Site> Net for Gpt<A> {
    type Input = Tensor<2, Int>;
    type Site = A;

    fn forward(&self, ids: Tensor<2, Int>) -> Tensor<2> {
        Gpt::forward(self, ids)
    }

    fn sites(&self) -> Vec<&A> {
        Gpt::sites(self)
    }

    fn map_sites(self, f: impl FnMut(usize, A) -> A) -> Self {
        Gpt::map_sites(self, f)
    }

    /// AdamW's groups of the reference: parameters of two or more dimensions (the embeddings
    /// and linear weights) decay; LayerNorm and activation parameters do not.
    fn decays(&self, _path: &str, dims: usize) -> bool {
        dims >= 2
    }

    fn state_dict(&self, batches_tracked: i64) -> Vec<NamedTensor> {
        state::state_dict_with(self, batches_tracked, &GptNames)
    }

    fn load_state_dict(self, tensors: &HashMap<String, NamedTensor>) -> Result<Self> {
        state::load_state_dict_with(self, tensors, &GptNames)
    }
}

/// Parses a GPT size name.
pub fn parse_size(name: &str) -> Result<GptSize> {
    match name.to_ascii_lowercase().as_str() {
        "gpt-micro" => Ok(GptSize::GptMicro),
        "gpt-mini" => Ok(GptSize::GptMini),
        _ => bail!("unknown GPT '{name}': use gpt-micro or gpt-mini"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Formula;
    use crate::model::Activation;

    /// The composed attention that training with dropout takes (causal bias, dropout on the
    /// weights and branches) computes what the attention kernel computes: at a dropout of
    /// 1e-9 both give the same logits.
    #[test]
    fn the_dropout_path_computes_the_kernels_attention() {
        let device = Device::flex().autodiff();
        let gelu = Formula::parse("gelu(x)").unwrap();
        let model = Gpt::with_sites(GptSize::GptMicro, Mlp::Standard, 11, 3, &device, |width| {
            Activation::new(&gelu, width, &device)
        });
        let ids = || {
            Tensor::<2, Int>::from_data(
                TensorData::new((0..40).map(|i| i % 11).collect::<Vec<i64>>(), [2, 20]),
                &device,
            )
        };
        let plain = crate::model::state::host_f32(model.forward(ids()));
        let dropped = crate::model::state::host_f32(model.with_dropout(1e-9).forward(ids()));
        for (a, b) in plain.iter().zip(&dropped) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    /// Sampling is seeded, stays in the vocabulary, crops its context to the block, and at a
    /// low temperature picks the most likely id.
    #[test]
    fn generation_is_seeded_and_stays_in_the_vocabulary() {
        let device = Device::flex();
        let gelu = Formula::parse("gelu(x)").unwrap();
        let model = Gpt::with_sites(GptSize::GptMicro, Mlp::Standard, 11, 3, &device, |width| {
            Activation::new(&gelu, width, &device)
        });
        let a = model.generate(&[0], 80, 1.0, 7);
        assert_eq!(a.len(), 80, "past the block of 64, the context is cropped");
        assert!(a.iter().all(|&i| i < 11));
        assert_eq!(a, model.generate(&[0], 80, 1.0, 7));
        assert_ne!(a, model.generate(&[0], 80, 1.0, 8));
        let greedy = model.generate(&[0, 5], 1, 1e-4, 0)[0];
        let logits = crate::model::state::host_f32(
            model.forward(Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 5], [1, 2]), &device)),
        );
        let last = &logits[11..];
        let best = (0..11).max_by(|&i, &j| last[i].total_cmp(&last[j])).unwrap();
        assert_eq!(greedy as usize, best);
    }
}
