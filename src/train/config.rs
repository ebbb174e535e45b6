//! The fully resolved configuration of one training run, written to `config.json`.
//! The cli builds it from flags and presets; nothing here parses argv.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::schedule::{LrRule, Schedule};
use crate::model::{Arch, Mlp, Network};

/// The optimizer of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum (the ResNets' recipes); the schedule steps once per epoch.
    #[default]
    Sgd,
    /// AdamW with betas (0.9, 0.999), decay on the parameters of two or more dimensions (the
    /// transformers' recipes); warm-up and schedule step once per optimizer step.
    Adamw,
}

/// AdamW's betas for a network's recipe: nanoGPT's (0.9, 0.99) for the GPTs, PyTorch's
/// default (0.9, 0.999) for the ViTs.
pub fn adamw_betas(network: Network) -> (f64, f64) {
    match network.arch() {
        Arch::Gpt(_) => super::optimizer::AdamW::GPT_BETAS,
        // Vaswani et al.'s Adam (DESIGN.md).
        Arch::Seq2Seq(_) => (0.9, 0.98),
        _ => super::optimizer::AdamW::DEFAULT_BETAS,
    }
}

/// An AdamW recipe's learning rate for `network`: a linear warm-up over the `warmup` fraction of
/// `steps`, then `schedule` per step, ending at a tenth of `base` for nanoGPT's GPTs and at 0
/// for every other network.
pub fn warmed_lr(network: Network, schedule: Schedule, base: f64, steps: usize, warmup: f64) -> LrRule {
    let floor = match network.arch() {
        Arch::Gpt(_) => 0.1 * base,
        _ => 0.0,
    };
    LrRule { floor, ..LrRule::warmed(schedule, base, steps, warmup) }
}

/// Whether a field is at its default, so config files leave it out (`skip_serializing_if`).
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub network: Network,
    /// What the user passed to `--activation` (a name, a formula or a genotype path).
    pub activation_spec: String,
    /// The canonical formula that is trained.
    pub activation: String,
    /// Where the activation's parameters start (a genotype's init or learned values).
    #[serde(default)]
    pub init_params: crate::space::resolve::InitParams,
    /// `cifar10`, `cifar100` or the image-folder path.
    pub dataset: String,
    pub data_dir: PathBuf,
    /// Passes over the training set (0 for a run counted in `steps`).
    pub epochs: usize,
    /// `--steps`: a budget of optimizer steps instead of epochs (every language model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// `--eval-interval`: with `steps`, evaluate (and checkpoint) every this many steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_interval: Option<usize>,
    /// Training rows per batch: images, or windows of a text (whose length is the network's
    /// context).
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value (none: no clipping).
    pub grad_clip: Option<f64>,
    /// Absent from the config.json of SGD runs, which stay as they were written before.
    #[serde(default, skip_serializing_if = "is_default")]
    pub optimizer: Optimizer,
    /// Linear warm-up of the learning rate over this fraction of the steps (AdamW runs).
    #[serde(default, skip_serializing_if = "is_default")]
    pub warmup: f64,
    /// The MLP blocks of a transformer (`--mlp`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub mlp: Mlp,
    pub augment: bool,
    pub train_portion: f64,
    /// The subsets as used (None: all images); what was asked, where it differs, is in
    /// `requested` (see `Splits::settle`).
    pub subset: Option<usize>,
    pub test_subset: Option<usize>,
    #[serde(flatten)]
    pub requested: crate::data::split::Requested,
    pub seed: u64,
    pub backend: String,
    pub threads: usize,
    pub out: PathBuf,
    /// Dropout after the embeddings, on the attention weights and after every residual branch
    /// of a transformer, where the reference places it (`--dropout`; gpt-mini 0.2, the
    /// translation models 0.1, otherwise 0, which is not written).
    #[serde(default, skip_serializing_if = "is_default")]
    pub dropout: f64,
    /// The translation task's settings; absent for the other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<TranslationConfig>,
    /// `--write-plan`: also write `plan.safetensors` (the data in training order) and
    /// `init.safetensors` (the initial weights) for a twin in another framework. Not part of
    /// the recipe: never written to config.json.
    #[serde(skip)]
    pub write_plan: bool,
}

/// What a translation run adds to the recipe (DESIGN.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranslationConfig {
    /// The languages and test split as read: `--source`, `--target`, `--test-set` or their
    /// defaults (en→de, the first `test_*`).
    pub source: String,
    pub target: String,
    pub test_set: String,
    /// Tokens in the joint BPE vocabulary (`--vocab-size`).
    pub vocab_size: usize,
    /// Hypotheses of the final decoding's beam search (`--beam`); 1 is greedy.
    pub beam: usize,
    pub label_smoothing: f64,
}

impl TranslationConfig {
    /// DESIGN.md's: 8000 tokens, greedy decoding and label smoothing 0.1; the languages and
    /// test set are settled when the folder is read.
    pub const VOCAB_SIZE: usize = 8000;
    pub const LABEL_SMOOTHING: f64 = 0.1;
}

