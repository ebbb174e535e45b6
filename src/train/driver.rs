//! The one epoch loop that every training run goes through, eval and search alike.
//!
//! The driver owns what all runs share: resuming from the checkpoint, iterating the seeded
//! training batches, the NaN/inf guard, progress events and the stop request, the per-epoch
//! evaluation check, `errors.json`, the epoch line in `log.log` and the atomic checkpoint.
//! What differs between runs is a [`Strategy`]: how one training batch updates the model
//! (a plain SGD step for eval; an architecture step plus a weight step for DARTS; sampled
//! paths for GDAS and DrNAS), which splits are evaluated, and what an epoch records besides
//! the metrics (alphas, the current formula).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::checkpoint::{self, CheckpointMeta};
use super::history::{History, write_json};
use super::metrics::Meter;
use super::run_dir::{CONFIG_FILE, RunLog, check_same_run, checkpoint_note};
use crate::data::{self, Batch, ImageSet, LoaderConfig, Normalization};
use crate::model::state::{NamedTensor, load_state_dict, state_dict};
use crate::model::{ResNet, Site};
use crate::observer::{BatchProgress, EpochSummary, Event, Observer};

/// Where a training batch sits in the run.
#[derive(Clone, Copy, Debug)]
pub struct At {
    /// 0-based epoch.
    pub epoch: usize,
    /// 0-based batch index within the epoch.
    pub index: usize,
    /// Batches in this epoch.
    pub batches: usize,
    /// The epoch's learning rate for the weights.
    pub lr: f64,
}

/// What one training batch reports back: its mean loss and its logits (row-major
/// `[n, classes]`), both from the forward pass that trained the weights.
pub struct StepReport {
    pub loss: f64,
    pub logits: Vec<f32>,
}

/// The per-run part of the loop.
pub trait Strategy<A: Site> {
    /// The run's configuration (`config.json`, checked on resume).
    type Config: Serialize + DeserializeOwned + Clone;

    /// The weights' learning rate in `epoch` (0-based).
    fn lr(&self, epoch: usize) -> f64;

    /// Called before each epoch's batches; may change the model (e.g. shrink the search
    /// space). A returned line is written to the log.
    fn begin_epoch(&mut self, model: ResNet<A>, _epoch: usize) -> Result<(ResNet<A>, Option<String>)> {
        Ok((model, None))
    }

    /// Train on one batch.
    fn step(&mut self, model: ResNet<A>, batch: &Batch, at: At) -> Result<(ResNet<A>, StepReport)>;

    /// Forward passes per training image (a search also reads one validation image per
    /// training image): the progress bar's images/s counts all of them.
    fn passes(&self) -> f64 {
        1.0
    }

    /// The validation and test metrics after an epoch.
    fn evaluate(&mut self, model: &ResNet<A>) -> Result<(Option<Meter>, Option<Meter>)>;

    /// After the epoch's metrics are in `history`: record what else the run keeps per epoch.
    /// Returns text for the epoch line (e.g. the current formula), or an empty string.
    fn end_epoch(&mut self, model: &ResNet<A>, epoch: usize, history: &mut History) -> Result<String>;

    /// Optimizer and search state for the checkpoint: tensors and a JSON value.
    fn state(&self) -> (Vec<NamedTensor>, serde_json::Value);

    /// Restore what [`Strategy::state`] saved.
    fn load_state(&mut self, tensors: &HashMap<String, NamedTensor>, state: &serde_json::Value) -> Result<()>;

    /// Advice appended to a divergence error ("lower --lr ...").
    fn divergence_hint(&self) -> &'static str;
}

/// The fixed inputs of a run.
pub struct Job<'a, C> {
    pub out: &'a Path,
    pub config: &'a C,
    pub epochs: usize,
    pub train: Arc<ImageSet>,
    pub norm: Normalization,
    pub batch_size: usize,
    pub augment: bool,
    pub seed: u64,
    /// The first line of `log.log` of a fresh run.
    pub intro: String,
}

/// The model after the last epoch, the run's metrics and BatchNorm's step count.
pub struct Trained<A: Site> {
    pub model: ResNet<A>,
    pub history: History,
    pub batches_tracked: i64,
}

