//! The one training loop that every run goes through: eval, the one-shot searches and every
//! child of a sample-based search.
//!
//! The driver owns what all runs share: resuming from the checkpoint, iterating the seeded
//! training batches, the NaN/inf guard, progress events and the stop request, the evaluation
//! points, `errors.json`, the evaluation line in `log.log` and the atomic checkpoint. It knows
//! neither the network nor what a batch holds. What differs between runs is a [`Strategy`]: how
//! one training batch updates the model (a plain SGD step for eval and children; an
//! architecture step plus a weight step for DARTS; sampled paths for GDAS and DrNAS), the
//! learning rate at each step, which splits are evaluated, and what an evaluation records
//! besides the metrics (alphas, the current formula).
//!
//! A run counts in [`Span::Epochs`] (evaluated and checkpointed after every epoch; the last
//! batch of an epoch may be short) or in [`Span::Steps`] (full batches only, the loader's
//! epochs following one another; evaluated and checkpointed every `eval_interval` steps and at
//! the last step).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::checkpoint::{self, CheckpointMeta};
use super::history::{History, write_json};
use super::metrics::Meter;
use super::run_dir::{CONFIG_FILE, RunLog, check_same_run, checkpoint_note};
use crate::model::Net;
use crate::model::state::NamedTensor;
use crate::observer::{BatchProgress, EpochSummary, Event, Observer};

/// The losses of the last this many steps are kept (a child's reported train loss is their mean).
pub const RECENT_STEPS: usize = 20;

/// Where a training batch sits in the run.
#[derive(Clone, Copy, Debug)]
pub struct At {
    /// 0-based epoch of the loader.
    pub epoch: usize,
    /// 0-based batch index within the epoch.
    pub index: usize,
    /// Batches in this epoch.
    pub batches: usize,
    /// 0-based step of the whole run.
    pub step: usize,
    /// This step's learning rate for the weights.
    pub lr: f64,
}

/// What one training batch reports back: its mean loss and its metrics (from the forward pass
/// that trained the weights).
pub struct StepReport {
    pub loss: f64,
    pub meter: Meter,
}

/// The training batches of a run, one loader epoch at a time: images today, token sequences
/// for a language model.
pub trait Batches {
    type Batch;
    /// The batches of loader epoch `epoch` (0-based), in order; with `drop_last`, every epoch
    /// yields the same number of full batches.
    fn epoch(&self, epoch: u64, drop_last: bool) -> impl ExactSizeIterator<Item = Self::Batch>;
    /// The batches one epoch yields.
    fn len(&self, drop_last: bool) -> usize;
    /// Examples in the training set (for an error that says why there is no full batch).
    fn examples(&self) -> usize;
}

/// The per-run part of the loop.
pub trait Strategy {
    /// The network trained.
    type Net: Net;
    /// What one training step reads.
    type Batch;
    /// The run's configuration (`config.json`, checked on resume).
    type Config: Serialize + DeserializeOwned + Clone;

    /// The weights' learning rate at step `at` (`at.lr` is not set yet).
    fn lr(&self, at: &At) -> f64;

    /// Called before the first step of each evaluation interval: phase `phase` (0-based) is
    /// an epoch of [`Span::Epochs`], or `eval_interval` steps of [`Span::Steps`]. It may change
    /// the model (e.g. shrink the search space); a returned line is written to the log.
    fn begin_phase(&mut self, model: Self::Net, _phase: usize) -> Result<(Self::Net, Option<String>)> {
        Ok((model, None))
    }

    /// Train on one batch.
    fn step(&mut self, model: Self::Net, batch: &Self::Batch, at: At) -> Result<(Self::Net, StepReport)>;

    /// Forward passes per training example (a search also reads one validation image per
    /// training image): the progress bar's images/s counts all of them.
    fn passes(&self) -> f64 {
        1.0
    }

    /// The validation and test metrics at an evaluation point.
    fn evaluate(&mut self, model: &Self::Net) -> Result<(Option<Meter>, Option<Meter>)>;

