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

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::model::state::{NamedTensor, Values, host_f32, torch_name};

#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub grad_clip: Option<f64>,
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

    /// One update of every parameter of `module` that has a gradient in `grads`.
    pub fn step<M: Module>(&mut self, module: M, mut grads: Gradients, lr: f64) -> M {
        let scale = match self.config.grad_clip {
            Some(max_norm) => {
                let norm = grad_norm(&module, &grads);
                if norm > max_norm { max_norm / (norm + 1e-6) } else { 1.0 }
            }
            None => 1.0,
        };
        let mut updater = Updater { sgd: self, grads: &mut grads, lr, scale, path: Vec::new() };
        module.map(&mut updater)
    }

    /// The momentum buffers as named host tensors (for checkpoints).
    pub fn state(&self) -> Vec<NamedTensor> {
        let mut names: Vec<&String> = self.buffers.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let t = &self.buffers[name];
                NamedTensor {
                    name: format!("optim.{name}.momentum_buffer"),
                    shape: t.dims().to_vec(),
                    values: Values::F32(host_f32(t.clone())),
                }
            })
            .collect()
    }

    /// Restore buffers written by [`Sgd::state`]; other tensors are ignored.
    pub fn load_state(&mut self, tensors: &HashMap<String, NamedTensor>, device: &Device) {
        self.buffers.clear();
        for t in tensors.values() {
            let Some(name) = t.name.strip_prefix("optim.").and_then(|n| n.strip_suffix(".momentum_buffer")) else {
                continue;
            };
            if let Values::F32(v) = &t.values {
                let tensor = Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), device);
                self.buffers.insert(name.to_string(), tensor);
            }
        }
    }
}

/// The global L2 norm of all gradients of `module`'s parameters.
pub fn grad_norm<M: Module>(module: &M, grads: &Gradients) -> f64 {
    struct Norm<'a> {
        grads: &'a Gradients,
        sum: f64,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = param.val().grad(self.grads) {
                self.sum += g.square().sum().into_scalar::<f32>() as f64;
            }
        }
    }
    let mut norm = Norm { grads, sum: 0.0 };
    module.visit(&mut norm);
    norm.sum.sqrt()
}

struct Updater<'a> {
    sgd: &'a mut Sgd,
    grads: &'a mut Gradients,
    lr: f64,
    scale: f64,
    path: Vec<String>,
}

impl ModuleMapper for Updater<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        if !tensor.is_require_grad() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let Some(grad) = tensor.grad_remove(self.grads) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let c = self.sgd.config;
        let dims = tensor.dims();
        let numel: usize = dims.iter().product();
        let p = tensor.inner();
        let mut g = if self.scale != 1.0 { grad.mul_scalar(self.scale) } else { grad };
        if c.weight_decay != 0.0 {
            g = g + p.clone().mul_scalar(c.weight_decay);
        }
        if c.momentum != 0.0 {
            let name = torch_name(&self.path.join("."));
            let buf = match self.sgd.buffers.remove(&name) {
                Some(b) => b.reshape(dims).mul_scalar(c.momentum) + g.clone(),
                None => g.clone(),
            };
            g = if c.nesterov { g + buf.clone().mul_scalar(c.momentum) } else { buf.clone() };
            self.sgd.buffers.insert(name, buf.reshape([numel]));
        }
        let updated = p - g.mul_scalar(self.lr);
        Param::from_mapped_value(id, Tensor::from_inner(updated).require_grad(), mapper)
    }
}
