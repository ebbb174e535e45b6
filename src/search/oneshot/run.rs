//! One one-shot search through the shared epoch driver (`train::driver`). Per training
//! batch, one architecture step on the next validation batch (the validation loader is
//! iterated alongside the training loader, restarted only when it runs out), then one weight
//! step on the training batch:
//!
//! - `darts`: the gradient of the validation loss with respect to the alphas (first order);
//! - `darts2`: the unrolled one-step gradient of DARTS' second order, with the
//!   finite-difference Hessian-vector product `(g(w+) - g(w-)) / 2r`, `r = 0.01 / |dw'|`;
//! - `gdas`: the same with a hard Gumbel-softmax path per position (tau 10 → 0.1 linearly);
//! - `drnas`: Dirichlet-sampled weights plus a KL anchor to Dirichlet(1);
//! - `grafs`: DrNAS with a ReLU warm start for the weights in epoch 1, bounded outputs,
//!   independent samples per site, progressive shrinking from epoch 2 and the genotype of
//!   the epoch with the best validation accuracy.
//!
//! After every epoch: validation metrics, the argmax formula, `alphas.jsonl`, `errors.json`
//! and a checkpoint; at the end `genotype.json`, `model.safetensors`, and `log.log` ends with
//! the final formula.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::SearchConfig;
use super::mixing::{Method, Mixer, Pass};
use super::task::{ImageSearch, PairSearch, SearchTask, TextSearch};
use super::{record, shrink, unrolled};
use crate::data::parallel::ParallelCorpus;
use crate::data::text::CharCorpus;
use crate::data::{self, DatasetSpec, SplitConfig};
use crate::expr::Formula;
use crate::model::init::Init;
use crate::model::net::Net;
use crate::model::state::{NamedTensor, write_safetensors};
use crate::model::{Arch, Gpt, MixedCell, ResNet, Seq2Seq, Task, Vit};
use crate::observer::{Event, Observer};
use crate::space::cell::CellSpace;
use crate::space::genotype::Genotype;
use crate::train::adam::{Adam, AdamConfig};
use crate::train::batches::ImageBatches;
use crate::train::config::{Optimizer, adamw_betas, warmed_lr};
use crate::train::driver::{self, At, Batches, Job, Span, StepReport, Strategy, Trained};
use crate::train::history::History;
use crate::train::metrics::Meter;
use crate::train::optimizer::{AdamW, Optim};
use crate::train::run_dir::{RunDir, RunLog, Start, checkpoint_note};
use crate::train::schedule::{LrRule, Schedule};
use crate::train::sgd::{Sgd, SgdConfig};
use crate::train::steps::{ImageSplits, trainable_params};
use crate::train::text::{TextBatches, TextSplits};
use crate::train::translate::{PairBatches, Prepared, TranslationSplits, open_corpus};
use crate::train::update::{Grads, Group};

/// GRAFS' bound on every position's output when searching a space without built-in bounds.
const GRAFS_BOUND: f64 = 10.0;

/// A finished search.
#[derive(Clone, Debug)]
pub struct SearchOutcome {
    pub out: PathBuf,
    pub genotype: Genotype,
    pub history: History,
    /// Positions whose final mixing weights are still close to uniform (see
    /// [`record::undecided`]); empty when every position made a choice, or for a search
    /// finished earlier.
    pub undecided: Vec<String>,
}

