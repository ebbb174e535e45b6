//! One child of a sample-based search: a small JSON spec in, a result file out.
//!
//! A child trains a fresh network with the proposed activation for a fixed number of steps
//! (a ResNet with SGD: cosine learning rate per step, momentum, weight decay; a ViT with the
//! ViT recipe: AdamW, warm-up then cosine per step, clipping; full batches, the loader's
//! epochs following one another) on the training split, through the one training loop
//! (`train::driver`), and scores it on the held-out validation split: its accuracy for an
//! image network (the reward, a fraction in [0, 1]), its negated validation loss for a
//! language model (a GPT, with nanoGPT's recipe; the reward is in [-ln(vocabulary), 0]). A
//! child that fails, diverges or is rejected gets the task's floor
//! ([`ChildRecipe::reward_floor`]: 0, or the loss of a uniform guess negated). Every
//! child of a search gets the same seed, so the same data order and the same initial weights
//! (common random numbers): rewards differ because the functions do, not by luck.
//!
//! `actsearch child SPEC.json` runs [`train_child`] and writes the result atomically next to
//! the spec ([`result_path`]); executors only move these two files, and the result file is
//! the source of truth that a controller collects (also after it was restarted).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

use crate::data::parallel::ParallelCorpus;
use crate::data::text::CharCorpus;
use crate::data::{self, DatasetSpec, SplitConfig, Splits};
use crate::expr::Formula;
use crate::files::write_atomic;
use crate::model::{Activation, Arch, Gpt, Mlp, Net, Network, ResNet, Seq2Seq, Vit};
use crate::observer::Observer;
use crate::train::batches::ImageBatches;
use crate::train::config::{Optimizer, RecipeNumbers, adamw_betas, is_default, warmed_lr};
use crate::train::driver::{self, Batches, Diverged, Job, Span};
use crate::train::history::History;
use crate::train::optimizer::{AdamW, Optim};
use crate::train::run_dir::RunLog;
use crate::train::schedule::{LrRule, Per, Schedule};
use crate::train::sgd::{Sgd, SgdConfig};
use crate::train::steps::{ImageSplits, Supervised, WeightSteps, trainable_params};
use crate::train::text::{TextBatches, TextSplits};
use crate::train::translate::{PairBatches, Prepared, TranslationSplits, open_corpus, score_bleu};
use crate::train::update::Group;

/// What to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildSpec {
    /// The child's number in the search (its row in `search.db`).
    pub id: usize,
    /// The sequence that proposed it (for the reader: the formula is what trains).
    pub tokens: String,
    /// The canonical formula, and the initial value of each parameter slot.
    pub formula: String,
    pub init: Vec<f64>,
    /// How it trains: the same for every child of a search.
    #[serde(flatten)]
    pub recipe: ChildRecipe,
    /// `cifar10`, `cifar100` or an image folder (as `eval --dataset`).
    pub dataset: String,
    pub data_dir: PathBuf,
    /// Data order and initial weights: the same for every child of a search.
    pub seed: u64,
    pub threads: usize,
    pub backend: String,
    /// With `--fidelity halving`: the rung this spec trains the child to. The spec then lies in
    /// `children/ID/rungK/` and the child trains in `children/ID/`, from the checkpoint of the
    /// rung below (none for rung 0), under the learning-rate schedule of all `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rung: Option<RungSpec>,
}

/// The rung a child trains to: its index (0 is the lowest) and its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RungSpec {
    pub index: usize,
    pub steps: usize,
}

impl ChildSpec {
    /// The folder the child trains in, given where its spec lies: the spec's own, or for a
    /// rung's spec (`children/ID/rungK/spec.json`) the child's folder above it, which every
    /// rung shares.
    pub fn training_folder(&self, spec_path: &Path) -> PathBuf {
        let folder = spec_path.parent().unwrap_or(Path::new("."));
        match self.rung {
            Some(_) => folder.parent().unwrap_or(Path::new(".")).to_path_buf(),
            None => folder.to_path_buf(),
        }
    }

    /// The steps this spec trains the child to.
    pub fn stop_at(&self) -> usize {
        self.rung.map_or(self.recipe.steps, |r| r.steps)
    }
}