/// Named sets of defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Common CIFAR ResNet practice: batch 128, lr 0.1, momentum 0.9, wd 5e-4, cosine, 200
    /// epochs, all training images for training.
    Standard,
    /// The seed project's eval setup (NASLib's defaults): 100 epochs, batch 64, lr 0.025,
    /// momentum 0.9, wd 3e-4, cosine, gradient-norm clip 5, train portion 0.8.
    Seed,
    /// A run that finishes in minutes on a laptop CPU: 3 epochs on 7000 training and 2000
    /// test images (about 30-40 s for a ResNet-8 on 2 cores, by activation).
    Quick,
}

/// The values a preset supplies when a flag is not given.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub train_portion: f64,
    pub subset: Option<usize>,
    pub test_subset: Option<usize>,
    pub grad_clip: Option<f64>,
    pub optimizer: Optimizer,
    pub warmup: f64,
    /// A step budget instead of epochs (the language models).
    pub steps: Option<usize>,
    pub eval_interval: Option<usize>,
    /// Dropout where the reference places it (gpt-mini's 0.2, the translation models' 0.1).
    pub dropout: f64,
}

impl Preset {
    /// The preset's values for `network`: the ResNets' SGD recipes, or for a ViT DESIGN.md's
    /// recipe (AdamW lr 1e-3, weight decay 0.05, batch 128, 5% warm-up then cosine per step,
    /// gradient norm clipped at 1). The seed preset is the seed project's ResNet recipe only.
    ///
    /// A GPT's is nanoGPT's shakespeare_char recipe (DESIGN.md): AdamW lr 1e-3 with betas
    /// (0.9, 0.99) and weight decay 0.1, gradient norm clipped at 1, warm-up over 100 steps,
    /// then cosine to 1e-4; gpt-micro in batches of 12 windows for 2000 steps, gpt-mini of 64
    /// for 5000, evaluated every 250 steps. The quick preset trains 500 steps, evaluated every
    /// 100.
    ///
    /// A translation model's is DESIGN.md's: Adam (betas (0.9, 0.98), no weight decay) at lr
    /// 5e-4 with a 5% warm-up, then cosine to 0, batches of 64 pairs, no clipping;
    /// transformer-micro for 3000 steps, transformer-small for 20000, evaluated every 500. The
    /// quick preset trains 300 steps, evaluated every 100.
    pub fn defaults_for(self, network: Network) -> anyhow::Result<Defaults> {
        if let Arch::Seq2Seq(size) = network.arch() {
            let steps = match size {
                crate::model::Seq2SeqSize::TransformerMicro => 3000,
                crate::model::Seq2SeqSize::TransformerSmall => 20000,
            };
            let translation = Defaults {
                epochs: 0,
                batch_size: 64,
                lr: 5e-4,
                momentum: 0.0,
                weight_decay: 0.0,
                schedule: Schedule::Cosine,
                train_portion: 1.0,
                subset: None,
                test_subset: None,
                grad_clip: None,
                optimizer: Optimizer::Adamw,
                warmup: 0.05,
                steps: Some(steps),
                eval_interval: Some(500),
                dropout: 0.1,
            };
            return match self {
                Preset::Standard => Ok(translation),
                Preset::Quick => Ok(Defaults { steps: Some(300), eval_interval: Some(100), ..translation }),
                Preset::Seed => anyhow::bail!(
                    "--preset seed is the seed project's ResNet recipe; {} trains with --preset standard or quick",
                    network.name()
                ),
            };
        }
        if let Arch::Gpt(size) = network.arch() {
            let (batch_size, steps, dropout) = match size {
                crate::model::GptSize::GptMicro => (12, 2000, 0.0),
                crate::model::GptSize::GptMini => (64, 5000, 0.2),
            };
            let gpt = Defaults {
                epochs: 0,
                batch_size,
                lr: 1e-3,
                momentum: 0.0,
                weight_decay: 0.1,
                schedule: Schedule::Cosine,
                train_portion: 1.0,
                subset: None,
                test_subset: None,
                grad_clip: Some(1.0),
                optimizer: Optimizer::Adamw,
                // nanoGPT's 100 warm-up steps.
                warmup: 100.0 / steps as f64,
                steps: Some(steps),
                eval_interval: Some(250),
                dropout,
            };
            return match self {
                Preset::Standard => Ok(gpt),
                Preset::Quick => Ok(Defaults { steps: Some(500), eval_interval: Some(100), warmup: 0.05, ..gpt }),
                Preset::Seed => anyhow::bail!(
                    "--preset seed is the seed project's ResNet recipe; {} trains with --preset standard or quick",
                    network.name()
                ),
            };
        }
        if let Arch::Vit(_) = network.arch() {
            let vit = Defaults {
                lr: 1e-3,
                momentum: 0.0,
                weight_decay: 0.05,
                grad_clip: Some(1.0),
                optimizer: Optimizer::Adamw,
                warmup: 0.05,
                ..Preset::Standard.defaults()
            };
            return match self {
                Preset::Standard => Ok(vit),
                Preset::Quick => Ok(Defaults { epochs: 3, subset: Some(7000), test_subset: Some(2000), ..vit }),
                Preset::Seed => anyhow::bail!(
                    "--preset seed is the seed project's ResNet recipe; {} trains with --preset standard or quick",
                    network.name()
                ),
            };
        }
        Ok(self.defaults())
    }

