//! `genotype.json`, the result of a search: at least the discretized `formula` (plus, from
//! the searches, the op names per position and learned parameter values). `eval` accepts the
//! file wherever it accepts a formula.

use std::path::Path;

use anyhow::{Context, Result, anyhow};

use crate::expr::{Formula, resolve};

/// The formula stored in a genotype file.
pub fn load_formula(path: &Path) -> Result<Formula> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read genotype {}: check the path (it is written by `actsearch search`)", path.display())
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    let formula = value.get("formula").and_then(|f| f.as_str()).ok_or_else(|| {
        anyhow!("{} has no \"formula\" string; is it a genotype.json from `actsearch search`?", path.display())
    })?;
    resolve(formula).with_context(|| format!("the formula in {}", path.display()))
}

/// An activation given on the command line: a genotype file (`*.json`), a named activation or
/// a formula.
pub fn resolve_activation(spec: &str) -> Result<Formula> {
    if spec.ends_with(".json") {
        return load_formula(Path::new(spec));
    }
    Ok(resolve(spec)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_formula_of_a_genotype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genotype.json");
        std::fs::write(&path, r#"{"formula": "x*sigmoid(b*x)", "ops": [["mul"]]}"#).unwrap();
        assert_eq!(resolve_activation(path.to_str().unwrap()).unwrap().to_string(), "x*sigmoid(b*x)");
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