/// How each child trains (the same for every child of a search). The transformers' fields
/// are not written at their defaults (SGD, no warm-up, no clipping, standard MLPs), so the
/// specs and configs of ResNet searches are unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildRecipe {
    pub network: Network,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub augment: bool,
    /// The subset as used (None: all images); the one asked for, where it differs, is in
    /// `requested` (see `Splits::settle`).
    pub subset: Option<usize>,
    #[serde(flatten)]
    pub requested: crate::data::split::Requested,
    pub train_portion: f64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub optimizer: Optimizer,
    /// Linear warm-up over this fraction of the steps (AdamW).
    #[serde(default, skip_serializing_if = "is_default")]
    pub warmup: f64,
    /// Clip the global gradient norm to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mlp: Mlp,
    /// The reward of a child that failed, diverged or was rejected: the task's worst, 0 for
    /// an accuracy, -ln(vocabulary) for a language model (the loss of a uniform guess, negated).
    /// A reward is in [floor, 1] for an accuracy and [floor, 0] for a negated loss.
    #[serde(default, skip_serializing_if = "is_default")]
    pub reward_floor: f64,
    /// A GPT's or translation model's dropout.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dropout: f64,
    /// A translation child's data and loss; absent for the other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<crate::train::config::TranslationConfig>,
}

impl ChildRecipe {
    /// Where a reward of this recipe's task may lie.
    pub fn reward_range(&self) -> (f64, f64) {
        match self.reward_floor < 0.0 {
            true => (self.reward_floor, 0.0),
            false => (0.0, 1.0),
        }
    }

    /// The recipe's numbers, checked as eval's ([`RecipeNumbers::check`]).
    pub fn numbers(&self) -> RecipeNumbers {
        RecipeNumbers {
            length: ("steps", self.steps),
            batch_size: self.batch_size,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: false,
            weight_decay: self.weight_decay,
            grad_clip: self.grad_clip,
            warmup: self.warmup,
            train_portion: self.train_portion,
            needs_validation: true,
            batch_norm: self.network.is_resnet(),
            subset: self.subset,
            test_subset: None,
        }
    }
}

#[cfg(test)]
impl ChildRecipe {
    /// A recipe for tests: ResNet-8 for 1 step on batches of 2, SGD, no augmentation.
    pub fn test_resnet8() -> ChildRecipe {
        ChildRecipe {
            network: Network::Resnet8,
            steps: 1,
            batch_size: 2,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            augment: false,
            subset: None,
            requested: Default::default(),
            train_portion: 0.8,
            optimizer: Default::default(),
            warmup: 0.0,
            grad_clip: None,
            mlp: Default::default(),
            reward_floor: 0.0,
            dropout: 0.0,
            translation: None,
        }
    }
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Trained; the reward is its validation accuracy (or negated validation loss).
    Ok,
    /// The loss stopped being finite; the task's floor.
    Diverged,
    /// Not trained: the function is constant, not finite or flat (see `screen`); the floor.
    Rejected,
    /// The child process failed (crashed, killed, bad spec); the floor.
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
        }
    }

    pub fn from_name(name: &str) -> Option<Status> {
        [Status::Ok, Status::Diverged, Status::Rejected, Status::Failed].into_iter().find(|s| s.name() == name)
    }
}

/// What a child reports back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildResult {
    pub id: usize,
    /// Validation accuracy in [0, 1], or a language model's negated validation loss; the
    /// task's floor unless the status is `ok`.
    pub reward: f64,
    /// Mean training loss over the last steps (none when no step ran or the loss was not
    /// finite).
    pub train_loss: Option<f64>,
    pub seconds: f64,
    pub status: Status,
    /// Why it diverged or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ChildResult {
    /// A child that did not produce a result of its own: its task's `floor`.
    pub fn failed(id: usize, error: String, seconds: f64, floor: f64) -> ChildResult {
        ChildResult { id, reward: floor, train_loss: None, seconds, status: Status::Failed, error: Some(error) }
    }
}

/// Where the result of the spec at `spec_path` goes: `result.json` beside it.
pub fn result_path(spec_path: &Path) -> PathBuf {
    spec_path.with_file_name("result.json")
}

/// Writes `spec` to `path` (atomically).
pub fn write_spec(path: &Path, spec: &ChildSpec) -> Result<()> {
    write_atomic(path, serde_json::to_string_pretty(spec)?.as_bytes())
}

