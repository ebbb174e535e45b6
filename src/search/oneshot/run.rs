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
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::SearchConfig;
use super::mixing::{Method, Mixer, Pass};
use super::{record, shrink, unrolled};
use crate::data::{self, Batch, DatasetSpec, ImageSet, Loader, LoaderConfig, Normalization, SplitConfig};
use crate::expr::Formula;
use crate::model::init::Init;
use crate::model::net::Net;
use crate::model::state::{NamedTensor, host_f32, write_safetensors};
use crate::model::{Arch, MixedCell, ResNet, Vit};
use crate::observer::{Event, Observer};
use crate::space::cell::CellSpace;
use crate::space::genotype::Genotype;
use crate::train::adam::{Adam, AdamConfig};
use crate::train::batches::ImageBatches;
use crate::train::config::Optimizer;
use crate::train::driver::Batches;
use crate::train::driver::{self, At, Job, Span, StepReport, Strategy, Trained};
use crate::train::history::History;
use crate::train::metrics::Meter;
use crate::train::optimizer::{AdamW, Optim};
use crate::train::run_dir::{RunDir, RunLog, Start, checkpoint_note};
use crate::train::schedule::{LrRule, Schedule};
use crate::train::sgd::{Sgd, SgdConfig};
use crate::train::steps::{evaluate, to_tensors, trainable_params};
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
    // A dataset that cannot be read fails before the run folder exists.
    let spec = DatasetSpec::parse(&config.dataset)?;
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
        log.line("resuming: the search stopped before its first checkpoint, so it starts again from epoch 1")?;
    }

    let split = SplitConfig {
        train_portion: config.train_portion,
        subset: config.subset,
        // Without --test-subset the test split is not used: read one image of it.
        test_subset: config.test_subset.or(Some(1)),
        seed: config.seed,
    };
    let splits = data::load_splits(&spec, &config.data_dir, &split, obs)?;
    let mut settled = config.clone();
    // Without --test-subset, the one test image read is not a subset the search uses.
    let mut test_subset = settled.test_subset.or(splits.test_subset);
    splits.settle(&mut settled.subset, &mut test_subset, &mut settled.requested);
    settled.test_subset = settled.test_subset.and(test_subset);
    let config = &settled;
    let train_set = Arc::new(splits.train);
    let Some(valid) = splits.valid else {
        bail!("--train-portion leaves no validation images for the alphas; lower it")
    };
    let valid_set = Arc::new(valid);
    let test_set = config.test_subset.is_some().then(|| Arc::new(splits.test));

    let warm = config.warm_start_formula()?;
    let train_device = device.clone().autodiff();
    let mut alpha_init = Init::new(config.seed ^ 0xa1fa);
    let bound = (method == Method::Grafs).then_some(GRAFS_BOUND);
    let mut site = 0;
    let cell = |width: usize| {
        let owns_alphas = !config.shared_cell || site == 0;
        site += 1;
        let alphas = match owns_alphas {
            true => space.positions().iter().map(|p| alpha_init.normal(p.ops.len(), 1e-3)).collect(),
            false => Vec::new(),
        };
        MixedCell::new(&space, width, alphas, &train_device).bounded(bound)
    };
    let data = SearchData {
        train: train_set,
        valid: valid_set,
        test: test_set,
        norm: splits.norm,
        num_classes: splits.num_classes,
    };
    let setup = Setup { config, method, space: space.clone(), bound, warm, device: device.clone() };
    match config.network.arch() {
        Arch::ResNet { .. } => {
            let model = ResNet::with_sites(config.network, data.num_classes, config.seed, &train_device, cell)?;
            search_net(setup, model, data, start, &mut log, obs)
        }
        Arch::Vit(size) => {
            let model = Vit::with_sites(size, config.mlp, data.num_classes, config.seed, &train_device, cell);
            search_net(setup, model, data, start, &mut log, obs)
        }
        Arch::Gpt(_) => {
            bail!("a one-shot search on {} is not available yet: search on a ResNet or a ViT", config.network.name())
        }
    }
}

/// The splits of one search.
struct SearchData {
    train: Arc<ImageSet>,
    valid: Arc<ImageSet>,
    test: Option<Arc<ImageSet>>,
    norm: Normalization,
    num_classes: usize,
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
}

