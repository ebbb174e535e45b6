//! One eval run from scratch (or resumed): data → model → epochs of SGD through the shared
//! epoch driver (`train::driver`) → evaluation on the validation and test splits →
//! `errors.json`, `log.log`, `checkpoint.safetensors` after every epoch and
//! `model.safetensors` at the end. Also the helpers every run uses (batches as tensors,
//! evaluation of a split, the parameter count).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::batches::ImageBatches;
use super::config::{Optimizer, TrainConfig};
use super::driver::{self, At, Batches, Diverged, Job, Span, StepReport, Strategy, Trained};
use super::history::History;
use super::metrics::Meter;
use super::optimizer::{AdamW, Optim};
use super::run_dir::{DIVERGED_FILE, MODEL_FILE, RunDir, RunLog, Start};
use super::schedule::{LrRule, Per};
use super::sgd::{Sgd, SgdConfig};
use super::update::{Grads, Group};
use crate::data::plan::Plan;
use crate::data::{self, Batch, ImageSet, LoaderConfig, Normalization, SplitConfig};
use crate::expr::Formula;
use crate::model::state::{NamedTensor, host_f32, write_safetensors};
use crate::model::{Activation, Arch, Net, ResNet, Vit};
use crate::observer::{Event, Observer};
use crate::space::resolve::site_values;

/// What a finished run reports back.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub out: PathBuf,
    pub history: History,
}

impl RunOutcome {
    pub fn final_test_acc(&self) -> f64 {
        self.history.test_acc.last().copied().unwrap_or(f64::NAN)
    }
}

/// Train `formula` as configured. `device` is the plain (non-autodiff) device.
pub fn train(
    config: &TrainConfig,
    formula: &Formula,
    device: &Device,
    resume: bool,
    obs: &dyn Observer,
) -> Result<RunOutcome> {
    let out = &config.out;
    // A dataset that cannot be read fails before the run folder exists.
    let spec = data::DatasetSpec::parse(&config.dataset)?;
    let (_dir, start) = RunDir::open(out, config, resume)?;
    if start == Start::Finished {
        obs.event(Event::Info(format!("{} holds this run, finished; its results are kept as they are", out.display())));
        return Ok(RunOutcome { out: out.clone(), history: History::read(&out.join("errors.json"))? });
    }
    let mut log = RunLog::open(&out.join("log.log"), obs)?;
    // What an earlier attempt left: this one writes its own if it diverges.
    let _ = std::fs::remove_file(out.join(DIVERGED_FILE));
    if start == Start::Restart {
        log.line("resuming: the run stopped before its first checkpoint, so it starts again from epoch 1")?;
    }

    let split = SplitConfig {
        train_portion: config.train_portion,
        subset: config.subset,
        test_subset: config.test_subset,
        seed: config.seed,
    };
    let splits = data::load_splits(&spec, &config.data_dir, &split, obs)?;
    let mut settled = config.clone();
    splits.settle(&mut settled.subset, &mut settled.test_subset, &mut settled.requested);
    let config = &settled;
    let data::Splits { train, valid, test, norm, num_classes, classes, .. } = splits;

    let train_device = device.clone().autodiff();
    let widths = config.network.site_widths(config.mlp);
    let values = site_values(&config.activation_spec, formula, config.init_params, &widths)?;
    // site_values gives one entry per site of `widths`, in the order the network builds them.
    let mut built = 0;
    let mut site = |_: usize| {
        built += 1;
        Activation::with_values(formula, &values[built - 1], &train_device)
    };
    let data = Data { train: Arc::new(train), valid: valid.map(Arc::new), test: Arc::new(test), norm, classes };
    let resuming = start == Start::Resume;
    match config.network.arch() {
        Arch::ResNet { .. } => {
            let model = ResNet::with_sites(config.network, num_classes, config.seed, &train_device, &mut site)?;
            write_plan(config, &model, &data, resuming)?;
            train_net(config, model, data, device, resuming, &mut log, obs).map_err(|e| diverged(out, e))
        }
        Arch::Vit(size) => {
            let model = Vit::with_sites(size, config.mlp, num_classes, config.seed, &train_device, &mut site);
            write_plan(config, &model, &data, resuming)?;
            train_net(config, model, data, device, resuming, &mut log, obs).map_err(|e| diverged(out, e))
        }
    }
}

/// `e`, having written [`DIVERGED_FILE`] into `out` when it is a divergence.
fn diverged(out: &Path, e: anyhow::Error) -> anyhow::Error {
    if let Some(d) = e.downcast_ref::<Diverged>() {
        let note = serde_json::json!({ "what": d.what, "advice": d.advice });
        if let Err(w) = crate::files::write_atomic(&out.join(DIVERGED_FILE), note.to_string().as_bytes()) {
            return w.context(format!("{e:#}"));
        }
    }
    e
}

