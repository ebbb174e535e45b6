//! `genotype.json`, the result of a search: the space, the op chosen at each position, the
//! discretized canonical `formula`, and per parameter slot its printed name, initial value,
//! origin and (filled in by the search) learned per-channel values. `eval` accepts the file
//! wherever it accepts a formula (see `space::resolve`).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::expr::Formula;

/// A discretized cell (written by `CellSpace::genotype`, read back by `eval`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Genotype {
    /// The space searched: `small`, `huge`, `grafs`, `core1`, `core2` or a cell file's path.
    pub space: String,
    /// The op chosen at each position, in evaluation order.
    pub ops: Vec<PositionChoice>,
    /// The canonical formula of the cell.
    pub formula: String,
    /// One entry per parameter slot of `formula`, in slot order (first appearance reading the
    /// formula left to right; several anonymous slots all print as `b`).
    pub params: Vec<ParamInfo>,
}

/// The op chosen at one position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionChoice {
    pub position: String,
    pub op: String,
}

/// One parameter slot of a genotype's formula.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// The name as printed in the formula: `b`, `b1`, ...
    pub name: String,
    /// The value it starts from when the formula is trained from scratch.
    pub init: f64,
    /// The position whose op owns the parameter, and its slot in that op's template.
    pub position: String,
    pub slot: usize,
    /// The learned values, per activation site then per channel (filled in by the search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<Vec<Vec<f32>>>,
}

impl Genotype {
    /// Writes the genotype as pretty-printed JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing the genotype")?;
        crate::files::write_atomic(path, (text + "\n").as_bytes())
    }

    /// Reads a genotype written by [`Genotype::save`].
    pub fn load(path: &Path) -> Result<Genotype> {
        let text = read_genotype_text(path)?;
        serde_json::from_str(&text).with_context(|| {
            format!("{} is not a complete genotype (it needs space, ops, formula and params)", path.display())
        })
    }

    /// The formula, parsed.
    pub fn parsed(&self) -> Result<Formula> {
        Formula::parse(&self.formula).context("the genotype's formula")
    }

    /// The initial value of each parameter slot.
    pub fn init_values(&self) -> Vec<f64> {
        self.params.iter().map(|p| p.init).collect()
    }
}

/// The text of a genotype file; the error says where such files come from.
pub(super) fn read_genotype_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!("cannot read genotype {}: check the path (it is written by `actsearch search`)", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::resolve::resolve_activation;

    #[test]
    fn reads_the_formula_of_a_genotype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genotype.json");
        std::fs::write(&path, r#"{"formula": "x*sigmoid(b*x)", "ops": [["mul"]]}"#).unwrap();
        assert_eq!(resolve_activation(path.to_str().unwrap()).unwrap().to_string(), "x*sigmoid(b*x)");
    }

    #[test]
    fn genotypes_round_trip_and_resolve_to_their_formula() {
        use crate::space::cell::CellSpace;
        let dir = tempfile::tempdir().unwrap();
        let space = CellSpace::parse("grafs").unwrap();
        let mut g = space.genotype(&[7, 6, 6, 0, 8, 1]).unwrap();
        assert_eq!(g.params.len(), 4);
        g.params[0].learned = Some(vec![vec![0.5, -1.25], vec![2.0, 0.0]]);
        let path = dir.path().join("genotype.json");
        g.save(&path).unwrap();
        assert_eq!(Genotype::load(&path).unwrap(), g);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n  \"space\": \"grafs\""), "{text}");
        let f = resolve_activation(path.to_str().unwrap()).unwrap();
        assert_eq!(f, g.parsed().unwrap());
        assert_eq!(f.to_string(), g.formula);
        assert_eq!(f.num_params(), g.params.len());
        assert_eq!(g.init_values(), [0.0, 1.0, 1.0, 1.0]);
        // A file with only a formula is still accepted by eval, but is not a full genotype.
        let short = dir.path().join("short.json");
        std::fs::write(&short, r#"{"formula": "x"}"#).unwrap();
        assert!(format!("{:#}", Genotype::load(&short).unwrap_err()).contains("is not a complete genotype"));
    }

    #[test]
    fn bad_genotypes_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        assert!(
            resolve_activation(missing.to_str().unwrap()).unwrap_err().to_string().contains("cannot read genotype")
        );
        let no_formula = dir.path().join("g.json");
        std::fs::write(&no_formula, r#"{"ops": []}"#).unwrap();
        assert!(
            format!("{:#}", resolve_activation(no_formula.to_str().unwrap()).unwrap_err()).contains("no \"formula\"")
        );
        let bad = dir.path().join("b.json");
        std::fs::write(&bad, r#"{"formula": "x*("}"#).unwrap();
        assert!(format!("{:#}", resolve_activation(bad.to_str().unwrap()).unwrap_err()).contains("column"));
    }
}

