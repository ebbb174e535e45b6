//! The sizes of one 2-D convolution and how its im2col matrix maps onto the input: shared by
//! the direct (`conv`), shifted (`shifted`) and Winograd (`winograd`) kernels.

use std::ops::Range;

/// Stride and zero padding of a square convolution (the same along both spatial axes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stencil {
    pub stride: usize,
    pub padding: usize,
}

/// Output pixels per im2col tile.
const TILE: usize = 128;

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
    pub(super) fn of(x: &[usize], w: &[usize], s: Stencil) -> Self {
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
    pub(super) fn rows(&self) -> usize {
        self.cin * self.k * self.k
    }

    pub(super) fn cols(&self) -> usize {
        self.ho * self.wo
    }

    pub(super) fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    pub(super) fn out_len(&self) -> usize {
        self.cout * self.cols()
    }

    /// A 1x1 stride-1 unpadded convolution: the sample itself is its im2col matrix.
    pub(super) fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// Output columns `lo..hi` whose input column `ox*stride + j - pad` lies inside the image.
    pub(super) fn valid_cols(&self, j: usize) -> (usize, usize) {
        let lo = self.pad.saturating_sub(j).div_ceil(self.stride);
        let hi = (self.w + self.pad).saturating_sub(j).div_ceil(self.stride).min(self.wo);
        (lo.min(hi), hi)
    }

    /// [`Geometry::valid_cols`] for every kernel column (two divisions each: computed once
    /// per tile rather than once per row).
    pub(super) fn valid_cols_table(&self) -> Vec<(usize, usize)> {
        (0..self.k).map(|j| self.valid_cols(j)).collect()
    }

    /// Visit every (im2col row, output row in `oys`) pair with the input row it reads:
    /// `f(start in the tile's im2col matrix, input offset of the row or None if in the
    /// padding, j)`. The tile's matrix is `[Cin*k*k, oys.len()*Wo]`.
    pub(super) fn for_each_row(&self, oys: Range<usize>, mut f: impl FnMut(usize, Option<usize>, usize)) {
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
    pub(super) fn runs(&self) -> bool {
        self.stride == 1 && self.wo == self.w && self.pad < self.wo
    }

    /// For [`Geometry::runs`]: per im2col row (ci, i, j) of the tile `oys`,
    /// `f(start of the row in the tile, tile rows inside the image, x index of the first of
    /// those rows, j)`.
    pub(super) fn for_each_run(&self, oys: Range<usize>, mut f: impl FnMut(usize, Range<usize>, usize, usize)) {
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
    pub(super) fn run_span(&self, rows: &Range<usize>, first: usize, j: usize) -> (Range<usize>, usize, usize, usize) {
        let (a, b) = (self.pad.saturating_sub(j), j.saturating_sub(self.pad));
        (rows.start * self.wo + a..rows.end * self.wo - b, first + b, a, b)
    }

    /// The output rows in tiles of about [`TILE`] pixels, so that a tile's im2col matrix
    /// stays in cache between being built and being multiplied.
    pub(super) fn tiles(&self) -> impl Iterator<Item = Range<usize>> + use<> {
        let (ho, step) = (self.ho, (TILE / self.wo.max(1)).max(1));
        (0..ho).step_by(step).map(move |start| start..(start + step).min(ho))
    }
}
