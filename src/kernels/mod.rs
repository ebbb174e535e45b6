//! Evaluating activations on tensors. `reference` composes burn tensor ops (every backend,
//! autodiff for free, the test oracle); the op semantics come from `space::ops`.

pub mod conv;
pub mod fast32;
pub mod fused;
pub mod norm;
pub mod program;
pub mod reference;
mod shifted;

use burn::backend::flex::FlexTensor;
use burn::prelude::Device;

/// Whether tensors on `device` take this crate's CPU kernels (`fused`, `conv`, `norm`); other
/// devices use the reference path or burn's own ops.
pub fn available(device: &Device) -> bool {
    *device == Device::flex()
}

/// A contiguous f32 view of a flex tensor (a shared handle when it already is one).
fn contiguous(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), burn::backend::DType::F32, "the CPU kernels work on f32 tensors");
    t.to_contiguous()
}

/// `n` zeros, written by the rayon threads: `vec![0.0; n]` zeroes (and page-faults) a
/// reused allocation on the calling thread alone, while the other core waits.
fn zeros(n: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(0f32, n));
    v
}
