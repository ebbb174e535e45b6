//! The configuration of a sample-based search (`config.json`), its methods, and the presets
//! (`--preset paper|quick`) that fill in what the user did not give.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

pub use super::child::ChildRecipe;
use super::evolution::Evolution;
use super::exhaustive::Exhaustive;
use super::fisher::FisherProbe;
use super::method::Method;
use super::policy::{PolicyConfig, PolicySearch, Rule};
use super::random::RandomSearch;
use super::space::TokenSpace;
use super::surrogate::Surrogate;
use crate::model::Network;

/// The methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleMethod {
    Ppo,
    Reinforce,
    Random,
    Evolution,
    Exhaustive,
    Surrogate,
}

impl SampleMethod {
    pub fn name(self) -> &'static str {
        match self {
            SampleMethod::Ppo => "ppo",
            SampleMethod::Reinforce => "reinforce",
            SampleMethod::Random => "random",
            SampleMethod::Evolution => "evolution",
            SampleMethod::Exhaustive => "exhaustive",
            SampleMethod::Surrogate => "surrogate",
        }
    }
}

/// The full configuration of a sample-based search (`config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleConfig {
    pub method: SampleMethod,
    pub space: String,
    /// Distinct functions to train.
    pub budget: usize,
    /// The child steps the search may spend in all (`--budget-steps`): a new function is not
    /// trained when its steps would go past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_steps: Option<usize>,
    /// How much each function trains: all of the child steps, or successive halving's rungs.
    #[serde(default, skip_serializing_if = "crate::train::config::is_default")]
    pub fidelity: crate::search::fidelity::Fidelity,
    /// Proposals per controller iteration.
    pub batch_children: usize,
    pub seed: u64,
    pub child: ChildRecipe,
    pub dataset: String,
    pub data_dir: PathBuf,
    /// Evolution's population and tournament sizes.
    pub population: usize,
    pub tournament: usize,
    /// PPO's and REINFORCE's controller training.
    pub policy: PolicyConfig,
    /// The search stops after this many proposals even if the budget is not spent (a policy
    /// that keeps proposing functions it has seen).
    pub max_proposals: usize,
    pub top_k: usize,
    pub executor: String,
    pub workers: usize,
    /// Threads of each child.
    pub threads: usize,
    pub backend: String,
    pub out: PathBuf,
}

/// The method `config` names, fresh.
pub fn build_method(
    config: &SampleConfig,
    space: &TokenSpace,
    device: &burn::prelude::Device,
) -> Result<Box<dyn Method>> {
    let sizes: Vec<usize> = space.steps().iter().map(|s| s.choices.len()).collect();
    let mut policy = config.policy;
    Ok(match config.method {
        SampleMethod::Random => Box::new(RandomSearch::new(sizes, config.seed)),
        SampleMethod::Exhaustive => Box::new(Exhaustive::new(sizes)),
        SampleMethod::Evolution => Box::new(Evolution::new(sizes, config.population, config.tournament, config.seed)?),
        SampleMethod::Surrogate => Box::new(Surrogate::new(
            space.clone(),
            config.seed,
            FisherProbe::open(&config.child, &config.dataset, &config.data_dir, config.seed)?,
        )?),
        SampleMethod::Ppo | SampleMethod::Reinforce => {
            if config.method == SampleMethod::Reinforce {
                policy.rule = Rule::Reinforce;
            } else if policy.rule == Rule::Reinforce {
                bail!("the ppo method needs a PPO rule");
            }
            Box::new(PolicySearch::new(space.clone(), policy, config.seed, device))
        }
    })
}

/// The recipes of the sample-based searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplePreset {
    /// Ramachandran et al. (2017), as far as published: ResNet-20 children of 10000 steps,
    /// budget 1000, 8 children per iteration.
    Paper,
    /// Minutes on a CPU: budget 16, 4 per iteration, ResNet-8 children of 200 steps on 5000
    /// images.
    Quick,
}

/// The values a preset gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleDefaults {
    pub budget: usize,
    pub batch_children: usize,
    pub network: Network,
    pub steps: usize,
    pub subset: Option<usize>,
    pub population: usize,
    pub tournament: usize,
}

impl SamplePreset {
    pub fn defaults(self) -> SampleDefaults {
        match self {
            SamplePreset::Paper => SampleDefaults {
                budget: 1000,
                batch_children: 8,
                network: Network::Resnet20,
                steps: 10000,
                subset: None,
                population: 20,
                tournament: 5,
            },
            SamplePreset::Quick => SampleDefaults {
                budget: 16,
                batch_children: 4,
                network: Network::Resnet8,
                steps: 200,
                subset: Some(5000),
                population: 4,
                tournament: 2,
            },
        }
    }
}

/// A search configuration for tests: core1, ResNet-8 children of 1 step on batches of 2, the
/// `test` executor, 8 children per iteration.
#[cfg(test)]
pub fn test_config(method: SampleMethod, out: &std::path::Path, budget: usize) -> SampleConfig {
    SampleConfig {
        method,
        space: "core1".into(),
        budget,
        budget_steps: None,
        fidelity: Default::default(),
        batch_children: 8,
        seed: 0,
        child: ChildRecipe::test_resnet8(),
        dataset: "synthetic".into(),
        data_dir: "data".into(),
        population: 8,
        tournament: 3,
        policy: PolicyConfig {
            rule: Rule::Ppo { epochs: 4, clip: 0.2 },
            controller: super::controller::ControllerConfig::default(),
            lr: 0.01,
            entropy_weight: 0.0,
            baseline_decay: 0.9,
        },
        max_proposals: budget * 20,
        top_k: 5,
        executor: "test".into(),
        workers: 1,
        threads: 1,
        backend: "flex".into(),
        out: out.to_path_buf(),
    }
}
