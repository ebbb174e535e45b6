//! One search per seed (`search --seeds 0,1,2`), as `eval --seeds` trains one run per seed:
//! each seed searches into its own `seed-N` folder, and `summary.json` says which function
//! each seed found and whether the seeds agree. Two formulas agree when they are the same
//! function: equal canonical text, or equal numeric fingerprints (`expr::Formula::fingerprint`,
//! so `x + x` and `2*x` count as one).

use anyhow::Result;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::SearchConfig;
use super::run::{SearchOutcome, search};
use crate::expr::Formula;
use crate::observer::Observer;
use crate::train::history::write_json;
use crate::train::seeds::{each_seed, seed_dir_names};

/// `summary.json` of a search over several seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedsSummary {
    pub method: String,
    pub space: String,
    pub network: String,
    pub dataset: String,
    pub seeds: Vec<u64>,
    /// The canonical formula each seed found, in `seeds` order.
    pub formulas: Vec<String>,
    /// The distinct functions found, each with the seeds that found it, most frequent first.
    pub functions: Vec<FoundBy>,
    /// Whether every seed found the same function.
    pub agree: bool,
    /// Run directories, relative to the summary's directory.
    pub runs: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoundBy {
    pub formula: String,
    pub seeds: Vec<u64>,
}

/// Searches once per seed (each into `train::seeds::seed_dir`) and, for several seeds, writes
/// `summary.json` into `base.out`.
pub fn search_seeds(
    base: &SearchConfig,
    seeds: &[u64],
    device: &Device,
    resume: bool,
    obs: &dyn Observer,
) -> Result<(SeedsSummary, Vec<SearchOutcome>)> {
    let (_lock, outcomes) = each_seed(&base.out, seeds, "search", obs, |seed, out| {
        search(&SearchConfig { seed, out, ..base.clone() }, device, resume, obs)
    })?;
    let formulas: Vec<String> = outcomes.iter().map(|o| o.genotype.formula.clone()).collect();
    let functions = group_functions(seeds, &formulas);
    let summary = SeedsSummary {
        method: base.method.clone(),
        space: base.space.clone(),
        network: base.network.name().to_string(),
        dataset: base.dataset.clone(),
        seeds: seeds.to_vec(),
        agree: functions.len() == 1,
        functions,
        formulas,
        runs: seed_dir_names(seeds),
    };
    if seeds.len() > 1 {
        write_json(&base.out.join("summary.json"), &summary)?;
    }
    Ok((summary, outcomes))
}

/// The seeds' formulas grouped into distinct functions (same canonical text or same
/// fingerprint), most seeds first, then in seed order.
pub fn group_functions(seeds: &[u64], formulas: &[String]) -> Vec<FoundBy> {
    // A function's identity: its canonical text and its fingerprint (either may be missing).
    type Key = (Option<String>, Option<u64>);
    let key = |f: &str| -> Key {
        let parsed = Formula::parse(f).ok();
        (parsed.as_ref().map(|p| p.canonical().to_string()), parsed.and_then(|p| p.fingerprint()))
    };
    let mut groups: Vec<(FoundBy, Key)> = Vec::new();
    for (&seed, formula) in seeds.iter().zip(formulas) {
        let k = key(formula);
        let same = |g: &(FoundBy, Key)| {
            g.0.formula == *formula || (k.0.is_some() && g.1.0 == k.0) || (k.1.is_some() && g.1.1 == k.1)
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.0.seeds.push(seed),
            None => groups.push((FoundBy { formula: formula.clone(), seeds: vec![seed] }, k)),
        }
    }
    let mut out: Vec<FoundBy> = groups.into_iter().map(|g| g.0).collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.seeds.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_agree_on_the_same_function_written_differently() {
        let formulas = ["x + x", "2*x", "relu(x)", "max(x, 0)"].map(String::from);
        let groups = group_functions(&[0, 1, 2, 3], &formulas);
        assert_eq!(
            groups,
            vec![
                FoundBy { formula: "x + x".into(), seeds: vec![0, 1] },
                FoundBy { formula: "relu(x)".into(), seeds: vec![2, 3] },
            ]
        );
        let groups = group_functions(&[5, 6, 7], &["sin(x)", "x", "sin(x)"].map(String::from));
        assert_eq!(groups[0], FoundBy { formula: "sin(x)".into(), seeds: vec![5, 7] });
        assert_eq!(groups.len(), 2);
        assert_eq!(group_functions(&[1], &["x".into()]).len(), 1);
    }
}
