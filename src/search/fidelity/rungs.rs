//! Successive halving's rungs: the step counts at which a function's result is seen, from
//! `--min-steps` up to `--child-steps`, each `--eta` times the one before (the last is
//! `--child-steps` itself). Every rung trains under the learning-rate schedule of the full
//! `--child-steps`, so a child resumed from one rung to the next equals one trained straight
//! through.

use anyhow::{Result, bail};

/// The step counts of the rungs, increasing; the last is the children's full steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rungs(Vec<usize>);

impl Rungs {
    /// One rung: every function trains for all `steps`.
    pub fn full(steps: usize) -> Rungs {
        Rungs(vec![steps])
    }

    /// `min_steps`, `min_steps * eta`, `min_steps * eta^2`, ... while below `max_steps`, then
    /// `max_steps`.
    pub fn new(min_steps: usize, eta: usize, max_steps: usize) -> Result<Rungs> {
        if eta < 2 {
            bail!("--eta {eta} must be at least 2: each rung trains eta times the steps of the one below");
        }
        if min_steps == 0 {
            bail!("--min-steps must be at least 1");
        }
        if min_steps >= max_steps {
            bail!(
                "--min-steps {min_steps} must be below --child-steps {max_steps}: the lowest rung trains fewer steps than a full child"
            );
        }
        let mut steps = vec![min_steps];
        while let Some(next) = steps.last().and_then(|s| s.checked_mul(eta)).filter(|&n| n < max_steps) {
            steps.push(next);
        }
        steps.push(max_steps);
        Ok(Rungs(steps))
    }

    /// The steps a child has trained once it has reached `rung`.
    pub fn steps(&self, rung: usize) -> usize {
        self.0[rung]
    }

    /// How many rungs there are.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// True for full fidelity's single rung.
    pub fn is_full(&self) -> bool {
        self.0.len() == 1
    }

    /// The highest rung's index.
    pub fn top(&self) -> usize {
        self.0.len() - 1
    }

    /// The steps it costs to take a child from `rung - 1` to `rung` (for rung 0, its steps).
    pub fn cost(&self, rung: usize) -> usize {
        self.0[rung] - if rung == 0 { 0 } else { self.0[rung - 1] }
    }

    /// Every rung's steps, lowest first.
    pub fn all(&self) -> &[usize] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_multiply_up_to_the_full_steps() {
        assert_eq!(Rungs::new(20, 3, 200).unwrap().all(), &[20, 60, 180, 200]);
        assert_eq!(Rungs::new(25, 2, 200).unwrap().all(), &[25, 50, 100, 200]);
        assert_eq!(Rungs::new(100, 3, 200).unwrap().all(), &[100, 200]);
        let r = Rungs::new(10, 4, 100).unwrap();
        assert_eq!((r.count(), r.top(), r.cost(0), r.cost(1), r.cost(2)), (3, 2, 10, 30, 60));
        assert!(Rungs::full(200).is_full());
    }

    #[test]
    fn bad_rungs_are_one_clear_error() {
        let e = |a, b, c| format!("{:#}", Rungs::new(a, b, c).unwrap_err());
        assert!(e(20, 1, 200).contains("--eta 1 must be at least 2"));
        assert!(e(0, 3, 200).contains("--min-steps must be at least 1"));
        assert!(e(200, 3, 200).contains("--min-steps 200 must be below --child-steps 200"));
    }
}
