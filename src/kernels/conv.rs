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

use super::{Filled, contiguous, shifted, winograd, zeroed};

/// Samples per weight-gradient partial sum.
pub(super) const GROUP: usize = 4;

/// Output pixels per im2col tile.
const TILE: usize = 128;

/// Stride and zero padding of a square convolution (the same along both spatial axes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stencil {
    pub stride: usize,
    pub padding: usize,
}

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

/// The sizes of one convolution.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) cin: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) cout: usize,
    pub(super) k: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
}

impl Geometry {
    fn of(x: &[usize], w: &[usize], s: Stencil) -> Self {
        assert!(x.len() == 4 && w.len() == 4 && w[1] == x[1] && w[2] == w[3], "conv2d_nchw: shapes {x:?} and {w:?}");
        assert!(s.stride > 0, "conv2d_nchw: stride 0");
        let k = w[2];
        let out = |n: usize| (n + 2 * s.padding).checked_sub(k).map_or(0, |span| span / s.stride + 1);
        Geometry {
            batch: x[0],
            cin: x[1],
            h: x[2],
            w: x[3],
            cout: w[0],
            k,
            ho: out(x[2]),
            wo: out(x[3]),
            stride: s.stride,
            pad: s.padding,
        }
    }

    /// Rows of the im2col matrix (`Cin*k*k`) and its columns (output pixels).
    fn rows(&self) -> usize {
        self.cin * self.k * self.k
    }

    fn cols(&self) -> usize {
        self.ho * self.wo
    }

    pub(super) fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    pub(super) fn out_len(&self) -> usize {
        self.cout * self.cols()
    }

    /// A 1x1 stride-1 unpadded convolution: the sample itself is its im2col matrix.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// Output columns `lo..hi` whose input column `ox*stride + j - pad` lies inside the image.
    fn valid_cols(&self, j: usize) -> (usize, usize) {
        let lo = self.pad.saturating_sub(j).div_ceil(self.stride);
        let hi = (self.w + self.pad).saturating_sub(j).div_ceil(self.stride).min(self.wo);
        (lo.min(hi), hi)
    }

    /// [`Geometry::valid_cols`] for every kernel column (two divisions each: computed once
    /// per tile rather than once per row).
    fn valid_cols_table(&self) -> Vec<(usize, usize)> {
        (0..self.k).map(|j| self.valid_cols(j)).collect()
    }

    /// Visit every (im2col row, output row in `oys`) pair with the input row it reads:
    /// `f(start in the tile's im2col matrix, input offset of the row or None if in the
    /// padding, j)`. The tile's matrix is `[Cin*k*k, oys.len()*Wo]`.
    fn for_each_row(&self, oys: Range<usize>, mut f: impl FnMut(usize, Option<usize>, usize)) {
        let (k, p) = (self.k, oys.len() * self.wo);
        for ci in 0..self.cin {
            for i in 0..k {
                for j in 0..k {
                    let row = ((ci * k + i) * k + j) * p;
                    for (t, oy) in oys.clone().enumerate() {
                        let iy = (oy * self.stride + i).checked_sub(self.pad).filter(|&iy| iy < self.h);
                        f(row + t * self.wo, iy.map(|iy| (ci * self.h + iy) * self.w), j);
                    }
                }
            }
        }
    }

    /// Stride 1 with output rows as wide as the input's ("same" padding): then the tile rows
    /// inside the image read one contiguous run of x per im2col row, shifted by `j - pad`
    /// (the wrapped first or last columns of each row are fixed up afterwards).
    fn runs(&self) -> bool {
        self.stride == 1 && self.wo == self.w && self.pad < self.wo
    }

    /// For [`Geometry::runs`]: per im2col row (ci, i, j) of the tile `oys`,
    /// `f(start of the row in the tile, tile rows inside the image, x index of the first of
    /// those rows, j)`.
    fn for_each_run(&self, oys: Range<usize>, mut f: impl FnMut(usize, Range<usize>, usize, usize)) {
        let (k, p, len) = (self.k, oys.len() * self.wo, oys.len());
        for ci in 0..self.cin {
            for i in 0..k {
                // iy = oys.start + t + i - pad must lie in 0..h
                let t0 = self.pad.saturating_sub(oys.start + i).min(len);
                let t1 = (self.h + self.pad).saturating_sub(oys.start + i).min(len).max(t0);
                let first = (ci * self.h + (oys.start + t0 + i).saturating_sub(self.pad)) * self.w;
                for j in 0..k {
                    f(((ci * k + i) * k + j) * p, t0..t1, first, j);
                }
            }
        }
    }

