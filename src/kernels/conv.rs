//! The 2-D convolution for the `flex` CPU backend: im2col per sample plus one matrix product
//! (the `gemm` crate burn-flex itself uses), with the backward pass written next to it.
//!
//! burn-flex's own convolution converts layouts (NCHW <-> NHWC) around every call and computes
//! the input gradient as a transposed convolution; for the small CIFAR shapes (3x3 stride 1/2,
//! 1x1 stride 2, 16-64 channels) those copies cost as much as the arithmetic. Here everything
//! stays NCHW:
//!
//! - forward, per sample n: `col_n = im2col(x_n)` `[Cin*k*k, Ho*Wo]`, `y_n = W col_n`;
//! - backward, per sample: `dcol_n = W^T dy_n`, `dx_n = col2im(dcol_n)`, and
//!   `dW += dy_n col_n^T` (col_n recomputed, not stored).
//!
//! Stride-1 "same" convolutions on wide enough images go to `kernels::shifted` instead (k*k
//! shifted products, no im2col matrix); the forward and the backward choose separately. With
//! `ACTSEARCH_WINOGRAD=1` the 3x3 ones go to `kernels::winograd` (off by default: slower here).
//!
//! Samples run in parallel over rayon. The weight gradient is summed per fixed group of
//! [`GROUP`] samples and the groups are added in order, so the result does not depend on the
//! thread count. Only what is asked for is computed (the stem's input needs no gradient).
//!
//! Square kernels, equal strides and paddings, no dilation, no groups, no bias: the network's
//! convolutions (`model::resnet`). Other backends use burn's `conv2d`; [`available`] says which.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use std::ops::Range;

use rayon::prelude::*;

use super::geometry::Geometry;
pub use super::geometry::Stencil;
use super::matmul::{Dest, GROUP, Operand, add_bias, matmul, sum_groups};
use super::{Filled, contiguous, shifted, winograd, zeroed};

#[backend_extension(Flex, Autodiff)]
pub trait ConvBackend: Backend {
    /// x `[N, Cin, H, W]` convolved with w `[Cout, Cin, k, k]`.
    fn conv2d_nchw(x: FloatTensor<Self>, w: FloatTensor<Self>, stencil: Stencil) -> FloatTensor<Self>;
}

/// Inference: the convolution with a per-channel bias added to its output, which is a
/// convolution followed by an inference-mode batch norm with the norm folded into the weights
/// and the bias (`model::layers::convolve_normalized`). The bias is added to each group of
/// samples while it is in cache, instead of in another pass over the output. Never tracked:
/// only the plain CPU backend has it.
#[backend_extension(Flex)]
pub trait ConvInferBackend: Backend {
    /// x `[N, Cin, H, W]` convolved with w `[Cout, Cin, k, k]`, plus `bias[co]` (`[Cout]`) on
    /// output channel co.
    fn conv2d_nchw_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stencil: Stencil,
    ) -> FloatTensor<Self>;
}

pub use super::available;

/// [`apply`] plus `bias[co]` on output channel co, for a device without autodiff (see
/// [`ConvInferBackend`]).
pub fn apply_biased(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, stencil: Stencil) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvInferBackend>::conv2d_nchw_bias(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        stencil,
    ))
}

/// `x` `[N, Cin, H, W]` convolved with `weight` `[Cout, Cin, k, k]` (square kernel). `x` must be
/// on a device where [`available`] holds.
pub fn apply(x: Tensor<4>, weight: Tensor<4>, stencil: Stencil) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvBackend>::conv2d_nchw(x.into_dispatch(), weight.into_dispatch(), stencil))
}

/// The im2col matrix `[Cin*k*k, oys.len()*Wo]` of output rows `oys` of one sample `[Cin, H, W]`.
fn im2col(x: &[f32], g: &Geometry, oys: Range<usize>, col: &mut [f32]) {
    if g.runs() {
        let p = oys.len() * g.wo;
        return g.for_each_run(oys, |at, rows, first, j| {
            let out = &mut col[at..at + p];
            out[..rows.start * g.wo].fill(0.0);
            out[rows.end * g.wo..].fill(0.0);
            if rows.is_empty() {
                return;
            }
            let (span, src, a, b) = g.run_span(&rows, first, j);
            out[span.clone()].copy_from_slice(&x[src..src + span.len()]);
            zero_wrapped(out, g.wo, rows, a, b);
        });
    }
    let valid = g.valid_cols_table();
    g.for_each_row(oys, |at, src, j| {
        let out = &mut col[at..at + g.wo];
        let Some(src) = src else {
            out.fill(0.0);
            return;
        };
        let (lo, hi) = valid[j];
        // (Most rows have no padded column: skip the calls.)
        if lo > 0 {
            out[..lo].fill(0.0);
        }
        if hi < g.wo {
            out[hi..].fill(0.0);
        }
        if lo == hi {
            return; // this kernel column reads only padding (kernel wider than the image)
        }
        let first = src + lo * g.stride + j - g.pad;
        if g.stride == 1 {
            out[lo..hi].copy_from_slice(&x[first..first + hi - lo]);
        } else {
            for (o, v) in out[lo..hi].iter_mut().zip(x[first..].iter().step_by(g.stride)) {
                *o = *v;
            }
        }
    });
}

