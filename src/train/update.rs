//! Applying an elementwise optimizer update to one group of a module's parameters.
//!
//! Parameters are split into two groups by name: architecture parameters (any path with an
//! `alphas` component, the mixing logits of searchable cells) and network weights
//! (everything else). Gradients are taken out of burn's autodiff `Gradients` as [`Grads`]:
//! flat `[numel]` tensors keyed by the parameter's PyTorch name. Optimizers, gradient
//! accumulation and second-order DARTS all work on that one representation, so optimizer
//! state is a plain map of named tensors.

use std::collections::HashMap;

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

/// Gradients of one group of parameters: flat tensors (no autodiff) by PyTorch name.
#[derive(Clone, Debug, Default)]
pub struct Grads(pub HashMap<String, Tensor<1>>);

impl Grads {
    /// The gradients of `group`'s trainable parameters of `module` found in `grads`.
    pub fn of<M: Module>(module: &M, grads: &Gradients, group: Group) -> Grads {
        struct Collect<'a> {
            grads: &'a Gradients,
            group: Group,
            path: Vec<String>,
            out: HashMap<String, Tensor<1>>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn enter_module(&mut self, name: &str, _container: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _name: &str, _container: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let path = self.path.join(".");
                if !param.is_require_grad() || !self.group.contains(&path) {
                    return;
                }
                if let Some(g) = param.val().grad(self.grads) {
                    let numel = g.dims().iter().product::<usize>();
                    self.out.insert(torch_name(&path), g.reshape([numel]));
                }
            }
        }
        let mut collect = Collect { grads, group, path: Vec::new(), out: HashMap::new() };
        module.visit(&mut collect);
        Grads(collect.out)
    }

    /// The global L2 norm.
    pub fn norm(&self) -> f64 {
        self.0.values().map(|g| g.clone().square().sum().into_scalar::<f32>() as f64).sum::<f64>().sqrt()
    }

    /// `self + other` by name (names in only one of them keep their value).
    pub fn plus(mut self, other: Grads) -> Grads {
        for (name, g) in other.0 {
            let sum = match self.0.remove(&name) {
                Some(a) => a + g,
                None => g,
            };
            self.0.insert(name, sum);
        }
        self
    }

    pub fn scale(self, s: f64) -> Grads {
        Grads(self.0.into_iter().map(|(n, g)| (n, g.mul_scalar(s))).collect())
    }
}

/// Replace each trainable parameter `p` of `group` that has a gradient `g` in `grads` by
/// `update(name, p, g)` (flat tensors, no autodiff).
/// The factor that clips the global norm of `grads` to `max_norm` (PyTorch's
/// `clip_grad_norm_`: `max_norm / (norm + 1e-6)` when the norm exceeds it), or 1.
pub fn clip_scale(grads: &Grads, max_norm: Option<f64>) -> f64 {
    match max_norm {
        Some(max_norm) => {
            let norm = grads.norm();
            if norm > max_norm { max_norm / (norm + 1e-6) } else { 1.0 }
        }
        None => 1.0,
    }
}

/// The names (as [`Grads`] keys them) of `module`'s trainable parameters for which
/// `pick(path, dims)` holds.
pub fn names_where<M: Module>(module: &M, pick: &dyn Fn(&str, usize) -> bool) -> std::collections::HashSet<String> {
    struct Pick<'a> {
        pick: &'a dyn Fn(&str, usize) -> bool,
        path: Vec<String>,
        out: std::collections::HashSet<String>,
    }
    impl ModuleVisitor for Pick<'_> {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            if param.is_require_grad() && (self.pick)(&path, D) {
                self.out.insert(torch_name(&path));
            }
        }
    }
    let mut visitor = Pick { pick, path: Vec::new(), out: Default::default() };
    module.visit(&mut visitor);
    visitor.out
}

pub fn apply<M: Module>(
    module: M,
    grads: &Grads,
    group: Group,
    update: &mut dyn FnMut(&str, Tensor<1>, Tensor<1>) -> Tensor<1>,
) -> M {
    let mut mapper = Updater { grads, group, update, path: Vec::new() };
    module.map(&mut mapper)
}

struct Updater<'a> {
    grads: &'a Grads,
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
        let name = torch_name(&path);
        let Some(grad) = self.grads.0.get(&name) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.dims();
        let numel: usize = dims.iter().product();
        let updated = (self.update)(&name, tensor.inner().reshape([numel]), grad.clone());
        Param::from_mapped_value(id, Tensor::from_inner(updated.reshape(dims)).require_grad(), mapper)
    }
}
