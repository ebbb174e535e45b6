//! `genotype.json`, the result of a search: the space, the op chosen at each position, the
//! discretized canonical `formula`, and per parameter slot its printed name, initial value,
//! origin and (filled in by the search) learned per-channel values. `eval` accepts the file
//! wherever it accepts a formula (see `space::resolve`).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::expr::Formula;

/// A discretized cell (written by `CellSpace::genotype`, read back by `eval`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Genotype {
    /// The space searched: `small`, `huge`, `grafs`, `core1`, `core2` or a cell file's path.
    pub space: String,
    /// The op chosen at each position, in evaluation order.
    pub ops: Vec<PositionChoice>,
    /// The canonical formula of the cell.
    pub formula: String,
    /// One entry per parameter slot of `formula`, in slot order (first appearance reading the
    /// formula left to right; several anonymous slots all print as `b`).
    pub params: Vec<ParamInfo>,
    /// Where the searched network's sites held their parameters (`features` for a
    /// transformer's MLPs); not written for `channels`, so older genotypes read the same.
    #[serde(default, skip_serializing_if = "is_channels")]
    pub layout: SiteLayout,
}

/// Where a site's per-unit parameters lie: one per channel (dimension 1 of `(N, C, ...)`, the
/// ResNets) or one per feature of the last axis (the transformers' MLP hidden layers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteLayout {
    #[default]
    Channels,
    Features,
}

impl SiteLayout {
    pub fn name(self) -> &'static str {
        match self {
            SiteLayout::Channels => "channels",
            SiteLayout::Features => "features",
        }
    }
}

fn is_channels(layout: &SiteLayout) -> bool {
    *layout == SiteLayout::Channels
}

/// The op chosen at one position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionChoice {
    pub position: String,
    pub op: String,
}

/// One parameter slot of a genotype's formula.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// The name as printed in the formula: `b`, `b1`, ...
    pub name: String,
    /// The value it starts from when the formula is trained from scratch.
    pub init: f64,
    /// The position whose op owns the parameter, and its slot in that op's template.
    pub position: String,
    pub slot: usize,
    /// The learned values, per activation site then per channel (filled in by the search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<Vec<Vec<f32>>>,
}

impl Genotype {
    /// Writes the genotype as pretty-printed JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing the genotype")?;
        crate::files::write_atomic(path, (text + "\n").as_bytes())
    }

    /// Reads a genotype written by [`Genotype::save`].
    pub fn load(path: &Path) -> Result<Genotype> {
        let text = read_genotype_text(path)?;
        serde_json::from_str(&text).with_context(|| {
            format!("{} is not a complete genotype (it needs space, ops, formula and params)", path.display())
        })
    }

    /// The formula, parsed.
    pub fn parsed(&self) -> Result<Formula> {
        Formula::parse(&self.formula).context("the genotype's formula")
    }

    /// The initial value of each parameter slot.
    pub fn init_values(&self) -> Vec<f64> {
        self.params.iter().map(|p| p.init).collect()
    }
}

/// The text of a genotype file; the error says where such files come from.
pub(super) fn read_genotype_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!("cannot read genotype {}: check the path (it is written by `actsearch search`)", path.display())
    })
}