/// With `--write-plan`, a fresh run's data in training order (`plan.safetensors`) and its
/// initial weights (`init.safetensors`), for a twin in another framework.
fn write_plan<N: Net>(config: &TrainConfig, model: &N, data: &Data, resuming: bool) -> Result<()> {
    if !config.write_plan || resuming {
        return Ok(());
    }
    let plan = Plan {
        train: &data.train,
        test: &data.test,
        norm: data.norm,
        seed: config.seed,
        epochs: config.epochs,
        augment: config.augment,
    };
    data::plan::write_plan(&config.out.join("plan.safetensors"), &plan)?;
    write_safetensors(&config.out.join("init.safetensors"), &model.state_dict(0), Default::default())
}

/// The splits of one run, their normalization and class names.
struct Data {
    train: Arc<ImageSet>,
    valid: Option<Arc<ImageSet>>,
    test: Arc<ImageSet>,
    norm: Normalization,
    classes: Vec<String>,
}

/// The epochs of `config` on `model` through the driver, then `model.safetensors`.
fn train_net<N: Net<Input = Tensor<4>>>(
    config: &TrainConfig,
    model: N,
    data: Data,
    device: &Device,
    resuming: bool,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<RunOutcome> {
    let out = &config.out;
    let params = trainable_params(&model);
    let history =
        History::new(config.seed, config.network.name(), &config.dataset, &config.activation, params, "test_acc");
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
            "training {} with activation {} on {} ({} train / {} valid / {} test images), seed {}",
            config.network.name(),
            config.activation,
            config.dataset,
            data.train.len(),
            data.valid.as_ref().map_or(0, |v| v.len()),
            data.test.len(),
            config.seed
        ),
    };
    let (optim, lr) = match config.optimizer {
        Optimizer::Sgd => {
            let sgd = Sgd::new(SgdConfig {
                momentum: config.momentum,
                nesterov: config.nesterov,
                weight_decay: config.weight_decay,
                grad_clip: config.grad_clip,
                group: Group::All,
            });
            let lr = LrRule {
                schedule: config.schedule,
                base: config.lr,
                per: Per::Epoch,
                total: config.epochs,
                warmup: 0,
                floor: 0.0,
            };
            (Optim::Sgd(sgd), lr)
        }
        Optimizer::Adamw => {
            let steps = config.epochs * batches.len(false);
            let recipe = AdamW {
                betas: AdamW::DEFAULT_BETAS,
                weight_decay: config.weight_decay,
                grad_clip: config.grad_clip,
                group: Group::All,
            };
            let optim = recipe.build(&model);
            (optim, LrRule::warmed(config.schedule, config.lr, steps, config.warmup))
        }
    };
    let splits = ImageSplits {
        valid: data.valid,
        test: Some(data.test),
        norm: data.norm,
        eval_batch: config.eval_batch_size,
        device: device.clone(),
    };
    let mut strategy = WeightSteps::<N, TrainConfig, ImageSplits> {
        optim,
        lr,
        loss_fn: CrossEntropyLossConfig::new().init(&model.devices()[0]),
        data: splits,
        device: device.clone(),
        hint: match config.optimizer {
            Optimizer::Sgd => "lower --lr (the seed preset uses 0.025), add --grad-clip 5 or use a bounded activation",
            Optimizer::Adamw => "lower --lr or use a bounded activation",
        },
        types: PhantomData,
    };
    let Trained { model, history, batches_tracked, .. } =
        driver::run(&job, model, history, &mut strategy, resuming, log, obs)?;

    let metadata = std::collections::BTreeMap::from([
        ("activation".to_string(), config.activation.clone()),
        ("network".to_string(), config.network.name().to_string()),
        ("num_classes".to_string(), data.classes.len().to_string()),
        ("classes".to_string(), serde_json::to_string(&data.classes)?),
        // Inputs are (pixel/255 - mean) / std per channel, with these training-split statistics.
        ("normalize_mean".to_string(), serde_json::to_string(&data.norm.mean)?),
        ("normalize_std".to_string(), serde_json::to_string(&data.norm.std)?),
    ]);
    write_safetensors(&out.join(MODEL_FILE), &model.state_dict(batches_tracked), metadata)?;
    log.line(&format!(
        "finished: final test accuracy {:.2}% ({})",
        history.test_acc.last().copied().unwrap_or(f64::NAN),
        config.activation
    ))?;
    Ok(RunOutcome { out: out.clone(), history })
}

/// What [`WeightSteps`] trains on, for one kind of task (images, text): how a training batch
/// becomes the network's input and the target class of each row of logits, and how the
/// held-out splits are scored.
pub trait Supervised<N: Net> {
    type Batch;
    /// The network's input for `batch` on `device`, and the target of each row of logits.
    fn tensors(&self, batch: &Self::Batch, device: &Device) -> (N::Input, Vec<i64>);
    /// The validation and test metrics of `model` (its inference copy), where the run has them.
    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>);
}

