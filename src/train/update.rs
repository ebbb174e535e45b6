//! Applying an elementwise optimizer update to one group of a module's parameters.
//!
//! Parameters are split into two groups by name: architecture parameters (any path with an
//! `alphas` component, the mixing logits of searchable cells) and network weights
//! (everything else). Each optimizer sees its group only, as flat `[numel]` tensors keyed by
//! the parameter's PyTorch name, so optimizer state is a plain map of named tensors.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::model::state::torch_name;

/// Which parameters an optimizer updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Every trainable parameter.
    All,
    /// Network weights: everything but the architecture parameters.
    Weights,
    /// Architecture parameters (`alphas`).
    Arch,
}

impl Group {
    pub fn contains(self, path: &str) -> bool {
        let arch = path.split('.').any(|part| part == "alphas");
        match self {
            Group::All => true,
            Group::Weights => !arch,
            Group::Arch => arch,
        }
    }
}

/// Replace each trainable parameter `p` of `group` that has a gradient `g` by
/// `update(name, p, g)` (flat tensors, no autodiff). Gradients of the group are consumed.
pub fn apply<M: Module>(
    module: M,
    grads: &mut Gradients,
    group: Group,
    update: &mut dyn FnMut(&str, Tensor<1>, Tensor<1>) -> Tensor<1>,
) -> M {
    let mut mapper = Updater { grads, group, update, path: Vec::new() };
    module.map(&mut mapper)
}

/// The global L2 norm of the gradients of `group`.
pub fn grad_norm<M: Module>(module: &M, grads: &Gradients, group: Group) -> f64 {
    struct Norm<'a> {
        grads: &'a Gradients,
        group: Group,
        path: Vec<String>,
        sum: f64,
    }
    impl ModuleVisitor for Norm<'_> {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !self.group.contains(&self.path.join(".")) {
                return;
            }
            if let Some(g) = param.val().grad(self.grads) {
                self.sum += g.square().sum().into_scalar::<f32>() as f64;
            }
        }
    }
    let mut norm = Norm { grads, group, path: Vec::new(), sum: 0.0 };
    module.visit(&mut norm);
    norm.sum.sqrt()
}

struct Updater<'a> {
    grads: &'a mut Gradients,
    group: Group,
    update: &'a mut dyn FnMut(&str, Tensor<1>, Tensor<1>) -> Tensor<1>,
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
        let path = self.path.join(".");
        if !tensor.is_require_grad() || !self.group.contains(&path) {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let Some(grad) = tensor.grad_remove(self.grads) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.dims();
        let numel: usize = dims.iter().product();
        let updated = (self.update)(&torch_name(&path), tensor.inner().reshape([numel]), grad.reshape([numel]));
        Param::from_mapped_value(id, Tensor::from_inner(updated.reshape(dims)).require_grad(), mapper)
    }
}