    /// After the evaluation's metrics are in `history`: record what else the run keeps.
    /// `epoch` counts evaluations (0-based). Returns text for the log line (e.g. the current
    /// formula), or an empty string.
    fn end_epoch(&mut self, model: &Self::Net, epoch: usize, history: &mut History) -> Result<String>;

    /// Optimizer and search state for the checkpoint: tensors and a JSON value.
    fn state(&self) -> (Vec<NamedTensor>, serde_json::Value);

    /// Restore what [`Strategy::state`] saved.
    fn load_state(&mut self, tensors: &HashMap<String, NamedTensor>, state: &serde_json::Value) -> Result<()>;

    /// Advice appended to a divergence error ("lower --lr ...").
    fn divergence_hint(&self) -> &'static str;
}

/// How long a run trains and when it is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// Whole loader epochs, each evaluated and checkpointed.
    Epochs(usize),
    /// Optimizer steps on full batches, evaluated and checkpointed every `eval_interval` steps
    /// and after the last.
    Steps { steps: usize, eval_interval: usize },
}

/// The fixed inputs of a run.
pub struct Job<'a, C, D> {
    pub out: &'a Path,
    pub config: &'a C,
    pub span: Span,
    pub train: &'a D,
    /// Write `config` to `config.json` on a fresh start (a child's spec is its config, so it
    /// writes none).
    pub write_config: bool,
    /// The first line of `log.log` of a fresh run.
    pub intro: String,
}

/// The model after the last step, the run's metrics, BatchNorm's step count and the losses
/// of the last [`RECENT_STEPS`] steps.
pub struct Trained<N> {
    pub model: N,
    pub history: History,
    pub batches_tracked: i64,
    pub recent_losses: Vec<f64>,
}

/// The run stopped because a loss stopped being finite: what happened, and the advice (what
/// is kept, what to change). Its text is `training diverged: {what}; {advice}`.
#[derive(Debug)]
pub struct Diverged {
    pub what: String,
    pub advice: String,
    /// The losses of the last steps before it (none when the training loss itself diverged).
    pub recent_losses: Vec<f64>,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "training diverged: {}; {}", self.what, self.advice)
    }
}

impl std::error::Error for Diverged {}

/// Where a run stands between two steps.
struct Position {
    step: usize,
    /// Evaluations done (for epochs, epochs done).
    evaluations: usize,
    batches_tracked: i64,
    recent: VecDeque<f64>,
}