pub fn search(config: &SearchConfig, device: &Device, resume: bool, obs: &dyn Observer) -> Result<SearchOutcome> {
    let method = Method::parse(&config.method)?;
    if !(config.train_portion > 0.0 && config.train_portion < 1.0) {
        bail!("--train-portion must be in (0, 1) for a search: the rest of the training set trains the alphas");
    }
    if config.accumulate == 0 {
        bail!("--accumulate must be at least 1");
    }
    let space = CellSpace::parse(&config.space)?;
    let out = &config.out;
    // Data that cannot be read fails before the run folder exists.
    let source = match config.network.arch() {
        Arch::Gpt(size) => Source::Text(Arc::new(CharCorpus::open(&config.dataset, size)?)),
        Arch::Seq2Seq(_) => Source::Parallel(Box::new(open_corpus(
            &config.dataset,
            config.network.name(),
            config.translation.as_ref(),
        )?)),
        Arch::ResNet { .. } | Arch::Vit(_) => Source::Images(DatasetSpec::parse(&config.dataset)?),
    };
    // A translation search records the languages and test split it read.
    let mut settled = config.clone();
    if let (Source::Parallel(corpus), Some(t)) = (&source, settled.translation.as_mut()) {
        (t.source, t.target, t.test_set) = (corpus.source.clone(), corpus.target.clone(), corpus.test_name.clone());
    }
    let config = &settled;
    let (_dir, start) = RunDir::open(out, config, resume)?;
    if start == Start::Finished {
        obs.event(Event::Info(format!(
            "{} holds this search, finished; its results are kept as they are",
            out.display()
        )));
        let genotype = Genotype::load(&out.join("genotype.json"))?;
        let history = History::read(&out.join("errors.json"))?;
        return Ok(SearchOutcome { out: out.clone(), genotype, history, undecided: Vec::new() });
    }
    let mut log = RunLog::open(&out.join("log.log"), obs)?;
    if start == Start::Restart {
        record::truncate_alphas(&out.join("alphas.jsonl"), 0)?;
        log.line("resuming: the search stopped before its first checkpoint, so it starts again from the beginning")?;
    }
    let warm = config.warm_start_formula()?;
    let bound = (method == Method::Grafs).then_some(GRAFS_BOUND);
    let setup = Setup { config, method, space, bound, warm, device: device.clone(), resuming: start == Start::Resume };
    match source {
        Source::Images(spec) => image_search(setup, &spec, &mut log, obs),
        Source::Text(corpus) => text_search(setup, corpus, &mut log, obs),
        Source::Parallel(corpus) => translation_search(setup, &corpus, &mut log, obs),
    }
}

/// Where a search's data comes from, checked before its folder is written.
enum Source {
    Images(DatasetSpec),
    Text(Arc<CharCorpus>),
    Parallel(Box<ParallelCorpus>),
}

/// What every network's search shares.
struct Setup<'a> {
    config: &'a SearchConfig,
    method: Method,
    space: CellSpace,
    /// The bound on every position's output (GRAFS).
    bound: Option<f64>,
    /// The warm start's function.
    warm: Formula,
    /// The plain (non-autodiff) device.
    device: Device,
    resuming: bool,
}

impl Setup<'_> {
    /// Builds the mixed cell of each activation site in turn, its alphas drawn from the seed
    /// (with `--shared-cell`, only the first site's).
    fn cells(&self, train_device: &Device) -> impl FnMut(usize) -> MixedCell {
        let (space, config, bound, device) =
            (self.space.clone(), self.config.clone(), self.bound, train_device.clone());
        let mut alpha_init = Init::new(config.seed ^ 0xa1fa);
        let mut site = 0;
        move |width: usize| {
            let owns_alphas = !config.shared_cell || site == 0;
            site += 1;
            let alphas = match owns_alphas {
                true => space.positions().iter().map(|p| alpha_init.normal(p.ops.len(), 1e-3)).collect(),
                false => Vec::new(),
            };
            MixedCell::new(&space, width, alphas, &device).bounded(bound)
        }
    }

    /// How the cell is shared and bounded, for the log's first line.
    fn cell_words(&self) -> String {
        format!(
            "{} cell{}",
            if self.config.shared_cell { "one shared" } else { "a per-site" },
            self.bound.map(|b| format!(", outputs bounded to ±{b}")).unwrap_or_default(),
        )
    }
}

