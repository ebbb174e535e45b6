//! How much a sample-based search trains each function, and what it may spend in all.
//!
//! At full fidelity every new function trains for all of `--child-steps`. With
//! `--fidelity halving` (ASHA, Li et al. 2020) every new function first trains for the lowest
//! rung's steps, and the best are promoted to train on, from their checkpoints, to the next
//! rung (`rungs`); `asha` holds the promotion rule and the order in which results count.
//! `--budget-steps` bounds the child steps of a whole search at either fidelity, so that
//! methods compare at equal compute.
//!
//! Nothing here trains or stores anything: the search's iteration asks these types what to
//! run next and tells them what came back.

pub mod asha;
pub mod rungs;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

pub use asha::{Asha, Seen, Sequencer};
pub use rungs::Rungs;

/// How a search trains each function (`config.json`'s `fidelity`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Fidelity {
    /// Every function trains for all of `--child-steps`.
    #[default]
    Full,
    /// Successive halving: rungs from `min_steps` up to `--child-steps`, multiplied by `eta`.
    Halving { min_steps: usize, eta: usize },
}

impl Fidelity {
    /// The rungs of a search whose children train for `child_steps` at most: one rung of
    /// `child_steps` at full fidelity.
    pub fn rungs(self, child_steps: usize) -> Result<Rungs> {
        match self {
            Fidelity::Full => Ok(Rungs::full(child_steps)),
            Fidelity::Halving { min_steps, eta } => Rungs::new(min_steps, eta, child_steps),
        }
    }

    /// "full", or "halving" (as `compare` names a search's fidelity).
    pub fn name(self) -> &'static str {
        match self {
            Fidelity::Full => "full",
            Fidelity::Halving { .. } => "halving",
        }
    }
}

/// `--budget-steps`: the child steps a search may spend in all, checked against its rungs.
pub fn check_budget_steps(budget_steps: Option<usize>, rungs: &Rungs) -> Result<()> {
    match budget_steps {
        Some(0) => bail!("--budget-steps must be at least 1"),
        Some(n) if n < rungs.steps(0) => bail!(
            "--budget-steps {n} is less than one child's first {} steps, so nothing could train; give at least {}",
            rungs.steps(0),
            rungs.steps(0)
        ),
        _ => Ok(()),
    }
}
