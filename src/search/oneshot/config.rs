//! The resolved configuration of a one-shot search, written to `config.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::expr::Formula;
use crate::expr::named::resolve;
use crate::model::{Mlp, Network};
use crate::train::config::{Optimizer, is_default};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// `darts`, `darts2`, `gdas`, `drnas` or `grafs` (see `search::oneshot::mixing`).
    pub method: String,
    /// `small`, `huge`, `grafs` or a cell file path.
    pub space: String,
    pub network: Network,
    pub dataset: String,
    pub data_dir: PathBuf,
    /// Epochs of an image search (0 for a language model's, which counts `steps`).
    pub epochs: usize,
    /// A language model's search: optimizer steps (`--steps`), evaluated, checkpointed and
    /// phased every `eval_interval` steps. Absent for the image searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_interval: Option<usize>,
    pub batch_size: usize,
    /// Weights: SGD, cosine from `lr` to `lr_min` per epoch, momentum, weight decay,
    /// gradient-norm clip (the ResNets); or AdamW with a linear warm-up over the first
    /// `warmup` of the steps then cosine to 0 per step (the transformers' recipe).
    pub lr: f64,
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub grad_clip: f64,
    /// The weights' optimizer. Not written for SGD, so older runs resume unchanged.
    #[serde(default, skip_serializing_if = "is_default")]
    pub optimizer: Optimizer,
    #[serde(default, skip_serializing_if = "is_default")]
    pub warmup: f64,
    /// The MLP blocks of a transformer (`--mlp`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub mlp: Mlp,
    /// A GPT's or translation model's dropout (see `TrainConfig::dropout`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub dropout: f64,
    /// A translation model's data and loss (the languages and test split as read, the
    /// vocabulary's size, label smoothing); absent for the other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<crate::train::config::TranslationConfig>,
    /// Architecture: Adam with these settings.
    pub arch_lr: f64,
    pub arch_betas: (f64, f64),
    pub arch_weight_decay: f64,
    /// Scale of DrNAS' KL term towards Dirichlet(1) (drnas, grafs; 0 turns it off).
    pub kl_scale: f64,
    /// One set of alphas for every site (GRAFS) instead of one per site (the seed's setting).
    pub shared_cell: bool,
    /// `--warm-start N`: the first N epochs train the weights with ReLU at every site while
    /// the alphas learn on the mixed cell. Absent: the method's own (1 for grafs, 0 for the
    /// rest), so configs written before the flag existed resume unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<usize>,
    /// `--warm-start-with NAME`: the function of the warm-start epochs. Absent: the network's
    /// own (see [`SearchConfig::warm_start_function`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start_with: Option<String>,
    /// Batches whose gradients are averaged into one optimizer step.
    pub accumulate: usize,
    /// Fraction of the training images that train the weights; the rest trains the alphas.
    pub train_portion: f64,
    pub subset: Option<usize>,
    /// `--test-subset`: when given, the supernet is also scored on this many test images
    /// after every epoch (the last is the final supernet's test accuracy); otherwise the test
    /// split is not used. Not written when absent, so older runs resume unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_subset: Option<usize>,
    /// The subsets asked for, where they differ from those used (see `Splits::settle`).
    #[serde(flatten)]
    pub requested: crate::data::split::Requested,
    pub augment: bool,
    pub seed: u64,
    pub backend: String,
    pub threads: usize,
    pub out: PathBuf,
}

impl SearchConfig {
    /// The search's evaluation intervals ("phases"): its epochs, or for a language model its
    /// steps in intervals of `eval_interval`. The warm start, GDAS' temperature and GRAFS'
    /// shrinking count in them.
    pub fn phases(&self) -> usize {
        match self.span_steps() {
            (_, 0) => self.epochs,
            (steps, interval) => steps.div_ceil(interval),
        }
    }

    /// `(steps, eval_interval)` of a language model's search; `(0, 0)` for an image search.
    pub fn span_steps(&self) -> (usize, usize) {
        match self.steps {
            Some(steps) => (steps, self.eval_interval.unwrap_or(steps.div_ceil(10)).max(1)),
            None => (0, 0),
        }
    }

