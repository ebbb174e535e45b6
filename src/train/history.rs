//! `errors.json`: per-epoch metrics under NASLib's names plus run scalars (schema in
//! DESIGN.md). Accuracies are in percent, times in seconds; `runtime` is the wall-clock time
//! since the run started (cumulative), `train_time` the time spent training in that epoch.
//! When there is no validation split (`--train-portion 1`), the `valid_*` arrays are empty.
//! The arrays hold one entry per evaluation (an epoch, or `--eval-interval` steps) and `step`
//! says after how many optimizer steps each was taken. `metric` names the array the run is
//! judged by and `higher_is_better` its direction (files written before these existed read as
//! `test_acc`, higher is better, with no `step`).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::metrics::Meter;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub seed: u64,
    pub network: String,
    pub dataset: String,
    pub activation: String,
    /// Number of trainable parameters.
    pub params: usize,
    pub train_acc: Vec<f64>,
    pub train_loss: Vec<f64>,
    pub train_acc_top5: Vec<f64>,
    pub valid_acc: Vec<f64>,
    pub valid_loss: Vec<f64>,
    pub valid_acc_top5: Vec<f64>,
    pub test_acc: Vec<f64>,
    pub test_loss: Vec<f64>,
    pub test_acc_top5: Vec<f64>,
    pub runtime: Vec<f64>,
    pub train_time: Vec<f64>,
    /// Learning rate used in each epoch.
    #[serde(default)]
    pub lr: Vec<f64>,
    /// Searches: the discretized (argmax) formula after each epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formula: Vec<String>,
    /// Optimizer steps done at each evaluation.
    #[serde(default)]
    pub step: Vec<usize>,
    /// A language model's validation loss in bits per character (`valid_loss / ln 2`), beside
    /// `valid_loss`; absent for the image tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid_bpc: Vec<f64>,
    /// A translation model's corpus BLEU (sacreBLEU's) on the validation and the test split,
    /// computed once at the end (one value each); absent for the other tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid_bleu: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_bleu: Vec<f64>,
    /// The array the run is judged by: `test_acc` for an eval, `valid_acc` for a search or a
    /// child (whose reward it is), `valid_loss` for a language model, `test_bleu` for a
    /// translation model (`valid_bleu` for a child).
    #[serde(default = "test_acc")]
    pub metric: String,
    #[serde(default = "yes")]
    pub higher_is_better: bool,
}

fn test_acc() -> String {
    "test_acc".to_string()
}

fn yes() -> bool {
    true
}

impl History {
    /// A run's history before its first evaluation, judged by `metric`: higher is better for
    /// an accuracy (the image tasks), lower for a loss (a language model, whose evaluations
    /// then also record bits per character).
    pub fn new(seed: u64, network: &str, dataset: &str, activation: &str, params: usize, metric: &str) -> History {
        History {
            seed,
            network: network.to_string(),
            dataset: dataset.to_string(),
            activation: activation.to_string(),
            params,
            metric: metric.to_string(),
            higher_is_better: !metric.ends_with("_loss"),
            ..History::default()
        }
    }

    /// Record one finished evaluation: the training meter, the validation and test meters
    /// where the run has those splits, the training time since the last, the cumulative
    /// runtime, the lr and the optimizer steps done.
    #[allow(clippy::too_many_arguments)]
    pub fn push_epoch(
        &mut self,
        step: usize,
        train: &Meter,
        valid: Option<&Meter>,
        test: Option<&Meter>,
        train_time: f64,
        runtime: f64,
        lr: f64,
    ) {
        self.train_acc.push(train.acc());
        self.train_loss.push(train.loss());
        self.train_acc_top5.push(train.acc5());
        if let Some(v) = valid {
            self.valid_acc.push(v.acc());
            self.valid_loss.push(v.loss());
            self.valid_acc_top5.push(v.acc5());
            if self.metric == "valid_loss" {
                self.valid_bpc.push(v.loss() / std::f64::consts::LN_2);
            }
        }
        if let Some(t) = test {
            self.test_acc.push(t.acc());
            self.test_loss.push(t.loss());
            self.test_acc_top5.push(t.acc5());
        }
        self.train_time.push(train_time);
        self.runtime.push(runtime);
        self.lr.push(lr);
        self.step.push(step);
    }

    /// The array named `name` (`test_acc`, `valid_loss`, ...), empty for an unknown name.
    pub fn curve(&self, name: &str) -> &[f64] {
        match name {
            "train_acc" => &self.train_acc,
            "train_loss" => &self.train_loss,
            "valid_acc" => &self.valid_acc,
            "valid_loss" => &self.valid_loss,
            "valid_bpc" => &self.valid_bpc,
            "test_acc" => &self.test_acc,
            "test_loss" => &self.test_loss,
            "valid_bleu" => &self.valid_bleu,
            "test_bleu" => &self.test_bleu,
            _ => &[],
        }
    }

    /// The last value of the metric the run is judged by ([`History::metric`]).
    pub fn headline(&self) -> Option<f64> {
        self.curve(&self.metric).last().copied()
    }

    pub fn epochs_done(&self) -> usize {
        self.train_acc.len()
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    pub fn read(path: &Path) -> Result<History> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid errors.json", path.display()))
    }
}

/// Write pretty JSON atomically (temporary file, then rename), so a killed run never leaves a
/// half-written file behind.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    crate::files::write_atomic(path, (text + "\n").as_bytes())
}
