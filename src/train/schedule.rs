//! Learning-rate schedules, stepped once per epoch (as PyTorch's `CosineAnnealingLR` and
//! `MultiStepLR` are in the common CIFAR recipes).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine annealing from `lr` to 0 over all epochs.
    Cosine,
    /// `lr` multiplied by 0.1 at 50% and again at 75% of the epochs.
    Step,
    /// `lr` throughout.
    Constant,
}

impl Schedule {
    pub fn parse(name: &str) -> Result<Schedule> {
        match name {
            "cosine" => Ok(Schedule::Cosine),
            "step" => Ok(Schedule::Step),
            "constant" => Ok(Schedule::Constant),
            _ => bail!("unknown schedule '{name}': use cosine, step or constant"),
        }
    }

    /// The learning rate during epoch `epoch` (0-based) of `epochs`.
    pub fn lr(self, base: f64, epoch: usize, epochs: usize) -> f64 {
        self.lr_with_floor(base, 0.0, epoch, epochs)
    }

    /// As [`Schedule::lr`], with cosine annealing towards `floor` instead of 0 (DARTS anneals
    /// the weights' learning rate to 0.001).
    pub fn lr_with_floor(self, base: f64, floor: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let t = epoch as f64 / epochs.max(1) as f64;
                floor + 0.5 * (base - floor) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Step => {
                let mut lr = base;
                for milestone in [epochs / 2, epochs * 3 / 4] {
                    if epoch >= milestone && milestone > 0 {
                        lr *= 0.1;
                    }
                }
                lr
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_starts_at_base_and_decays() {
        assert_eq!(Schedule::Cosine.lr(0.1, 0, 10), 0.1);
        assert!((Schedule::Cosine.lr(0.1, 5, 10) - 0.05).abs() < 1e-12);
        assert!(Schedule::Cosine.lr(0.1, 9, 10) < 0.003);
    }

    #[test]
    fn step_drops_at_half_and_three_quarters() {
        assert_eq!(Schedule::Step.lr(1.0, 49, 100), 1.0);
        assert!((Schedule::Step.lr(1.0, 50, 100) - 0.1).abs() < 1e-12);
        assert!((Schedule::Step.lr(1.0, 75, 100) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn unknown_schedule_is_an_error() {
        assert!(Schedule::parse("linear").unwrap_err().to_string().contains("cosine"));
    }
}