/// A search on images: the splits of `--train-portion`, the ResNet or ViT supernet, then
/// [`search_net`] by epochs.
fn image_search(setup: Setup, spec: &DatasetSpec, log: &mut RunLog, obs: &dyn Observer) -> Result<SearchOutcome> {
    let config = setup.config;
    let split = SplitConfig {
        train_portion: config.train_portion,
        subset: config.subset,
        // Without --test-subset the test split is not used: read one image of it.
        test_subset: config.test_subset.or(Some(1)),
        seed: config.seed,
    };
    let splits = data::load_splits(spec, &config.data_dir, &split, obs)?;
    let mut settled = config.clone();
    // Without --test-subset, the one test image read is not a subset the search uses.
    let mut test_subset = settled.test_subset.or(splits.test_subset);
    splits.settle(&mut settled.subset, &mut test_subset, &mut settled.requested);
    settled.test_subset = settled.test_subset.and(test_subset);
    let config = &settled;
    let setup = Setup { config, ..setup };
    let train_set = Arc::new(splits.train);
    let Some(valid) = splits.valid else {
        bail!("--train-portion leaves no validation images for the alphas; lower it")
    };
    let valid = Arc::new(valid);
    let batches = ImageBatches {
        set: train_set.clone(),
        norm: splits.norm,
        batch_size: config.batch_size,
        augment: config.augment,
        seed: config.seed,
    };
    let task = ImageSearch {
        splits: ImageSplits {
            valid: Some(valid.clone()),
            test: config.test_subset.is_some().then(|| Arc::new(splits.test)),
            norm: splits.norm,
            eval_batch: 500,
            device: setup.device.clone(),
        },
        valid: valid.clone(),
        batch_size: config.batch_size,
        augment: config.augment,
        seed: config.seed,
        current: None,
    };
    let intro = format!(
        "searching the {} space with {} on {} {} ({} train / {} valid images, {}), seed {}",
        setup.space.name,
        setup.method.name(),
        config.dataset,
        config.network.name(),
        train_set.len(),
        valid.len(),
        setup.cell_words(),
        config.seed
    );
    let steps = config.epochs * batches.len(false);
    let run = SearchRun { task, batches, span: Span::Epochs(config.epochs), steps, intro };
    let train_device = setup.device.clone().autodiff();
    match config.network.arch() {
        Arch::Vit(size) => {
            let model = Vit::with_sites(
                size,
                config.mlp,
                splits.num_classes,
                config.seed,
                &train_device,
                setup.cells(&train_device),
            );
            search_net(setup, model, run, log, obs)
        }
        _ => {
            let model = ResNet::with_sites(
                config.network,
                splits.num_classes,
                config.seed,
                &train_device,
                setup.cells(&train_device),
            )?;
            search_net(setup, model, run, log, obs)
        }
    }
}

/// A search on a character corpus (GRAFS searched a GPT this way): the first
/// `--train-portion` of the training text trains the weights, the rest the alphas, and the
/// supernet is scored on the validation text; then [`search_net`] by steps.
fn text_search(setup: Setup, corpus: Arc<CharCorpus>, log: &mut RunLog, obs: &dyn Observer) -> Result<SearchOutcome> {
    let config = setup.config;
    let Arch::Gpt(size) = config.network.arch() else { bail!("{} is not a language model", config.network.name()) };
    let len = size.shape().block;
    let (weights, alphas) = corpus.split_training(config.train_portion, len)?;
    let (steps, eval_interval) = config.span_steps();
    let batches = TextBatches { corpus: Arc::new(weights), rows: config.batch_size, len, seed: config.seed };
    let task = TextSearch {
        splits: TextSplits { corpus: corpus.clone(), len, eval_rows: 64, device: setup.device.clone() },
        alphas: Arc::new(alphas),
        rows: config.batch_size,
        seed: config.seed,
    };
    let intro = format!(
        "searching the {} space with {} on {} {} ({} characters train the weights / {} the alphas, {} validate, vocabulary {}, {}), seed {}",
        setup.space.name,
        setup.method.name(),
        config.dataset,
        config.network.name(),
        batches.corpus.train.len(),
        task.alphas.train.len(),
        corpus.valid.len(),
        corpus.vocab_size(),
        setup.cell_words(),
        config.seed
    );
    let run = SearchRun { task, batches, span: Span::Steps { steps, eval_interval }, steps, intro };
    let train_device = setup.device.clone().autodiff();
    let model =
        Gpt::with_sites(size, config.mlp, corpus.vocab_size(), config.seed, &train_device, setup.cells(&train_device))
            .with_dropout(config.dropout);
    search_net(setup, model, run, log, obs)
}

