//! SGD with momentum, optional Nesterov, weight decay and optional global-norm gradient
//! clipping, with exactly PyTorch's update rule:
//!
//! ```text
//! g = grad + wd * p;  buf = g (first step) | momentum * buf + g;
//! d = nesterov ? g + momentum * buf : buf;  p -= lr * d
//! ```
//!
//! Momentum buffers are keyed by the parameter's PyTorch name so that checkpoints are plain,
//! readable safetensors files.

use std::collections::HashMap;

use burn::module::Module;
use burn::prelude::*;

use super::update::{self, Grads, Group};
use crate::model::state::{NamedTensor, Values, host_f32};

#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub grad_clip: Option<f64>,
    /// The parameters this optimizer updates.
    pub group: Group,
}

pub struct Sgd {
    config: SgdConfig,
    /// Momentum buffer per parameter name, flattened.
    buffers: HashMap<String, Tensor<1>>,
}

impl Sgd {
    pub fn new(config: SgdConfig) -> Sgd {
        Sgd { config, buffers: HashMap::new() }
    }

    /// One update of every parameter of the group that has a gradient in `grads`.
    pub fn step<M: Module>(&mut self, module: M, grads: &Grads, lr: f64) -> M {
        let c = self.config;
        let scale = self.clip_scale(grads);
        let buffers = &mut self.buffers;
        update::apply(module, grads, c.group, &mut |name, p, grad| {
            let mut g = if scale != 1.0 { grad.mul_scalar(scale) } else { grad };
            if c.weight_decay != 0.0 {
                g = g + p.clone().mul_scalar(c.weight_decay);
            }
            if c.momentum != 0.0 {
                let buf = match buffers.remove(name) {
                    Some(b) => b.mul_scalar(c.momentum) + g.clone(),
                    None => g.clone(),
                };
                g = if c.nesterov { g + buf.clone().mul_scalar(c.momentum) } else { buf.clone() };
                buffers.insert(name.to_string(), buf);
            }
            p - g.mul_scalar(lr)
        })
    }

    /// The weights one step would give, without changing the optimizer's state: second-order
    /// DARTS' unrolled model `w - lr * (momentum * buf + grad + wd * w)` (no clipping, as in
    /// the DARTS code).
    pub fn virtual_step<M: Module>(&self, module: M, grads: &Grads, lr: f64) -> M {
        let c = self.config;
        update::apply(module, grads, c.group, &mut |name, p, g| {
            let mut d = g + p.clone().mul_scalar(c.weight_decay);
            if let Some(buf) = self.buffers.get(name).filter(|_| c.momentum != 0.0) {
                d = d + buf.clone().mul_scalar(c.momentum);
            }
            p - d.mul_scalar(lr)
        })
    }

    /// The factor that brings the gradient norm down to the clip threshold (1 if below).
    fn clip_scale(&self, grads: &Grads) -> f64 {
        update::clip_scale(grads, self.config.grad_clip)
    }

    /// The momentum buffers as named host tensors (for checkpoints).
    pub fn state(&self) -> Vec<NamedTensor> {
        named_state(&[("momentum_buffer", &self.buffers)])
    }

    /// Restore buffers written by [`Sgd::state`]; other tensors are ignored.
    pub fn load_state(&mut self, tensors: &HashMap<String, NamedTensor>, device: &Device) {
        self.buffers = load_named_state(tensors, "momentum_buffer", device);
    }
}

/// Optimizer state maps as named tensors `optim.<param>.<kind>`, sorted by name.
pub fn named_state(maps: &[(&str, &HashMap<String, Tensor<1>>)]) -> Vec<NamedTensor> {
    let mut out = Vec::new();
    for (kind, map) in maps {
        for (name, t) in map.iter() {
            out.push(NamedTensor {
                name: format!("optim.{name}.{kind}"),
                shape: t.dims().to_vec(),
                values: Values::F32(host_f32(t.clone())),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The tensors `optim.<param>.<kind>` of a checkpoint, by parameter name.
pub fn load_named_state(
    tensors: &HashMap<String, NamedTensor>,
    kind: &str,
    device: &Device,
) -> HashMap<String, Tensor<1>> {
    let suffix = format!(".{kind}");
    let mut out = HashMap::new();
    for t in tensors.values() {
        let Some(name) = t.name.strip_prefix("optim.").and_then(|n| n.strip_suffix(suffix.as_str())) else {
            continue;
        };
        if let Values::F32(v) = &t.values {
            out.insert(name.to_string(), Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), device));
        }
    }
    out
}