/// Zeroes the first `a` and last `b` columns of rows `rows` of a tile row (`wo` columns per
/// output row). Written column by column: a run is one or two elements, too short for a
/// `memset` call.
fn zero_wrapped(tile: &mut [f32], wo: usize, rows: Range<usize>, a: usize, b: usize) {
    for c in (0..a).chain(wo - b..wo) {
        for t in rows.clone() {
            tile[t * wo + c] = 0.0;
        }
    }
}

/// Adds the gradient `dcol` of the im2col matrix of output rows `oys` back onto the sample
/// gradient `dx` `[Cin, H, W]` (`dcol` is scratch: entries in the padding may be zeroed).
fn col2im(dcol: &mut [f32], g: &Geometry, oys: Range<usize>, dx: &mut [f32]) {
    if g.runs() {
        let p = oys.len() * g.wo;
        return g.for_each_run(oys, |at, rows, first, j| {
            if rows.is_empty() {
                return;
            }
            let d = &mut dcol[at..at + p];
            let (span, dst, a, b) = g.run_span(&rows, first, j);
            zero_wrapped(d, g.wo, rows, a, b);
            for (o, v) in dx[dst..dst + span.len()].iter_mut().zip(&d[span]) {
                *o += v;
            }
        });
    }
    let valid = g.valid_cols_table();
    g.for_each_row(oys, |at, dst, j| {
        let Some(dst) = dst else { return };
        let (lo, hi) = valid[j];
        if lo == hi {
            return;
        }
        let first = dst + lo * g.stride + j - g.pad;
        let row = &dcol[at + lo..at + hi];
        if g.stride == 1 {
            for (d, v) in dx[first..first + hi - lo].iter_mut().zip(row) {
                *d += v;
            }
        } else {
            for (d, v) in dx[first..].iter_mut().step_by(g.stride).zip(row) {
                *d += v;
            }
        }
    });
}

/// y of x and w, plus `bias[co]` on output channel co when given.
fn forward(x: &FlexTensor, w: &FlexTensor, bias: Option<&FlexTensor>, stencil: Stencil) -> FlexTensor {
    let g = Geometry::of(x.layout().shape(), w.layout().shape(), stencil);
    let (x, w, bias) = (contiguous(x), contiguous(w), bias.map(contiguous));
    let (xs, ws) = (x.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap());
    let bias = bias.as_ref().map(|b| b.as_slice::<f32>().unwrap());
    assert!(
        bias.is_none_or(|b| b.len() == g.cout),
        "conv2d_nchw_bias: {} biases for {} channels",
        bias.map_or(0, |b| b.len()),
        g.cout
    );
    let (rows, cols) = (g.rows(), g.cols());
    let shape = [g.batch, g.cout, g.ho, g.wo];
    if g.out_len() == 0 || g.in_len() == 0 {
        // No output, or no input to sum over: zeros (and the bias).
        let mut y = vec![0f32; g.batch * g.out_len()];
        add_bias(&mut y, bias, cols);
        return FlexTensor::from_data(TensorData::new(y, shape));
    }
    if winograd::applies(&g) {
        return FlexTensor::from_data(TensorData::new(winograd::forward(xs, ws, bias, &g), shape));
    }
    if shifted::forward_applies(&g) {
        return FlexTensor::from_data(TensorData::new(shifted::forward(xs, ws, bias, &g), shape));
    }
    let mut y = Filled::new(g.batch * g.out_len());
    let (chunks, ready) = y.chunks(g.out_len());
    chunks.zip(xs.par_chunks(g.in_len())).for_each_init(Vec::new, |col, (yn, xn)| {
        let yn = zeroed(yn, ready);
        if g.pointwise() {
            matmul(Dest::rows(yn, cols), false, (g.cout, cols, rows), Operand(ws, rows, 1), Operand(xn, cols, 1));
        } else {
            for oys in g.tiles() {
                let (at, n) = (oys.start * g.wo, oys.len() * g.wo);
                col.resize(rows * n, 0.0);
                im2col(xn, &g, oys, col);
                let dst = Dest::rows(&mut yn[at..], cols);
                matmul(dst, false, (g.cout, n, rows), Operand(ws, rows, 1), Operand(col, n, 1));
            }
        }
        add_bias(yn, bias, cols);
    });
    FlexTensor::from_data(TensorData::new(y.into_vec(), shape))
}

