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

use super::norm::{centre_and_scale, sums2};
use super::program::{Layout, Program, Scratch};
use super::{Filled, contiguous, written, zeroed};

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
        let (mean, inv) = self.norm[c];
        let (scale, shift) = (self.gamma[c] * inv, self.beta[c]);
        let span = i * self.plane..(i + 1) * self.plane;
        z.resize(self.plane, 0.0);
        let r = if self.rs.is_empty() { &[][..] } else { &self.rs[span.clone()] };
        affine(&self.xs[span], r, z, mean, scale, shift);
    }

    /// Row-major `[K, C]` parameters at the channel of plane `i` into `out`.
    fn params(&self, i: usize, out: &mut Vec<f32>) {
        let c = i % self.channels;
        out.clear();
        out.extend((0..self.ps.len() / self.channels).map(|k| self.ps[k * self.channels + c]));
    }
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().unwrap()
}

simd_fn! {
    /// `z = (x - mean) * scale + shift (+ r)`, in the order of `kernels::norm`'s forward.
    fn affine(x: &[f32], r: &[f32], z: &mut [f32], mean: f32, scale: f32, shift: f32) => affine_impl
}

#[inline(always)]
fn affine_impl(x: &[f32], r: &[f32], z: &mut [f32], mean: f32, scale: f32, shift: f32) {
    match r.is_empty() {
        true => z.iter_mut().zip(x).for_each(|(o, &v)| *o = (v - mean) * scale + shift),
        false => z.iter_mut().zip(x).zip(r).for_each(|((o, &v), &r)| *o = (v - mean) * scale + shift + r),
    }
}

/// Runs `f` on the f32 slices of the inputs (made contiguous).
#[allow(clippy::too_many_arguments)]
fn with_inputs<T>(
    x: &FlexTensor,
    r: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stats: &FlexTensor,
    p: &FlexTensor,
    w: &FlexTensor,
    epsilon: f64,
    f: impl FnOnce(&Inputs) -> T,
) -> T {
    let shape = x.layout().shape();
    assert_eq!(shape.num_dims(), 4, "batch norm and a program take [N, C, H, W], got {shape:?}");
    let (channels, plane) = (shape[1], shape[2] * shape[3]);
    let [x, r, gamma, beta, stats, p, w] = [x, r, gamma, beta, stats, p, w].map(contiguous);
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

fn forward(inputs: &Inputs, program: &Program) -> Vec<f32> {
    let mut y = Filled::new(inputs.xs.len());
    if inputs.plane > 0 {
        let (chunks, ready) = y.chunks(inputs.plane);
        chunks.enumerate().for_each_init(
            || (Scratch::default(), Vec::new(), Vec::new()),
            |(scratch, pv, z), (i, yo)| {
                let yo = zeroed(yo, ready);
                inputs.pre_activation(i, z);
                inputs.params(i, pv);
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
                inputs.params(i, pv);
                let (sums, rest) = part.split_at_mut(2);
                let (dp, dw) = rest.split_at_mut(k);
                program.backward_plane(z, gi, dzo, pv, inputs.ws, dp, dw, scratch);
                let (mean, inv) = inputs.norm[i % channels];
                let xi = &inputs.xs[i * plane..(i + 1) * plane];
                sums.copy_from_slice(&sums2(xi, dzo, |v, g| (g as f64, (g * ((v - mean) * inv)) as f64)));
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
    let count = inputs.xs.len().checked_div(channels).unwrap_or(0).max(1) as f64;
    let mut dx = Filled::new(inputs.xs.len());
    if plane > 0 {
        let (chunks, ready) = dx.chunks(plane);
        chunks.zip(inputs.xs.par_chunks(plane).zip(dz.par_chunks(plane))).enumerate().for_each(
            |(i, (out, (xi, di)))| {
                let c = i % channels;
                let (mean, inv) = inputs.norm[c];
                let (mean_dz, mean_dzx) = ((sums[c][0] / count) as f32, (sums[c][1] / count) as f32);
                let scale = inputs.gamma[c] * inv;
                for ((o, &v), &g) in out.iter_mut().zip(xi).zip(di) {
                    o.write(scale * (g - mean_dz - (v - mean) * inv * mean_dzx));
                }
                // SAFETY: the loop wrote every element (out, xi and di are one plane long).
                unsafe { written(out, ready) };
            },
        );
    }
    let to_f32 = |v: &[f64]| v.iter().map(|&g| g as f32).collect::<Vec<f32>>();
    let column = |j: usize| sums.iter().map(|s| s[j] as f32).collect::<Vec<f32>>();
    let dr = (!inputs.rs.is_empty()).then_some(dz);
    (dx.into_vec(), dr, column(1), column(0), to_f32(&dp), to_f32(&dw))
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
        let shape = x.layout().shape().clone();
        flex(with_inputs(&x, &r, &gamma, &beta, &stats, &p, &w, epsilon, |i| forward(i, &program)), shape)
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
        let (dx, dr, dgamma, dbeta, dp, dw) = with_inputs(&x, &r, &gamma, &beta, &stats, &p, &w, epsilon, |i| {
            backward(i, dy.as_slice::<f32>().unwrap(), &program)
        });
        let shape = x.layout().shape().clone();
        let channels = shape[1];
        let table = [p.layout().shape().num_elements() / channels.max(1), channels];
        let tensors = [
            Some(flex(dx, shape.clone())),
            dr.map(|dr| flex(dr, shape)),
            Some(flex(dgamma, [channels])),
            Some(flex(dbeta, [channels])),
            Some(flex(dp, table)),
            Some(flex(dw.clone(), [dw.len()])),
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
                let shape = x.layout().shape().clone();
                let y = with_inputs(&x, &r, &gamma, &beta, &stats, &p, &w, epsilon, |i| forward(i, &program));
                prep.finish(([x, r, gamma, beta, stats, p, w], program, epsilon), flex(y, shape))
            }
            OpsKind::UnTracked(prep) => {
                let [x, r, gamma, beta, p, w] = [&x, &r, &gamma, &beta, &p, &w].map(|t| t.primitive());
                let shape = x.layout().shape().clone();
                prep.finish(flex(
                    with_inputs(x, r, gamma, beta, &stats, p, w, epsilon, |i| forward(i, &program)),
                    shape,
                ))
            }
        }
    }
}