/// A search on a translation folder: the vocabulary (cached as eval's), the first
/// `--train-portion` of the training pairs trains the weights and the rest the alphas, and the
/// supernet is scored on the validation pairs' loss; then [`search_net`] by steps.
fn translation_search(
    setup: Setup,
    corpus: &ParallelCorpus,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<SearchOutcome> {
    let config = setup.config;
    let (Arch::Seq2Seq(size), Some(t)) = (config.network.arch(), config.translation.as_ref()) else {
        bail!("{} is not a translation model", config.network.name())
    };
    obs.event(Event::Info(format!("reading the vocabulary of {} tokens for {}", t.vocab_size, corpus.name)));
    let prepared = Prepared::of(corpus, t.vocab_size, &config.data_dir)?;
    let (weights, alphas) = prepared.train.split(config.train_portion, config.batch_size)?;
    let (steps, eval_interval) = config.span_steps();
    let batches = PairBatches { pairs: Arc::new(weights), rows: config.batch_size, seed: config.seed };
    let task = PairSearch {
        splits: TranslationSplits {
            valid: Arc::new(prepared.valid),
            eval_rows: 256,
            label_smoothing: t.label_smoothing,
            device: setup.device.clone(),
        },
        alphas: PairBatches { pairs: Arc::new(alphas), rows: config.batch_size, seed: config.seed ^ 0x5a1d },
        current: None,
    };
    let v = prepared.vocab.size();
    let intro = format!(
        "searching the {} space with {} on {} {} {}→{} ({} pairs train the weights / {} the alphas, {} validate, vocabulary of {v} BPE tokens, {}), seed {}",
        setup.space.name,
        setup.method.name(),
        config.dataset,
        config.network.name(),
        corpus.source,
        corpus.target,
        batches.pairs.len(),
        task.alphas.pairs.len(),
        task.splits.valid.len(),
        setup.cell_words(),
        config.seed
    );
    let run = SearchRun { task, batches, span: Span::Steps { steps, eval_interval }, steps, intro };
    let train_device = setup.device.clone().autodiff();
    let model = Seq2Seq::with_sites(
        size,
        config.mlp,
        v,
        v,
        config.dropout,
        config.seed,
        &train_device,
        setup.cells(&train_device),
    );
    search_net(setup, model, run, log, obs)
}

/// One search's task, its weights' training batches, its length and its log's first line.
struct SearchRun<T, B> {
    task: T,
    batches: B,
    span: Span,
    /// Optimizer steps in the whole search (AdamW's schedule).
    steps: usize,
    intro: String,
}

/// The search on `model` (its sites mixed cells) through the driver, then `genotype.json`
/// and `model.safetensors`.
fn search_net<N, T, B>(
    setup: Setup,
    model: N,
    run: SearchRun<T, B>,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<SearchOutcome>
where
    N: Net<Site = MixedCell>,
    T: SearchTask<N>,
    B: Batches<Batch = T::Batch>,
{
    let Setup { config, method, space, bound: _, warm, device, resuming } = setup;
    let SearchRun { task, batches, span, steps, intro } = run;
    let out = &config.out;
    let op_counts: Vec<usize> = space.positions().iter().map(|p| p.ops.len()).collect();
    let activation = format!("{} cell ({})", space.name, method.name());
    let params = trainable_params(&model);
    // The supernet is judged by the task's validation metric (GRAFS keeps the best genotype):
    // the accuracy on images, the loss on text.
    let metric = match config.network.task() {
        Task::Image => "valid_acc",
        Task::Language | Task::Translation => "valid_loss",
    };
    let history = History::new(config.seed, config.network.name(), &config.dataset, &activation, params, metric);
    let job = Job { out, config, span, train: &batches, write_config: true, intro };
    let sgd_config = SgdConfig {
        momentum: config.momentum,
        nesterov: false,
        weight_decay: config.weight_decay,
        grad_clip: Some(config.grad_clip),
        group: Group::Weights,
    };
    let (weights, lr) = match config.optimizer {
        Optimizer::Sgd => (Optim::Sgd(Sgd::new(sgd_config)), None),
        Optimizer::Adamw => {
            let recipe = AdamW {
                betas: adamw_betas(config.network),
                weight_decay: config.weight_decay,
                grad_clip: Some(config.grad_clip),
                group: Group::Weights,
            };
            let lr = warmed_lr(config.network, Schedule::Cosine, config.lr, steps, config.warmup);
            (recipe.build(&model), Some(lr))
        }
    };
    let mut strategy = OneShot {
        config,
        space: space.clone(),
        mixer: Mixer::new(method, config.shared_cell, &op_counts, model.sites().len()),
        weights,
        lr,
        unrolled: Sgd::new(sgd_config),
        adam: Adam::new(AdamConfig {
            betas: config.arch_betas,
            eps: 1e-8,
            weight_decay: config.arch_weight_decay,
            group: Group::Arch,
        }),
        warm,
        task,
        phases: config.phases(),
        device,
        pending: None,
        best: None,
        last: None,
        epochs_recorded: 0,
        types: PhantomData,
    };
    let Trained { model, history, batches_tracked, .. } =
        driver::run(&job, model, history, &mut strategy, resuming, log, obs)?;

    let genotype = match (method, strategy.best.take(), strategy.last.take()) {
        (Method::Grafs, Some(best), _) => {
            log.line(&best.words(&history))?;
            best.genotype
        }
        (_, _, Some(last)) => last,
        _ => record::genotype(&space, &model, &strategy.mixer.weights(&model), config.network.site_layout())?,
    };
    genotype.save(&out.join("genotype.json"))?;
    let metadata = std::collections::BTreeMap::from([
        ("space".to_string(), space.name.clone()),
        ("method".to_string(), method.name().to_string()),
        ("network".to_string(), config.network.name().to_string()),
        ("formula".to_string(), genotype.formula.clone()),
    ]);
    write_safetensors(&out.join("model.safetensors"), &model.state_dict(batches_tracked), metadata)?;
    let undecided = record::undecided(&space, &strategy.mixer.weights(&model));
    if !undecided.is_empty() {
        let line = format!(
            "warning: the mixing weights are still close to uniform ({}), so those ops are an argmax of noise, not a choice: search longer, or raise --arch-lr",
            undecided.join("; ")
        );
        log.line(&line)?;
        obs.event(Event::Info(line));
    }
    log.line(&format!("final formula: {}", genotype.formula))?;
    Ok(SearchOutcome { out: out.clone(), genotype, history, undecided })
}

/// The genotype of the evaluation with the best validation metric so far (GRAFS): the highest
/// accuracy on images, the lowest loss on text.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Best {
    /// The evaluation's number (1-based; an epoch on images).
    epoch: usize,
    /// The step it came after (0 in checkpoints written before steps were kept).
    #[serde(default)]
    step: usize,
    /// Its validation metric (`History::metric`).
    #[serde(alias = "valid_acc")]
    score: f64,
    genotype: Genotype,
}

impl Best {
    /// The log's line about it.
    fn words(&self, history: &History) -> String {
        match history.higher_is_better {
            true => {
                format!("the genotype of epoch {} has the best validation accuracy ({:.2}%)", self.epoch, self.score)
            }
            false => format!("the genotype of step {} has the lowest validation loss ({:.4})", self.step, self.score),
        }
    }
}

/// The search state that checkpoints keep besides tensors.
#[derive(Serialize, Deserialize)]
struct SavedState {
    /// The weights' optimizer state besides tensors (AdamW's step count); absent for SGD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights: Option<serde_json::Value>,
    arch_steps: u64,
    mixer: Mixer,
    best: Option<Best>,
    last: Option<Genotype>,
    /// Lines in `alphas.jsonl` (one per finished epoch).
    epochs: usize,
}

/// Gradients summed over the batches of one accumulation window.
struct Pending {
    arch: Grads,
    weights: Grads,
    batches: usize,
}

struct OneShot<'a, N, T> {
    config: &'a SearchConfig,
    space: CellSpace,
    mixer: Mixer,
    /// The weights' optimizer: SGD (the ResNets) or AdamW (the transformers).
    weights: Optim,
    /// The weights' learning rate per step for AdamW; SGD's is cosine per epoch.
    lr: Option<LrRule>,
    /// darts2's virtual step (an SGD step at the weights' learning rate, as in DARTS; with
    /// AdamW it has no momentum buffers).
    unrolled: Sgd,
    adam: Adam,
    /// The warm start's function.
    warm: Formula,
    /// The task: the alphas' batches, the loss and the scoring of the held-out splits.
    task: T,
    /// Evaluation intervals in the search (epochs on images): the warm start, the
    /// temperature and GRAFS' shrinking count in them.
    phases: usize,
    device: Device,
    pending: Option<Pending>,
    best: Option<Best>,
    last: Option<Genotype>,
    epochs_recorded: usize,
    types: PhantomData<N>,
}