/// The spec at `path`, its recipe checked as eval checks its flags ([`RecipeNumbers::check`]).
pub fn read_spec(path: &Path) -> Result<ChildSpec> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read child spec {}", path.display()))?;
    let spec: ChildSpec =
        serde_json::from_str(&text).with_context(|| format!("{} is not a child spec", path.display()))?;
    let field = |flag: &str| format!("\"{}\" in {}", flag.replace('-', "_"), path.display());
    spec.recipe.numbers().check(&field)?;
    if let Some(r) = spec.rung
        && !(1..=spec.recipe.steps).contains(&r.steps)
    {
        bail!("{} is {}: give a step count from 1 to \"steps\" ({})", field("rung"), r.steps, spec.recipe.steps);
    }
    let formula = Formula::parse(&spec.formula).map_err(|e| anyhow::anyhow!("{}: {e}", field("formula")))?;
    if spec.init.len() != formula.num_params() {
        bail!(
            "{} has {} values for the {} parameters of {}; give one per parameter",
            field("init"),
            spec.init.len(),
            formula.num_params(),
            spec.formula
        );
    }
    Ok(spec)
}

/// Writes `result` to `path` (atomically), with a `checksum` of its other fields that
/// [`read_result`] verifies.
pub fn write_result(path: &Path, result: &ChildResult) -> Result<()> {
    let mut value = serde_json::to_value(result)?;
    let sum = crate::files::Checksum::of(serde_json::to_string(&value)?.as_bytes());
    value["checksum"] = sum.into();
    write_atomic(path, serde_json::to_string_pretty(&value)?.as_bytes())
}

/// Child `id`'s result at `path`, or None while there is none (a half-written one is never
/// seen: the file appears by rename). A file that is not that child's result as
/// [`write_result`] wrote it (another id, a checksum that does not match, a reward outside
/// the task's range (`recipe.reward_range()`), a child that did not train above the floor, or
/// a negative time) is refused, with its path and the fix.
pub fn read_result(path: &Path, id: usize, recipe: &ChildRecipe) -> Result<Option<ChildResult>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let refuse = |why: String| {
        anyhow::anyhow!(
            "{} is not child {id}'s result: {why}; delete it, and the child is trained again",
            path.display()
        )
    };
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| refuse(format!("not JSON ({e})")))?;
    let sum = value.as_object_mut().and_then(|o| o.remove("checksum"));
    let r: ChildResult = serde_json::from_value(value.clone()).map_err(|e| refuse(format!("{e}")))?;
    match sum.as_ref().and_then(|s| s.as_str()) {
        Some(s) if s == crate::files::Checksum::of(serde_json::to_string(&value)?.as_bytes()) => {}
        Some(_) => return Err(refuse("its checksum does not match its contents".into())),
        None => return Err(refuse("it has no checksum (an actsearch child writes one)".into())),
    }
    let (low, high) = recipe.reward_range();
    let problem = if r.id != id {
        Some(format!("it says child {}", r.id))
    } else if !(r.reward.is_finite() && (low..=high).contains(&r.reward)) {
        Some(match low < 0.0 {
            true => format!("its reward {} is not a negated validation loss in [{low:.4}, 0]", r.reward),
            false => format!("its reward {} is not a validation accuracy in [0, 1]", r.reward),
        })
    } else if r.status != Status::Ok && r.reward != recipe.reward_floor {
        Some(format!("a {} child has reward {}, not {}", r.status.name(), recipe.reward_floor, r.reward))
    } else if !(r.seconds.is_finite() && r.seconds >= 0.0) {
        Some(format!("its time {} s is not a duration", r.seconds))
    } else if r.train_loss.is_some_and(|l| !l.is_finite()) {
        Some("its training loss is not finite".into())
    } else {
        None
    };
    match problem {
        Some(why) => Err(refuse(why)),
        None => Ok(Some(r)),
    }
}

/// The data a child trains on (and is scored on: the validation split).
pub enum ChildData {
    Images(Box<Splits>),
    Text(Arc<CharCorpus>),
    Parallel(Box<ParallelCorpus>),
}

impl ChildData {
    /// The reward of a child that did not train on this data: 0 for an accuracy, the negated
    /// loss of a uniform guess over a text's vocabulary.
    pub fn reward_floor(&self) -> f64 {
        match self {
            ChildData::Images(_) | ChildData::Parallel(_) => 0.0,
            ChildData::Text(corpus) => -(corpus.vocab_size() as f64).ln(),
        }
    }
}

