//! The surrogate method (AQuaSurF, Bingham & Miikkulainen 2023): rank unseen candidates by a
//! reward predicted without training them, and train the best-predicted next.
//!
//! - The first proposals are the space's own spellings of standard functions, where it has
//!   them: relu, silu (`x*sigmoid(x)`), tanh, softplus and x, found by fingerprint (every
//!   sequence of a countable space, else a seeded sample of it).
//! - Then each proposal comes from a pool of [`POOL`] sequences drawn from the space: those the
//!   screen would reject and functions already proposed are left out, and a k-nearest-neighbour
//!   regressor (`predict::Knn`, k = [`K`]), fit to every reward learned so far, ranks the rest
//!   by the output features of `predict::features`.
//! - Where the search's network has them (`fisher`: every task but translation), the
//!   [`FISHER_TOP`] best so ranked also get the Fisher features of the child network at
//!   initialization, and a second kNN on both feature sets (each weighing the same) ranks
//!   those: its best are proposed. Learned functions get both sets as they are learned.
//!
//! Its state (search.db's checkpoint) holds the Fisher features of the learned functions, so
//! a resumed search rebuilds its regressors without a network; the pool's come from the
//! shared cache of `fisher`.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result};
use rand_chacha::ChaCha8Rng;

use super::fisher::FisherProbe;
use super::method::{Learned, Method, nth_sequence, rng, rng_from_state, rng_state, uniform_sequence};
use super::screen::{Screen, identity, screen};
use super::space::TokenSpace;
use crate::expr::Formula;
use crate::search::predict::{Knn, OUTPUT_SAMPLES, fisher, output_features};

/// Candidates drawn per proposal round.
pub const POOL: usize = 2000;
/// Neighbours a prediction averages.
pub const K: usize = 3;
/// The best-ranked candidates by output features that get Fisher features.
pub const FISHER_TOP: usize = 200;
/// The standard functions tried first, in this order.
const STANDARD: [&str; 5] = ["max(x, 0)", "x*sigmoid(x)", "tanh(x)", "softplus(x)", "x"];
/// Sequences searched for the standard spellings in a space too large to go through.
const SPELLING_SAMPLE: u128 = 100_000;

pub struct Surrogate {
    space: TokenSpace,
    sizes: Vec<usize>,
    rng: ChaCha8Rng,
    /// Standard spellings not yet proposed.
    standard: Vec<Vec<usize>>,
    /// Every sequence learned, with its reward, in order.
    learned: Vec<(Vec<usize>, f64)>,
    /// Fingerprints (or formulas) of every sequence proposed.
    proposed: HashSet<String>,
    /// The regressor, fit to the output features of every learned sequence the screen keeps
    /// (derived from `learned`, as each is learned).
    knn: Knn,
    /// The Fisher features' source, where the network has them; the features of the learned
    /// functions by key, and the regressor on both feature sets.
    fisher: Option<FisherProbe>,
    learned_fisher: BTreeMap<String, Vec<f64>>,
    knn_both: Knn,
}

impl Surrogate {
    /// The method on `space`, seeded; with `fisher`, it also ranks by the Fisher features of
    /// the search's child network.
    pub fn new(space: TokenSpace, seed: u64, fisher: Option<FisherProbe>) -> Result<Surrogate> {
        let sizes: Vec<usize> = space.steps().iter().map(|s| s.choices.len()).collect();
        let standard = standard_spellings(&space, &sizes, seed)?;
        let (learned, proposed, knn) = (Vec::new(), HashSet::new(), Knn::new(K));
        Ok(Surrogate {
            space,
            sizes,
            rng: rng(seed),
            standard,
            learned,
            proposed,
            knn,
            fisher,
            learned_fisher: BTreeMap::new(),
            knn_both: both_knn(),
        })
    }

