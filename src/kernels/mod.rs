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