/// The image tasks' splits: the validation split (where there is one) and the test split
/// (where given), normalized with the training split's statistics.
pub struct ImageSplits {
    pub valid: Option<Arc<ImageSet>>,
    pub test: Option<Arc<ImageSet>>,
    pub norm: Normalization,
    /// Images per evaluation batch.
    pub eval_batch: usize,
    /// The plain (non-autodiff) device evaluation runs on.
    pub device: Device,
}

impl<N: Net<Input = Tensor<4>>> Supervised<N> for ImageSplits {
    type Batch = Batch;

    fn tensors(&self, batch: &Batch, device: &Device) -> (Tensor<4>, Vec<i64>) {
        (to_tensors(batch, device).0, batch.labels.clone())
    }

    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>) {
        let score = |set: &Arc<ImageSet>| evaluate(model, set, self.norm, self.eval_batch, &self.device);
        (self.valid.as_ref().map(score), self.test.as_ref().map(score))
    }
}

/// The strategy of eval and of a search's children: one optimizer step of every weight per
/// batch, then the held-out splits of `D` at each evaluation point. `C` is the run's
/// configuration type.
pub struct WeightSteps<N, C, D> {
    pub optim: Optim,
    pub lr: LrRule,
    pub loss_fn: CrossEntropyLoss,
    pub data: D,
    /// The plain (non-autodiff) device the optimizer state is restored to.
    pub device: Device,
    /// Advice for a run that diverged.
    pub hint: &'static str,
    pub types: PhantomData<(N, C)>,
}

impl<N, C, D> Strategy for WeightSteps<N, C, D>
where
    N: Net,
    C: Serialize + DeserializeOwned + Clone,
    D: Supervised<N>,
{
    type Net = N;
    type Batch = D::Batch;
    type Config = C;

    fn lr(&self, at: &At) -> f64 {
        self.lr.at(at)
    }

    fn step(&mut self, model: N, batch: &D::Batch, at: At) -> Result<(N, StepReport)> {
        let device = model.devices()[0].clone();
        let (input, targets) = self.data.tensors(batch, &device);
        let n = targets.len();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [n]), &device);
        let logits = model.forward(input);
        let loss = self.loss_fn.forward(logits.clone(), labels);
        let value = loss.clone().into_scalar::<f32>() as f64;
        let mut meter = Meter::default();
        meter.add(&host_f32(logits.inner()), &targets, value);
        let report = StepReport { loss: value, meter };
        if !report.loss.is_finite() {
            return Ok((model, report));
        }
        let grads = Grads::of(&model, &loss.backward(), Group::All);
        Ok((self.optim.step(model, &grads, at.lr), report))
    }

    fn evaluate(&mut self, model: &N) -> Result<(Option<Meter>, Option<Meter>)> {
        Ok(self.data.evaluate(&model.valid()))
    }

    fn end_epoch(&mut self, _model: &N, _epoch: usize, _history: &mut History) -> Result<String> {
        Ok(String::new())
    }

    fn state(&self) -> (Vec<NamedTensor>, serde_json::Value) {
        self.optim.state()
    }

    fn load_state(&mut self, tensors: &HashMap<String, NamedTensor>, state: &serde_json::Value) -> Result<()> {
        self.optim.load_state(tensors, state, &self.device)
    }

    fn divergence_hint(&self) -> &'static str {
        self.hint
    }
}

pub(crate) fn to_tensors(batch: &Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.size;
    let images = Tensor::<4>::from_data(TensorData::new(batch.images.clone(), [n, 3, 32, 32]), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(batch.labels.clone(), [n]), device);
    (images, labels)
}

/// Loss and accuracy of `model` (in inference mode) over a whole split.
pub fn evaluate<N: Net<Input = Tensor<4>>>(
    model: &N,
    set: &Arc<ImageSet>,
    norm: Normalization,
    batch_size: usize,
    device: &Device,
) -> Meter {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut meter = Meter::default();
    let loader = data::batches(
        set.clone(),
        norm,
        LoaderConfig { batch_size, shuffle: false, augment: false, drop_last: false, seed: 0, epoch: 0 },
    );
    for batch in loader {
        let (images, labels) = to_tensors(&batch, device);
        let logits = model.forward(images);
        let loss = loss_fn.forward(logits.clone(), labels).into_scalar::<f32>() as f64;
        let host = host_f32(logits);
        meter.add(&host, &batch.labels, loss);
    }
    meter
}

/// Number of trainable parameters (BatchNorm running statistics excluded).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0 += param.lazy_shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}
