//! What every network is to the training loop and to the files a run writes: the one trait
//! [`Net`]. The CIFAR ResNets implement it; the transformers (ViT, GPT, the encoder-decoder)
//! implement it the same way, so the driver, the optimizers and the searches never ask which
//! network they hold.

use std::collections::HashMap;

use anyhow::Result;
use burn::module::Module;
use burn::prelude::*;

use super::state::{self, NamedTensor};

pub trait Net: Module {
    /// What one forward pass reads: images `[batch, 3, 32, 32]` for the image classifiers.
    type Input;
    /// What sits at an activation site: a formula (`Activation`) or a searchable cell.
    type Site;

    /// Logits, one row per prediction (`[batch, classes]` for an image classifier). Training
    /// and evaluation call the same method; evaluation calls it on the inference copy
    /// (`valid()`), where batch norm uses its running statistics and dropout is off.
    fn forward(&self, input: Self::Input) -> Tensor<2>;

    /// The activation sites in forward order.
    fn sites(&self) -> Vec<&Self::Site>;

    /// Replaces every activation site by `f(index, site)`, in forward order.
    fn map_sites(self, f: impl FnMut(usize, Self::Site) -> Self::Site) -> Self;

    /// Whether the parameter at module path `path`, of `dims` dimensions, gets weight decay.
    /// The ResNets decay every parameter (as their SGD recipes do); AdamW's recipes for the
    /// transformers decay only the parameters of two or more dimensions.
    fn decays(&self, _path: &str, _dims: usize) -> bool {
        true
    }

    /// Every tensor under the PyTorch twin's `state_dict` names (`model.safetensors` and the
    /// checkpoints), BatchNorm's step count included.
    fn state_dict(&self, batches_tracked: i64) -> Vec<NamedTensor> {
        state::state_dict(self, batches_tracked)
    }

    /// The network with every tensor replaced by the one of the same `state_dict` name.
    fn load_state_dict(self, tensors: &HashMap<String, NamedTensor>) -> Result<Self> {
        state::load_state_dict(self, tensors)
    }
}