    /// Phase `phase` (0-based) in the log's words: "epoch 3", or "steps 501-750".
    pub fn phase_name(&self, phase: usize) -> String {
        match self.span_steps() {
            (_, 0) => format!("epoch {}", phase + 1),
            (steps, interval) => format!("steps {}-{}", phase * interval + 1, ((phase + 1) * interval).min(steps)),
        }
    }

    /// Epochs of ReLU warm start: `--warm-start`, or GRAFS' one epoch for grafs and none for
    /// the other methods.
    pub fn warm_start_epochs(&self) -> usize {
        self.warm_start.unwrap_or(if self.method == "grafs" { 1 } else { 0 })
    }

    /// The function the weights train with during the warm start: `--warm-start-with`, or the
    /// network's own (GRAFS' `--comp`): `relu` for the ResNets, `gelu` for the transformers.
    pub fn warm_start_function(&self) -> &str {
        match &self.warm_start_with {
            Some(name) => name,
            None => self.network.usual_activation(),
        }
    }

    /// [`SearchConfig::warm_start_function`] parsed; an error names the problem.
    pub fn warm_start_formula(&self) -> anyhow::Result<Formula> {
        let name = self.warm_start_function();
        match resolve(name) {
            Ok(f) if f.num_params() == 0 && f.uses_x() => Ok(f),
            Ok(_) => anyhow::bail!(
                "--warm-start-with '{name}' has parameters or no x: the warm start needs a fixed function of x, such as relu, gelu or silu"
            ),
            Err(e) => anyhow::bail!(
                "--warm-start-with '{name}' is not a function ({e}); name one such as relu, gelu or silu (see `actsearch functions`)"
            ),
        }
    }
}

/// Named sets of defaults for `actsearch search`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchPreset {
    /// The seed project's search: ResNet-8, batch 64, 100 epochs, lr 0.025 (DARTS defaults:
    /// cosine to 0.001, momentum 0.9, wd 3e-4, clip 5; arch Adam 3e-4, betas (0.5, 0.999),
    /// wd 1e-3), 50/50 train/valid, per-site alphas.
    Seed,
    /// GRAFS (Strack et al. 2024): ResNet-20, batch 64 with 2 accumulation steps, 75/25
    /// train/valid, 50 epochs, arch Adam lr 6e-4, weights SGD lr 0.1 wd 1e-4, shared cell.
    Grafs,
    /// Minutes on a CPU: GRAFS' optimizer settings (lr 0.1, wd 1e-4, arch lr 6e-4, shared
    /// cell) on the seed's ResNet-8, batch 64 and 50/50 split, for 6 epochs on 10000 training
    /// images.
    Quick,
}

/// What a preset sets; explicit flags override each field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PresetDefaults {
    pub network: Network,
    pub epochs: usize,
    pub batch_size: usize,
    pub accumulate: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub arch_lr: f64,
    pub train_portion: f64,
    pub subset: Option<usize>,
    pub shared_cell: bool,
}

impl SearchPreset {
    pub fn defaults(self) -> PresetDefaults {
        let seed = PresetDefaults {
            network: Network::Resnet8,
            epochs: 100,
            batch_size: 64,
            accumulate: 1,
            lr: 0.025,
            weight_decay: 3e-4,
            arch_lr: 3e-4,
            train_portion: 0.5,
            subset: None,
            shared_cell: false,
        };
        match self {
            SearchPreset::Seed => seed,
            SearchPreset::Grafs => PresetDefaults {
                network: Network::Resnet20,
                epochs: 50,
                accumulate: 2,
                lr: 0.1,
                weight_decay: 1e-4,
                arch_lr: 6e-4,
                train_portion: 0.75,
                shared_cell: true,
                ..seed
            },
            SearchPreset::Quick => PresetDefaults {
                epochs: 6,
                subset: Some(10000),
                lr: 0.1,
                weight_decay: 1e-4,
                arch_lr: 6e-4,
                shared_cell: true,
                ..seed
            },
        }
    }
}