/// Run (or resume, when `resuming`) the epochs of `job`, starting from `model` and `history`.
pub fn run_epochs<A: Site, S: Strategy<A>>(
    job: &Job<S::Config>,
    mut model: ResNet<A>,
    mut history: History,
    strategy: &mut S,
    resuming: bool,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<Trained<A>> {
    let out = job.out;
    let (mut start_epoch, mut batches_tracked) = (0, 0i64);
    if resuming {
        let (tensors, meta) = checkpoint::load::<S::Config>(out)?;
        check_same_run(&serde_json::to_value(&meta.config)?, &serde_json::to_value(job.config)?, out)?;
        model = load_state_dict(model, &tensors)?;
        strategy.load_state(&tensors, &meta.state)?;
        (start_epoch, batches_tracked, history) = (meta.epoch, meta.batches_tracked, meta.history);
        log.line(&format!("resumed from the checkpoint of epoch {start_epoch}"))?;
    } else {
        write_json(&out.join(CONFIG_FILE), job.config)?;
        log.line(&job.intro)?;
    }

    let started = Instant::now();
    let time_before = history.runtime.last().copied().unwrap_or(0.0);
    for epoch in start_epoch..job.epochs {
        let lr = strategy.lr(epoch);
        let note;
        (model, note) = strategy.begin_epoch(model, epoch)?;
        if let Some(note) = note {
            log.line(&note)?;
        }
        let loader = data::batches(
            job.train.clone(),
            job.norm,
            LoaderConfig {
                batch_size: job.batch_size,
                shuffle: true,
                augment: job.augment,
                drop_last: false,
                seed: job.seed,
                epoch: epoch as u64,
            },
        );
        let batches = loader.len();
        let mut meter = Meter::default();
        let epoch_start = Instant::now();
        for (index, batch) in loader.enumerate() {
            let report;
            (model, report) = strategy.step(model, &batch, At { epoch, index, batches, lr })?;
            if !report.loss.is_finite() {
                bail!(
                    "training diverged: the training loss became {} in epoch {} batch {}; {}; {}",
                    report.loss,
                    epoch + 1,
                    index + 1,
                    checkpoint_note(epoch, out),
                    strategy.divergence_hint()
                );
            }
            meter.add(&report.logits, &batch.labels, report.loss);
            batches_tracked += 1;
            if obs.should_stop() {
                bail!(
                    "stopped in epoch {} batch {}; the last checkpoint in {} is kept: rerun with --resume to continue",
                    epoch + 1,
                    index + 1,
                    out.display()
                );
            }
            obs.event(Event::Batch(BatchProgress {
                epoch: epoch + 1,
                epochs: job.epochs,
                batch: index + 1,
                batches,
                loss: meter.loss(),
                acc: meter.acc(),
                images_per_sec: strategy.passes() * meter.count as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                images: batch.size,
            }));
        }
        let train_time = epoch_start.elapsed().as_secs_f64();

        let (valid, test) = strategy.evaluate(&model)?;
        for (split, split_meter) in [("validation", valid.as_ref()), ("test", test.as_ref())] {
            if let Some(m) = split_meter.filter(|m| !m.loss().is_finite()) {
                bail!(
                    "training diverged: after epoch {} the {split} loss is {} (train loss {:.4}); {}; {}",
                    epoch + 1,
                    m.loss(),
                    meter.loss(),
                    checkpoint_note(epoch, out),
                    strategy.divergence_hint()
                );
            }
        }
        let runtime = time_before + started.elapsed().as_secs_f64();
        history.push_epoch(&meter, valid.as_ref(), test.as_ref(), train_time, runtime, lr);
        let extra = strategy.end_epoch(&model, epoch, &mut history)?;
        history.write(&out.join("errors.json"))?;

        let mut tensors = state_dict(&model, batches_tracked);
        let (state_tensors, state) = strategy.state();
        tensors.extend(state_tensors);
        let meta = CheckpointMeta {
            epoch: epoch + 1,
            batches_tracked,
            history: history.clone(),
            config: job.config.clone(),
            state,
        };
        checkpoint::save(out, &tensors, &meta)?;

        let line = epoch_line(epoch, job.epochs, lr, &meter, valid.as_ref(), test.as_ref(), &extra, train_time);
        log.write(&line)?;
        obs.event(Event::Epoch(EpochSummary { epoch: epoch + 1, epochs: job.epochs, line }));
    }
    Ok(Trained { model, history, batches_tracked })
}

#[allow(clippy::too_many_arguments)]
fn epoch_line(
    epoch: usize,
    epochs: usize,
    lr: f64,
    train: &Meter,
    valid: Option<&Meter>,
    test: Option<&Meter>,
    extra: &str,
    train_time: f64,
) -> String {
    let mut line =
        format!("epoch {}/{epochs} | lr {lr:.5} | train loss {:.4} acc {:.2}%", epoch + 1, train.loss(), train.acc());
    if let Some(v) = valid {
        line += &format!(" | valid loss {:.4} acc {:.2}%", v.loss(), v.acc());
    }
    if let Some(t) = test {
        line += &format!(" | test loss {:.4} acc {:.2}% top5 {:.2}%", t.loss(), t.acc(), t.acc5());
    }
    if !extra.is_empty() {
        line += &format!(" | {extra}");
    }
    line + &format!(" | {train_time:.1}s")
}
