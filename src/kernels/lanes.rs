//! Sums and maxima in eight interleaved lanes: a fixed order, so the same bits on every
//! instruction set and thread count, that still vectorizes inside the kernels' `simd_fn` builds.

/// `Σ f(v)` with eight interleaved partial sums: the same order, so the same bits, on every
/// instruction set, and it vectorizes inside the `simd_fn` builds.
#[inline(always)]
pub(super) fn sum_of(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += f(c[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a b` with eight partial sums, as [`sum_of`].
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest value of `v` (negative infinity when empty), with eight running maxima: the
/// maximum does not depend on the order, so this is the plain fold's result, vectorized.
#[inline(always)]
pub(super) fn max_of(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for c in chunks {
        for l in 0..8 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    acc.iter().fold(tail, |m, &x| m.max(x))
}
