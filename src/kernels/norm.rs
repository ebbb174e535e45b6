//! Batch normalization for the `flex` CPU backend (training mode, and inference with the
//! running statistics): the batch statistics in one pass, the normalization in another, and
//! the backward pass written next to it. (In the networks, inference folds each batch norm
//! into the convolution before it: `model::layers::convolve_normalized`.)
//!
//! burn's generic `batch_norm_train` (and its backward) transposes the input to
//! `[C, N*H*W]` for every reduction and makes several elementwise passes; on the CPU those
//! copies cost more than the arithmetic. Here the work is split by channel plane (one `(n, c)`
//! slice of `H*W` elements) over rayon; per-plane sums are kept in f64 and combined in plane
//! order, so results do not depend on the thread count.
//!
//! Forward, per channel c over its M = N*H*W elements: `mean`, biased `var`,
//! `x̂ = (x - mean) / sqrt(var + eps)`, `y = gamma x̂ + beta`.
//! Backward: `dbeta = Σ dy`, `dgamma = Σ dy x̂`,
//! `dx = gamma / sqrt(var + eps) * (dy - dbeta/M - x̂ dgamma/M)` (the statistics depend on x).

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

use super::{Filled, contiguous, written, zeroed};

#[backend_extension(Flex, Autodiff)]
pub trait NormBackend: Backend {
    /// Per-channel mean and biased variance of x `[N, C, H, W]` as `[2, C]`; never tracked.
    fn channel_moments(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// x normalized with its own batch statistics `stats` (from `channel_moments`, treated as
    /// functions of x by the backward pass), scaled by gamma and shifted by beta (`[C]` each).
    fn batch_norm_train_nchw(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

pub use super::available;

/// The output of training-mode batch normalization of `x` `[N, C, H, W]` and the batch's
/// per-channel mean and biased variance (detached), for the running statistics.
pub fn train(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f64) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    let stats = statistics(x.clone());
    let (mean, var) = split(&stats);
    (train_with(x, gamma, beta, stats, epsilon), mean, var)
}

/// The batch's per-channel mean and biased variance of `x` `[N, C, H, W]` as `[2, C]`
/// (detached: the backward passes treat them as functions of x).
pub fn statistics(x: Tensor<4>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as NormBackend>::channel_moments(x.into_dispatch()))
}

/// The mean and variance rows of [`statistics`] as `[C]` vectors.
pub fn split(stats: &Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let channels = stats.dims()[1];
    let [mean, var] = [0, 1].map(|row| stats.clone().slice([row..row + 1, 0..channels]).reshape([channels]));
    (mean, var)
}

/// Training-mode batch normalization of `x` with its own batch statistics `stats` (from
/// [`statistics`]).
pub fn train_with(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, stats: Tensor<2>, epsilon: f64) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as NormBackend>::batch_norm_train_nchw(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.into_dispatch(),
        epsilon,
    ))
}

/// Inference-mode batch normalization of `x` `[N, C, H, W]` with the running statistics, in
/// one pass (`(x - mean) * gamma / sqrt(var + eps) + beta`, the training forward with fixed
/// statistics). For a device without autodiff: nothing is tracked.
pub fn infer(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
    epsilon: f64,
) -> Tensor<4> {
    let channels = mean.dims()[0];
    let stats: Tensor<2> = Tensor::cat(vec![mean, var], 0).reshape([2, channels]);
    Tensor::from_dispatch(<Dispatch as NormBackend>::batch_norm_train_nchw(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.into_dispatch(),
        epsilon,
    ))
}

/// (channels, plane size) of an `[N, C, ...]` tensor.
fn planes_of(x: &FlexTensor) -> (usize, usize) {
    let shape = x.layout().shape();
    assert!(shape.num_dims() >= 2, "batch norm needs [N, C, ...], got {shape:?}");
    let channels = shape[1];
    (channels, shape.num_elements().checked_div(shape[0] * channels).unwrap_or(0))
}

/// Per-channel sums of `f(plane index, plane)` (each a pair of f64), combined in plane order.
fn channel_sums(
    len: usize,
    plane: usize,
    channels: usize,
    f: impl Fn(usize) -> [f64; 2] + Sync + Send,
) -> Vec<[f64; 2]> {
    let planes = len.checked_div(plane).unwrap_or(0);
    let per_plane: Vec<[f64; 2]> = (0..planes).into_par_iter().map(f).collect();
    let mut sums = vec![[0f64; 2]; channels];
    for (i, s) in per_plane.iter().enumerate() {
        sums[i % channels][0] += s[0];
        sums[i % channels][1] += s[1];
    }
    sums
}

