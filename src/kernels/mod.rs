//! Evaluating activations on tensors. `reference` composes burn tensor ops (every backend,
//! autodiff for free, the test oracle); the op semantics come from `space::ops`.

pub mod conv;
pub mod fast32;
pub mod fused;
pub mod norm;
pub mod program;
pub mod reference;