/// The search on `model` (its sites mixed cells) through the driver, then `genotype.json`
/// and `model.safetensors`.
fn search_net<N: Net<Input = Tensor<4>, Site = MixedCell>>(
    setup: Setup,
    model: N,
    data: SearchData,
    start: Start,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<SearchOutcome> {
    let Setup { config, method, space, bound, warm, device } = setup;
    let out = &config.out;
    let op_counts: Vec<usize> = space.positions().iter().map(|p| p.ops.len()).collect();
    let activation = format!("{} cell ({})", space.name, method.name());
    let params = trainable_params(&model);
    // The supernet is judged by its validation accuracy (GRAFS keeps the best epoch's genotype).
    let history = History::new(config.seed, config.network.name(), &config.dataset, &activation, params, "valid_acc");
    let batches = ImageBatches {
        set: data.train.clone(),
        norm: data.norm,
        batch_size: config.batch_size,
        augment: config.augment,
        seed: config.seed,
    };
    let job = Job {
        out,
        config,
        span: Span::Epochs(config.epochs),
        train: &batches,
        write_config: true,
        intro: format!(
            "searching the {} space with {} on {} {} ({} train / {} valid images, {} cell{}), seed {}",
            space.name,
            method.name(),
            config.dataset,
            config.network.name(),
            data.train.len(),
            data.valid.len(),
            if config.shared_cell { "one shared" } else { "a per-site" },
            bound.map(|b| format!(", outputs bounded to ±{b}")).unwrap_or_default(),
            config.seed
        ),
    };
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
            let steps = config.epochs * batches.len(false);
            let recipe = AdamW {
                betas: AdamW::DEFAULT_BETAS,
                weight_decay: config.weight_decay,
                grad_clip: Some(config.grad_clip),
                group: Group::Weights,
            };
            let lr = LrRule::warmed(Schedule::Cosine, config.lr, steps, config.warmup);
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
        loss_fn: CrossEntropyLossConfig::new().init(&model.devices()[0]),
        valid: data.valid,
        test: data.test,
        valid_batches: None,
        norm: data.norm,
        device,
        pending: None,
        best: None,
        last: None,
        epochs_recorded: 0,
        types: PhantomData,
    };
    let Trained { model, history, batches_tracked, .. } =
        driver::run(&job, model, history, &mut strategy, start == Start::Resume, log, obs)?;

    let genotype = match (method, strategy.best.take(), strategy.last.take()) {
        (Method::Grafs, Some(best), _) => {
            log.line(&format!(
                "the genotype of epoch {} has the best validation accuracy ({:.2}%)",
                best.epoch, best.valid_acc
            ))?;
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

/// The genotype of the epoch with the best validation accuracy so far (GRAFS).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Best {
    epoch: usize,
    valid_acc: f64,
    genotype: Genotype,
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

struct OneShot<'a, N> {
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
    loss_fn: CrossEntropyLoss,
    valid: Arc<ImageSet>,
    /// The test split, only with `--test-subset`.
    test: Option<Arc<ImageSet>>,
    /// The validation batches of the current epoch and how many times they restarted.
    valid_batches: Option<(Loader, usize)>,
    norm: Normalization,
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

impl<N: Net<Input = Tensor<4>, Site = MixedCell>> OneShot<'_, N> {
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

    fn loader(&self, epoch: u64) -> Loader {
        data::batches(
            self.valid.clone(),
            self.norm,
            LoaderConfig {
                batch_size: self.config.batch_size,
                shuffle: true,
                augment: self.config.augment,
                drop_last: false,
                seed: self.config.seed ^ 0x5a1d,
                epoch,
            },
        )
    }

    /// The next validation batch of `epoch`, restarting the loader when it runs out.
    fn next_valid(&mut self, epoch: usize) -> Batch {
        let (mut batches, mut restarts) = match self.valid_batches.take() {
            Some(v) => v,
            None => (self.loader(epoch as u64), 0),
        };
        let batch = match batches.next() {
            Some(b) => b,
            None => {
                restarts += 1;
                batches = self.loader((epoch + 1000 * restarts) as u64);
                batches.next().expect("the validation split is not empty")
            }
        };
        self.valid_batches = Some((batches, restarts));
        batch
    }

    /// Cross-entropy of `model` (with its installed mix) on `batch`, and its value.
    fn loss(&self, model: &N, batch: &Batch) -> (Tensor<1>, Tensor<2>, f64) {
        let (images, labels) = to_tensors(batch, &model.devices()[0]);
        let logits = model.forward(images);
        let loss = self.loss_fn.forward(logits.clone(), labels);
        let value = loss.clone().into_scalar::<f32>() as f64;
        (loss, logits, value)
    }

    /// The architecture gradient of one validation batch, for every method but darts2.
    fn arch_grads(&self, model: N, valid: &Batch, at: At) -> Result<(N, Grads)> {
        let model = self.mixer.install(model, Pass::Train, self.sample_seed(at, ARCH));
        let (mut loss, _, value) = self.loss(&model, valid);
        guard(value, "validation (architecture)", at, &self.config.out)?;
        if let Some(kl) = self.mixer.kl(&model).filter(|_| self.config.kl_scale > 0.0) {
            loss = loss + kl.mul_scalar(self.config.kl_scale);
        }
        let grads = Grads::of(&model, &loss.backward(), Group::Arch);
        Ok((model, grads))
    }

    /// DARTS' second-order architecture gradient (see `unrolled`).
    fn unrolled_arch_grads(&self, model: N, valid: &Batch, train: &Batch, at: At) -> Result<(N, Grads)> {
        let evaluate = |m: N, batch: &Batch, which: &str| -> Result<(N, Tensor<1>)> {
            let m = self.mixer.install(m, Pass::Train, self.sample_seed(at, ARCH));
            let (loss, _, value) = self.loss(&m, batch);
            guard(value, which, at, &self.config.out)?;
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

impl<N: Net<Input = Tensor<4>, Site = MixedCell>> Strategy for OneShot<'_, N> {
    type Net = N;
    type Batch = Batch;
    type Config = SearchConfig;

    fn lr(&self, at: &At) -> f64 {
        match &self.lr {
            Some(rule) => rule.at(at),
            None => Schedule::Cosine.lr_with_floor(self.config.lr, self.config.lr_min, at.epoch, self.config.epochs),
        }
    }

    fn begin_epoch(&mut self, model: N, epoch: usize) -> Result<(N, Option<String>)> {
        self.valid_batches = None;
        let epochs = self.config.epochs;
        self.mixer.tau = match epochs {
            1 => 10.0,
            _ => 10.0 - (10.0 - 0.1) * epoch as f64 / (epochs - 1) as f64,
        };
        let warm = self.config.warm_start_epochs();
        let note = match self.method() {
            _ if epoch < warm => Some(format!(
                "epoch {} of {warm} of warm start: the weights train with {} while the alphas learn",
                epoch + 1,
                self.config.warm_start_function()
            )),
            Method::Grafs => self.shrink(&model, epoch),
            Method::Gdas => Some(format!("epoch {}: Gumbel-softmax temperature {:.3}", epoch + 1, self.mixer.tau)),
            _ => None,
        };
        Ok((model, note))
    }

    fn step(&mut self, model: N, batch: &Batch, at: At) -> Result<(N, StepReport)> {
        let valid = self.next_valid(at.epoch);
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
        let (loss, logits, value) = self.loss(&model, batch);
        let mut meter = Meter::default();
        meter.add(&host_f32(logits.inner()), &batch.labels, value);
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
        let test = self.test.as_ref().map(|t| evaluate(&frozen, t, self.norm, 500, &self.device));
        Ok((Some(evaluate(&frozen, &self.valid, self.norm, 500, &self.device)), test))
    }

    fn end_epoch(&mut self, model: &N, epoch: usize, history: &mut History) -> Result<String> {
        let weights = self.mixer.weights(model);
        let current = record::genotype(&self.space, model, &weights, self.config.network.site_layout())?;
        record::append_alphas(
            &self.config.out.join("alphas.jsonl"),
            epoch + 1,
            &current.formula,
            &self.space,
            &weights,
        )?;
        history.formula.push(current.formula.clone());
        let valid_acc = history.valid_acc.last().copied().unwrap_or(f64::NAN);
        if self.best.as_ref().is_none_or(|b| valid_acc > b.valid_acc) {
            self.best = Some(Best { epoch: epoch + 1, valid_acc, genotype: current.clone() });
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

impl<N: Net<Input = Tensor<4>, Site = MixedCell>> OneShot<'_, N> {
    /// GRAFS' progressive shrinking at the start of `epoch` (0-based, >= 1).
    fn shrink(&mut self, model: &N, epoch: usize) -> Option<String> {
        let weights = self.mixer.weights(model);
        let positions = self.space.positions();
        let mut dropped_total = 0;
        let mut left = 0;
        for (set, active) in self.mixer.active.iter_mut().enumerate() {
            let total: usize = active.iter().map(Vec::len).sum();
            let target = shrink::ops_in_play(total, positions.len(), epoch, self.config.epochs);
            // Set `set` is first read by site `set` (site 0 for a shared cell).
            dropped_total += shrink::shrink(active, &weights[set], target).len();
            left = target;
        }
        (dropped_total > 0).then(|| {
            format!(
                "epoch {}: progressive shrinking dropped {dropped_total} ops; {left} ops in play per cell",
                epoch + 1
            )
        })
    }
}

/// Stop with a clear message (keeping the last checkpoint) when a loss is not finite.
fn guard(loss: f64, which: &str, at: At, out: &std::path::Path) -> Result<()> {
    if !loss.is_finite() {
        bail!(
            "the search diverged: the {which} loss became {loss} in epoch {} batch {}; {}; lower --lr or --arch-lr",
            at.epoch + 1,
            at.index + 1,
            checkpoint_note(at.epoch, out)
        );
    }
    Ok(())
}
