//! Stride-1 "same" convolutions (odd k, padding (k-1)/2: the ResNets' 3x3 convolutions) as k*k
//! shifted matrix products, with no im2col matrix.
//!
//! A group of samples is copied once into a padded layout: per channel, the samples' rows one
//! after another, each row followed by `p` zeros and each sample by `p` zero rows (a zero row
//! or column is the bottom/right padding of one row or sample and the top/left padding of the
//! next). Output pixel (n, y, x) then has a linear index q such that its input window's
//! element (i, j) sits at `q + i*Wp + j` for every channel (`Wp = W + p`). So the tap (i, j)
//! of the kernel is one matrix product over all q at once, with the input read in place at
//! offset `i*Wp + j`:
//!
//! - forward: `y[q, co] += x[q + i*Wp + j, ci] W[co, ci, i, j]`, for the k*k taps;
//! - input gradient: the same with dy padded and the kernel flipped;
//! - weight gradient: `dW[co, ci, i, j] = sum_q dy[q, co] x[q + i*Wp + j, ci]`.
//!
//! Positions q in the padding (the last p columns of a row, the p rows after a sample) are
//! computed and dropped (6% more multiply-adds at 32 columns, 13% at 16; narrower images use
//! im2col), for no im2col/col2im copies.
//! Groups of [`GROUP`] samples run in parallel; the weight gradient is summed per group and
//! the groups added in order, so results do not depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::geometry::Geometry;
use super::matmul::{Dest, GROUP, Operand, matmul, sum_groups};
use super::{Filled, written, zeroed};

/// The padded layout of a group of `samples` samples of `[C, H, W]` images with padding `p`.
#[derive(Clone, Copy, Debug)]
struct Padded {
    h: usize,
    w: usize,
    p: usize,
    samples: usize,
}

impl Padded {
    fn of(g: &Geometry, samples: usize) -> Padded {
        Padded { h: g.h, w: g.w, p: g.pad, samples }
    }

    /// Row length: a row and its `p` zeros.
    fn wp(&self) -> usize {
        self.w + self.p
    }

    /// Rows per sample: its rows and `p` zero rows.
    fn hp(&self) -> usize {
        self.h + self.p
    }

    /// Output positions computed (the last sample's trailing zero rows are not).
    fn positions(&self) -> usize {
        ((self.samples - 1) * self.hp() + self.h) * self.wp()
    }

    /// Elements per channel: `p` leading zero rows and `p` elements before them, the samples,
    /// and `p` elements of slack at the end.
    fn channel_len(&self) -> usize {
        (self.p + self.samples * self.hp()) * self.wp() + 2 * self.p
    }

    /// Index of the element (n, y, x) in a channel.
    fn at(&self, n: usize, y: usize) -> usize {
        self.p + (self.p + n * self.hp() + y) * self.wp()
    }

    /// Index in a channel read by output position q for tap (i, j): `q + offset(i, j)`.
    fn offset(&self, i: usize, j: usize) -> usize {
        i * self.wp() + j
    }

    /// Index of output position q's own pixel (tap (p, p)).
    fn center(&self) -> usize {
        self.offset(self.p, self.p)
    }

    /// `[N, C, H, W]` samples into the padded layout `[C, channel_len]`: every element is
    /// written (rows copied, padding zeroed), so `dst` may hold anything before.
    fn pad(&self, src: &[f32], channels: usize, dst: &mut Vec<f32>) {
        let (len, plane, (w, wp)) = (self.channel_len(), self.h * self.w, (self.w, self.wp()));
        dst.resize(channels * len, 0.0);
        for (c, channel) in dst.chunks_mut(len).enumerate() {
            channel[..self.at(0, 0)].fill(0.0);
            for n in 0..self.samples {
                let image = &src[(n * channels + c) * plane..][..plane];
                for (y, row) in image.chunks(w).enumerate() {
                    let at = self.at(n, y);
                    channel[at..at + w].copy_from_slice(row);
                    channel[at + w..at + wp].fill(0.0);
                }
                channel[self.at(n, self.h)..self.at(n + 1, 0)].fill(0.0);
            }
            channel[self.at(self.samples, 0)..].fill(0.0);
        }
    }

