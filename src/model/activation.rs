//! An activation site: a formula plus its own per-channel (or, in a transformer, per-feature)
//! trainable parameters.
//!
//! Every parameter of the formula (`b`, `b1`, ...) becomes a per-channel vector initialised to
//! 1, owned by this site only. The forward pass is the fused kernel on the CPU backend and
//! the formula evaluated through `kernels::reference` elsewhere.

use burn::module::Param;
use burn::prelude::*;

use crate::expr::Formula;
use std::sync::Arc;

use burn::nn::BatchNorm;

use super::layers::{normalize, training_statistics};
use crate::kernels::program::Program;
use crate::kernels::{fused, norm_program, reference};

#[derive(Module, Debug)]
pub struct Activation {
    /// One `[channels]` vector per formula parameter, in the formula's slot order.
    pub params: Vec<Param<Tensor<1>>>,
    #[module(skip)]
    pub formula: Formula,
    /// The formula compiled for the fused CPU kernel, per channel plane.
    #[module(skip)]
    pub program: Arc<Program>,
    /// The same, per feature of the last axis (`forward_features`).
    #[module(skip)]
    pub features_program: Arc<Program>,
}

impl Activation {
    /// Every parameter starts at 1.
    pub fn new(formula: &Formula, channels: usize, device: &Device) -> Self {
        Activation::with_init(formula, &vec![1.0; formula.num_params()], channels, device)
    }

    /// Parameter slot `i` starts at `init[i]` in every channel.
    pub fn with_init(formula: &Formula, init: &[f64], channels: usize, device: &Device) -> Self {
        let params = init
            .iter()
            .map(|&v| Param::from_data(TensorData::new(vec![v as f32; channels], [channels]), device))
            .collect();
        Activation::compiled(formula, params)
    }

    /// Slot `i` starts at the per-channel values `values[i]`.
    pub fn with_values(formula: &Formula, values: &[Vec<f32>], device: &Device) -> Self {
        let params = values.iter().map(|v| Param::from_data(TensorData::new(v.clone(), [v.len()]), device)).collect();
        Activation::compiled(formula, params)
    }

    fn compiled(formula: &Formula, params: Vec<Param<Tensor<1>>>) -> Self {
        let program = Program::from_formula(formula);
        Activation {
            params,
            formula: formula.clone(),
            features_program: Arc::new(program.clone().on_features()),
            program: Arc::new(program),
        }
    }

    /// The activation on features along the last axis of `x` (the transformers' MLP hidden
    /// layers), parameter slot `k` a `[width]` vector on that axis: the fused kernel in its
    /// feature layout on the CPU, the reference path elsewhere.
    pub fn forward_features<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if fused::available(&x.device()) {
            let params = self.params.iter().map(|p| p.val()).collect();
            return fused::apply(self.features_program.clone(), x, params, None);
        }
        let width = x.dims()[D - 1];
        let mut shape = [1usize; D];
        shape[D - 1] = width;
        let params: Vec<Tensor<D>> = self.params.iter().map(|p| p.val().reshape(shape)).collect();
        reference::eval(&self.formula, x, &params)
    }

    /// `self(bn(x) + residual)`: in training on the CPU one kernel (`kernels::norm_program`)
    /// that never writes the normalized tensor; elsewhere the pieces in turn.
    pub fn forward_normalized(&self, bn: &BatchNorm, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
        if norm_program::available(&x.device())
            && let Some(stats) = training_statistics(bn, &x)
        {
            let params = self.params.iter().map(|p| p.val()).collect();
            let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
            return norm_program::apply(
                self.program.clone(),
                x,
                residual,
                gamma,
                beta,
                stats,
                params,
                None,
                bn.epsilon,
            );
        }
        self.forward(plus(normalize(bn, x), residual))
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if fused::available(&x.device()) {
            return fused::apply(self.program.clone(), x, self.params.iter().map(|p| p.val()).collect(), None);
        }
        let channels = x.dims()[1];
        let params: Vec<Tensor<4>> = self.params.iter().map(|p| p.val().reshape([1, channels, 1, 1])).collect();
        reference::eval(&self.formula, x, &params)
    }
}

/// What sits at an activation site: a fixed formula ([`Activation`]) or a searchable cell
/// (`model::cell::MixedCell`).
pub trait Site: Module + burn::module::ModuleDisplay {
    /// On `[N, C, H, W]`, each parameter per channel (axis 1): the ResNets' sites.
    fn forward(&self, x: Tensor<4>) -> Tensor<4>;

    /// On a tensor of any rank whose last axis holds the features, each parameter per
    /// feature: the transformers' MLP hidden layers.
    fn forward_features<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>;

    /// `self(bn(x) + residual)` (a ResNet's site after its batch norm, and at a block's end
    /// after the shortcut's sum). A site may do this in one pass; by default the pieces.
    fn forward_normalized(&self, bn: &BatchNorm, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
        self.forward(plus(normalize(bn, x), residual))
    }
}

/// `x + residual`, or `x` without one.
pub fn plus(x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
    match residual {
        Some(r) => x + r,
        None => x,
    }
}

impl Site for Activation {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Activation::forward(self, x)
    }

    fn forward_normalized(&self, bn: &BatchNorm, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
        Activation::forward_normalized(self, bn, x, residual)
    }

    fn forward_features<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        Activation::forward_features(self, x)
    }
}
