//! The pieces every transformer of `../shared/reference/transformers_ref.py` is built from,
//! shared by the ViT (`vit`), the GPT (`gpt`) and the encoder-decoder (`seq2seq`): multi-head
//! self-attention with one fused qkv projection (causal for a language model), the MLP whose
//! hidden layer is the activation site (`Mlp::Gated` makes it `act(x W_fc) * (x W_up) W_proj`
//! at two thirds of the width), and the pre-LN block `x + attn(ln1(x))`, then (a decoder's)
//! `x + cross(ln_cross(x), memory)`, then `x + mlp(ln2(x))`, with or without biases.
//!
//! Linear layers run on the rows of `[batch, tokens, features]` as one matrix
//! (`kernels::linear`), attention and LayerNorm on their CPU kernels (`kernels::attention`,
//! `kernels::layer_norm`), which compose burn's ops on other backends. Attention with a mask
//! of padding ([`Block::forward_masked`], the encoder-decoder's) composes burn's ops, with
//! dropout where the reference has it: on the attention weights and after every residual
//! branch (it is active only in training, on the autodiff device).

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::activation::Site;
use super::state::Naming;
use crate::kernels::{attention, dropout, layer_norm, linear};

/// The MLP of each block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mlp {
    /// `act(x W_fc) W_proj`.
    #[default]
    Standard,
    /// `act(x W_fc) * (x W_up) W_proj` at two thirds of the width (SwiGLU with silu, GEGLU
    /// with gelu).
    Gated,
}

impl Mlp {
    /// The hidden width for a standard width of `hidden`.
    pub fn width(self, hidden: usize) -> usize {
        match self {
            Mlp::Standard => hidden,
            Mlp::Gated => (2 * hidden / 3).div_ceil(8) * 8,
        }
    }
}

/// Multi-head self-attention with one fused qkv projection.
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    #[module(skip)]
    pub heads: usize,
    /// Each token attends only to itself and the tokens before it (a language model).
    #[module(skip)]
    pub causal: bool,
}

/// A decoder's attention over the encoder's output: queries from `q`, keys and values from
/// one fused `kv` projection of the memory.
#[derive(Module, Debug)]
pub struct CrossAttention {
    pub q: Linear,
    pub kv: Linear,
    pub proj: Linear,
    #[module(skip)]
    pub heads: usize,
}

/// A block's MLP: `fc`, the activation site `act`, `up` when gated, `proj`.
#[derive(Module, Debug)]
pub struct MlpBlock<A: Site> {
    pub fc: Linear,
    pub up: Option<Linear>,
    pub act: A,
    pub proj: Linear,
}

/// A pre-LN block: `x + attn(ln1(x))`, then (a decoder's) `x + cross(ln_cross(x), memory)`,
/// then `x + mlp(ln2(x))`.
#[derive(Module, Debug)]
pub struct Block<A: Site> {
    pub ln1: LayerNorm,
    pub attn: Attention,
    pub ln_cross: Option<LayerNorm>,
    pub cross: Option<CrossAttention>,
    pub ln2: LayerNorm,
    pub mlp: MlpBlock<A>,
    /// On the attention weights and after each residual branch (`forward_masked`).
    pub drop: Dropout,
}

/// How a block is built: its widths, whether its layers have biases and its attention is
/// causal, whether it attends to an encoder's output, and the reference's initialization
/// (N(0, std) weights, the output projections' standard deviation divided by
/// `sqrt(2 layers)` where `residual_layers` is given, as GPT-2).
pub struct BlockShape {
    /// The weights' standard deviation: 0.02 (ViT, GPT), d^-0.5 (the encoder-decoder).
    pub std: f64,
    /// A decoder block: cross-attention to the encoder's output.
    pub cross: bool,
    pub dropout: f64,
    pub d: usize,
    pub heads: usize,
    /// The MLP's hidden width (already `Mlp::width` of the standard one).
    pub width: usize,
    pub mlp: Mlp,
    pub bias: bool,
    pub causal: bool,
    pub residual_layers: Option<usize>,
}