/// The gradients for x (if `need_x`) and w (if `need_w`) given dy.
fn backward(
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    stencil: Stencil,
    need_x: bool,
    need_w: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let g = Geometry::of(x.layout().shape(), w.layout().shape(), stencil);
    let (x, w, dy) = (contiguous(x), contiguous(w), contiguous(dy));
    let (xs, ws, gs) = (x.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap(), dy.as_slice::<f32>().unwrap());
    let (rows, cols, cout) = (g.rows(), g.cols(), g.cout);
    let (in_len, out_len) = (g.in_len(), g.out_len());
    let (x_shape, w_shape) = ([g.batch, g.cin, g.h, g.w], [g.cout, g.cin, g.k, g.k]);
    let tensors = |dx: Vec<f32>, dw: Vec<f32>| {
        let dx = need_x.then(|| FlexTensor::from_data(TensorData::new(dx, x_shape)));
        (dx, need_w.then(|| FlexTensor::from_data(TensorData::new(dw, w_shape))))
    };
    if in_len == 0 || out_len == 0 {
        // Nothing flows either way: zero gradients.
        return tensors(vec![0f32; g.batch * in_len], vec![0f32; cout * rows]);
    }
    if winograd::applies(&g) {
        let (dx, dw) = winograd::backward(xs, ws, gs, &g, need_x, need_w);
        return tensors(dx, dw);
    }
    if shifted::backward_applies(&g) {
        let (dx, dw) = shifted::backward(xs, ws, gs, &g, need_x, need_w);
        return tensors(dx, dw);
    }
    let groups = g.batch.div_ceil(GROUP);
    // Gradients not asked for get one dummy element per group, so every zipped producer
    // still yields one chunk per group of samples.
    let (dx_chunk, part_chunk) = (if need_x { GROUP * in_len } else { 1 }, if need_w { cout * rows } else { 1 });
    let mut dx = Filled::new(if need_x { xs.len() } else { groups });
    let (dx_chunks, ready) = dx.chunks(dx_chunk);
    let mut partials = Filled::new(groups * part_chunk);
    let (part_chunks, part_ready) = partials.chunks(part_chunk);
    // W^T [rows, cout]
    let w_t = || Operand(ws, 1, rows);
    xs.par_chunks(GROUP * in_len).zip(gs.par_chunks(GROUP * out_len)).zip(dx_chunks).zip(part_chunks).for_each_init(
        || (Vec::new(), Vec::new()),
        |(col, dcol), (((xg, gg), dxg), part)| {
            let (dxg, part) = (zeroed(dxg, ready), zeroed(part, part_ready));
            for (n, (xn, gn)) in xg.chunks(in_len).zip(gg.chunks(out_len)).enumerate() {
                if g.pointwise() {
                    // dW += dy_n x_n^T (dW column-major, see below); dx_n = W^T dy_n
                    if need_w {
                        let (dw, x_t) = (Dest(part, 1, cout), Operand(xn, 1, cols));
                        matmul(dw, n > 0, (cout, rows, cols), Operand(gn, cols, 1), x_t);
                    }
                    if need_x {
                        let dxn = &mut dxg[n * in_len..(n + 1) * in_len];
                        matmul(Dest::rows(dxn, cols), false, (rows, cols, cout), w_t(), Operand(gn, cols, 1));
                    }
                    continue;
                }
                for oys in g.tiles() {
                    let (at, t) = (oys.start * g.wo, oys.len() * g.wo);
                    // This tile's columns of dy_n: [cout, t] with row stride cols.
                    let dy_tile = || Operand(&gn[at..], cols, 1);
                    if need_w {
                        // dW [cout, rows] += dy_tile col_tile^T, dW kept column-major
                        // so gemm reads the im2col tile in place instead of packing it.
                        col.resize(rows * t, 0.0);
                        im2col(xn, &g, oys.clone(), col);
                        let first = n == 0 && at == 0;
                        let dw = Dest(part, 1, cout);
                        matmul(dw, !first, (cout, rows, t), dy_tile(), Operand(col, 1, t));
                    }
                    if need_x {
                        // dcol [rows, t] = W^T dy_tile, folded back onto dx_n
                        dcol.resize(rows * t, 0.0);
                        matmul(Dest::rows(dcol, t), false, (rows, t, cout), w_t(), dy_tile());
                        col2im(dcol, &g, oys, &mut dxg[n * in_len..(n + 1) * in_len]);
                    }
                }
            }
        },
    );
    let (dx, partials) = (dx.into_vec(), partials.into_vec());
    // The partials are column-major ([rows, cout] row-major): sum in group order, then
    // transpose into [cout, rows].
    let dw = match need_w {
        true => {
            let sum = sum_groups(&partials, cout * rows);
            (0..cout * rows).map(|i| sum[(i % rows) * cout + i / rows]).collect()
        }
        false => Vec::new(),
    };
    tensors(dx, dw)
}

