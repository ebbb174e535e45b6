//! The optimizer of a run that trains weights only (eval and a search's children): SGD for
//! the ResNets' recipes, AdamW for the transformers'. One enum, so the strategy and its
//! checkpoint treat both alike.

use std::collections::HashMap;

use anyhow::Result;
use burn::module::Module;
use burn::prelude::*;

use super::adam::{Adam, AdamConfig};
use super::sgd::Sgd;
use super::update::{Grads, Group, names_where};
use crate::model::Net;
use crate::model::state::NamedTensor;

/// The transformers' AdamW: decay on the parameters the network says decay (`Net::decays`:
/// two or more dimensions), the global gradient norm clipped.
pub struct AdamW {
    pub betas: (f64, f64),
    pub weight_decay: f64,
    pub grad_clip: Option<f64>,
    pub group: Group,
}

impl AdamW {
    /// PyTorch's default betas, the ViT's recipe (and the searches').
    pub const DEFAULT_BETAS: (f64, f64) = (0.9, 0.999);
    /// nanoGPT's betas for its small character models, the GPT's recipe.
    pub const GPT_BETAS: (f64, f64) = (0.9, 0.99);

    pub fn build<N: Net>(&self, model: &N) -> Optim {
        let config = AdamConfig { betas: self.betas, eps: 1e-8, weight_decay: self.weight_decay, group: self.group };
        let no_decay = names_where(model, &|path, dims| !model.decays(path, dims));
        Optim::AdamW(Adam::adamw(config, no_decay, self.grad_clip))
    }
}

pub enum Optim {
    Sgd(Sgd),
    AdamW(Adam),
}

impl Optim {
    pub fn step<M: Module>(&mut self, module: M, grads: &Grads, lr: f64) -> M {
        match self {
            Optim::Sgd(sgd) => sgd.step(module, grads, lr),
            Optim::AdamW(adam) => adam.step(module, grads, lr),
        }
    }

    /// The state for a checkpoint: buffers as named tensors, and AdamW's step count.
    pub fn state(&self) -> (Vec<NamedTensor>, serde_json::Value) {
        match self {
            Optim::Sgd(sgd) => (sgd.state(), serde_json::Value::Null),
            Optim::AdamW(adam) => (adam.state(), serde_json::json!({ "adam_steps": adam.steps })),
        }
    }

    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, NamedTensor>,
        state: &serde_json::Value,
        device: &Device,
    ) -> Result<()> {
        match self {
            Optim::Sgd(sgd) => sgd.load_state(tensors, device),
            Optim::AdamW(adam) => {
                let Some(steps) = state.get("adam_steps").and_then(|s| s.as_u64()) else {
                    anyhow::bail!("the checkpoint has no AdamW step count; it was not written by this run")
                };
                adam.load_state(tensors, steps, device);
            }
        }
        Ok(())
    }
}