/// Purposes of the samples drawn for one batch.
const ARCH: u64 = 1;
const WEIGHTS: u64 = 2;

impl<N: Net<Site = MixedCell>, T: SearchTask<N>> OneShot<'_, N, T> {
    fn method(&self) -> Method {
        self.mixer.method
    }

    /// The seed of the samples for `purpose` in batch `at`: a resumed run draws the same.
    fn sample_seed(&self, at: At, purpose: u64) -> u64 {
        let mut h = self.config.seed ^ 0x6d78_5f73_6565_6473;
        for v in [at.epoch as u64, at.index as u64, purpose] {
            h = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        }
        h
    }

    /// Cross-entropy of `model` (with its installed mix) on `batch`, and its value and metrics.
    fn loss(&self, model: &N, batch: &T::Batch) -> (Tensor<1>, f64, Meter) {
        crate::train::steps::scored(&self.task, model, batch)
    }

    /// The architecture gradient of one validation batch, for every method but darts2.
    fn arch_grads(&self, model: N, valid: &T::Batch, at: At) -> Result<(N, Grads)> {
        let model = self.mixer.install(model, Pass::Train, self.sample_seed(at, ARCH));
        let (mut loss, value, _) = self.loss(&model, valid);
        guard(value, "validation (architecture)", at, self.config)?;
        if let Some(kl) = self.mixer.kl(&model).filter(|_| self.config.kl_scale > 0.0) {
            loss = loss + kl.mul_scalar(self.config.kl_scale);
        }
        let grads = Grads::of(&model, &loss.backward(), Group::Arch);
        Ok((model, grads))
    }

    /// DARTS' second-order architecture gradient (see `unrolled`).
    fn unrolled_arch_grads(&self, model: N, valid: &T::Batch, train: &T::Batch, at: At) -> Result<(N, Grads)> {
        let evaluate = |m: N, batch: &T::Batch, which: &str| -> Result<(N, Tensor<1>)> {
            let m = self.mixer.install(m, Pass::Train, self.sample_seed(at, ARCH));
            let (loss, value, _) = self.loss(&m, batch);
            guard(value, which, at, self.config)?;
            Ok((m, loss))
        };
        let grads = unrolled::second_order_arch_grads(
            &model,
            &self.unrolled,
            at.lr,
            |m| evaluate(m, train, "training (unrolled step)"),
            |m| evaluate(m, valid, "validation (architecture)"),
        )?;
        Ok((model, grads))
    }
}

