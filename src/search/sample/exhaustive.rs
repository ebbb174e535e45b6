//! Exhaustive enumeration of a space small enough, in a fixed order: the sequences in
//! mixed-radix counting order, the last step changing fastest. `--budget` caps it.

use anyhow::{Context, Result};

use super::method::{Learned, Method, nth_sequence};

pub struct Exhaustive {
    sizes: Vec<usize>,
    /// The index of the next sequence.
    next: u128,
    total: u128,
}

impl Exhaustive {
    pub fn new(sizes: Vec<usize>) -> Exhaustive {
        let total = sizes.iter().map(|&n| n as u128).product();
        Exhaustive { sizes, next: 0, total }
    }
}

impl Method for Exhaustive {
    fn propose(&mut self, n: usize) -> Result<Vec<Vec<usize>>> {
        let end = (self.next + n as u128).min(self.total);
        let out = (self.next..end).map(|i| nth_sequence(&self.sizes, i)).collect();
        self.next = end;
        Ok(out)
    }

    fn learn(&mut self, _batch: &[(Vec<usize>, f64)]) -> Result<Learned> {
        Ok(Learned::default())
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({ "next": self.next.to_string() }))
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.next = state["next"].as_str().context("exhaustive state lacks its position")?.parse()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerates_every_sequence_once_in_order() {
        let mut e = Exhaustive::new(vec![2, 3]);
        let mut all = e.propose(4).unwrap();
        let state = e.state().unwrap();
        let mut resumed = Exhaustive::new(vec![2, 3]);
        resumed.load_state(&state).unwrap();
        all.extend(resumed.propose(10).unwrap());
        assert_eq!(all, vec![vec![0, 0], vec![0, 1], vec![0, 2], vec![1, 0], vec![1, 1], vec![1, 2]]);
        assert!(resumed.propose(3).unwrap().is_empty());
    }
}
