//! Learning-rate schedules, stepped once per epoch (as PyTorch's `CosineAnnealingLR` and
//! `MultiStepLR` are in the common CIFAR recipes).

use anyhow::{Result, bail};

use super::driver::At;
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

    fn at_step(step: usize) -> At {
        At { epoch: 0, index: step, batches: 100, step, lr: 0.0 }
    }

    #[test]
    fn warm_up_rises_linearly_to_the_base_then_the_schedule_runs_over_the_rest() {
        let rule = LrRule { schedule: Schedule::Cosine, base: 1e-3, per: Per::Step, total: 100, warmup: 5, floor: 0.0 };
        assert!((rule.at(&at_step(0)) - 2e-4).abs() < 1e-12);
        assert!((rule.at(&at_step(4)) - 1e-3).abs() < 1e-12);
        assert!((rule.at(&at_step(5)) - 1e-3).abs() < 1e-12);
        // Halfway through the 95 steps after the warm-up, cosine is at half the base.
        assert!((rule.at(&at_step(5 + 95 / 2)) - Schedule::Cosine.lr(1e-3, 47, 95)).abs() < 1e-15);
        assert!(rule.at(&at_step(99)) < 1e-5);
        // Without a warm-up the rule is the schedule itself (the ResNets' and children's).
        let plain = LrRule { warmup: 0, ..rule };
        assert_eq!(plain.at(&at_step(30)), Schedule::Cosine.lr(1e-3, 30, 100));
    }

    /// nanoGPT's shakespeare_char rule: 100 warm-up steps to 1e-3, then cosine to 1e-4 at
    /// the last of 2000 steps.
    #[test]
    fn cosine_decays_to_the_floor() {
        let rule =
            LrRule { schedule: Schedule::Cosine, base: 1e-3, per: Per::Step, total: 2000, warmup: 100, floor: 1e-4 };
        assert!((rule.at(&at_step(99)) - 1e-3).abs() < 1e-15);
        assert!((rule.at(&at_step(100)) - 1e-3).abs() < 1e-15);
        assert!((rule.at(&at_step(100 + 950)) - 5.5e-4).abs() < 1e-12, "halfway: halfway between base and floor");
        let last = rule.at(&at_step(1999));
        assert!(last > 1e-4 && last < 1.001e-4, "{last}");
    }

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

/// Whether a schedule steps once per epoch or once per optimizer step.
#[derive(Clone, Copy, Debug)]
pub enum Per {
    Epoch,
    Step,
}

/// The weights' learning rate: a linear warm-up over the first `warmup` steps (or epochs),
/// rising to `base` at the last of them, then `schedule` from `base` over the rest of `total`
/// (cosine towards `floor`: 0 for every recipe but the GPT's, whose floor is a tenth of the
/// base, as nanoGPT's).
#[derive(Clone, Copy, Debug)]
pub struct LrRule {
    pub schedule: Schedule,
    pub base: f64,
    pub per: Per,
    pub total: usize,
    pub warmup: usize,
    pub floor: f64,
}

impl LrRule {
    /// `schedule` per step over `steps`, after a linear warm-up over the first `warmup`
    /// fraction of them (the transformers' recipes).
    pub fn warmed(schedule: Schedule, base: f64, steps: usize, warmup: f64) -> LrRule {
        let warmup = (warmup * steps as f64).round() as usize;
        LrRule { schedule, base, per: Per::Step, total: steps, warmup, floor: 0.0 }
    }

    pub fn at(&self, at: &At) -> f64 {
        let now = match self.per {
            Per::Epoch => at.epoch,
            Per::Step => at.step,
        };
        if now < self.warmup {
            return self.base * (now + 1) as f64 / self.warmup as f64;
        }
        self.schedule.lr_with_floor(self.base, self.floor, now - self.warmup, self.total - self.warmup)
    }
}
