//! `errors.json`: per-epoch metrics under NASLib's names plus run scalars (schema in
//! DESIGN.md). Accuracies are in percent, times in seconds; `runtime` is the wall-clock time
//! since the run started (cumulative), `train_time` the time spent training in that epoch.
//! When there is no validation split (`--train-portion 1`), the `valid_*` arrays are empty.

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
}

impl History {
    /// Record one finished epoch: the training meter, the validation and test meters where
    /// the run has those splits, the epoch's training time, the cumulative runtime and the lr.
    pub fn push_epoch(
        &mut self,
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
        }
        if let Some(t) = test {
            self.test_acc.push(t.acc());
            self.test_loss.push(t.loss());
            self.test_acc_top5.push(t.acc5());
        }
        self.train_time.push(train_time);
        self.runtime.push(runtime);
        self.lr.push(lr);
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
