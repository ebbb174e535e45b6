//! The Vision Transformer of the transfer tasks, exactly `transformers_ref.ViT` of
//! `../shared/reference`: 4x4 patches embedded by a convolution with stride 4 (computed here as
//! one matrix product over the patches), a cls token and learned positions, pre-LN blocks
//! (`x + attn(ln1(x))`, then `x + mlp(ln2(x))`) with biases, a final LayerNorm and a linear
//! head on the cls token. Every MLP hidden layer is an activation site, its per-feature
//! parameters on the last axis; `Mlp::Gated` makes a block `act(x W_fc) * (x W_up) W_proj`
//! with two thirds of the hidden width (rounded up to a multiple of 8).
//!
//! Initialization follows the reference: N(0, 0.02) for every weight of two or more
//! dimensions (the patch convolution, the linear layers, cls and positions), zero biases,
//! LayerNorm (1, 0); drawn from our own seeded stream, so the same seed gives the same weights
//! everywhere. Parameter names are the reference's `state_dict` keys ([`VitNames`]).

use anyhow::{Result, bail};
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, PaddingConfig2d};
use burn::prelude::*;

use super::activation::Site;
use super::init::Init;
use super::net::Net;
use super::state::{self, NamedTensor, Naming};
use crate::kernels::{attention, layer_norm, linear};
use std::collections::HashMap;

/// The ViT sizes of the reference (`SIZES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VitSize {
    VitMicro,
    VitTiny,
}

/// The shape of one ViT size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VitShape {
    pub layers: usize,
    pub heads: usize,
    pub d_model: usize,
    /// The hidden width of a standard MLP.
    pub hidden: usize,
    pub patch: usize,
}

impl VitSize {
    pub fn name(self) -> &'static str {
        match self {
            VitSize::VitMicro => "vit-micro",
            VitSize::VitTiny => "vit-tiny",
        }
    }

    pub fn shape(self) -> VitShape {
        match self {
            VitSize::VitMicro => VitShape { layers: 4, heads: 4, d_model: 128, hidden: 256, patch: 4 },
            VitSize::VitTiny => VitShape { layers: 12, heads: 3, d_model: 192, hidden: 768, patch: 4 },
        }
    }
}

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
}

/// A block's MLP: `fc`, the activation site `act`, `up` when gated, `proj`.
#[derive(Module, Debug)]
pub struct MlpBlock<A: Site> {
    pub fc: Linear,
    pub up: Option<Linear>,
    pub act: A,
    pub proj: Linear,
}

#[derive(Module, Debug)]
pub struct VitBlock<A: Site> {
    pub ln1: LayerNorm,
    pub attn: Attention,
    pub ln2: LayerNorm,
    pub mlp: MlpBlock<A>,
}

#[derive(Module, Debug)]
pub struct Vit<A: Site> {
    /// The patch embedding, a convolution with kernel and stride `patch` (`[d, 3, p, p]`).
    pub patch: Conv2d,
    pub cls: Param<Tensor<3>>,
    pub pos: Param<Tensor<3>>,
    pub blocks: Vec<VitBlock<A>>,
    pub ln_f: LayerNorm,
    pub head: Linear,
}

impl<A: Site> Vit<A> {
    /// A freshly initialised ViT for 32x32 images whose sites come from `site(width)`, in
    /// forward order (one per block).
    pub fn with_sites(
        size: VitSize,
        mlp: Mlp,
        num_classes: usize,
        seed: u64,
        device: &Device,
        mut site: impl FnMut(usize) -> A,
    ) -> Self {
        let VitShape { layers, heads, d_model: d, hidden, patch: p } = size.shape();
        let tokens = (32 / p) * (32 / p) + 1;
        let width = mlp.width(hidden);
        let mut init = Init::new(seed);
        let mut normal = |shape: &[usize]| init.normal(shape.iter().product(), 0.02);
        let patch = Conv2d {
            weight: Param::from_data(TensorData::new(normal(&[d, 3, p, p]), [d, 3, p, p]), device),
            bias: Some(zeros([d], device)),
            stride: [p, p],
            kernel_size: [p, p],
            dilation: [1, 1],
            groups: 1,
            padding: PaddingConfig2d::Valid,
        };
        let cls = Param::from_data(TensorData::new(normal(&[1, 1, d]), [1, 1, d]), device);
        let pos = Param::from_data(TensorData::new(normal(&[1, tokens, d]), [1, tokens, d]), device);
        let mut blocks = Vec::new();
        for _ in 0..layers {
            let attn = Attention {
                qkv: linear(&mut normal, d, 3 * d, device),
                proj: linear(&mut normal, d, d, device),
                heads,
            };
            let fc = linear(&mut normal, d, width, device);
            let up = (mlp == Mlp::Gated).then(|| linear(&mut normal, d, width, device));
            let act = site(width);
            let proj = linear(&mut normal, width, d, device);
            let mlp = MlpBlock { fc, up, act, proj };
            blocks.push(VitBlock { ln1: layer_norm(d, device), attn, ln2: layer_norm(d, device), mlp });
        }
        let head = linear(&mut normal, d, num_classes, device);
        Vit { patch, cls, pos, blocks, ln_f: layer_norm(d, device), head }
    }