    /// Position-major results `[C][positions]` back into `[N, C, H, W]`, dropping the padding,
    /// plus `bias[c]` on channel c when given. Every element of `dst` (`samples` images of
    /// `channels` planes) is written.
    fn unpad(&self, src: &[f32], channels: usize, bias: Option<&[f32]>, dst: &mut [MaybeUninit<f32>]) {
        let (positions, plane) = (self.positions(), self.h * self.w);
        assert_eq!(dst.len(), self.samples * channels * plane);
        for (n, sample) in dst.chunks_mut(channels * plane).enumerate() {
            for (c, image) in sample.chunks_mut(plane).enumerate() {
                let base = c * positions + n * self.hp() * self.wp();
                for (y, row) in image.chunks_mut(self.w).enumerate() {
                    let at = base + y * self.wp();
                    let values = &src[at..at + self.w];
                    match bias {
                        Some(b) => row.iter_mut().zip(values).for_each(|(d, &v)| _ = d.write(v + b[c])),
                        None => row.iter_mut().zip(values).for_each(|(d, &v)| _ = d.write(v)),
                    }
                }
            }
        }
    }
}

/// Whether [`forward`] applies: stride 1, odd k, padding (k-1)/2, images at least 32 wide
/// and 8 input channels. Measured on w1's shapes (per call, against im2col): 32x32 with 16
/// channels 4.0-4.3 vs 4.9 ms here; 16x16 3.7 vs 3.4-3.6 ms and the 3-channel stem 1.3 vs
/// 0.9 ms favour im2col's single long product.
pub(super) fn forward_applies(g: &Geometry) -> bool {
    same(g) && g.w >= 32 && g.cin >= 8
}

/// Whether [`backward`] applies: stride 1, odd k, padding (k-1)/2, images at least 16 wide.
/// (Backward per call: 32x32 7.7-8.0 vs 12 ms, 16x16 7.6 vs 8.1-8.4, stem 0.9 vs 1.6; 8x8
/// wastes 27% on padding columns and is faster with im2col, 7.5 vs 9.0.)
pub(super) fn backward_applies(g: &Geometry) -> bool {
    same(g) && g.w >= 16
}

/// A stride-1 "same" convolution of a non-empty image.
fn same(g: &Geometry) -> bool {
    g.stride == 1 && g.k % 2 == 1 && g.pad == g.k / 2 && g.h > 0 && g.w > 0
}

thread_local! {
    /// Per-thread padded input, padded output gradient and position-major result, kept
    /// between calls (they are larger than what the allocator recycles cheaply).
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 3]> = Default::default();
}

/// `sum over taps of dst[q, :] += src[q + offset(tap), :] kernel(tap)` for the group's positions:
/// `src` is padded `[c_src, len]`, `dst` position-major `[c_dst][positions]`, `kernel(i, j)`
/// the `[c_src, c_dst]` matrix of tap (i, j) as an operand.
fn taps<'a>(
    g: &Geometry,
    lay: &Padded,
    src: &[f32],
    c_src: usize,
    dst: &mut [f32],
    c_dst: usize,
    kernel: impl Fn(usize, usize) -> Operand<'a>,
) {
    let (len, positions) = (lay.channel_len(), lay.positions());
    for i in 0..g.k {
        for j in 0..g.k {
            let first = i == 0 && j == 0;
            let a = Operand(&src[lay.offset(i, j)..], 1, len);
            matmul(Dest(dst, 1, positions), !first, (positions, c_dst, c_src), a, kernel(i, j));
        }
    }
}

/// The `[rows, cols]` output in blocks of at most [`BLOCK`] x [`BLOCK`].
fn blocks(rows: usize, cols: usize) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> {
    let split = |n: usize| (0..n).step_by(BLOCK).map(move |s| s..(s + BLOCK).min(n));
    split(rows).flat_map(move |r| split(cols).map(move |c| (r.clone(), c)))
}

/// Weight-gradient block side: gemm multiplies two operands that both run along the sum in
/// place (no packing) when the output has at most 16x16 elements.
const BLOCK: usize = 16;

