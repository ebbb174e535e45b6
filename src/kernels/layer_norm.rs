//! Layer normalization over the last axis for the `flex` CPU backend, forward and backward as
//! one node of autodiff. burn's `layer_norm` is a composition of nine tensor ops under
//! autodiff (mean, subtract, square, mean, add, sqrt, divide, scale, shift), each a pass over
//! the tensor and a buffer, with a backward for each; here it is one pass each way.
//!
//! Per row of F features: `mean`, biased `var` (about the mean, in a second pass),
//! `r = 1/sqrt(var + eps)`, `x̂ = (x - mean) r`, `y = gamma x̂ + beta`. Backward, with
//! `g = gamma dy`: `dx = r (g - mean(g) - x̂ mean(g x̂))`, `dgamma = Σ_rows dy x̂`,
//! `dbeta = Σ_rows dy`.
//!
//! Blocks of rows go to rayon. The row statistics use eight interleaved partial sums, and
//! `dgamma`, `dbeta` are summed per block of a size that depends on the row count only, then
//! across blocks in order: results do not depend on the thread count or instruction set.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::nn::LayerNorm;
use burn::prelude::*;
use rayon::prelude::*;

use super::lanes::sum_of;
use super::{Filled, contiguous, zeroed};

#[backend_extension(Flex, Autodiff)]
pub trait LayerNormBackend: Backend {
    /// x `[..., F]` normalized over its last axis, scaled by gamma and shifted by beta (`[F]`).
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// `ln` applied to `x` (over the last axis): the kernel where [`super::available`] holds
/// (without a shift, on a zero one that wants no gradient: the GPT's LayerNorms have none),
/// burn's `LayerNorm::forward` elsewhere. `epsilon` must be the one `ln` was built with (burn
/// keeps it private).
pub fn apply<const D: usize>(ln: &LayerNorm, epsilon: f64, x: Tensor<D>) -> Tensor<D> {
    if !super::available(&x.device()) {
        return ln.forward(x);
    }
    let beta = match ln.beta.as_ref() {
        Some(beta) => beta.val(),
        None => Tensor::zeros(ln.gamma.dims(), &x.device()),
    };
    Tensor::from_dispatch(<Dispatch as LayerNormBackend>::layer_norm_rows(
        x.into_dispatch(),
        ln.gamma.val().into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// Rows per rayon task; `dgamma` and `dbeta` are summed per block, so its size depends on
/// the row count only.
fn block_rows(rows: usize) -> usize {
    rows.div_ceil(256).max(16)
}

simd_fn! {
    /// `(mean, 1/sqrt(var + eps))` of each row of `x` into `stats`, and `y` normalized,
    /// scaled and shifted.
    fn forward_rows(x: &[f32], y: &mut [f32], stats: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => forward_rows_impl
}

#[inline(always)]
fn forward_rows_impl(x: &[f32], y: &mut [f32], stats: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let f = gamma.len();
    for ((xr, yr), st) in x.chunks(f).zip(y.chunks_mut(f)).zip(stats.chunks_mut(2)) {
        let mean = sum_of(xr, |v| v) / f as f32;
        let var = sum_of(xr, |v| (v - mean) * (v - mean)) / f as f32;
        let r = 1.0 / (var + eps).sqrt();
        for (((o, &v), &g), &b) in yr.iter_mut().zip(xr).zip(gamma).zip(beta) {
            *o = (v - mean) * r * g + b;
        }
        st[0] = mean;
        st[1] = r;
    }
}

simd_fn! {
    /// `dx` for rows of `x` and `dy`, and `dy x̂`, `dy` summed over the rows into `dgamma`,
    /// `dbeta`.
    fn backward_rows(
        x: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        stats: &[f32],
        gamma: &[f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) => backward_rows_impl
}

#[inline(always)]
fn backward_rows_impl(
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    stats: &[f32],
    gamma: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let f = gamma.len();
    let rows = x.chunks(f).zip(dy.chunks(f)).zip(dx.chunks_mut(f)).zip(stats.chunks(2));
    for (((xr, gr), dr), st) in rows {
        let (mean, r) = (st[0], st[1]);
        let (mut s_g, mut s_gx) = ([0f32; 8], [0f32; 8]);
        let (xc, gc, mc) = (xr.chunks_exact(8), gr.chunks_exact(8), gamma.chunks_exact(8));
        let mut tail = (0f32, 0f32);
        for ((&v, &d), &gm) in xc.remainder().iter().zip(gc.remainder()).zip(mc.remainder()) {
            let g = d * gm;
            tail.0 += g;
            tail.1 += g * ((v - mean) * r);
        }
        for ((xv, dv), mv) in xc.zip(gc).zip(mc) {
            for l in 0..8 {
                let g = dv[l] * mv[l];
                s_g[l] += g;
                s_gx[l] += g * ((xv[l] - mean) * r);
            }
        }
        let mean_g = (s_g.iter().sum::<f32>() + tail.0) / f as f32;
        let mean_gx = (s_gx.iter().sum::<f32>() + tail.1) / f as f32;
        for ((((o, &v), &d), &gm), (dg, db)) in
            dr.iter_mut().zip(xr).zip(gr).zip(gamma).zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
        {
            let xh = (v - mean) * r;
            *o = r * (d * gm - mean_g - xh * mean_gx);
            *dg += d * xh;
            *db += d;
        }
    }
}

/// The output, and the per-row `(mean, 1/sqrt(var + eps))` `[rows, 2]`.
fn forward(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor) {
    let shape = x.layout().shape().clone();
    let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
    let (xs, gs, bs) =
        (x.as_slice::<f32>().unwrap(), gamma.as_slice::<f32>().unwrap(), beta.as_slice::<f32>().unwrap());
    let f = gs.len();
    assert_eq!(shape[shape.num_dims() - 1], f, "layer norm: gamma must have the last axis' size");
    let rows = xs.len().checked_div(f).unwrap_or(0);
    let (mut y, mut stats) = (Filled::new(xs.len()), vec![0f32; rows * 2]);
    if rows > 0 && f > 0 {
        let block = block_rows(rows);
        let (chunks, ready) = y.chunks(block * f);
        chunks.zip(xs.par_chunks(block * f)).zip(stats.par_chunks_mut(block * 2)).for_each(|((yo, xi), st)| {
            forward_rows(xi, zeroed(yo, ready), st, gs, bs, epsilon as f32);
        });
    }
    (
        FlexTensor::from_data(TensorData::new(y.into_vec(), shape)),
        FlexTensor::from_data(TensorData::new(stats, [rows, 2])),
    )
}

/// Gradients for x, gamma and beta.
fn backward(x: &FlexTensor, gamma: &FlexTensor, stats: &FlexTensor, dy: &FlexTensor) -> [FlexTensor; 3] {
    let shape = x.layout().shape().clone();
    let (x, gamma, stats, dy) = (contiguous(x), contiguous(gamma), contiguous(stats), contiguous(dy));
    let (xs, gs, st, ds) = (
        x.as_slice::<f32>().unwrap(),
        gamma.as_slice::<f32>().unwrap(),
        stats.as_slice::<f32>().unwrap(),
        dy.as_slice::<f32>().unwrap(),
    );
    let f = gs.len();
    let rows = xs.len().checked_div(f).unwrap_or(0);
    let mut dx = Filled::new(xs.len());
    let (mut dgamma, mut dbeta) = (vec![0f32; f], vec![0f32; f]);
    if rows > 0 && f > 0 {
        let block = block_rows(rows);
        // Per block: dgamma's then dbeta's partial sums.
        let mut partials = vec![0f32; rows.div_ceil(block) * 2 * f];
        let (chunks, ready) = dx.chunks(block * f);
        chunks
            .zip(xs.par_chunks(block * f).zip(ds.par_chunks(block * f)))
            .zip(st.par_chunks(block * 2).zip(partials.par_chunks_mut(2 * f)))
            .for_each(|((dxo, (xi, di)), (sti, part))| {
                let (dg, db) = part.split_at_mut(f);
                backward_rows(xi, di, zeroed(dxo, ready), sti, gs, dg, db);
            });
        for part in partials.chunks(2 * f) {
            dgamma.iter_mut().zip(&part[..f]).for_each(|(d, p)| *d += p);
            dbeta.iter_mut().zip(&part[f..]).for_each(|(d, p)| *d += p);
        }
    }
    [
        FlexTensor::from_data(TensorData::new(dx.into_vec(), shape)),
        FlexTensor::from_data(TensorData::new(dgamma, [f])),
        FlexTensor::from_data(TensorData::new(dbeta, [f])),
    ]
}

impl LayerNormBackend for Flex {
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        forward(&x, &gamma, &beta, epsilon).0
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    /// The saved input, gamma and row statistics.
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats) = ops.state;
        for (node, grad) in ops.parents.into_iter().zip(backward(&x, &gamma, &stats, &dy)) {
            if let Some(n) = node {
                grads.register::<Flex>(n.id, grad);
            }
        }
    }
}

impl<C: CheckpointStrategy> LayerNormBackend for Autodiff<Flex, C> {
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        match LayerNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
                let (y, stats) = forward(&x, &gamma, &beta, epsilon);
                prep.finish((x, gamma, stats), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(x.primitive(), gamma.primitive(), beta.primitive(), epsilon).0)
            }
        }
    }
}
