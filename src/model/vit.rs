//! The Vision Transformer of the transfer tasks, exactly `transformers_ref.ViT` of
//! `../shared/reference`: 4x4 patches embedded by a convolution with stride 4 (computed here as
//! one matrix product over the patches), a cls token and learned positions, pre-LN blocks
//! (`x + attn(ln1(x))`, then `x + mlp(ln2(x))`) with biases, a final LayerNorm and a linear
//! head on the cls token. Every MLP hidden layer is an activation site, its per-feature
//! parameters on the last axis (`transformer`); `Mlp::Gated` makes a block `act(x W_fc) * (x W_up) W_proj`
//! with two thirds of the hidden width (rounded up to a multiple of 8).
//!
//! Initialization follows the reference: N(0, 0.02) for every weight of two or more
//! dimensions (the patch convolution, the linear layers, cls and positions), zero biases,
//! LayerNorm (1, 0); drawn from our own seeded stream, so the same seed gives the same weights
//! everywhere. Parameter names are the reference's `state_dict` keys
//! (`transformer::TransformerNames`).

use anyhow::{Result, bail};
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear, PaddingConfig2d};
use burn::prelude::*;

use super::activation::Site;
use super::init::Init;
use super::net::Net;
use super::state::{self, NamedTensor};
pub use super::transformer::Mlp;
use super::transformer::{Block, BlockShape, LN_EPSILON, MlpBlock, TransformerNames, layer_norm, linear, zeros};
use crate::kernels::{layer_norm as ln_kernel, linear as linear_kernel};
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

#[derive(Module, Debug)]
pub struct Vit<A: Site> {
    /// The patch embedding, a convolution with kernel and stride `patch` (`[d, 3, p, p]`).
    pub patch: Conv2d,
    pub cls: Param<Tensor<3>>,
    pub pos: Param<Tensor<3>>,
    pub blocks: Vec<Block<A>>,
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
        let mut normal = |shape: &[usize], std: f64| init.normal(shape.iter().product(), std);
        let patch = Conv2d {
            weight: Param::from_data(TensorData::new(normal(&[d, 3, p, p], 0.02), [d, 3, p, p]), device),
            bias: Some(zeros([d], device)),
            stride: [p, p],
            kernel_size: [p, p],
            dilation: [1, 1],
            groups: 1,
            padding: PaddingConfig2d::Valid,
        };
        let cls = Param::from_data(TensorData::new(normal(&[1, 1, d], 0.02), [1, 1, d]), device);
        let pos = Param::from_data(TensorData::new(normal(&[1, tokens, d], 0.02), [1, tokens, d]), device);
        let shape = BlockShape {
            std: 0.02,
            cross: false,
            dropout: 0.0,
            d,
            heads,
            width,
            mlp,
            bias: true,
            causal: false,
            residual_layers: None,
        };
        let blocks = (0..layers).map(|_| Block::new(&shape, &mut normal, &mut site, device)).collect();
        let head = linear(&mut normal, d, num_classes, 0.02, true, device);
        Vit { patch, cls, pos, blocks, ln_f: layer_norm(d, true, device), head }
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
        let t = linear_kernel::affine(patches, kernel, bias).reshape([batch, rows * cols, d]);
        let cls = self.cls.val().expand([batch, 1, d]);
        let mut t = Tensor::cat(vec![cls, t], 1) + self.pos.val();
        for block in &self.blocks {
            t = block.forward(t);
        }
        let first = t.narrow(1, 0, 1).reshape([batch, d]);
        linear_kernel::apply(&self.head, ln_kernel::apply(&self.ln_f, LN_EPSILON, first))
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
        Vit { blocks, ..self }
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
        state::state_dict_with(self, batches_tracked, &TransformerNames)
    }

    fn load_state_dict(self, tensors: &HashMap<String, NamedTensor>) -> Result<Self> {
        state::load_state_dict_with(self, tensors, &TransformerNames)
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
