//! Regularized evolution (Real et al. 2019, "aging evolution"): a population of the `P` most
//! recent children. Until it is full, proposals are uniform; then each proposal takes a
//! tournament of `S` members drawn at random, mutates the best of them (one step's choice
//! resampled to a different value), and when its reward comes back it joins the population
//! and the oldest member dies, whatever its reward.

use std::collections::VecDeque;

use anyhow::{Context, Result, bail};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::method::{Learned, Method, rng, rng_from_state, rng_state, uniform_sequence};

pub struct Evolution {
    sizes: Vec<usize>,
    population: VecDeque<(Vec<usize>, f64)>,
    size: usize,
    tournament: usize,
    rng: ChaCha8Rng,
}

impl Evolution {
    /// A population of `size` with tournaments of `tournament` (at least 1, at most `size`).
    pub fn new(sizes: Vec<usize>, size: usize, tournament: usize, seed: u64) -> Result<Evolution> {
        if size < 2 {
            bail!("--population must be at least 2, got {size}");
        }
        if tournament == 0 || tournament > size {
            bail!("--tournament must be between 1 and the population ({size}), got {tournament}");
        }
        Ok(Evolution { sizes, population: VecDeque::new(), size, tournament, rng: rng(seed) })
    }

    pub fn population(&self) -> usize {
        self.population.len()
    }

    /// The best of a random tournament, one token resampled.
    fn mutant(&mut self) -> Vec<usize> {
        let mut best: Option<&(Vec<usize>, f64)> = None;
        for _ in 0..self.tournament {
            let m = &self.population[self.rng.random_range(0..self.population.len())];
            if best.is_none_or(|b| m.1 > b.1) {
                best = Some(m);
            }
        }
        let mut child = best.expect("the population is not empty").0.clone();
        let mutable: Vec<usize> = (0..self.sizes.len()).filter(|&i| self.sizes[i] > 1).collect();
        if let Some(&step) = mutable.get(self.rng.random_range(0..mutable.len().max(1))) {
            let n = self.sizes[step];
            // A different value: draw among the n - 1 others.
            let k = self.rng.random_range(0..n - 1);
            child[step] = if k >= child[step] { k + 1 } else { k };
        }
        child
    }
}

impl Method for Evolution {
    fn propose(&mut self, n: usize) -> Result<Vec<Vec<usize>>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            // Until the population (with the proposals before this one) is full: uniform.
            if self.population.len() + i < self.size || self.population.is_empty() {
                out.push(uniform_sequence(&self.sizes, &mut self.rng));
            } else {
                out.push(self.mutant());
            }
        }
        Ok(out)
    }

    fn learn(&mut self, batch: &[(Vec<usize>, f64)]) -> Result<Learned> {
        for member in batch {
            self.population.push_back(member.clone());
            while self.population.len() > self.size {
                self.population.pop_front();
            }
        }
        Ok(Learned::default())
    }

    fn state(&self) -> Result<serde_json::Value> {
        let population: Vec<serde_json::Value> =
            self.population.iter().map(|(s, r)| serde_json::json!({ "tokens": s, "reward": r })).collect();
        Ok(serde_json::json!({ "population": population, "rng": rng_state(&self.rng) }))
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let members = state["population"].as_array().context("evolution state lacks its population")?;
        let mut population = VecDeque::with_capacity(members.len());
        for m in members {
            let tokens: Vec<usize> = serde_json::from_value(m["tokens"].clone()).context("bad population member")?;
            let reward = m["reward"].as_f64().context("a population member lacks its reward")?;
            population.push_back((tokens, reward));
        }
        self.population = population;
        self.rng = rng_from_state(&state["rng"])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_population_keeps_its_size_and_the_oldest_dies() {
        let sizes = vec![5, 5, 3];
        let mut e = Evolution::new(sizes.clone(), 4, 2, 7).unwrap();
        let mut seen = Vec::new();
        for round in 0..6 {
            let batch = e.propose(3).unwrap();
            let rewarded: Vec<(Vec<usize>, f64)> =
                batch.into_iter().enumerate().map(|(i, s)| (s, (round * 3 + i) as f64)).collect();
            seen.extend(rewarded.clone());
            e.learn(&rewarded).unwrap();
            assert_eq!(e.population(), seen.len().min(4));
        }
        // The population is the 4 most recent.
        let kept: Vec<f64> = e.population.iter().map(|m| m.1).collect();
        assert_eq!(kept, vec![14.0, 15.0, 16.0, 17.0]);
        // Mutants differ from some member in exactly one step.
        for child in e.propose(5).unwrap() {
            assert!(e.population.iter().any(|(s, _)| s.iter().zip(&child).filter(|(a, b)| a != b).count() == 1));
        }
        assert!(Evolution::new(sizes.clone(), 1, 1, 0).is_err());
        assert!(Evolution::new(sizes, 4, 5, 0).is_err());
    }

    #[test]
    fn state_round_trips() {
        let mut a = Evolution::new(vec![4, 4], 3, 2, 1).unwrap();
        let batch: Vec<(Vec<usize>, f64)> = a.propose(4).unwrap().into_iter().map(|s| (s, 0.5)).collect();
        a.learn(&batch).unwrap();
        let mut b = Evolution::new(vec![4, 4], 3, 2, 99).unwrap();
        b.load_state(&a.state().unwrap()).unwrap();
        assert_eq!(a.propose(6).unwrap(), b.propose(6).unwrap());
    }
}
