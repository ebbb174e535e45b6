//! AQuaSurF's second feature set: the eigenvalue spectrum of a network's empirical Fisher
//! information at initialization, as a fixed-length histogram of log eigenvalues.
//!
//! Given the gradients g_1 .. g_m of the loss on m micro-batches, each flattened over every
//! trainable parameter, the empirical Fisher is F = (1/m) Σ g_i g_iᵀ. Its nonzero eigenvalues
//! are those of the m×m Gram matrix G = (1/m) [g_i · g_j]. So m gradients give the spectrum
//! without forming F, whose side is the parameter count.
//!
//! A network's spectrum is that of its block-diagonal Fisher, one block per parameter tensor
//! (the layer-wise approximation of K-FAC, which AQuaSurF's features also take): the union of
//! every block's m eigenvalues ([`block_eigenvalues`]), so that m gradients give m eigenvalues
//! per tensor, and the histogram has hundreds of values rather than m. Computing a child
//! network's gradients and caching the features is `search::sample::fisher`'s.

use nalgebra::DMatrix;

/// Bins of the histogram: half a decade each.
pub const BINS: usize = 32;
/// The histogram's range of log10 eigenvalues; values outside count in the end bins.
const LOG_LO: f64 = -10.0;
const LOG_HI: f64 = 6.0;

/// The nonzero spectrum of the empirical Fisher of `grads` (the Gram matrix's eigenvalues),
/// largest first. Eigenvalues below zero by rounding count as 0.
pub fn eigenvalues(grads: &[Vec<f32>]) -> Vec<f64> {
    let m = grads.len();
    if m == 0 {
        return Vec::new();
    }
    let gram = DMatrix::from_fn(m, m, |i, j| {
        grads[i].iter().zip(&grads[j]).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / m as f64
    });
    let mut values: Vec<f64> = gram.symmetric_eigenvalues().iter().map(|&v| v.max(0.0)).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    values
}

/// The eigenvalues of the block-diagonal empirical Fisher: `blocks[t][i]` is the gradient of
/// micro-batch i with respect to parameter tensor t; every block's [`eigenvalues`], pooled,
/// largest first.
pub fn block_eigenvalues(blocks: &[Vec<Vec<f32>>]) -> Vec<f64> {
    let mut values: Vec<f64> = blocks.iter().flat_map(|b| eigenvalues(b)).collect();
    values.sort_by(|a, b| b.total_cmp(a));
    values
}

/// The share of `eigenvalues` in each of [`BINS`] equal bins of log10 eigenvalue over
/// [-10, 6): smaller values (zeros included) count in the first bin, larger in the last.
pub fn histogram(eigenvalues: &[f64]) -> Vec<f64> {
    let mut bins = vec![0.0; BINS];
    if eigenvalues.is_empty() {
        return bins;
    }
    let width = (LOG_HI - LOG_LO) / BINS as f64;
    for &v in eigenvalues {
        let at = if v > 0.0 { ((v.log10() - LOG_LO) / width).floor() } else { 0.0 };
        bins[at.clamp(0.0, (BINS - 1) as f64) as usize] += 1.0;
    }
    let n = eigenvalues.len() as f64;
    bins.iter_mut().for_each(|b| *b /= n);
    bins
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Orthogonal gradients give a diagonal Gram matrix: the eigenvalues are their squared
    /// norms over m. Equal gradients give one eigenvalue, their squared norm, and zeros.
    #[test]
    fn the_spectrum_of_known_gradients() {
        let grads = vec![vec![3.0f32, 0.0, 0.0, 0.0], vec![0.0, 2.0, 0.0, 0.0], vec![0.0, 0.0, 0.0, 0.3]];
        let v = eigenvalues(&grads);
        let want = [9.0 / 3.0, 4.0 / 3.0, 0.09 / 3.0];
        assert!(v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-7), "{v:?}");
        let same = vec![vec![1.0f32, 2.0, 2.0]; 4];
        let v = eigenvalues(&same);
        assert!((v[0] - 9.0).abs() < 1e-9 && v[1..].iter().all(|&x| x < 1e-9), "{v:?}");
        assert!(eigenvalues(&[]).is_empty());
        // Two blocks: the orthogonal gradients and the equal ones, pooled.
        let blocks = [grads.clone(), same[..3].to_vec()];
        let v = block_eigenvalues(&blocks);
        assert_eq!(v.len(), 6);
        assert!((v[0] - 9.0).abs() < 1e-6 && (v[1] - 3.0).abs() < 1e-6 && v[5] < 1e-9, "{v:?}");
    }

    #[test]
    fn the_histogram_has_fixed_bins_and_shares() {
        // log10: 0.477 (bin 20), 0.125 (bin 20), -1.52 (bin 16); a zero and a huge value go to
        // the end bins.
        let h = histogram(&[3.0, 4.0 / 3.0, 0.03, 0.0, 1e9]);
        assert_eq!(h.len(), BINS);
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!((h[0], h[16], h[20], h[31]), (0.2, 0.2, 0.4, 0.2));
        assert_eq!(histogram(&[]), vec![0.0; BINS]);
    }
}
