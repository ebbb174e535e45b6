//! The network's convolution and batch-norm layers applied to a tensor: burn's modules hold
//! the parameters and running statistics; on the CPU the forward goes through this crate's
//! kernels (`kernels::conv`, `kernels::norm`), elsewhere through burn's own ops.

use burn::module::RunningState;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

use crate::kernels::{conv, norm};

/// `conv` applied to `x`: the NCHW kernel (`kernels::conv`) on the CPU, burn's elsewhere.
/// Every convolution here is square, bias-free and zero-padded (`model::resnet`).
pub fn convolve(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == left && top == bottom && top == right => {
            Some(top)
        }
        _ => None,
    };
    match (padding, conv::available(&x.device())) {
        (Some(padding), true)
            if conv.bias.is_none()
                && conv.groups == 1
                && conv.dilation == [1, 1]
                && conv.stride[0] == conv.stride[1]
                && conv.kernel_size[0] == conv.kernel_size[1] =>
        {
            conv::apply(x, conv.weight.val(), conv::Stencil { stride: conv.stride[0], padding })
        }
        _ => conv.forward(x),
    }
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
    if !(norm::available(&device) && device.is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let (y, mean, var) = norm::train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let m = bn.momentum;
    let running = |state: &RunningState<Tensor<1>>, batch: Tensor<1>| {
        state.update(state.value_sync().mul_scalar(1.0 - m).add(batch.mul_scalar(m)).detach());
    };
    running(&bn.running_mean, mean);
    running(&bn.running_var, var);
    y
}