/// The data a child of `recipe` trains on. The controller makes the same call once up front,
/// so a bad dataset fails before any child.
pub fn load_data(
    recipe: &ChildRecipe,
    dataset: &str,
    data_dir: &Path,
    seed: u64,
    obs: &dyn Observer,
) -> Result<ChildData> {
    match recipe.network.arch() {
        Arch::Gpt(size) => return Ok(ChildData::Text(Arc::new(CharCorpus::open(dataset, size)?))),
        Arch::Seq2Seq(_) => {
            let corpus = open_corpus(dataset, recipe.network.name(), recipe.translation.as_ref())?;
            return Ok(ChildData::Parallel(Box::new(corpus)));
        }
        Arch::ResNet { .. } | Arch::Vit(_) => {}
    }
    let split = SplitConfig { train_portion: recipe.train_portion, subset: recipe.subset, test_subset: Some(1), seed };
    Ok(ChildData::Images(Box::new(data::load_splits(&DatasetSpec::parse(dataset)?, data_dir, &split, obs)?)))
}

/// Trains the child `spec` on `device` through the one training loop, in its folder `dir`
/// (`log.log`, `errors.json`, and `checkpoint.safetensors` at the end of its steps, which a
/// later rung can resume). `spec` is as [`read_spec`] checked it. A divergence is a result
/// (status `diverged`), not an error; errors are bad formulas or unreadable data.
pub fn train_child(spec: &ChildSpec, dir: &Path, device: &Device, obs: &dyn Observer) -> Result<ChildResult> {
    let start = Instant::now();
    let data = load_data(&spec.recipe, &spec.dataset, &spec.data_dir, spec.seed, obs)?;
    let train = Train { spec, dir, device, start, obs };
    with_child_net(spec, data, spec.recipe.batch_size, device, train)
}

