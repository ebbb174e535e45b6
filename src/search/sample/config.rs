//! The configuration of a sample-based search (`config.json`), its methods, and the presets
//! (`--preset paper|quick`) that fill in what the user did not give.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

pub use super::child::ChildRecipe;
use super::evolution::Evolution;
use super::exhaustive::Exhaustive;
use super::method::Method;
use super::policy::{PolicyConfig, PolicySearch, Rule};
use super::random::RandomSearch;
use super::space::TokenSpace;
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
}

impl SampleMethod {
    pub fn name(self) -> &'static str {
        match self {
            SampleMethod::Ppo => "ppo",
            SampleMethod::Reinforce => "reinforce",
            SampleMethod::Random => "random",
            SampleMethod::Evolution => "evolution",
            SampleMethod::Exhaustive => "exhaustive",
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