/// Partial sums per plane reduction: an f64 sum in one chain adds one element per add
/// latency; 16 independent partials (two AVX-512 registers) let it vectorize. The order is
/// fixed, so results stay independent of the instruction set and thread count.
const PARTIALS: usize = 16;

/// `[Σ f(a, b).0, Σ f(a, b).1]` over two equally long slices, in f64 with [`PARTIALS`] partial sums.
#[inline(always)]
fn sums2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f64, f64)) -> [f64; 2] {
    let (mut s0, mut s1) = ([0f64; PARTIALS], [0f64; PARTIALS]);
    let (ca, cb) = (a.chunks_exact(PARTIALS), b.chunks_exact(PARTIALS));
    let (mut t0, mut t1) = (0f64, 0f64);
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        let (u, v) = f(x, y);
        t0 += u;
        t1 += v;
    }
    for (x, y) in ca.zip(cb) {
        for k in 0..PARTIALS {
            let (u, v) = f(x[k], y[k]);
            s0[k] += u;
            s1[k] += v;
        }
    }
    [s0.iter().sum::<f64>() + t0, s1.iter().sum::<f64>() + t1]
}

fn moments(x: &FlexTensor) -> FlexTensor {
    let (channels, plane) = planes_of(x);
    let x = contiguous(x);
    let xs = x.as_slice::<f32>().unwrap();
    let count = xs.len().checked_div(channels).unwrap_or(0).max(1) as f64;
    let sums = channel_sums(xs.len(), plane, channels, |i| {
        let p = &xs[i * plane..(i + 1) * plane];
        sums2(p, p, |v, _| (v as f64, 0.0))
    });
    let means: Vec<f64> = sums.iter().map(|s| s[0] / count).collect();
    // Second pass about the mean (no cancellation between E[x^2] and mean^2).
    let sq = channel_sums(xs.len(), plane, channels, |i| {
        let m = means[i % channels];
        let p = &xs[i * plane..(i + 1) * plane];
        sums2(p, p, |v, _| ((v as f64 - m).powi(2), 0.0))
    });
    let mut out: Vec<f32> = means.iter().map(|&m| m as f32).collect();
    out.extend(sq.iter().map(|s| (s[0] / count) as f32));
    FlexTensor::from_data(TensorData::new(out, [2, channels]))
}

/// Per-channel `(mean, 1/sqrt(var + eps))` from the `[2, C]` statistics.
pub(super) fn centre_and_scale(stats: &[f32], channels: usize, epsilon: f64) -> Vec<(f32, f32)> {
    (0..channels).map(|c| (stats[c], (1.0 / (stats[channels + c] as f64 + epsilon).sqrt()) as f32)).collect()
}

fn forward(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, stats: &FlexTensor, epsilon: f64) -> FlexTensor {
    let (channels, plane) = planes_of(x);
    let shape = x.layout().shape().clone();
    let (x, gamma, beta, stats) = (contiguous(x), contiguous(gamma), contiguous(beta), contiguous(stats));
    let (xs, gs, bs) =
        (x.as_slice::<f32>().unwrap(), gamma.as_slice::<f32>().unwrap(), beta.as_slice::<f32>().unwrap());
    let norm = centre_and_scale(stats.as_slice::<f32>().unwrap(), channels, epsilon);
    let mut y = Filled::new(xs.len());
    if plane > 0 {
        let (chunks, ready) = y.chunks(plane);
        chunks.zip(xs.par_chunks(plane)).enumerate().for_each(|(i, (yo, xi))| {
            let c = i % channels;
            affine(xi, &[], zeroed(yo, ready), norm[c], gs[c], bs[c]);
        });
    }
    FlexTensor::from_data(TensorData::new(y.into_vec(), shape))
}

simd_fn! {
    /// `z = (x - mean) * gamma * inv + beta (+ r)` for one plane: the forward pass (with a
    /// residual `r` when it is not empty, for `norm_program`).
    pub(super) fn affine(x: &[f32], r: &[f32], z: &mut [f32], norm: (f32, f32), gamma: f32, beta: f32) => affine_impl
}

