//! Several seeds of the same run: each seed trains into its own `seed-N` subfolder, and
//! `summary.json` holds the mean, standard deviation and 95% interval of the mean of the final
//! value of the metric the runs are judged by: the test accuracy of an image task, the
//! validation loss of a language model (the statistics are `report::stats`', a leaf module).

use std::path::Path;

use anyhow::Result;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::history::write_json;
use super::run::{RunOutcome, train};
use super::run_dir::LOCK_FILE;
use crate::expr::Formula;
use crate::files::Lock;
use crate::observer::{Event, Observer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub network: String,
    pub dataset: String,
    pub activation: String,
    pub epochs: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    pub seeds: Vec<u64>,
    /// What the runs are judged by (`test_acc`, `valid_loss`) and its direction.
    #[serde(default = "test_acc_name")]
    pub metric: String,
    #[serde(default = "yes")]
    pub higher_is_better: bool,
    /// Final test top-1 accuracy (percent) of each seed, in `seeds` order (image tasks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_acc: Vec<f64>,
    /// Final validation loss (nats per character) of each seed (language models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid_loss: Vec<f64>,
    /// Test BLEU of each seed (translation models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_bleu: Vec<f64>,
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator); 0 for a single seed.
    pub std: f64,
    /// The 95% confidence interval of the mean (Student's t); null for a single seed, which
    /// gives no uncertainty.
    #[serde(default)]
    pub ci95: Option<[f64; 2]>,
    /// Run directories, relative to the summary's directory.
    pub runs: Vec<String>,
}

fn test_acc_name() -> String {
    "test_acc".to_string()
}

fn yes() -> bool {
    true
}

impl Summary {
    /// The final value of `metric` of each seed, in `seeds` order.
    pub fn values(&self) -> &[f64] {
        match self.metric.as_str() {
            "valid_loss" => &self.valid_loss,
            "test_bleu" => &self.test_bleu,
            _ => &self.test_acc,
        }
    }

    /// `value` as the metric is shown: `47.00%` or `1.8812`.
    pub fn show(&self, value: f64) -> String {
        match self.metric.as_str() {
            "test_acc" => format!("{value:.2}%"),
            "test_bleu" => format!("{value:.2}"),
            _ => format!("{value:.4}"),
        }
    }

    /// The metric in words: `test accuracy`, `validation loss`, `test BLEU`.
    pub fn metric_words(&self) -> &'static str {
        match self.metric.as_str() {
            "valid_loss" => "validation loss",
            "test_bleu" => "test BLEU",
            _ => "test accuracy",
        }
    }
}

/// The directory of one seed's run: the output directory itself for a single seed.
pub fn seed_dir(out: &Path, seed: u64, seeds: usize) -> std::path::PathBuf {
    if seeds == 1 { out.to_path_buf() } else { out.join(format!("seed-{seed}")) }
}

/// The seeds' folders relative to the summary's folder ("." for a single seed), as
/// `summary.json` lists them.
pub fn seed_dir_names(seeds: &[u64]) -> Vec<String> {
    seeds.iter().map(|&s| if seeds.len() == 1 { ".".to_string() } else { format!("seed-{s}") }).collect()
}

/// Runs `one(seed, folder)` for every seed in turn, each in its [`seed_dir`], and says which
/// folder each seed goes to. For several seeds `out` (the folder of their `summary.json`) is
/// held too, with the lock returned so that the caller holds it until the summary is written;
/// one seed's run holds its own folder.
pub fn each_seed<T>(
    out: &Path,
    seeds: &[u64],
    what: &str,
    obs: &dyn Observer,
    mut one: impl FnMut(u64, std::path::PathBuf) -> Result<T>,
) -> Result<(Option<Lock>, Vec<T>)> {
    let lock = match seeds.len() {
        1 => None,
        _ => Some(Lock::try_exclusive(&out.join(LOCK_FILE), &format!("{what} folder {}", out.display()))?),
    };
    let mut results = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let dir = seed_dir(out, seed, seeds.len());
        if seeds.len() > 1 {
            obs.event(Event::Info(format!("seed {seed}: {}", dir.display())));
        }
        results.push(one(seed, dir)?);
    }
    Ok((lock, results))
}

/// Train every seed in turn and write `summary.json` into `base.out`.
pub fn train_seeds(
    base: &TrainConfig,
    seeds: &[u64],
    formula: &Formula,
    device: &Device,
    resume: bool,
    obs: &dyn Observer,
) -> Result<(Summary, Vec<RunOutcome>)> {
    let (_lock, outcomes) = each_seed(&base.out, seeds, "eval", obs, |seed, out| {
        train(&TrainConfig { seed, out, ..base.clone() }, formula, device, resume, obs)
    })?;
    let values: Vec<f64> = outcomes.iter().map(|o| o.headline()).collect();
    let stats = crate::report::stats::Summary::of(&values);
    let metric = base.network.task().metric();
    let (mut test_acc, mut valid_loss, mut test_bleu) = (Vec::new(), Vec::new(), Vec::new());
    match metric {
        "valid_loss" => valid_loss = values,
        "test_bleu" => test_bleu = values,
        _ => test_acc = values,
    }
    let summary = Summary {
        network: base.network.name().to_string(),
        dataset: base.dataset.clone(),
        activation: base.activation.clone(),
        epochs: base.epochs,
        steps: base.steps,
        seeds: seeds.to_vec(),
        metric: metric.to_string(),
        higher_is_better: !metric.ends_with("_loss"),
        test_acc,
        valid_loss,
        test_bleu,
        mean: stats.mean,
        std: stats.std,
        ci95: stats.ci95().map(|(lo, hi)| [lo, hi]),
        runs: seed_dir_names(seeds),
    };
    std::fs::create_dir_all(&base.out)?;
    write_json(&base.out.join("summary.json"), &summary)?;
    Ok((summary, outcomes))
}
