//! What a search writes besides `errors.json`: one `alphas.jsonl` line per epoch with every
//! site's softmaxed mixing weights, and the discretized genotype with the learned parameter
//! values of the chosen ops.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::model::MixedCell;
use crate::model::net::Net;
use crate::model::state::host_f32;
use crate::space::cell::CellSpace;
use crate::space::genotype::{Genotype, SiteLayout};

/// Softmaxed weights `[site][position][op]`.
pub fn site_weights<N: Net<Site = MixedCell>>(model: &N) -> Vec<Vec<Vec<f64>>> {
    model
        .sites()
        .iter()
        .map(|cell| cell.weights().into_iter().map(|w| host_f32(w).into_iter().map(f64::from).collect()).collect())
        .collect()
}

/// The genotype of the mean (over sites) mixing weights, with each chosen parameter's learned
/// per-site, per-channel (or per-feature, with `layout`) values.
pub fn genotype<N: Net<Site = MixedCell>>(
    space: &CellSpace,
    model: &N,
    weights: &[Vec<Vec<f64>>],
    layout: SiteLayout,
) -> Result<Genotype> {
    let mut genotype = space.discretize(&mean_over_sites(weights))?;
    genotype.layout = layout;
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

/// The mixing weights `[position][op]` averaged over the sites of `weights` (`[site][position][op]`).
fn mean_over_sites(weights: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
    let mut mean: Vec<Vec<f64>> = weights[0].iter().map(|p| vec![0.0; p.len()]).collect();
    for site in weights {
        for (m, w) in mean.iter_mut().zip(site) {
            for (a, b) in m.iter_mut().zip(w) {
                *a += b / weights.len() as f64;
            }
        }
    }
    mean
}

/// A chosen op whose weight is below this many times uniform was not chosen by the search.
const DECIDED: f64 = 1.25;

/// The positions whose site-averaged weights are still close to uniform over the ops in play
/// (the largest below [`DECIDED`] times uniform): their argmax is noise, not a choice. One
/// entry each, e.g. "u1: log at 0.056 against 0.056 for each of 18 ops".
pub fn undecided(space: &CellSpace, weights: &[Vec<Vec<f64>>]) -> Vec<String> {
    let mut out = Vec::new();
    for (position, w) in space.positions().iter().zip(mean_over_sites(weights)) {
        let in_play = w.iter().filter(|&&v| v > 0.0).count();
        let Some((k, &top)) = w.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) else { continue };
        let uniform = 1.0 / in_play.max(1) as f64;
        if in_play > 1 && top < DECIDED * uniform {
            out.push(format!(
                "{}: {} at {top:.3} against {uniform:.3} for each of {in_play} ops",
                position.name, position.ops[k]
            ));
        }
    }
    out
}

#[derive(Serialize)]
struct AlphaLine<'a> {
    epoch: usize,
    /// The step it came after, for a search counted in steps (a language model's).
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
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
    step: Option<usize>,
    formula: &str,
    space: &CellSpace,
    weights: &[Vec<Vec<f64>>],
) -> Result<()> {
    let line = AlphaLine {
        epoch,
        step,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_uniform_weights_are_undecided_and_chosen_ones_are_not() {
        let space = CellSpace::parse("small").unwrap();
        let sizes: Vec<usize> = space.positions().iter().map(|p| p.ops.len()).collect();
        let uniform: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![1.0 / n as f64; n]).collect();
        // Two sites: DARTS after a few hundred steps, a hair away from uniform.
        let mut nudged = uniform.clone();
        nudged[0][9] += 0.001;
        nudged[0][0] -= 0.001;
        let found = undecided(&space, &[uniform.clone(), nudged]);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("u1: log at 0.056 against 0.056 for each of 18 ops"), "{found:?}");
        // One op clearly ahead at u1; u2 shrunk to one op in play; b still uniform.
        let mut chosen = uniform.clone();
        chosen[0] = (0..sizes[0]).map(|k| if k == 4 { 0.5 } else { 0.5 / (sizes[0] - 1) as f64 }).collect();
        chosen[1] = (0..sizes[1]).map(|k| if k == 2 { 1.0 } else { 0.0 }).collect();
        let found = undecided(&space, &[chosen]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("b: "), "{found:?}");
    }
}
