//! One-shot search: the activation sites of a ResNet become mixed cells whose mixing logits
//! (alphas) are trained on validation batches while the weights train on training batches;
//! the result is discretized into a formula (`genotype.json`).

pub mod config;
pub mod darts;
pub mod record;

pub use config::SearchConfig;
pub use darts::{SearchOutcome, search};
