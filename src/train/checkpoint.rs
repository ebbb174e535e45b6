//! The per-epoch checkpoint (`checkpoint.safetensors`): model weights under PyTorch names, the
//! optimizer's momentum buffers, and as metadata the epoch reached, the BatchNorm step count,
//! the metrics history, the configuration that produced it and the strategy's state (see
//! `train::driver`). It is rewritten atomically after every epoch, so a killed run always
//! leaves the last good epoch behind.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, anyhow};

use super::history::History;
use crate::model::state::{NamedTensor, read_safetensors, write_safetensors};

pub const FILE: &str = "checkpoint.safetensors";

/// Everything a checkpoint holds besides the tensors; `C` is the run's configuration type
/// (`TrainConfig` for eval, `SearchConfig` for one-shot search).
pub struct CheckpointMeta<C> {
    /// Evaluations done (for a run counted in epochs, epochs done).
    pub epoch: usize,
    /// Optimizer steps done (0 in checkpoints written before steps were recorded).
    pub step: usize,
    pub batches_tracked: i64,
    /// The losses of the last steps (a child's train loss is their mean).
    pub recent_losses: Vec<f64>,
    pub history: History,
    pub config: C,
    /// The run strategy's own state (optimizer step counts, search masks, ...).
    pub state: serde_json::Value,
}

pub fn save<C: serde::Serialize>(dir: &Path, tensors: &[NamedTensor], meta: &CheckpointMeta<C>) -> Result<()> {
    let metadata = BTreeMap::from([
        ("format".to_string(), "actsearch-checkpoint-1".to_string()),
        ("epoch".to_string(), meta.epoch.to_string()),
        ("step".to_string(), meta.step.to_string()),
        ("batches_tracked".to_string(), meta.batches_tracked.to_string()),
        ("recent_losses".to_string(), serde_json::to_string(&meta.recent_losses)?),
        ("history".to_string(), serde_json::to_string(&meta.history)?),
        ("config".to_string(), serde_json::to_string(&meta.config)?),
        ("state".to_string(), serde_json::to_string(&meta.state)?),
    ]);
    write_safetensors(&dir.join(FILE), tensors, metadata)
}

pub fn load<C: serde::de::DeserializeOwned>(dir: &Path) -> Result<(HashMap<String, NamedTensor>, CheckpointMeta<C>)> {
    let path = dir.join(FILE);
    let (tensors, metadata) = read_safetensors(&path).map_err(|e| {
        anyhow!(
            "cannot resume: {e:#}; the run cannot continue from it: delete it and rerun with --resume to train this run again from epoch 1, or choose another --out"
        )
    })?;
    let field = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| anyhow!("{} has no '{key}' entry; it is not an actsearch checkpoint", path.display()))
    };
    let bad = || format!("{} has corrupt metadata; delete it to start the run afresh", path.display());
    let meta = CheckpointMeta {
        epoch: field("epoch")?.parse().with_context(bad)?,
        step: match metadata.get("step") {
            Some(s) => s.parse().with_context(bad)?,
            None => 0,
        },
        batches_tracked: field("batches_tracked")?.parse().with_context(bad)?,
        recent_losses: match metadata.get("recent_losses") {
            Some(s) => serde_json::from_str(s).with_context(bad)?,
            None => Vec::new(),
        },
        history: serde_json::from_str(field("history")?).with_context(bad)?,
        config: serde_json::from_str(field("config")?).with_context(bad)?,
        state: match metadata.get("state") {
            Some(s) => serde_json::from_str(s).with_context(bad)?,
            None => serde_json::Value::Null,
        },
    };
    Ok((tensors, meta))
}
