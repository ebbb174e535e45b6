//! The matrix product every convolution kernel is made of (the `gemm` crate on strided
//! operands), and the fixed-group partial sums that keep weight gradients independent of the
//! thread count.

/// Samples per weight-gradient partial sum.
pub(super) const GROUP: usize = 4;

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
    unsafe { product(dst.0.as_mut_ptr(), (dst.1, dst.2), accumulate, (m, n, k), a, b, gemm::Parallelism::None) }
}

/// The `gemm` call of [`matmul`] on a raw destination with (row, column) strides `ld`, which
/// is written (and, with `accumulate`, read) through the pointer only: the destination may be
/// uninitialized when it is not read.
///
/// # Safety
/// Every index of `dst`, `a` and `b` that `m`, `n`, `k` and the strides reach must be in
/// range, and `dst` must not alias the operands.
pub(super) unsafe fn product(
    dst: *mut f32,
    ld: (usize, usize),
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            ld.1 as isize,
            ld.0 as isize,
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
            parallelism,
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