/// y `[N, Cout, H, W]` of x `[N, Cin, H, W]` and w `[Cout, Cin, k, k]`, plus `bias[co]` on
/// output channel co when given.
pub(super) fn forward(xs: &[f32], ws: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    let (kk, in_len, out_len) = (g.k * g.k, g.in_len(), g.out_len());
    let mut y = Filled::new(g.batch * out_len);
    let (chunks, ready) = y.chunks(GROUP * out_len);
    chunks.zip(xs.par_chunks(GROUP * in_len)).for_each(|(yg, xg)| {
        SCRATCH.with_borrow_mut(|[xp, yw, _]| {
            let lay = Padded::of(g, xg.len() / in_len);
            lay.pad(xg, g.cin, xp);
            yw.resize(g.cout * lay.positions(), 0.0);
            // W[co, ci, i, j] as the [ci, co] matrix of tap (i, j)
            taps(g, &lay, xp, g.cin, yw, g.cout, |i, j| Operand(&ws[i * g.k + j..], kk, g.cin * kk));
            lay.unpad(yw, g.cout, bias, yg);
            // SAFETY: unpad writes every element of the group's chunk.
            unsafe { written(yg, ready) };
        })
    });
    y.into_vec()
}

/// The gradients for x (if `need_x`, else empty) and w (if `need_w`, else empty; `[Cout, Cin,
/// k, k]`) given dy.
pub(super) fn backward(
    xs: &[f32],
    ws: &[f32],
    gs: &[f32],
    g: &Geometry,
    need_x: bool,
    need_w: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (k, kk, in_len, out_len) = (g.k, g.k * g.k, g.in_len(), g.out_len());
    let groups = g.batch.div_ceil(GROUP);
    let w_len = g.cout * g.cin * kk;
    // Gradients not asked for get one dummy element per group (see conv::backward).
    let (dx_chunk, part_chunk) = (if need_x { GROUP * in_len } else { 1 }, if need_w { w_len } else { 1 });
    let mut dx = Filled::new(if need_x { xs.len() } else { groups });
    let (dx_chunks, ready) = dx.chunks(dx_chunk);
    let mut partials = Filled::new(groups * part_chunk);
    let (part_chunks, part_ready) = partials.chunks(part_chunk);
    xs.par_chunks(GROUP * in_len).zip(gs.par_chunks(GROUP * out_len)).zip(dx_chunks).zip(part_chunks).for_each(
        |(((xg, gg), dxg), part)| {
            let part = zeroed(part, part_ready);
            SCRATCH.with_borrow_mut(|[xp, dyp, dxw]| {
                let lay = Padded::of(g, xg.len() / in_len);
                let (len, positions) = (lay.channel_len(), lay.positions());
                lay.pad(gg, g.cout, dyp);
                if need_x {
                    // dx[q, ci] += dy[q + offset(i, j), co] W[co, ci, k-1-i, k-1-j]
                    dxw.resize(g.cin * positions, 0.0);
                    let flipped = |i: usize, j: usize| Operand(&ws[(k - 1 - i) * k + (k - 1 - j)..], g.cin * kk, kk);
                    taps(g, &lay, dyp, g.cout, dxw, g.cin, flipped);
                    lay.unpad(dxw, g.cin, None, dxg);
                    // SAFETY: unpad writes every element of the group's chunk.
                    unsafe { written(dxg, ready) };
                } else {
                    zeroed(dxg, ready); // the one-element placeholder
                }
                if need_w {
                    // dW[co, ci, i, j] = sum_q dy[q + center, co] x[q + offset(i, j), ci]; dy is
                    // zero at the padding positions, which drops them from the sum.
                    lay.pad(xg, g.cin, xp);
                    // Both operands run along q: in blocks of at most 16x16 outputs gemm takes
                    // them in place (dot-product kernels) instead of packing both for every tap.
                    for (co, ci) in blocks(g.cout, g.cin) {
                        let dy = Operand(&dyp[co.start * len + lay.center()..], len, 1);
                        for i in 0..k {
                            for j in 0..k {
                                let x_t = Operand(&xp[ci.start * len + lay.offset(i, j)..], 1, len);
                                let at = (co.start * g.cin + ci.start) * kk + i * k + j;
                                let dw = Dest(&mut part[at..], g.cin * kk, kk);
                                matmul(dw, false, (co.len(), ci.len(), positions), dy, x_t);
                            }
                        }
                    }
                }
            })
        },
    );
    let partials = partials.into_vec();
    let dw = if need_w { sum_groups(&partials, w_len) } else { Vec::new() };
    (if need_x { dx.into_vec() } else { Vec::new() }, dw)
}
