//! actsearch: discover neural-network activation functions and prove whether they help.
//!
//! The crate reads top-down along the pipeline of `DESIGN.md`:
//! `expr` (formulas) → `space` (op tables) → `model` (CIFAR ResNets) → `kernels`
//! (tensor evaluation of activations) → `data` (datasets and batches) → `train` (the one
//! training loop) → `cli` (the only module that knows about argv and prints).

pub mod bench;
pub mod cli;
pub mod data;
pub mod exec;
pub mod export;
pub mod expr;
pub mod files;
pub mod kernels;
pub mod model;
pub mod observer;
pub mod report;
pub mod search;
pub mod space;
pub mod train;
