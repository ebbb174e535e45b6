//! What a sample-based search writes besides its store, rewritten from the store after every
//! iteration: `children.jsonl`, `top.json` and `errors.json`; and the children's checkpoints
//! removed when the search has finished.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::child::Status;
use super::config::SampleConfig;
use super::store::Row;
use crate::files::write_atomic;

/// One controller iteration's record (`errors.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    pub iteration: usize,
    pub proposals: usize,
    pub mean_reward: f64,
    pub best_reward: f64,
    pub entropy: Option<f64>,
    /// Distinct functions trained so far.
    pub children: usize,
    /// The search's wall-clock seconds up to the end of this iteration, over every session of
    /// it (the time between a kill and its `--resume` is not counted); absent in searches
    /// from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<f64>,
}

/// One of the best functions (`top.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Top {
    pub rank: usize,
    pub formula: String,
    pub reward: f64,
    pub fingerprint: String,
    pub child: usize,
    /// The child steps its reward was reached at (with `--fidelity halving`, its highest
    /// rung's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Other spellings of the same function that were proposed.
    pub equivalent: Vec<String>,
}

/// The best `k` distinct functions (by fingerprint), best first: the ones trained the most
/// steps (with `--fidelity halving`, the highest rung) first, then by reward; ties go to the
/// earlier child.
pub fn top_functions(rows: &[Row], k: usize) -> Vec<Top> {
    let mut best: Vec<&Row> = rows.iter().filter(|r| r.trained() && r.status == Status::Ok).collect();
    best.sort_by(|a, b| {
        b.steps.unwrap_or(0).cmp(&a.steps.unwrap_or(0)).then(b.reward.total_cmp(&a.reward)).then(a.id.cmp(&b.id))
    });
    best.iter()
        .take(k)
        .enumerate()
        .map(|(i, r)| {
            let mut equivalent: Vec<String> = rows
                .iter()
                .filter(|o| o.fingerprint == r.fingerprint && o.formula != r.formula)
                .map(|o| o.formula.clone())
                .collect();
            equivalent.sort();
            equivalent.dedup();
            Top {
                rank: i + 1,
                formula: r.formula.clone(),
                reward: r.reward,
                fingerprint: r.fingerprint.map_or(String::new(), |f| format!("{f:016x}")),
                child: r.id,
                steps: r.steps,
                equivalent,
            }
        })
        .collect()
}

/// `children.jsonl`, `top.json` and `errors.json` from the store.
pub(super) fn write_outputs(out: &Path, rows: &[Row], iterations: &[Iteration], config: &SampleConfig) -> Result<()> {
    let mut lines = String::new();
    for r in rows.iter().filter(|r| r.trained() && r.status != Status::Failed) {
        let line = serde_json::json!({
            "child": r.id,
            "formula": r.formula,
            "reward": r.reward,
            "steps": r.cost(config.child.steps),
            "seconds": r.seconds,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    write_atomic(&out.join("children.jsonl"), lines.as_bytes())?;
    let top = top_functions(rows, config.top_k);
    write_atomic(&out.join("top.json"), serde_json::to_string_pretty(&top)?.as_bytes())?;
    // NASLib's layout, as every errors.json: one array per quantity, one entry per iteration.
    let column = |f: fn(&Iteration) -> serde_json::Value| iterations.iter().map(f).collect::<Vec<_>>();
    let errors = serde_json::json!({
        "method": config.method.name(),
        "space": config.space,
        "seed": config.seed,
        "network": config.child.network.name(),
        "dataset": config.dataset,
        "activation": top.first().map_or(String::new(), |t| t.formula.clone()),
        "budget": config.budget,
        "iteration": column(|i| i.iteration.into()),
        "proposals": column(|i| i.proposals.into()),
        "mean_reward": column(|i| i.mean_reward.into()),
        "best_reward": column(|i| i.best_reward.into()),
        "entropy": column(|i| i.entropy.into()),
        "children": column(|i| i.children.into()),
        "runtime": column(|i| i.runtime.into()),
    });
    write_atomic(&out.join("errors.json"), serde_json::to_string_pretty(&errors)?.as_bytes())?;
    Ok(())
}

/// Deletes the children's checkpoints (`children/ID/checkpoint.safetensors`, each child's
/// final weights and optimizer state) of the finished search in `out`; returns how many.
pub fn remove_child_checkpoints(out: &Path) -> Result<usize> {
    let children = out.join("children");
    let Ok(entries) = std::fs::read_dir(&children) else { return Ok(0) };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path().join(crate::train::checkpoint::FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete {}", path.display())),
        }
    }
    Ok(removed)
}
