//! The resolved configuration of a one-shot search, written to `config.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::Network;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// `darts` (first-order DARTS).
    pub method: String,
    /// `small`, `huge`, `grafs` or a cell file path.
    pub space: String,
    pub network: Network,
    pub dataset: String,
    pub data_dir: PathBuf,
    pub epochs: usize,
    pub batch_size: usize,
    /// Weights: SGD, cosine from `lr` to `lr_min`, momentum, weight decay, gradient-norm clip.
    pub lr: f64,
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub grad_clip: f64,
    /// Architecture: Adam with these settings.
    pub arch_lr: f64,
    pub arch_betas: (f64, f64),
    pub arch_weight_decay: f64,
    /// Fraction of the training images that train the weights; the rest trains the alphas.
    pub train_portion: f64,
    pub subset: Option<usize>,
    pub augment: bool,
    pub seed: u64,
    pub backend: String,
    pub threads: usize,
    pub out: PathBuf,
}

/// Named sets of defaults for `actsearch search`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchPreset {
    /// The seed project's search: ResNet-8, batch 64, 100 epochs, lr 0.025 (DARTS defaults:
    /// cosine to 0.001, momentum 0.9, wd 3e-4, clip 5; arch Adam 3e-4, betas (0.5, 0.999),
    /// wd 1e-3), 50/50 train/valid.
    Seed,
    /// Minutes on a CPU: the seed recipe for 2 epochs on 5000 training images.
    Quick,
}

impl SearchPreset {
    /// (epochs, batch size, lr, subset)
    pub fn defaults(self) -> (usize, usize, f64, Option<usize>) {
        match self {
            SearchPreset::Seed => (100, 64, 0.025, None),
            SearchPreset::Quick => (2, 64, 0.025, Some(5000)),
        }
    }
}