/// What is done with a child's network once [`with_child_net`] has built it, with its task.
pub trait ChildUse {
    type Out;
    /// Uses `model`, untrained, with its task's training `batches`, held-out `splits` and the
    /// log's first line; `score`, where given, is the task's reward of the trained model
    /// (a translation model's validation BLEU as a fraction).
    fn apply<N, B, D>(self, model: N, task: (B, D, String), score: Option<Scorer<'_, N>>) -> Result<Self::Out>
    where
        N: Net,
        D: Supervised<N>,
        B: Batches<Batch = D::Batch>;
}

/// How a task scores a trained model, where its validation metric is not the reward.
pub type Scorer<'a, N> = Box<dyn FnOnce(&N, &mut RunLog) -> Result<Option<f64>> + 'a>;

/// Builds the network of `spec`'s recipe with `spec`'s function at every site, as a child
/// starts it (seeded by `spec.seed`), its training batches of `batch_size` from `data` and its
/// held-out splits, and hands them to `use_`: the one place a child's network is made.
pub fn with_child_net<U: ChildUse>(
    spec: &ChildSpec,
    data: ChildData,
    batch_size: usize,
    device: &Device,
    use_: U,
) -> Result<U::Out> {
    // read_spec checked the formula and its initial values.
    let formula = Formula::parse(&spec.formula).map_err(|e| anyhow::anyhow!("child {}: {e}", spec.id))?;
    let train_device = device.clone().autodiff();
    let site = |width: usize| Activation::with_init(&formula, &spec.init, width, &train_device);
    let recipe = &spec.recipe;
    let splits = match data {
        ChildData::Text(corpus) => {
            let Arch::Gpt(size) = recipe.network.arch() else { bail!("child {}: text for an image network", spec.id) };
            let len = size.shape().block;
            let model = Gpt::with_sites(size, recipe.mlp, corpus.vocab_size(), spec.seed, &train_device, site);
            let batches = TextBatches { corpus: corpus.clone(), rows: batch_size, len, seed: spec.seed };
            let intro = intro(spec, corpus.train.len(), corpus.valid.len(), "characters");
            let splits = TextSplits { corpus, len, eval_rows: EVAL_BATCH, device: device.clone() };
            let model = model.with_dropout(recipe.dropout);
            return use_.apply(model, (batches, splits, intro), None);
        }
        ChildData::Parallel(corpus) => return with_translation_net(spec, &corpus, site, batch_size, device, use_),
        ChildData::Images(splits) => *splits,
    };
    let train_set = Arc::new(splits.train);
    let batches = ImageBatches {
        set: train_set.clone(),
        norm: splits.norm,
        batch_size,
        augment: recipe.augment,
        seed: spec.seed,
    };
    if batches.len(true) == 0 {
        bail!("child {}: {} training images are fewer than one batch of {}", spec.id, train_set.len(), batch_size);
    }
    let Some(valid) = splits.valid.map(Arc::new) else { bail!("child {}: the validation split is empty", spec.id) };
    let intro = intro(spec, batches.examples(), valid.len(), "images");
    let eval = ImageSplits {
        valid: Some(valid),
        test: None,
        norm: splits.norm,
        eval_batch: EVAL_BATCH,
        device: device.clone(),
    };
    let task = (batches, eval, intro);
    match recipe.network.arch() {
        Arch::Vit(size) => {
            let model = Vit::with_sites(size, recipe.mlp, splits.num_classes, spec.seed, &train_device, site);
            use_.apply(model, task, None)
        }
        _ => {
            let model = ResNet::with_sites(recipe.network, splits.num_classes, spec.seed, &train_device, site)?;
            use_.apply(model, task, None)
        }
    }
}

/// [`with_child_net`] for a translation child: the vocabulary (cached), the training pairs,
/// the encoder-decoder, and as its score the corpus BLEU of its greedy translations of the
/// validation split, as a fraction.
fn with_translation_net<U: ChildUse>(
    spec: &ChildSpec,
    corpus: &ParallelCorpus,
    site: impl FnMut(usize) -> Activation,
    batch_size: usize,
    device: &Device,
    use_: U,
) -> Result<U::Out> {
    let recipe = &spec.recipe;
    let (Arch::Seq2Seq(size), Some(t)) = (recipe.network.arch(), recipe.translation.as_ref()) else {
        bail!("child {}: pairs for a network that does not translate", spec.id)
    };
    let prepared = Prepared::of(corpus, t.vocab_size, &spec.data_dir)?;
    let train_device = device.clone().autodiff();
    let v = prepared.vocab.size();
    let model = Seq2Seq::with_sites(size, recipe.mlp, v, v, recipe.dropout, spec.seed, &train_device, site);
    let intro = intro(spec, prepared.train.len(), prepared.valid.len(), "pairs");
    let batches = PairBatches { pairs: Arc::new(prepared.train), rows: batch_size, seed: spec.seed };
    let valid = Arc::new(prepared.valid);
    let splits = TranslationSplits {
        valid: valid.clone(),
        eval_rows: 256,
        label_smoothing: t.label_smoothing,
        device: device.clone(),
    };
    let vocab = &prepared.vocab;
    let beam = t.beam;
    let bleu = |model: &Seq2Seq<Activation>, log: &mut RunLog| -> Result<Option<f64>> {
        let translated = score_bleu(&model.valid(), &valid, &corpus.valid.target, vocab, 64, beam, &mut |_, _| {})?;
        log.line(&format!("validation BLEU {:.2} ({} sentences)", translated.bleu.score, valid.len()))?;
        Ok(Some(translated.bleu.score / 100.0))
    };
    use_.apply(model, (batches, splits, intro), Some(Box::new(bleu)))
}

/// The first line of a child's log: what trains on how many training and validation `units`.
fn intro(spec: &ChildSpec, train: usize, valid: usize, units: &str) -> String {
    format!(
        "child {}: training {} with {} for {} on {} ({train} train / {valid} valid {units}), seed {}",
        spec.id,
        spec.recipe.network.name(),
        spec.formula,
        match spec.rung {
            Some(r) => format!("{} of {} steps (rung {})", r.steps, spec.recipe.steps, r.index),
            None => format!("{} steps", spec.recipe.steps),
        },
        spec.dataset,
        spec.seed
    )
}

/// [`train_child`]'s use of the network: trains it through the one training loop in `dir`.
/// The reward is the validation accuracy as a fraction, a language model's negated
/// validation loss, or what the task's score makes of the trained model.
struct Train<'a> {
    spec: &'a ChildSpec,
    dir: &'a Path,
    device: &'a Device,
    start: Instant,
    obs: &'a dyn Observer,
}