    /// For [`Geometry::runs`]: the element range of a run in the tile's im2col row, the x index
    /// it starts at, and the columns `a` (left) and `b` (right) of each row that wrapped.
    fn run_span(&self, rows: &Range<usize>, first: usize, j: usize) -> (Range<usize>, usize, usize, usize) {
        let (a, b) = (self.pad.saturating_sub(j), j.saturating_sub(self.pad));
        (rows.start * self.wo + a..rows.end * self.wo - b, first + b, a, b)
    }

    /// The output rows in tiles of about [`TILE`] pixels, so that a tile's im2col matrix
    /// stays in cache between being built and being multiplied.
    fn tiles(&self) -> impl Iterator<Item = Range<usize>> + use<> {
        let (ho, step) = (self.ho, (TILE / self.wo.max(1)).max(1));
        (0..ho).step_by(step).map(move |start| start..(start + step).min(ho))
    }
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

/// A read-only matrix operand: its elements, row stride and column stride.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a>(pub(super) &'a [f32], pub(super) usize, pub(super) usize);

/// The destination matrix: its elements, row stride and column stride.
pub(super) struct Dest<'a>(pub(super) &'a mut [f32], pub(super) usize, pub(super) usize);

impl<'a> Dest<'a> {
    /// A row-major matrix whose rows are `ld` apart.
    pub(super) fn rows(dst: &'a mut [f32], ld: usize) -> Self {
        Dest(dst, ld, 1)
    }
}

/// `dst` `[m, n]` = `(dst if accumulate) + a b` with `a` `[m, k]` and `b` `[k, n]`.
///
/// gemm packs an operand whose elements along the microkernel's long side are not adjacent;
/// callers pick the layouts (e.g. a column-major destination for the weight gradient) so that
/// the large im2col operand is read in place.
pub(super) fn matmul(dst: Dest, accumulate: bool, (m, n, k): (usize, usize, usize), a: Operand, b: Operand) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rs: usize, cs: usize, rows: usize, cols: usize| (rows - 1) * rs + (cols.max(1) - 1) * cs;
    assert!(last(dst.1, dst.2, m, n) < dst.0.len());
    assert!(k == 0 || (last(a.1, a.2, m, k) < a.0.len() && last(b.1, b.2, k, n) < b.0.len()));
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.0[i * dst.1 + j * dst.2] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: every index the product touches lies inside the slices (checked above), `dst`
    // is exclusively borrowed and does not alias the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0.as_mut_ptr(),
            dst.2 as isize,
            dst.1 as isize,
            accumulate,
            a.0.as_ptr(),
            a.2 as isize,
            a.1 as isize,
            b.0.as_ptr(),
            b.2 as isize,
            b.1 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Adds `bias[c]` to every channel plane (`plane` elements) of `y`, whole samples `[n, C,
/// plane]`; nothing when there is no bias.
pub(super) fn add_bias(y: &mut [f32], bias: Option<&[f32]>, plane: usize) {
    let Some(bias) = bias else { return };
    if plane == 0 {
        return;
    }
    for (i, p) in y.chunks_mut(plane).enumerate() {
        let b = bias[i % bias.len()];
        p.iter_mut().for_each(|v| *v += b);
    }
}

/// y of x and w, plus `bias[co]` on output channel co when given.
fn forward(x: &FlexTensor, w: &FlexTensor, bias: Option<&FlexTensor>, stencil: Stencil) -> FlexTensor {
    let g = Geometry::of(x.layout().shape(), w.layout().shape(), stencil);
    let (x, w, bias) = (contiguous(x), contiguous(w), bias.map(contiguous));
    let (xs, ws) = (x.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap());
    let bias = bias.as_ref().map(|b| b.as_slice::<f32>().unwrap());
    assert!(bias.is_none_or(|b| b.len() == g.cout), "conv2d_nchw_bias: {} biases for {} channels", bias.map_or(0, |b| b.len()), g.cout);
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
    xs.par_chunks(GROUP * in_len)
        .zip(gs.par_chunks(GROUP * out_len))
        .zip(dx_chunks)
        .zip(part_chunks)
        .for_each_init(
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

/// The per-group weight-gradient partials (`len` elements each) added in group order.
pub(super) fn sum_groups(partials: &[f32], len: usize) -> Vec<f32> {
    let mut sum = vec![0f32; len];
    for part in partials.chunks(len) {
        for (d, p) in sum.iter_mut().zip(part) {
            *d += p;
        }
    }
    sum
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
                                    let (iy, ix) = ((oy * g.stride + i) as isize - g.pad as isize, (ox * g.stride + j) as isize - g.pad as isize);
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
        for &(h, w, k, stride, pad) in &[(5, 7, 3, 1, 1), (6, 6, 3, 2, 1), (7, 5, 1, 2, 0), (4, 4, 1, 1, 0), (3, 3, 3, 1, 0), (5, 5, 5, 3, 2), (1, 1, 5, 1, 2), (2, 1, 5, 2, 2)] {
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
