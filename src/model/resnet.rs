//! CIFAR ResNet-(6n+2) (He et al. 2016, section 4.2): a 3x3 stem with 16 channels, three
//! stages of n BasicBlocks with 16/32/64 channels (stride 2 at the start of stages 2 and 3),
//! global average pooling and a linear classifier. A 1x1 conv + BN projection shortcut is used
//! where the shape changes. Every activation site (the stem's and both of each block's) holds
//! its own `Activation` instance.
//!
//! Field names are chosen so that `model::state` can map them one-to-one onto the PyTorch
//! reference model's `state_dict` names. [`Network`] names every network of `--network`.

use anyhow::Result;
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::prelude::*;

use super::activation::{Activation, Site, plus};
use super::init::Init;
use super::layers::{convolve, convolve_normalized};
use super::network::Network;
use crate::expr::Formula;

#[derive(Module, Debug)]
pub struct Shortcut {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct Block<A: Site> {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub act1: A,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub act2: A,
    pub short: Option<Shortcut>,
}

#[derive(Module, Debug)]
pub struct ResNet<A: Site> {
    pub stem_conv: Conv2d,
    pub stem_bn: BatchNorm,
    pub act: A,
    pub blocks: Vec<Block<A>>,
    pub fc: Linear,
}

impl ResNet<Activation> {
    /// A freshly initialised network with `formula` at every activation site (an error when
    /// `network` is not a ResNet).
    pub fn new(network: Network, formula: &Formula, num_classes: usize, seed: u64, device: &Device) -> Result<Self> {
        ResNet::with_sites(network, num_classes, seed, device, |channels| Activation::new(formula, channels, device))
    }
}

impl<A: Site> ResNet<A> {
    /// A freshly initialised network whose sites come from `site(channels)`, called in forward
    /// order (stem, then act1 and act2 of each block).
    /// An error when `network` is not a ResNet.
    pub fn with_sites(
        network: Network,
        num_classes: usize,
        seed: u64,
        device: &Device,
        mut site: impl FnMut(usize) -> A,
    ) -> Result<Self> {
        let blocks_per_stage = network.blocks_per_stage()?;
        // The draw order (blocks, classifier, stem) is part of what a seed means: keep it.
        let mut init = Init::new(seed);
        let act = site(16);
        let mut blocks = Vec::new();
        let mut cin = 16;
        for (stage, cout) in [16usize, 32, 64].into_iter().enumerate() {
            for i in 0..blocks_per_stage {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                blocks.push(Block::new(cin, cout, stride, &mut site, &mut init, device));
                cin = cout;
            }
        }
        let fc_weight = init.uniform(&[64, num_classes], 64);
        let fc_bias = init.uniform(&[num_classes], 64);
        let stem_conv = conv(&mut init, 3, 16, 3, 1, device);
        Ok(ResNet {
            stem_conv,
            stem_bn: bn(16, device),
            act,
            blocks,
            fc: Linear {
                weight: Param::from_data(TensorData::new(fc_weight, [64, num_classes]), device),
                bias: Some(Param::from_data(TensorData::new(fc_bias, [num_classes]), device)),
            },
        })
    }

    /// Logits `[batch, classes]` for images `[batch, 3, 32, 32]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = activate(&self.act, &self.stem_conv, &self.stem_bn, images, None);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dims(&[2, 3]).reshape([batch, channels]);
        self.fc.forward(pooled)
    }

    /// Replace every activation site by `f(index, site)`, in forward order.
    pub fn map_sites(self, mut f: impl FnMut(usize, A) -> A) -> Self {
        let act = f(0, self.act);
        let mut next = 1;
        let blocks = self
            .blocks
            .into_iter()
            .map(|b| {
                let (act1, act2) = (f(next, b.act1), f(next + 1, b.act2));
                next += 2;
                Block { act1, act2, ..b }
            })
            .collect();
        ResNet { act, blocks, ..self }
    }

    /// All activation sites in forward order.
    pub fn sites(&self) -> Vec<&A> {
        let mut sites = vec![&self.act];
        for b in &self.blocks {
            sites.extend([&b.act1, &b.act2]);
        }
        sites
    }
}

impl<A: Site> super::net::Net for ResNet<A> {
    type Input = Tensor<4>;
    type Site = A;

    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        ResNet::forward(self, images)
    }

    fn sites(&self) -> Vec<&A> {
        ResNet::sites(self)
    }

    fn map_sites(self, f: impl FnMut(usize, A) -> A) -> Self {
        ResNet::map_sites(self, f)
    }
}

impl<A: Site> Block<A> {
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        site: &mut impl FnMut(usize) -> A,
        init: &mut Init,
        device: &Device,
    ) -> Self {
        let short = (stride != 1 || cin != cout)
            .then(|| Shortcut { conv: conv(init, cin, cout, 1, stride, device), bn: bn(cout, device) });
        let conv1 = conv(init, cin, cout, 3, stride, device);
        let act1 = site(cout);
        let conv2 = conv(init, cout, cout, 3, 1, device);
        let act2 = site(cout);
        Block { conv1, bn1: bn(cout, device), act1, conv2, bn2: bn(cout, device), act2, short }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = activate(&self.act1, &self.conv1, &self.bn1, x.clone(), None);
        let shortcut = match &self.short {
            Some(s) => convolve_normalized(&s.conv, &s.bn, x),
            None => x,
        };
        activate(&self.act2, &self.conv2, &self.bn2, y, Some(shortcut))
    }
}

/// `site(bn(conv(x)) + residual)`. In training the site applies the batch norm itself
/// (`Site::forward_normalized`: one pass with the activation on the CPU); in inference the
/// batch norm is folded into the convolution.
fn activate<A: Site>(site: &A, conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
    if x.device().is_autodiff() {
        return site.forward_normalized(bn, convolve(conv, x), residual);
    }
    site.forward(plus(convolve_normalized(conv, bn, x), residual))
}

/// A bias-free convolution with "same" padding for odd kernels.
fn conv(init: &mut Init, cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = k / 2;
    Conv2d {
        weight: init.conv([cout, cin, k, k], device),
        bias: None,
        stride: [stride, stride],
        kernel_size: [k, k],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(pad, pad, pad, pad),
    }
}

fn bn(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}