impl ChildUse for Train<'_> {
    type Out = ChildResult;

    fn apply<N, B, D>(self, model: N, task: (B, D, String), score: Option<Scorer<'_, N>>) -> Result<ChildResult>
    where
        N: Net,
        D: Supervised<N>,
        B: Batches<Batch = D::Batch>,
    {
        let Train { spec, dir, device, start, obs } = self;
        let (batches, splits, intro) = task;
        let recipe = &spec.recipe;
        let network = recipe.network;
        let params = trainable_params(&model);
        // A child is judged by its validation score: its reward.
        let metric = match network.task() {
            crate::model::Task::Image => "valid_acc",
            crate::model::Task::Language => "valid_loss",
            crate::model::Task::Translation => "valid_bleu",
        };
        let history = History::new(spec.seed, network.name(), &spec.dataset, &spec.formula, params, metric);
        let steps = recipe.steps;
        // A rung trains to its steps, from the checkpoint of the rung below where there is one;
        // the checkpoint records the spec without its rung, so that every rung resumes it.
        let stop = spec.stop_at();
        let identity = ChildSpec { rung: None, ..spec.clone() };
        let resuming = spec.rung.is_some() && dir.join(crate::train::checkpoint::FILE).exists();
        if spec.rung.is_some_and(|r| r.index > 0) && !resuming {
            bail!(
                "child {}: rung {} resumes the checkpoint of the rung below, and {} has none; train the child again from rung 0",
                spec.id,
                spec.rung.map_or(0, |r| r.index),
                dir.display()
            );
        }
        let job = Job {
            out: dir,
            config: &identity,
            span: Span::Steps { steps: stop, eval_interval: stop },
            train: &batches,
            write_config: false,
            intro,
        };
        let (optim, lr) = match recipe.optimizer {
            Optimizer::Sgd => {
                let sgd = Sgd::new(SgdConfig {
                    momentum: recipe.momentum,
                    nesterov: false,
                    weight_decay: recipe.weight_decay,
                    grad_clip: recipe.grad_clip,
                    group: Group::All,
                });
                (
                    Optim::Sgd(sgd),
                    LrRule {
                        schedule: Schedule::Cosine,
                        base: recipe.lr,
                        per: Per::Step,
                        total: steps,
                        warmup: 0,
                        floor: 0.0,
                    },
                )
            }
            Optimizer::Adamw => {
                let adamw = AdamW {
                    betas: adamw_betas(network),
                    weight_decay: recipe.weight_decay,
                    grad_clip: recipe.grad_clip,
                    group: Group::All,
                };
                (adamw.build(&model), warmed_lr(network, Schedule::Cosine, recipe.lr, steps, recipe.warmup))
            }
        };
        let mut strategy = WeightSteps::<N, ChildSpec, D> {
            optim,
            lr,
            data: splits,
            seed: spec.seed,
            device: device.clone(),
            hint: "the search gives it the task's floor",
            types: PhantomData,
        };
        let mut log = RunLog::open(&dir.join("log.log"), obs)?;
        let mean = |losses: &[f64]| (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64);
        let trained = match driver::run(&job, model, history, &mut strategy, resuming, &mut log, obs) {
            Ok(trained) => trained,
            Err(e) => {
                let Some(diverged) = e.downcast_ref::<Diverged>() else { return Err(e) };
                return Ok(ChildResult {
                    id: spec.id,
                    reward: recipe.reward_floor,
                    train_loss: mean(&diverged.recent_losses),
                    seconds: start.elapsed().as_secs_f64(),
                    status: Status::Diverged,
                    error: Some(diverged.what.clone()),
                });
            }
        };
        let scored = match score {
            Some(score) => score(&trained.model, &mut log)?,
            None => None,
        };
        let h = &trained.history;
        let reward = match metric {
            _ if scored.is_some() => scored.unwrap_or(0.0).clamp(0.0, 1.0),
            // A loss worse than a uniform guess scores the floor: a reward stays in its range.
            "valid_loss" => (-h.valid_loss.last().copied().unwrap_or(f64::INFINITY)).max(recipe.reward_floor),
            _ => h.valid_acc.last().copied().unwrap_or(0.0) / 100.0,
        };
        let train_loss = mean(&trained.recent_losses);
        let seconds = start.elapsed().as_secs_f64();
        Ok(ChildResult { id: spec.id, reward, train_loss, seconds, status: Status::Ok, error: None })
    }
}

/// Images (or windows) per batch of the child's one evaluation.
const EVAL_BATCH: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in [Status::Ok, Status::Diverged, Status::Rejected, Status::Failed] {
            assert_eq!(Status::from_name(s.name()), Some(s));
        }
    }
}