impl<A: Site> Block<A> {
    /// A block drawn from `normal(shape, std)`, its site `act`, in the reference's order of
    /// parameters (ln1, qkv, proj, ln2, fc, up, proj).
    pub fn new(
        shape: &BlockShape,
        normal: &mut impl FnMut(&[usize], f64) -> Vec<f32>,
        act: impl FnOnce(usize) -> A,
        device: &Device,
    ) -> Self {
        let BlockShape { std, cross, dropout, d, heads, width, mlp, bias, causal, residual_layers } = *shape;
        let out_std = residual_layers.map_or(std, |layers| std / (2.0 * layers as f64).sqrt());
        let attn = Attention {
            qkv: linear(normal, d, 3 * d, std, bias, device),
            proj: linear(normal, d, d, out_std, bias, device),
            heads,
            causal,
        };
        let (ln_cross, cross) = match cross {
            true => {
                let ln = layer_norm(d, bias, device);
                let q = linear(normal, d, d, std, bias, device);
                let kv = linear(normal, d, 2 * d, std, bias, device);
                let proj = linear(normal, d, d, out_std, bias, device);
                (Some(ln), Some(CrossAttention { q, kv, proj, heads }))
            }
            false => (None, None),
        };
        let fc = linear(normal, d, width, std, bias, device);
        let up = (mlp == Mlp::Gated).then(|| linear(normal, d, width, std, bias, device));
        let act = act(width);
        let proj = linear(normal, width, d, out_std, bias, device);
        let mlp = MlpBlock { fc, up, act, proj };
        let drop = DropoutConfig::new(dropout).init();
        Block { ln1: layer_norm(d, bias, device), attn, ln_cross, cross, ln2: layer_norm(d, bias, device), mlp, drop }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(layer_norm::apply(&self.ln1, LN_EPSILON, x));
        x.clone() + self.mlp.forward(layer_norm::apply(&self.ln2, LN_EPSILON, x))
    }

    /// The block with masked attention: `bias` `[batch, 1, tokens, tokens]` is added to the
    /// self-attention scores (0 where a query may attend to a key, -inf where not: padding,
    /// the future), and a decoder block attends to `memory` `[batch, keys, d]` with
    /// `memory_bias` `[batch, 1, 1, keys]` (its padding). Dropout as the reference places it.
    /// Where the samples are right-padded, `keys` holds each one's count of keys that are not
    /// padding: without dropout on the attention weights, the self-attention then takes the
    /// attention kernel, which gives the same result as `bias` (the block's own causality
    /// added).
    pub fn forward_masked(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        keys: Option<&[usize]>,
        memory: Option<(&Tensor<3>, &Tensor<4>)>,
    ) -> Tensor<3> {
        let [_, _, d] = x.dims();
        let qkv = rows(&self.attn.qkv, layer_norm::apply(&self.ln1, LN_EPSILON, x.clone()));
        let y = match keys {
            Some(keys) if !dropout::active(&self.drop, &x.device()) => {
                attention::padded_self_attention(qkv, self.attn.heads, self.attn.causal, keys)
            }
            _ => {
                let part = |i: usize| qkv.clone().narrow(2, i * d, d);
                masked_attention(part(0), part(1), part(2), self.attn.heads, bias, &self.drop)
            }
        };
        let mut x = x + dropout::apply(&self.drop, rows(&self.attn.proj, y));
        if let (Some(ln), Some(cross), Some((memory, memory_bias))) = (&self.ln_cross, &self.cross, memory) {
            let q = rows(&cross.q, layer_norm::apply(ln, LN_EPSILON, x.clone()));
            let kv = rows(&cross.kv, memory.clone());
            let (k, v) = (kv.clone().narrow(2, 0, d), kv.narrow(2, d, d));
            let y = masked_attention(q, k, v, cross.heads, memory_bias.clone(), &self.drop);
            x = x + dropout::apply(&self.drop, rows(&cross.proj, y));
        }
        x.clone() + dropout::apply(&self.drop, self.mlp.forward(layer_norm::apply(&self.ln2, LN_EPSILON, x)))
    }
}

