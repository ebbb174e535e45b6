//! Several seeds of the same run: each seed trains into its own `seed-N` subfolder, and
//! `summary.json` holds the mean, standard deviation and 95% interval of the mean of the final
//! test accuracy (the statistics are `report::stats`', a leaf module).

use std::path::Path;

use anyhow::Result;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::history::write_json;
use super::run::{RunOutcome, train};
use super::run_dir::LOCK_FILE;
use crate::files::Lock;
use crate::expr::Formula;
use crate::observer::{Event, Observer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub network: String,
    pub dataset: String,
    pub activation: String,
    pub epochs: usize,
    pub seeds: Vec<u64>,
    /// Final test top-1 accuracy (percent) of each seed, in `seeds` order.
    pub test_acc: Vec<f64>,
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

/// The directory of one seed's run: the output directory itself for a single seed.
pub fn seed_dir(out: &Path, seed: u64, seeds: usize) -> std::path::PathBuf {
    if seeds == 1 { out.to_path_buf() } else { out.join(format!("seed-{seed}")) }
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
    // Several seeds: the folder of summary.json is held too (one seed's run holds its own).
    let _lock = match seeds.len() {
        1 => None,
        _ => Some(Lock::try_exclusive(&base.out.join(LOCK_FILE), &format!("eval folder {}", base.out.display()))?),
    };
    let mut outcomes = Vec::new();
    for &seed in seeds {
        let config = TrainConfig { seed, out: seed_dir(&base.out, seed, seeds.len()), ..base.clone() };
        if seeds.len() > 1 {
            obs.event(Event::Info(format!("seed {seed}: {}", config.out.display())));
        }
        outcomes.push(train(&config, formula, device, resume, obs)?);
    }
    let test_acc: Vec<f64> = outcomes.iter().map(|o| o.final_test_acc()).collect();
    let stats = crate::report::stats::Summary::of(&test_acc);
    let summary = Summary {
        network: base.network.name().to_string(),
        dataset: base.dataset.clone(),
        activation: base.activation.clone(),
        epochs: base.epochs,
        seeds: seeds.to_vec(),
        test_acc,
        mean: stats.mean,
        std: stats.std,
        ci95: stats.ci95().map(|(lo, hi)| [lo, hi]),
        runs: seeds.iter().map(|&s| if seeds.len() == 1 { ".".to_string() } else { format!("seed-{s}") }).collect(),
    };
    std::fs::create_dir_all(&base.out)?;
    write_json(&base.out.join("summary.json"), &summary)?;
    Ok((summary, outcomes))
}