    /// Adds `tokens`' reward to `learned` and its features to the regressors.
    fn add(&mut self, tokens: &[usize], reward: f64) -> Result<()> {
        if let Some((key, Some(features))) = self.describe(tokens) {
            if self.fisher.is_some() {
                let f = match self.learned_fisher.get(&key) {
                    Some(f) => f.clone(),
                    None => self.fisher_features(&key, tokens)?,
                };
                self.learned_fisher.insert(key, f.clone());
                self.knn_both.add([features.clone(), f].concat(), reward);
            }
            self.knn.add(features, reward);
        }
        self.learned.push((tokens.to_vec(), reward));
        Ok(())
    }

    /// The Fisher features of `tokens` (a sequence the screen keeps), under `key`.
    fn fisher_features(&mut self, key: &str, tokens: &[usize]) -> Result<Vec<f64>> {
        let c = self.space.decode(tokens)?;
        let probe = self.fisher.as_mut().context("the surrogate has no Fisher features")?;
        probe.features(key, &c.formula, &c.init).with_context(|| format!("the Fisher features of {}", c.formula))
    }

    /// A candidate's identity and, unless the screen rejects it, its output features.
    fn describe(&self, tokens: &[usize]) -> Option<(String, Option<Vec<f64>>)> {
        let c = self.space.decode(tokens).ok()?;
        let key = identity(c.formula.fingerprint(), &c.formula.to_string());
        let features = match screen(&c.formula, &c.init) {
            Screen::Train { .. } => Some(output_features(&c.formula, &c.init)),
            Screen::Reject { .. } => None,
        };
        Some((key, features))
    }
}

/// The regressor on output and Fisher features, each set weighing the same.
pub fn both_knn() -> Knn {
    Knn::grouped(K, vec![OUTPUT_SAMPLES, fisher::BINS])
}