    /// The ResNets' values.
    pub fn defaults(self) -> Defaults {
        let standard = Defaults {
            epochs: 200,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: Schedule::Cosine,
            train_portion: 1.0,
            subset: None,
            test_subset: None,
            grad_clip: None,
            optimizer: Optimizer::Sgd,
            warmup: 0.0,
            steps: None,
            eval_interval: None,
            dropout: 0.0,
        };
        match self {
            Preset::Standard => standard,
            Preset::Seed => Defaults {
                epochs: 100,
                batch_size: 64,
                lr: 0.025,
                weight_decay: 3e-4,
                train_portion: 0.8,
                grad_clip: Some(5.0),
                ..standard
            },
            Preset::Quick => Defaults { epochs: 3, subset: Some(7000), test_subset: Some(2000), ..standard },
        }
    }
}

/// The largest count (epochs, steps, batch size, images, budget) any command accepts: beyond
/// it a run could not finish anyway, and a count of 10^12 must be refused before anything is
/// sized by it.
pub const MAX_COUNT: usize = 1_000_000_000;

/// The numbers of one training recipe, checked the same way wherever they were given: eval's
/// and the searches' flags, or the fields of a child's spec (`search::sample::child`).
pub struct RecipeNumbers {
    /// `("epochs", n)` or `("steps", n)`.
    pub length: (&'static str, usize),
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub grad_clip: Option<f64>,
    pub warmup: f64,
    pub train_portion: f64,
    /// The rest of the training set must be a validation split (searches and children).
    pub needs_validation: bool,
    /// The network has BatchNorm (a ResNet), which cannot train on a batch of one image.
    pub batch_norm: bool,
    pub subset: Option<usize>,
    pub test_subset: Option<usize>,
}

impl RecipeNumbers {
    /// The first number out of range, as one error line; `name(field)` is how the user wrote
    /// the field (`--batch-size`, or `"batch_size" in spec.json`), from its flag name.
    pub fn check(&self, name: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
        use anyhow::bail;
        let counts = [
            (self.length.0, Some(self.length.1)),
            ("batch-size", Some(self.batch_size)),
            ("subset", self.subset),
            ("test-subset", self.test_subset),
        ];
        for (field, value) in counts {
            match value {
                Some(0) => bail!("{} must be at least 1", name(field)),
                Some(n) if n > MAX_COUNT => bail!("{} must be at most {MAX_COUNT} (10^9), got {n}", name(field)),
                _ => {}
            }
        }
        if self.batch_norm && self.batch_size < 2 {
            bail!("{} must be at least 2 (BatchNorm needs two images to train)", name("batch-size"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("{} must be a positive number, got {}", name("lr"), self.lr);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("{} must be in [0, 1), got {}", name("momentum"), self.momentum);
        }
        if self.nesterov && self.momentum == 0.0 {
            bail!("{} needs a non-zero {}", name("nesterov"), name("momentum"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            bail!("{} must be zero or positive, got {}", name("weight-decay"), self.weight_decay);
        }
        if let Some(clip) = self.grad_clip
            && !(clip > 0.0 && clip.is_finite())
        {
            bail!("{} must be a positive number, got {clip}", name("grad-clip"));
        }
        if !(0.0..1.0).contains(&self.warmup) {
            bail!("{} must be in [0, 1) (a fraction of the steps), got {}", name("warmup"), self.warmup);
        }
        match self.needs_validation {
            true if !(self.train_portion > 0.0 && self.train_portion < 1.0) => bail!(
                "{} must be in (0, 1): the rest of the training set is the validation split, got {}",
                name("train-portion"),
                self.train_portion
            ),
            false if !(self.train_portion > 0.0 && self.train_portion <= 1.0) => {
                bail!("{} must be in (0, 1], got {}", name("train-portion"), self.train_portion)
            }
            _ => Ok(()),
        }
    }
}

impl TrainConfig {
    /// How the run cuts its image dataset.
    pub fn split(&self) -> crate::data::SplitConfig {
        crate::data::SplitConfig {
            train_portion: self.train_portion,
            subset: self.subset,
            test_subset: self.test_subset,
            seed: self.seed,
        }
    }

    /// How long the run trains, in words: `2000 steps` or `3 epochs`.
    pub fn length(&self) -> String {
        match self.steps {
            Some(steps) => format!("{steps} steps"),
            None => format!("{} epochs", self.epochs),
        }
    }

    /// This config's recipe numbers ([`RecipeNumbers::check`]).
    pub fn numbers(&self) -> RecipeNumbers {
        RecipeNumbers {
            length: match self.steps {
                Some(steps) => ("steps", steps),
                None => ("epochs", self.epochs),
            },
            batch_size: self.batch_size,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            grad_clip: self.grad_clip,
            warmup: self.warmup,
            train_portion: self.train_portion,
            needs_validation: false,
            batch_norm: self.network.is_resnet(),
            subset: self.subset,
            test_subset: self.test_subset,
        }
    }
}