    /// Logits `[batch, classes]` for images `[batch, 3, 32, 32]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let [batch, _, height, width] = images.dims();
        let [d, _, p, _] = self.patch.weight.dims();
        let (rows, cols) = (height / p, width / p);
        // The convolution with kernel = stride = p: each patch's (c, i, j) pixels against the
        // flattened kernel, one product over all patches.
        let patches = images
            .reshape([batch, 3, rows, p, cols, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([batch * rows * cols, 3 * p * p]);
        let kernel = self.patch.weight.val().reshape([d, 3 * p * p]).transpose();
        let bias = self.patch.bias.as_ref().map(|b| b.val());
        let t = linear::affine(patches, kernel, bias).reshape([batch, rows * cols, d]);
        let cls = self.cls.val().expand([batch, 1, d]);
        let mut t = Tensor::cat(vec![cls, t], 1) + self.pos.val();
        for block in &self.blocks {
            t = block.forward(t);
        }
        let first = t.narrow(1, 0, 1).reshape([batch, d]);
        linear::apply(&self.head, layer_norm::apply(&self.ln_f, LN_EPSILON, first))
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
            .map(|(i, b)| VitBlock { mlp: MlpBlock { act: f(i, b.mlp.act), ..b.mlp }, ..b })
            .collect();
        Vit { blocks, ..self }
    }
}

impl<A: Site> VitBlock<A> {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(layer_norm::apply(&self.ln1, LN_EPSILON, x));
        x.clone() + self.mlp.forward(layer_norm::apply(&self.ln2, LN_EPSILON, x))
    }
}

impl Attention {
    /// `softmax(q k^T / sqrt(d_head)) v` per head, every query attending to every key
    /// (`kernels::attention`).
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let qkv = rows(&self.qkv, x);
        rows(&self.proj, attention::self_attention(qkv, self.heads, false))
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
fn rows(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, tokens, features] = x.dims();
    let y = linear::apply(layer, x.reshape([batch * tokens, features]));
    let out = y.dims()[1];
    y.reshape([batch, tokens, out])
}

/// A linear layer `[fan_in] -> [fan_out]` with N(0, 0.02) weights and a zero bias.
fn linear(normal: &mut impl FnMut(&[usize]) -> Vec<f32>, fan_in: usize, fan_out: usize, device: &Device) -> Linear {
    Linear {
        weight: Param::from_data(TensorData::new(normal(&[fan_in, fan_out]), [fan_in, fan_out]), device),
        bias: Some(zeros([fan_out], device)),
    }
}

fn zeros(shape: [usize; 1], device: &Device) -> Param<Tensor<1>> {
    Param::from_data(TensorData::new(vec![0f32; shape[0]], shape), device)
}

/// The LayerNorms' epsilon: PyTorch's default, which the reference keeps.
const LN_EPSILON: f64 = 1e-5;

fn layer_norm(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(LN_EPSILON).init(device)
}

/// The reference's `state_dict` names: burn's LayerNorm `gamma`/`beta` are `weight`/`bias`, a
/// site's parameter slot `params.K` is `pK` (the name `export --to pytorch` gives it), and
/// every linear weight is transposed.
pub struct VitNames;

impl Naming for VitNames {
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
        n >= 2 && parts[n - 1] == "weight" && matches!(parts[n - 2], "qkv" | "proj" | "fc" | "up" | "head")
    }
}

impl<A: Site> Net for Vit<A> {
    type Input = Tensor<4>;
    type Site = A;

    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Vit::forward(self, images)
    }

    fn sites(&self) -> Vec<&A> {
        Vit::sites(self)
    }

    fn map_sites(self, f: impl FnMut(usize, A) -> A) -> Self {
        Vit::map_sites(self, f)
    }

    /// AdamW's groups of the reference: parameters of two or more dimensions decay; biases,
    /// LayerNorm and activation parameters do not.
    fn decays(&self, _path: &str, dims: usize) -> bool {
        dims >= 2
    }

    fn state_dict(&self, batches_tracked: i64) -> Vec<NamedTensor> {
        state::state_dict_with(self, batches_tracked, &VitNames)
    }

    fn load_state_dict(self, tensors: &HashMap<String, NamedTensor>) -> Result<Self> {
        state::load_state_dict_with(self, tensors, &VitNames)
    }
}

/// Parses a ViT size name.
pub fn parse_size(name: &str) -> Result<VitSize> {
    match name.to_ascii_lowercase().as_str() {
        "vit-micro" => Ok(VitSize::VitMicro),
        "vit-tiny" => Ok(VitSize::VitTiny),
        _ => bail!("unknown ViT '{name}': use vit-micro or vit-tiny"),
    }
}
