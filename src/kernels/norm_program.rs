//! Training-mode batch norm, an optional residual and an activation program in one pass each
//! way, for the `flex` CPU backend: `y = program(gamma x̂ + beta + r)` with
//! `x̂ = (x - mean) / sqrt(var + eps)` over the batch statistics. A ResNet's activation site
//! follows a batch norm (and, at a block's end, the shortcut's sum), so this saves writing the
//! normalized tensor and reading it back, and the sum's pass, at every site.
//!
//! Forward, per channel plane: the normalized plane goes to a plane-sized scratch buffer (in
//! cache) and the program runs from there ([`Program::forward_plane`]). Backward, per plane:
//! the same scratch is recomputed from the saved input, the program's backward
//! ([`Program::backward_plane`]) gives `dz` (the residual's gradient as it is) and the
//! per-channel sums `Σ dz` and `Σ dz x̂` while the plane is in cache; a second pass turns `dz`
//! into `dx` as `kernels::norm` does. The statistics come from `norm::moments` (detached, and
//! treated as functions of x by the backward pass, as in `kernels::norm`). Every sum is per
//! plane in f64 and combined in plane order, so results do not depend on the thread count.

use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use rayon::prelude::*;

use super::fused::channel_params;
use super::norm::{affine, centre_and_scale, gradient_sums, input_gradient};
use super::program::{Layout, Program, Scratch};
use super::{Filled, contiguous, zeroed};

#[backend_extension(Flex, Autodiff)]
pub trait NormProgramBackend: Backend {
    /// `program(gamma x̂ + beta + r)` on x `[N, C, H, W]`, with the batch statistics `stats`
    /// (`[2, C]`: mean and biased variance), `r` of x's shape or empty (no residual), the
    /// parameter table p `[K, C]` and weights w `[M]`.
    #[allow(clippy::too_many_arguments)]
    fn norm_program(
        x: FloatTensor<Self>,
        r: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        program: Arc<Program>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

pub use super::available;

/// The inputs of one call, as the kernels read them.
struct Inputs<'a> {
    xs: &'a [f32],
    /// Empty: no residual.
    rs: &'a [f32],
    gamma: &'a [f32],
    beta: &'a [f32],
    /// Per channel (mean, 1 / sqrt(var + eps)).
    norm: Vec<(f32, f32)>,
    ps: &'a [f32],
    ws: &'a [f32],
    channels: usize,
    plane: usize,
}

impl Inputs<'_> {
    /// The pre-activation of plane `i` (`gamma x̂ + beta + r`) into `z`, with the arithmetic
    /// of `kernels::norm`'s forward.
    fn pre_activation(&self, i: usize, z: &mut Vec<f32>) {
        let c = i % self.channels;
        let span = i * self.plane..(i + 1) * self.plane;
        z.resize(self.plane, 0.0);
        let r = if self.rs.is_empty() { &[][..] } else { &self.rs[span.clone()] };
        affine(&self.xs[span], r, z, self.norm[c], self.gamma[c], self.beta[c]);
    }
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().unwrap()
}

/// The seven inputs of one call: x, the residual, gamma, beta, the statistics, the parameter
/// table and the weights.
type Tensors<'a> = [&'a FlexTensor; 7];

/// Runs `f` on the f32 slices of the inputs (made contiguous).
fn with_inputs<T>(tensors: Tensors, epsilon: f64, f: impl FnOnce(&Inputs) -> T) -> T {
    let shape = tensors[0].layout().shape();
    assert_eq!(shape.num_dims(), 4, "batch norm and a program take [N, C, H, W], got {shape:?}");
    let (channels, plane) = (shape[1], shape[2] * shape[3]);
    let [x, r, gamma, beta, stats, p, w] = tensors.map(contiguous);
    let inputs = Inputs {
        xs: slice(&x),
        rs: slice(&r),
        gamma: slice(&gamma),
        beta: slice(&beta),
        norm: centre_and_scale(slice(&stats), channels, epsilon),
        ps: slice(&p),
        ws: slice(&w),
        channels,
        plane,
    };
    assert!(inputs.rs.is_empty() || inputs.rs.len() == inputs.xs.len(), "the residual must have x's shape");
    f(&inputs)
}

