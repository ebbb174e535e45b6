//! An activation site: a formula plus its own per-channel trainable parameters.
//!
//! Every parameter of the formula (`b`, `b1`, ...) becomes a per-channel vector initialised to
//! 1, owned by this site only. The forward pass evaluates the formula on tensors through
//! `kernels::reference`.

use burn::module::Param;
use burn::prelude::*;

use crate::expr::Formula;
use crate::kernels::reference;

#[derive(Module, Debug)]
pub struct Activation {
    /// One `[channels]` vector per formula parameter, in the formula's slot order.
    pub params: Vec<Param<Tensor<1>>>,
    #[module(skip)]
    pub formula: Formula,
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
        Activation { params, formula: formula.clone() }
    }

    /// Slot `i` starts at the per-channel values `values[i]`.
    pub fn with_values(formula: &Formula, values: &[Vec<f32>], device: &Device) -> Self {
        let params = values.iter().map(|v| Param::from_data(TensorData::new(v.clone(), [v.len()]), device)).collect();
        Activation { params, formula: formula.clone() }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = x.dims()[1];
        let params: Vec<Tensor<4>> = self.params.iter().map(|p| p.val().reshape([1, channels, 1, 1])).collect();
        reference::eval(&self.formula, x, &params)
    }
}
