//! The network's convolution and batch-norm layers applied to a tensor: burn's modules hold
//! the parameters and running statistics; on the CPU the forward goes through this crate's
//! kernels (`kernels::conv`, `kernels::norm`), elsewhere through burn's own ops.

use burn::module::RunningState;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

use crate::kernels::{conv, norm};
use crate::model::state::host_f32;

/// `conv` applied to `x`: the NCHW kernel (`kernels::conv`) on the CPU, burn's elsewhere.
/// Every convolution here is square, bias-free and zero-padded (`model::resnet`).
pub fn convolve(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match cpu_stencil(conv, &x.device()) {
        Some(stencil) => conv::apply(x, conv.weight.val(), stencil),
        None => conv.forward(x),
    }
}

/// The stencil of `conv` when the CPU kernel (`kernels::conv`) runs it on `device`: square,
/// bias-free, zero-padded equally on every side, no groups or dilation.
fn cpu_stencil(conv: &Conv2d, device: &Device) -> Option<conv::Stencil> {
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == left && top == bottom && top == right => top,
        _ => return None,
    };
    let square = conv.stride[0] == conv.stride[1] && conv.kernel_size[0] == conv.kernel_size[1];
    let plain = conv.bias.is_none() && conv.groups == 1 && conv.dilation == [1, 1];
    (conv::available(device) && square && plain).then_some(conv::Stencil { stride: conv.stride[0], padding })
}

/// `bn(conv(x))`. On the CPU without autodiff (inference) the batch norm, which then uses its
/// running statistics, is folded into the convolution: weights scaled by
/// `s = gamma / sqrt(var + eps)` per output channel and a bias `beta - mean * s`, added as each
/// group of outputs is written, so there is no pass over the output and no tensor for it.
/// Otherwise [`convolve`] then [`normalize`].
pub fn convolve_normalized(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    match cpu_stencil(conv, &device) {
        Some(stencil) if !device.is_autodiff() => {
            let (weight, bias) = fold(conv, bn);
            conv::apply_biased(x, weight, bias, stencil)
        }
        _ => normalize(bn, convolve(conv, x)),
    }
}

/// The weights and bias of `conv` followed by `bn` in inference mode.
fn fold(conv: &Conv2d, bn: &BatchNorm) -> (Tensor<4>, Tensor<1>) {
    let (weight, device) = (conv.weight.val(), conv.weight.val().device());
    let shape = weight.dims();
    let [gamma, beta, mean, var] =
        [bn.gamma.val(), bn.beta.val(), bn.running_mean.value(), bn.running_var.value()].map(host_f32);
    let scale: Vec<f32> =
        gamma.iter().zip(&var).map(|(&g, &v)| (g as f64 / (v as f64 + bn.epsilon).sqrt()) as f32).collect();
    let bias: Vec<f32> = (0..scale.len()).map(|c| beta[c] - mean[c] * scale[c]).collect();
    let per_channel = shape[1] * shape[2] * shape[3];
    let mut w = host_f32(weight);
    for (co, kernel) in w.chunks_mut(per_channel).enumerate() {
        kernel.iter_mut().for_each(|v| *v *= scale[co]);
    }
    (
        Tensor::from_data(TensorData::new(w, shape), &device),
        Tensor::from_data(TensorData::new(bias, [scale.len()]), &device),
    )
}

/// `bn` applied to `x`: on the CPU the batch-norm kernels (`kernels::norm`): in training the
/// batch statistics, which also update the running statistics as burn's `BatchNorm::forward`
/// does; without autodiff (inference) the running statistics, in one pass. Otherwise burn's.
pub fn normalize(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if norm::available(&device) && !device.is_autodiff() {
        let (mean, var) = (bn.running_mean.value(), bn.running_var.value());
        return norm::infer(x, bn.gamma.val(), bn.beta.val(), mean, var, bn.epsilon);
    }
    match training_statistics(bn, &x) {
        Some(stats) => norm::train_with(x, bn.gamma.val(), bn.beta.val(), stats, bn.epsilon),
        None => bn.forward(x),
    }
}

/// Where `bn` trains on this crate's CPU kernels (autodiff, training mode): the batch
/// statistics of `x` (`[2, C]`, `kernels::norm::statistics`), with the running statistics
/// updated from them as burn's `BatchNorm::forward` does. None elsewhere.
pub fn training_statistics(bn: &BatchNorm, x: &Tensor<4>) -> Option<Tensor<2>> {
    let device = x.device();
    if !(norm::available(&device) && device.is_autodiff() && bn.training.is_enabled()) {
        return None;
    }
    let stats = norm::statistics(x.clone());
    let (mean, var) = norm::split(&stats);
    let m = bn.momentum;
    let running = |state: &RunningState<Tensor<1>>, batch: Tensor<1>| {
        state.update(state.value_sync().mul_scalar(1.0 - m).add(batch.mul_scalar(m)).detach());
    };
    running(&bn.running_mean, mean);
    running(&bn.running_var, var);
    Some(stats)
}
