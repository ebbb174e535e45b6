//! One-shot search: the activation sites of a network (a ResNet, a ViT's MLPs, a GPT's MLPs)
//! become mixed cells whose mixing logits (alphas) are trained on held-out batches while the
//! weights train on training batches (`task` says which, per task);
//! the result is discretized into a formula (`genotype.json`). Methods: DARTS (first and
//! second order), GDAS, DrNAS and GRAFS (`mixing` says how each one mixes); `seeds` runs
//! one search per seed and says whether they agree.

pub mod config;
pub mod dirichlet;
pub mod mixing;
pub mod record;
pub mod run;
pub mod seeds;
pub mod shrink;
pub mod task;
pub mod unrolled;

pub use config::SearchConfig;
pub use mixing::Method;
pub use run::{SearchOutcome, search};
