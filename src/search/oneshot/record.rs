//! What a search writes besides `errors.json`: one `alphas.jsonl` line per epoch with every
//! site's softmaxed mixing weights, and the discretized genotype with the learned parameter
//! values of the chosen ops.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::model::state::host_f32;
use crate::model::{MixedCell, ResNet};
use crate::space::cell::CellSpace;
use crate::space::genotype::Genotype;

/// Softmaxed weights `[site][position][op]`.
pub fn site_weights(model: &ResNet<MixedCell>) -> Vec<Vec<Vec<f64>>> {
    model
        .sites()
        .iter()
        .map(|cell| cell.weights().into_iter().map(|w| host_f32(w).into_iter().map(f64::from).collect()).collect())
        .collect()
}

/// The genotype of the mean (over sites) mixing weights, with each chosen parameter's learned
/// per-site, per-channel values.
pub fn genotype(space: &CellSpace, model: &ResNet<MixedCell>, weights: &[Vec<Vec<f64>>]) -> Result<Genotype> {
    let mut mean: Vec<Vec<f64>> = weights[0].iter().map(|p| vec![0.0; p.len()]).collect();
    for site in weights {
        for (m, w) in mean.iter_mut().zip(site) {
            for (a, b) in m.iter_mut().zip(w) {
                *a += b / weights.len() as f64;
            }
        }
    }
    let mut genotype = space.discretize(&mean)?;
    let positions: Vec<&str> = space.positions().iter().map(|p| p.name.as_str()).collect();
    for info in &mut genotype.params {
        let Some(pos) = positions.iter().position(|&p| p == info.position) else { continue };
        let chosen = genotype.ops.iter().find(|c| c.position == info.position).map(|c| c.op.clone());
        let Some(op) = chosen.and_then(|name| space.positions()[pos].ops.iter().position(|o| *o == name)) else {
            continue;
        };
        info.learned = Some(model.sites().iter().map(|cell| host_f32(cell.params[pos][op][info.slot].val())).collect());
    }
    Ok(genotype)
}

#[derive(Serialize)]
struct AlphaLine<'a> {
    epoch: usize,
    formula: &'a str,
    positions: Vec<&'a str>,
    ops: Vec<&'a [String]>,
    /// `[site][position][op]`, softmaxed.
    weights: &'a [Vec<Vec<f64>>],
}

/// Append the epoch's line to `alphas.jsonl`.
pub fn append_alphas(
    path: &Path,
    epoch: usize,
    formula: &str,
    space: &CellSpace,
    weights: &[Vec<Vec<f64>>],
) -> Result<()> {
    let line = AlphaLine {
        epoch,
        formula,
        positions: space.positions().iter().map(|p| p.name.as_str()).collect(),
        ops: space.positions().iter().map(|p| p.ops.as_slice()).collect(),
        weights,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(&line)?).with_context(|| format!("cannot write {}", path.display()))
}

/// Keep only the first `epochs` lines of `alphas.jsonl` (a resumed run rewrites the rest).
pub fn truncate_alphas(path: &Path, epochs: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let kept: String = text.lines().take(epochs).map(|l| format!("{l}\n")).collect();
    crate::files::write_atomic(path, kept.as_bytes())
}