impl<N: Net<Site = MixedCell>, T: SearchTask<N>> Strategy for OneShot<'_, N, T> {
    type Net = N;
    type Batch = T::Batch;
    type Config = SearchConfig;

    fn lr(&self, at: &At) -> f64 {
        match &self.lr {
            Some(rule) => rule.at(at),
            None => Schedule::Cosine.lr_with_floor(self.config.lr, self.config.lr_min, at.epoch, self.config.epochs),
        }
    }

    fn begin_phase(&mut self, model: N, phase: usize) -> Result<(N, Option<String>)> {
        let phases = self.phases;
        self.mixer.tau = match phases {
            1 => 10.0,
            _ => 10.0 - (10.0 - 0.1) * phase as f64 / (phases - 1) as f64,
        };
        let warm = self.config.warm_start_epochs();
        let name = self.config.phase_name(phase);
        let note = match self.method() {
            _ if phase < warm => Some(format!(
                "{} of warm start: the weights train with {} while the alphas learn",
                match self.config.steps {
                    None => format!("{name} of {warm}"),
                    Some(_) => format!("{name} (evaluation interval {} of {warm})", phase + 1),
                },
                self.config.warm_start_function()
            )),
            Method::Grafs => self.shrink(&model, phase),
            Method::Gdas => Some(format!("{name}: Gumbel-softmax temperature {:.3}", self.mixer.tau)),
            _ => None,
        };
        Ok((model, note))
    }

    fn step(&mut self, model: N, batch: &T::Batch, at: At) -> Result<(N, StepReport)> {
        let valid = self.task.alpha_batch(at);
        let (model, arch) = match self.method() {
            Method::Darts2 => self.unrolled_arch_grads(model, &valid, batch, at)?,
            _ => self.arch_grads(model, &valid, at)?,
        };
        let window_ends = (at.index + 1).is_multiple_of(self.config.accumulate) || at.index + 1 == at.batches;
        let mut pending =
            self.pending.take().unwrap_or(Pending { arch: Grads::default(), weights: Grads::default(), batches: 0 });
        pending.arch = pending.arch.plus(arch);
        pending.batches += 1;
        let mut model = model;
        if window_ends {
            let arch = std::mem::take(&mut pending.arch).scale(1.0 / pending.batches as f64);
            model = self.adam.step(model, &arch, self.config.arch_lr);
        }

        let warm_start = at.epoch < self.config.warm_start_epochs();
        let model = match warm_start {
            true => Mixer::install_fixed(model, &self.warm),
            false => self.mixer.install(model, Pass::Train, self.sample_seed(at, WEIGHTS)),
        };
        let (loss, value, meter) = self.loss(&model, batch);
        let report = StepReport { loss: value, meter };
        if !value.is_finite() {
            return Ok((model, report));
        }
        pending.weights = pending.weights.plus(Grads::of(&model, &loss.backward(), Group::Weights));
        if !window_ends {
            self.pending = Some(pending);
            return Ok((model, report));
        }
        let weights = pending.weights.scale(1.0 / pending.batches as f64);
        Ok((self.weights.step(model, &weights, at.lr), report))
    }

    fn passes(&self) -> f64 {
        2.0
    }

    fn evaluate(&mut self, model: &N) -> Result<(Option<Meter>, Option<Meter>)> {
        let frozen = self.mixer.install(model.valid(), Pass::Eval, 0);
        Ok(self.task.evaluate(&frozen))
    }

    fn end_epoch(&mut self, model: &N, epoch: usize, history: &mut History) -> Result<String> {
        let weights = self.mixer.weights(model);
        let current = record::genotype(&self.space, model, &weights, self.config.network.site_layout())?;
        record::append_alphas(
            &self.config.out.join("alphas.jsonl"),
            epoch + 1,
            self.config.steps.and(history.step.last().copied()),
            &current.formula,
            &self.space,
            &weights,
        )?;
        history.formula.push(current.formula.clone());
        let score = history.headline().unwrap_or(f64::NAN);
        let better = |b: &Best| match history.higher_is_better {
            true => score > b.score,
            false => score < b.score,
        };
        if self.best.as_ref().is_none_or(better) {
            let step = history.step.last().copied().unwrap_or(0);
            self.best = Some(Best { epoch: epoch + 1, step, score, genotype: current.clone() });
        }
        let formula = current.formula.clone();
        self.last = Some(current);
        self.epochs_recorded = epoch + 1;
        Ok(formula)
    }

    fn state(&self) -> (Vec<NamedTensor>, serde_json::Value) {
        let (mut tensors, weights) = self.weights.state();
        tensors.extend(self.adam.state());
        let saved = SavedState {
            weights: (!weights.is_null()).then_some(weights),
            arch_steps: self.adam.steps,
            mixer: self.mixer.clone(),
            best: self.best.clone(),
            last: self.last.clone(),
            epochs: self.epochs_recorded,
        };
        (tensors, serde_json::to_value(saved).unwrap_or_default())
    }

    fn load_state(&mut self, tensors: &HashMap<String, NamedTensor>, state: &serde_json::Value) -> Result<()> {
        let saved: SavedState = serde_json::from_value(state.clone())
            .map_err(|e| anyhow::anyhow!("the checkpoint's search state is unreadable ({e}); start a new --out"))?;
        let weights = saved.weights.clone().unwrap_or_default();
        self.weights.load_state(tensors, &weights, &self.device)?;
        self.adam.load_state(tensors, saved.arch_steps, &self.device);
        (self.mixer, self.best, self.last, self.epochs_recorded) = (saved.mixer, saved.best, saved.last, saved.epochs);
        record::truncate_alphas(&self.config.out.join("alphas.jsonl"), saved.epochs)?;
        Ok(())
    }

    fn divergence_hint(&self) -> &'static str {
        "lower --lr or --arch-lr"
    }
}