/// The forward pass as a tensor of x's shape.
fn forward(tensors: Tensors, program: &Program, epsilon: f64) -> FlexTensor {
    let shape = tensors[0].layout().shape().clone();
    flex(with_inputs(tensors, epsilon, |inputs| forward_values(inputs, program)), shape)
}

fn forward_values(inputs: &Inputs, program: &Program) -> Vec<f32> {
    let mut y = Filled::new(inputs.xs.len());
    if inputs.plane > 0 {
        let (chunks, ready) = y.chunks(inputs.plane);
        chunks.enumerate().for_each_init(
            || (Scratch::default(), Vec::new(), Vec::new()),
            |(scratch, pv, z), (i, yo)| {
                let yo = zeroed(yo, ready);
                inputs.pre_activation(i, z);
                channel_params(inputs.ps, inputs.channels, i % inputs.channels, pv);
                program.forward_plane(z, yo, pv, inputs.ws, scratch);
            },
        );
    }
    y.into_vec()
}

/// The gradients: dx, dr (`dz`, None without a residual), dgamma, dbeta, dp `[K, C]`, dw.
type Grads = (Vec<f32>, Option<Vec<f32>>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

fn backward(inputs: &Inputs, dy: &[f32], program: &Program) -> Grads {
    let (channels, plane) = (inputs.channels, inputs.plane);
    let (k, m) = (inputs.ps.len() / channels, inputs.ws.len());
    let planes = inputs.xs.len().checked_div(plane).unwrap_or(0);
    // Per plane: Σ dz, Σ dz x̂, then k parameter partials and m weight partials.
    let stride = 2 + k + m;
    let mut partials = vec![0f64; planes * stride];
    let mut dz = Filled::new(inputs.xs.len());
    if plane > 0 {
        let (chunks, ready) = dz.chunks(plane);
        chunks.zip(dy.par_chunks(plane)).zip(partials.par_chunks_mut(stride)).enumerate().for_each_init(
            || (Scratch::default(), Vec::new(), Vec::new()),
            |(scratch, pv, z), (i, ((dzo, gi), part))| {
                let dzo = zeroed(dzo, ready);
                inputs.pre_activation(i, z);
                channel_params(inputs.ps, inputs.channels, i % inputs.channels, pv);
                let (sums, rest) = part.split_at_mut(2);
                let (dp, dw) = rest.split_at_mut(k);
                program.backward_plane(z, gi, dzo, pv, inputs.ws, dp, dw, scratch);
                let xi = &inputs.xs[i * plane..(i + 1) * plane];
                sums.copy_from_slice(&gradient_sums(xi, dzo, inputs.norm[i % channels]));
            },
        );
    }
    let dz = dz.into_vec();
    let (mut sums, mut dp, mut dw) = (vec![[0f64; 2]; channels], vec![0f64; k * channels], vec![0f64; m]);
    for (i, part) in partials.chunks(stride).enumerate() {
        let c = i % channels;
        sums[c][0] += part[0];
        sums[c][1] += part[1];
        for r in 0..k {
            dp[r * channels + c] += part[2 + r];
        }
        for j in 0..m {
            dw[j] += part[2 + k + j];
        }
    }
    let dx = input_gradient(inputs.xs, &dz, inputs.gamma, &inputs.norm, &sums, plane);
    let to_f32 = |v: &[f64]| v.iter().map(|&g| g as f32).collect::<Vec<f32>>();
    let column = |j: usize| sums.iter().map(|s| s[j] as f32).collect::<Vec<f32>>();
    let dr = (!inputs.rs.is_empty()).then_some(dz);
    (dx, dr, column(1), column(0), to_f32(&dp), to_f32(&dw))
}

/// `program(bn(x) + residual)` in training mode, with the batch statistics `stats` (`[2, C]`
/// from `norm::moments`), parameter rows `params` (`[C]` each) and mixing `weights`. `x` must
/// be on a device where [`available`] holds, and the program compiled for
/// [`Layout::Channels`].
#[allow(clippy::too_many_arguments)]
pub fn apply(
    program: Arc<Program>,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    stats: Tensor<2>,
    params: Vec<Tensor<1>>,
    weights: Option<Tensor<1>>,
    epsilon: f64,
) -> Tensor<4> {
    assert!(program.layout == Layout::Channels, "batch norm and a program take the channel layout");
    let (device, channels) = (x.device(), x.dims()[1]);
    let p: Tensor<2> = match params.is_empty() {
        true => Tensor::zeros([1, channels], &device),
        false => Tensor::stack(params, 0),
    };
    let w = weights.unwrap_or_else(|| Tensor::zeros([1], &device));
    let r = residual.unwrap_or_else(|| Tensor::zeros([0, 0, 0, 0], &device));
    Tensor::from_dispatch(<Dispatch as NormProgramBackend>::norm_program(
        x.into_dispatch(),
        r.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.into_dispatch(),
        p.into_dispatch(),
        w.into_dispatch(),
        program,
        epsilon,
    ))
}

fn flex(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

impl NormProgramBackend for Flex {
    fn norm_program(
        x: FloatTensor<Self>,
        r: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        program: Arc<Program>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        forward([&x, &r, &gamma, &beta, &stats, &p, &w], &program, epsilon)
    }
}

#[derive(Debug)]
struct NormProgramBackward;

/// The saved input, residual, gamma, beta, statistics, parameters and weights (cheap shared
/// handles), the program and epsilon.
type Saved = ([FlexTensor; 7], Arc<Program>, f64);

impl Backward<Flex, 6> for NormProgramBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 6>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let ([x, r, gamma, beta, stats, p, w], program, epsilon) = ops.state;
        let dy = contiguous(&dy);
        let (dx, dr, dgamma, dbeta, dp, dw) =
            with_inputs([&x, &r, &gamma, &beta, &stats, &p, &w], epsilon, |i| backward(i, slice(&dy), &program));
        let shape = x.layout().shape().clone();
        let channels = shape[1];
        let table = [dp.len() / channels.max(1), channels];
        let m = dw.len();
        let tensors = [
            Some(flex(dx, shape.clone())),
            dr.map(|dr| flex(dr, shape)),
            Some(flex(dgamma, [channels])),
            Some(flex(dbeta, [channels])),
            Some(flex(dp, table)),
            Some(flex(dw, [m])),
        ];
        for (node, grad) in ops.parents.into_iter().zip(tensors) {
            if let (Some(n), Some(g)) = (node, grad) {
                grads.register::<Flex>(n.id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> NormProgramBackend for Autodiff<Flex, C> {
    fn norm_program(
        x: FloatTensor<Self>,
        r: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        program: Arc<Program>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let stats = stats.into_primitive();
        let nodes = [x.node(), r.node(), gamma.node(), beta.node(), p.node(), w.node()];
        match NormProgramBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let [x, r, gamma, beta, p, w] = [x, r, gamma, beta, p, w].map(|t| t.into_primitive());
                let y = forward([&x, &r, &gamma, &beta, &stats, &p, &w], &program, epsilon);
                prep.finish(([x, r, gamma, beta, stats, p, w], program, epsilon), y)
            }
            OpsKind::UnTracked(prep) => {
                let [x, r, gamma, beta, p, w] = [&x, &r, &gamma, &beta, &p, &w].map(|t| t.primitive());
                prep.finish(forward([x, r, gamma, beta, &stats, p, w], &program, epsilon))
            }
        }
    }
}