impl ConvBackend for Flex {
    fn conv2d_nchw(x: FloatTensor<Self>, w: FloatTensor<Self>, stencil: Stencil) -> FloatTensor<Self> {
        forward(&x, &w, None, stencil)
    }
}

impl ConvInferBackend for Flex {
    fn conv2d_nchw_bias(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stencil: Stencil,
    ) -> FloatTensor<Self> {
        forward(&x, &w, Some(&bias), stencil)
    }
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    /// The saved input and weights (shared handles) and the stencil.
    type State = (FlexTensor, FlexTensor, Stencil);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, stencil) = ops.state;
        let (dx, dw) = backward(&x, &w, &dy, stencil, node_x.is_some(), node_w.is_some());
        if let (Some(n), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(n.id, dx);
        }
        if let (Some(n), Some(dw)) = (node_w, dw) {
            grads.register::<Flex>(n.id, dw);
        }
    }
}

impl<C: CheckpointStrategy> ConvBackend for Autodiff<Flex, C> {
    fn conv2d_nchw(x: FloatTensor<Self>, w: FloatTensor<Self>, stencil: Stencil) -> FloatTensor<Self> {
        match ConvBackward.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.into_primitive(), w.into_primitive());
                let y = forward(&x, &w, None, stencil);
                prep.finish((x, w, stencil), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), w.primitive(), None, stencil)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of the convolution, for checking im2col + matmul.
    fn naive(x: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
        let mut y = vec![0f32; g.batch * g.out_len()];
        for n in 0..g.batch {
            for co in 0..g.cout {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let mut acc = 0f64;
                        for ci in 0..g.cin {
                            for i in 0..g.k {
                                for j in 0..g.k {
                                    let (iy, ix) = (
                                        (oy * g.stride + i) as isize - g.pad as isize,
                                        (ox * g.stride + j) as isize - g.pad as isize,
                                    );
                                    if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                        let xv = x[((n * g.cin + ci) * g.h + iy as usize) * g.w + ix as usize];
                                        acc += (xv * w[((co * g.cin + ci) * g.k + i) * g.k + j]) as f64;
                                    }
                                }
                            }
                        }
                        y[((n * g.cout + co) * g.ho + oy) * g.wo + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn im2col_matmul_matches_the_definition_for_every_stencil() {
        for &(h, w, k, stride, pad) in &[
            (5, 7, 3, 1, 1),
            (6, 6, 3, 2, 1),
            (7, 5, 1, 2, 0),
            (4, 4, 1, 1, 0),
            (3, 3, 3, 1, 0),
            (5, 5, 5, 3, 2),
            (1, 1, 5, 1, 2),
            (2, 1, 5, 2, 2),
        ] {
            let (batch, cin, cout) = (3, 2, 4);
            let xs: Vec<f32> = (0..batch * cin * h * w).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
            let ws: Vec<f32> = (0..cout * cin * k * k).map(|i| ((i * 17 % 13) as f32 - 6.0) / 5.0).collect();
            let x = FlexTensor::from_data(TensorData::new(xs.clone(), [batch, cin, h, w]));
            let wt = FlexTensor::from_data(TensorData::new(ws.clone(), [cout, cin, k, k]));
            let stencil = Stencil { stride, padding: pad };
            let y = forward(&x, &wt, None, stencil);
            let g = Geometry::of(&[batch, cin, h, w], &[cout, cin, k, k], stencil);
            assert_eq!(y.layout().shape().to_vec(), vec![batch, cout, g.ho, g.wo]);
            let want = naive(&xs, &ws, &g);
            for (a, b) in y.as_slice::<f32>().unwrap().iter().zip(&want) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{h}x{w} k{k} s{stride} p{pad}: {a} vs {b}");
            }
        }
    }
}