#[inline(always)]
fn affine_impl(x: &[f32], r: &[f32], z: &mut [f32], (mean, inv): (f32, f32), gamma: f32, beta: f32) {
    // (v - mean) first, as the backward pass does: no cancellation when |mean| >> std.
    let scale = gamma * inv;
    match r.is_empty() {
        true => z.iter_mut().zip(x).for_each(|(o, &v)| *o = (v - mean) * scale + beta),
        false => z.iter_mut().zip(x).zip(r).for_each(|((o, &v), &r)| *o = (v - mean) * scale + beta + r),
    }
}

/// `[Σ dy, Σ dy x̂]` over one plane of x and dy whose channel has `(mean, 1/sqrt(var + eps))`.
pub(super) fn gradient_sums(x: &[f32], dy: &[f32], (mean, inv): (f32, f32)) -> [f64; 2] {
    sums2(x, dy, |v, g| (g as f64, (g * ((v - mean) * inv)) as f64))
}

/// The input's gradient from the output's (`ds`), given every channel's `[Σ dy, Σ dy x̂]`
/// (`sums`): `gamma inv (dy - mean(dy) - x̂ mean(dy x̂))` per element.
pub(super) fn input_gradient(
    xs: &[f32],
    ds: &[f32],
    gamma: &[f32],
    norm: &[(f32, f32)],
    sums: &[[f64; 2]],
    plane: usize,
) -> Vec<f32> {
    let channels = norm.len();
    let count = xs.len().checked_div(channels).unwrap_or(0).max(1) as f64;
    let mut dx = Filled::new(xs.len());
    if plane > 0 {
        let (chunks, ready) = dx.chunks(plane);
        chunks.zip(xs.par_chunks(plane).zip(ds.par_chunks(plane))).enumerate().for_each(|(i, (out, (p, d)))| {
            let c = i % channels;
            let (mean, inv) = norm[c];
            let (mean_dy, mean_dyx) = ((sums[c][0] / count) as f32, (sums[c][1] / count) as f32);
            let scale = gamma[c] * inv;
            for ((o, &v), &g) in out.iter_mut().zip(p).zip(d) {
                o.write(scale * (g - mean_dy - (v - mean) * inv * mean_dyx));
            }
            // SAFETY: the loop wrote every element (out, p and d are one plane long).
            unsafe { written(out, ready) };
        });
    }
    dx.into_vec()
}

/// Gradients for x, gamma and beta.
fn backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &FlexTensor,
    dy: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (channels, plane) = planes_of(x);
    let shape = x.layout().shape().clone();
    let (x, gamma, stats, dy) = (contiguous(x), contiguous(gamma), contiguous(stats), contiguous(dy));
    let (xs, gs, ds) = (x.as_slice::<f32>().unwrap(), gamma.as_slice::<f32>().unwrap(), dy.as_slice::<f32>().unwrap());
    let norm = centre_and_scale(stats.as_slice::<f32>().unwrap(), channels, epsilon);
    let sums = channel_sums(xs.len(), plane, channels, |i| {
        let span = i * plane..(i + 1) * plane;
        gradient_sums(&xs[span.clone()], &ds[span], norm[i % channels])
    });
    let dx = input_gradient(xs, ds, gs, &norm, &sums, plane);
    let column = |k: usize| sums.iter().map(|s| s[k] as f32).collect::<Vec<f32>>();
    (
        FlexTensor::from_data(TensorData::new(dx, shape)),
        FlexTensor::from_data(TensorData::new(column(1), [channels])),
        FlexTensor::from_data(TensorData::new(column(0), [channels])),
    )
}

impl NormBackend for Flex {
    fn channel_moments(x: FloatTensor<Self>) -> FloatTensor<Self> {
        moments(&x)
    }

    fn batch_norm_train_nchw(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        forward(&x, &gamma, &beta, &stats, epsilon)
    }
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    /// The saved input, gamma and batch statistics, and epsilon.
    type State = (FlexTensor, FlexTensor, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats, epsilon) = ops.state;
        let (dx, dgamma, dbeta) = backward(&x, &gamma, &stats, &dy, epsilon);
        for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(n) = node {
                grads.register::<Flex>(n.id, grad);
            }
        }
    }
}

impl<C: CheckpointStrategy> NormBackend for Autodiff<Flex, C> {
    fn channel_moments(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <FloatTensor<Self>>::new(moments(x.primitive()))
    }

    fn batch_norm_train_nchw(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let stats = stats.into_primitive();
        match NormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
                let y = forward(&x, &gamma, &beta, &stats, epsilon);
                prep.finish((x, gamma, stats, epsilon), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(x.primitive(), gamma.primitive(), beta.primitive(), &stats, epsilon))
            }
        }
    }
}