/// Run (or resume, when `resuming`) `job`, starting from `model` and `history`.
pub fn run<S: Strategy, D: Batches<Batch = S::Batch>>(
    job: &Job<S::Config, D>,
    mut model: S::Net,
    mut history: History,
    strategy: &mut S,
    resuming: bool,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<Trained<S::Net>> {
    let out = job.out;
    let mut at = Position { step: 0, evaluations: 0, batches_tracked: 0, recent: VecDeque::new() };
    if resuming {
        let (tensors, meta) = checkpoint::load::<S::Config>(out)?;
        check_same_run(&serde_json::to_value(&meta.config)?, &serde_json::to_value(job.config)?, out)?;
        model = model.load_state_dict(&tensors)?;
        strategy.load_state(&tensors, &meta.state)?;
        at.evaluations = meta.epoch;
        at.batches_tracked = meta.batches_tracked;
        at.step = meta.step;
        at.recent = meta.recent_losses.into_iter().collect();
        history = meta.history;
        if history.step.len() < history.epochs_done() {
            // A run from before errors.json counted steps: its evaluations were whole epochs.
            let per_epoch = job.train.len(false);
            history.step = (1..=history.epochs_done()).map(|e| e * per_epoch).collect();
            at.step = at.step.max(at.evaluations * per_epoch);
        }
        let whence = match job.span {
            Span::Epochs(_) => format!("epoch {}", meta.epoch),
            Span::Steps { .. } => format!("step {}", meta.step),
        };
        log.line(&format!("resumed from the checkpoint of {whence}"))?;
    } else {
        if job.write_config {
            write_json(&out.join(CONFIG_FILE), job.config)?;
        }
        log.line(&job.intro)?;
    }

    let started = Instant::now();
    let time_before = history.runtime.last().copied().unwrap_or(0.0);
    let (drop_last, total) = match job.span {
        Span::Epochs(epochs) => (false, epochs),
        Span::Steps { steps, .. } => (true, steps),
    };
    // Epochs: one per evaluation. Steps: the loader's epochs follow one another, and a resumed
    // run continues inside the epoch where it stopped (every epoch has the same full batches).
    let (mut epoch, mut skip) = match job.span {
        Span::Epochs(_) => (at.evaluations, 0),
        Span::Steps { .. } => {
            let per_epoch = job.train.len(true).max(1);
            (at.step / per_epoch, at.step % per_epoch)
        }
    };
    let done = |at: &Position| match job.span {
        Span::Epochs(epochs) => at.evaluations >= epochs,
        Span::Steps { steps, .. } => at.step >= steps,
    };
    let mut meter = Meter::default();
    let mut lr;
    let mut interval_start = Instant::now();
    while !done(&at) {
        if let Span::Epochs(_) = job.span {
            model = begin_phase(strategy, model, epoch, log)?;
        }
        let batches = job.train.len(drop_last);
        if batches == 0 && drop_last {
            bail!("{} training examples are fewer than one batch", job.train.examples());
        }
        let loader = job.train.epoch(epoch as u64, drop_last);
        lr = strategy.lr(&At { epoch, index: skip, batches, step: at.step, lr: 0.0 });
        let epoch_start = Instant::now();
        let mut epoch_meter = Meter::default();
        for (index, batch) in loader.enumerate().skip(skip) {
            if let Span::Steps { eval_interval, .. } = job.span
                && at.step.is_multiple_of(eval_interval.max(1))
            {
                model = begin_phase(strategy, model, at.step / eval_interval.max(1), log)?;
            }
            let mut here = At { epoch, index, batches, step: at.step, lr: 0.0 };
            here.lr = strategy.lr(&here);
            lr = here.lr;
            let report;
            (model, report) = strategy.step(model, &batch, here)?;
            if !report.loss.is_finite() {
                let what = match job.span {
                    Span::Epochs(_) => {
                        format!("the training loss became {} in epoch {} batch {}", report.loss, epoch + 1, index + 1)
                    }
                    Span::Steps { .. } => {
                        format!("the training loss became {} at step {} of {total}", report.loss, at.step + 1)
                    }
                };
                let advice = format!("{}; {}", checkpoint_note(at.evaluations, out), strategy.divergence_hint());
                return Err(Diverged { what, advice, recent_losses: Vec::new() }.into());
            }
            if at.recent.len() == RECENT_STEPS {
                at.recent.pop_front();
            }
            at.recent.push_back(report.loss);
            meter.merge(&report.meter);
            epoch_meter.merge(&report.meter);
            at.batches_tracked += 1;
            at.step += 1;
            if obs.should_stop() {
                bail!(
                    "stopped in epoch {} batch {}; the last checkpoint in {} is kept: rerun with --resume to continue",
                    epoch + 1,
                    index + 1,
                    out.display()
                );
            }
            let (shown, shown_of) = match job.span {
                Span::Epochs(epochs) => (epoch + 1, epochs),
                Span::Steps { .. } => (at.step, total),
            };
            obs.event(Event::Batch(BatchProgress {
                epoch: shown,
                epochs: shown_of,
                batch: index + 1,
                batches,
                loss: epoch_meter.loss(),
                acc: epoch_meter.acc(),
                images_per_sec: strategy.passes() * epoch_meter.count as f64
                    / epoch_start.elapsed().as_secs_f64().max(1e-9),
                images: report.meter.count,
            }));
            let evaluate_now = match job.span {
                Span::Epochs(_) => false,
                Span::Steps { steps, eval_interval } => {
                    at.step == steps || at.step.is_multiple_of(eval_interval.max(1))
                }
            };
            if evaluate_now {
                let time = interval_start.elapsed().as_secs_f64();
                evaluation(
                    job,
                    &model,
                    &mut history,
                    strategy,
                    &mut at,
                    &meter,
                    lr,
                    time,
                    time_before,
                    started,
                    log,
                    obs,
                )?;
                (meter, interval_start) = (Meter::default(), Instant::now());
                if done(&at) {
                    break;
                }
            }
        }
        skip = 0;
        if let Span::Epochs(_) = job.span {
            let time = epoch_start.elapsed().as_secs_f64();
            evaluation(job, &model, &mut history, strategy, &mut at, &meter, lr, time, time_before, started, log, obs)?;
            (meter, interval_start) = (Meter::default(), Instant::now());
        }
        epoch += 1;
    }
    let recent_losses = at.recent.into_iter().collect();
    Ok(Trained { model, history, batches_tracked: at.batches_tracked, recent_losses })
}

/// [`Strategy::begin_phase`], its line logged.
fn begin_phase<S: Strategy>(strategy: &mut S, model: S::Net, phase: usize, log: &mut RunLog) -> Result<S::Net> {
    let (model, note) = strategy.begin_phase(model, phase)?;
    if let Some(note) = note {
        log.line(&note)?;
    }
    Ok(model)
}

/// One evaluation point: the splits' metrics, `errors.json`, the checkpoint and the log line.
#[allow(clippy::too_many_arguments)]
fn evaluation<S: Strategy, D>(
    job: &Job<S::Config, D>,
    model: &S::Net,
    history: &mut History,
    strategy: &mut S,
    at: &mut Position,
    meter: &Meter,
    lr: f64,
    train_time: f64,
    time_before: f64,
    started: Instant,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<()> {
    let out = job.out;
    let (valid, test) = strategy.evaluate(model)?;
    for (split, split_meter) in [("validation", valid.as_ref()), ("test", test.as_ref())] {
        if let Some(m) = split_meter.filter(|m| !m.loss().is_finite()) {
            let when = match job.span {
                Span::Epochs(_) => format!("epoch {}", at.evaluations + 1),
                Span::Steps { .. } => format!("step {}", at.step),
            };
            let what = format!("after {when} the {split} loss is {} (train loss {:.4})", m.loss(), meter.loss());
            let advice = format!("{}; {}", checkpoint_note(at.evaluations, out), strategy.divergence_hint());
            return Err(Diverged { what, advice, recent_losses: at.recent.iter().copied().collect() }.into());
        }
    }
    let runtime = time_before + started.elapsed().as_secs_f64();
    history.push_epoch(at.step, meter, valid.as_ref(), test.as_ref(), train_time, runtime, lr);
    let extra = strategy.end_epoch(model, at.evaluations, history)?;
    history.write(&out.join("errors.json"))?;

    let mut tensors = model.state_dict(at.batches_tracked);
    let (state_tensors, state) = strategy.state();
    tensors.extend(state_tensors);
    at.evaluations += 1;
    let meta = CheckpointMeta {
        epoch: at.evaluations,
        step: at.step,
        batches_tracked: at.batches_tracked,
        recent_losses: at.recent.iter().copied().collect(),
        history: history.clone(),
        config: job.config.clone(),
        state,
    };
    checkpoint::save(out, &tensors, &meta)?;

    let (n, of) = match job.span {
        Span::Epochs(epochs) => (format!("epoch {}", at.evaluations), epochs),
        Span::Steps { steps, .. } => (format!("step {}", at.step), steps),
    };
    let line = eval_line(&n, of, lr, meter, valid.as_ref(), test.as_ref(), &extra, train_time);
    log.write(&line)?;
    obs.event(Event::Epoch(EpochSummary { epoch: at.evaluations, epochs: of, line }));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn eval_line(
    when: &str,
    of: usize,
    lr: f64,
    train: &Meter,
    valid: Option<&Meter>,
    test: Option<&Meter>,
    extra: &str,
    train_time: f64,
) -> String {
    let mut line = format!("{when}/{of} | lr {lr:.5} | train loss {:.4} acc {:.2}%", train.loss(), train.acc());
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