impl<N: Net<Site = MixedCell>, T: SearchTask<N>> OneShot<'_, N, T> {
    /// GRAFS' progressive shrinking at the start of phase `phase` (0-based, >= 1).
    fn shrink(&mut self, model: &N, phase: usize) -> Option<String> {
        let weights = self.mixer.weights(model);
        let positions = self.space.positions();
        let mut dropped_total = 0;
        let mut left = 0;
        for (set, active) in self.mixer.active.iter_mut().enumerate() {
            let total: usize = active.iter().map(Vec::len).sum();
            let target = shrink::ops_in_play(total, positions.len(), phase, self.phases);
            // Set `set` is first read by site `set` (site 0 for a shared cell).
            dropped_total += shrink::shrink(active, &weights[set], target).len();
            left = target;
        }
        (dropped_total > 0).then(|| {
            format!(
                "{}: progressive shrinking dropped {dropped_total} ops; {left} ops in play per cell",
                self.config.phase_name(phase)
            )
        })
    }
}

/// Stop with a clear message (keeping the last checkpoint) when a loss is not finite.
fn guard(loss: f64, which: &str, at: At, config: &SearchConfig) -> Result<()> {
    if !loss.is_finite() {
        let (when, evaluations) = match config.span_steps() {
            (_, 0) => (format!("in epoch {} batch {}", at.epoch + 1, at.index + 1), at.epoch),
            (_, interval) => (format!("at step {}", at.step + 1), at.step / interval),
        };
        bail!(
            "the search diverged: the {which} loss became {loss} {when}; {}; lower --lr or --arch-lr",
            checkpoint_note(evaluations, &config.out)
        );
    }
    Ok(())
}