/// The space's spellings of [`STANDARD`], in that order, each the first found.
fn standard_spellings(space: &TokenSpace, sizes: &[usize], seed: u64) -> Result<Vec<Vec<usize>>> {
    let targets: Vec<Option<u64>> =
        STANDARD.iter().map(|f| Formula::parse(f).map(|f| f.fingerprint())).collect::<Result<_, _>>()?;
    let mut found: Vec<Option<Vec<usize>>> = vec![None; targets.len()];
    let mut sample = rng(seed ^ 0x5EED);
    let count = space.size().min(SPELLING_SAMPLE);
    for i in 0..count {
        let tokens = match space.size() <= SPELLING_SAMPLE {
            true => nth_sequence(sizes, i),
            false => uniform_sequence(sizes, &mut sample),
        };
        let Ok(c) = space.decode(&tokens) else { continue };
        let Some(fp) = c.formula.fingerprint() else { continue };
        for (slot, target) in found.iter_mut().zip(&targets) {
            if slot.is_none() && *target == Some(fp) {
                *slot = Some(tokens.clone());
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    Ok(found.into_iter().flatten().collect())
}

impl Method for Surrogate {
    fn propose(&mut self, n: usize) -> Result<Vec<Vec<usize>>> {
        let mut out = Vec::new();
        while out.len() < n && !self.standard.is_empty() {
            let tokens = self.standard.remove(0);
            if let Some((key, _)) = self.describe(&tokens)
                && self.proposed.insert(key)
            {
                out.push(tokens);
            }
        }
        if out.len() == n {
            return Ok(out);
        }
        let mut pool: Vec<(Vec<usize>, String, Vec<f64>)> = Vec::new();
        let mut in_pool = HashSet::new();
        for _ in 0..POOL {
            let tokens = uniform_sequence(&self.sizes, &mut self.rng);
            let Some((key, Some(features))) = self.describe(&tokens) else { continue };
            if !self.proposed.contains(&key) && in_pool.insert(key.clone()) {
                pool.push((tokens, key, features));
            }
        }
        let features: Vec<Vec<f64>> = pool.iter().map(|p| p.2.clone()).collect();
        let mut ranked: Vec<(f64, usize)> = match self.knn.predict(&features) {
            Some(p) => p.into_iter().enumerate().map(|(i, v)| (v, i)).collect(),
            // Nothing learned yet: the pool's order, which is uniform.
            None => (0..pool.len()).map(|i| (0.0, i)).collect(),
        };
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if self.fisher.is_some() && !self.knn_both.is_empty() {
            ranked.truncate(FISHER_TOP.max(n));
            let mut both = Vec::new();
            for &(_, i) in &ranked {
                let f = self.fisher_features(&pool[i].1, &pool[i].0)?;
                both.push([pool[i].2.clone(), f].concat());
            }
            let predicted = self.knn_both.predict(&both).unwrap_or_default();
            ranked = predicted.into_iter().zip(ranked.iter().map(|r| r.1)).collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        }
        for (_, i) in ranked {
            if out.len() == n {
                break;
            }
            self.proposed.insert(pool[i].1.clone());
            out.push(pool[i].0.clone());
        }
        // A pool with nothing new left: uniform sequences, as random search would propose.
        while out.len() < n {
            out.push(uniform_sequence(&self.sizes, &mut self.rng));
        }
        Ok(out)
    }

    fn learn(&mut self, batch: &[(Vec<usize>, f64)]) -> Result<Learned> {
        for (tokens, reward) in batch {
            self.add(tokens, *reward)?;
        }
        Ok(Learned::default())
    }

    fn state(&self) -> Result<serde_json::Value> {
        let mut proposed: Vec<&String> = self.proposed.iter().collect();
        proposed.sort();
        Ok(serde_json::json!({
            "rng": rng_state(&self.rng),
            "standard": self.standard,
            "learned": self.learned,
            "proposed": proposed,
            "fisher": self.learned_fisher,
        }))
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.rng = rng_from_state(&state["rng"])?;
        self.standard = serde_json::from_value(state["standard"].clone()).context("the surrogate's state")?;
        let learned: Vec<(Vec<usize>, f64)> =
            serde_json::from_value(state["learned"].clone()).context("the surrogate's state")?;
        self.learned_fisher = match state.get("fisher") {
            Some(f) => serde_json::from_value(f.clone()).context("the surrogate's state")?,
            None => BTreeMap::new(),
        };
        (self.learned, self.knn, self.knn_both) = (Vec::new(), Knn::new(K), both_knn());
        for (tokens, reward) in learned {
            self.add(&tokens, reward)?;
        }
        let proposed: Vec<String> =
            serde_json::from_value(state["proposed"].clone()).context("the surrogate's state")?;
        self.proposed = proposed.into_iter().collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_spellings_come_first_and_nothing_repeats() {
        let space = TokenSpace::parse("core1").unwrap();
        let mut s = Surrogate::new(space.clone(), 0, None).unwrap();
        let first = s.propose(5).unwrap();
        let formulas: Vec<u64> =
            first.iter().map(|t| space.decode(t).unwrap().formula.fingerprint().unwrap()).collect();
        let want: Vec<u64> = STANDARD.iter().map(|f| Formula::parse(f).unwrap().fingerprint().unwrap()).collect();
        assert_eq!(formulas, want);
        s.learn(&first.iter().cloned().zip([0.5, 0.6, 0.4, 0.45, 0.3]).collect::<Vec<_>>()).unwrap();
        let next = s.propose(8).unwrap();
        let mut keys = HashSet::new();
        for t in first.iter().chain(&next) {
            assert!(keys.insert(space.decode(t).unwrap().formula.fingerprint()), "a repeat");
        }
        // Its state restores the same proposals.
        let state = s.state().unwrap();
        let mut again = Surrogate::new(space, 0, None).unwrap();
        again.load_state(&state).unwrap();
        assert_eq!(again.propose(4).unwrap(), s.propose(4).unwrap());
    }
}