/// `softmax(q k^T / sqrt(d_head) + bias) v` per head, composed of burn's ops: q `[batch, n_q,
/// d]`, k and v `[batch, n_k, d]`, `bias` broadcast over the heads (`[batch, 1, n_q or 1,
/// n_k]`), `drop` on the attention weights. Every query must be allowed at least one key.
pub fn masked_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    bias: Tensor<4>,
    drop: &Dropout,
) -> Tensor<3> {
    let [batch, n_q, d] = q.dims();
    let n_k = k.dims()[1];
    let dh = d / heads;
    let split = |t: Tensor<3>, n: usize| t.reshape([batch, n, heads, dh]).swap_dims(1, 2);
    let scores = split(q, n_q).matmul(split(k, n_k).swap_dims(2, 3)).mul_scalar(1.0 / (dh as f64).sqrt());
    let weights = dropout::apply(drop, softmax(scores + bias, 3));
    weights.matmul(split(v, n_k)).swap_dims(1, 2).reshape([batch, n_q, d])
}

impl Attention {
    /// `softmax(q k^T / sqrt(d_head)) v` per head (`kernels::attention`).
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let qkv = rows(&self.qkv, x);
        rows(&self.proj, attention::self_attention(qkv, self.heads, self.causal))
    }
}

impl<A: Site> MlpBlock<A> {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut h = self.act.forward_features(rows(&self.fc, x.clone()));
        if let Some(up) = &self.up {
            h = h * rows(up, x);
        }
        rows(&self.proj, h)
    }
}

/// `layer` applied to the rows of `x` `[batch, tokens, features]`, as one matrix `[batch *
/// tokens, features]` (`kernels::linear`): burn would run a linear layer on the 3-D tensor as
/// one small product per sample (it keeps the batched form for 65 rows), each packing the
/// weight again, and its input gradient likewise.
pub fn rows(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, tokens, features] = x.dims();
    let y = linear::apply(layer, x.reshape([batch * tokens, features]));
    let out = y.dims()[1];
    y.reshape([batch, tokens, out])
}

/// A linear layer `[fan_in] -> [fan_out]` with N(0, std) weights and, with `bias`, a zero bias.
pub fn linear(
    normal: &mut impl FnMut(&[usize], f64) -> Vec<f32>,
    fan_in: usize,
    fan_out: usize,
    std: f64,
    bias: bool,
    device: &Device,
) -> Linear {
    Linear {
        weight: Param::from_data(TensorData::new(normal(&[fan_in, fan_out], std), [fan_in, fan_out]), device),
        bias: bias.then(|| zeros([fan_out], device)),
    }
}

pub fn zeros(shape: [usize; 1], device: &Device) -> Param<Tensor<1>> {
    Param::from_data(TensorData::new(vec![0f32; shape[0]], shape), device)
}

/// The LayerNorms' epsilon: PyTorch's default, which the reference keeps.
pub const LN_EPSILON: f64 = 1e-5;

/// A LayerNorm over `d` features, (1, 0), with or without its bias.
pub fn layer_norm(d: usize, bias: bool, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(LN_EPSILON).with_bias(bias).init(device)
}

/// The reference's `state_dict` names, for every transformer: burn's LayerNorm `gamma`/`beta` are `weight`/`bias`, a
/// site's parameter slot `params.K` is `pK` (the name `export --to pytorch` gives it), and
/// every linear weight is transposed.
pub struct TransformerNames;

impl Naming for TransformerNames {
    fn torch_name(&self, path: &str) -> String {
        let parts: Vec<&str> = path.split('.').collect();
        let n = parts.len();
        let mut out: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        if n >= 2 && parts[n - 2].starts_with("ln") {
            match parts[n - 1] {
                "gamma" => out[n - 1] = "weight".into(),
                "beta" => out[n - 1] = "bias".into(),
                _ => {}
            }
        }
        if n >= 3 && parts[n - 3] == "act" && parts[n - 2] == "params" {
            let slot = out.pop().unwrap_or_default();
            out.pop();
            out.push(format!("p{slot}"));
        }
        out.join(".")
    }

    fn transposed(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('.').collect();
        let n = parts.len();
        n >= 2 && parts[n - 1] == "weight" && matches!(parts[n - 2], "qkv" | "q" | "kv" | "proj" | "fc" | "up" | "head")
    }
}
