//! How many distinct functions a space holds, where the space is small enough to count: every
//! sequence is decoded and screened (`screen`), as a search would, and the distinct functions
//! worth training are counted by fingerprint. A search stops once it has trained them all, and
//! warns at the start when its budget asks for more (`run`).
//!
//! Larger spaces are not counted; a search there stops after [`REPEATS_IN_A_ROW`] proposals
//! in a row that were all functions it had already seen.

use std::collections::HashSet;

use anyhow::Result;
use rayon::prelude::*;

use super::method::nth_sequence;
use super::screen::{Screen, screen};
use super::space::TokenSpace;

/// Spaces of at most this many sequences are counted (`core1`'s 6250 take a tenth of a second).
pub const COUNTABLE: u128 = 100_000;

/// A search of a space too large to count stops after this many proposals in a row that were
/// all repeats of functions it had seen (trained or rejected).
pub const REPEATS_IN_A_ROW: usize = 2_000;

/// What a counted space holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Census {
    pub sequences: u128,
    /// Distinct functions worth training: the most a search can train.
    pub trainable: usize,
    /// Distinct functions the screen rejects.
    pub rejected: usize,
}

/// Counts `space`'s distinct functions, or None when it has more than [`COUNTABLE`] sequences.
pub fn census(space: &TokenSpace) -> Result<Option<Census>> {
    let sequences = space.size();
    if sequences > COUNTABLE {
        return Ok(None);
    }
    let sizes: Vec<usize> = space.steps().iter().map(|s| s.choices.len()).collect();
    // Each sequence's identity: (trainable, key), the key a fingerprint or, for a function
    // without one, its formula.
    let keys: Vec<(bool, String)> = (0..sequences)
        .into_par_iter()
        .map(|i| {
            let candidate = space.decode(&nth_sequence(&sizes, i))?;
            Ok(match screen(&candidate.formula, &candidate.init) {
                Screen::Train { fingerprint } => (true, format!("{fingerprint:016x}")),
                Screen::Reject { fingerprint: Some(fp), .. } => (false, format!("{fp:016x}")),
                Screen::Reject { fingerprint: None, .. } => (false, candidate.formula.to_string()),
            })
        })
        .collect::<Result<_>>()?;
    let trainable: HashSet<&str> = keys.iter().filter(|k| k.0).map(|k| k.1.as_str()).collect();
    let rejected: HashSet<&str> = keys.iter().filter(|k| !k.0).map(|k| k.1.as_str()).collect();
    Ok(Some(Census { sequences, trainable: trainable.len(), rejected: rejected.len() }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A cell of two sequences: x*sin(x) and x*tanh(x).
    pub(crate) const TWO: &str = "shape = \"small\"\n[positions.u1]\nops = [\"identity\"]\n[positions.u2]\nops = [\"sin\", \"tanh\"]\n[positions.b]\nops = [\"mul\"]\n";

    #[test]
    fn a_two_sequence_cell_holds_at_most_two_functions() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("two.toml");
        std::fs::write(&cell, TWO).unwrap();
        let space = TokenSpace::parse(cell.to_str().unwrap()).unwrap();
        let c = census(&space).unwrap().unwrap();
        assert_eq!(c, Census { sequences: 2, trainable: 2, rejected: 0 });
    }

    #[test]
    fn core1_is_counted_and_core2_is_not() {
        let c = census(&TokenSpace::parse("core1").unwrap()).unwrap().unwrap();
        assert_eq!(c.sequences, 6250);
        // x + x and x - (-x) are one function; sin(x) - sin(x) is rejected.
        assert!(c.trainable > 100 && c.trainable < 6250, "{c:?}");
        assert!(c.rejected >= 1);
        assert!(census(&TokenSpace::parse("core2").unwrap()).unwrap().is_none());
    }
}
