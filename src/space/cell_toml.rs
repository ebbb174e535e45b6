//! User-defined cells: `--space PATH.toml` names a cell file that picks a shape, an op set and
//! the ops allowed at each position.
//!
//! ```toml
//! shape = "small"          # or "huge"
//! ops_set = "seed"         # optional: "seed" (default), "grafs" or "core"
//!
//! [positions.u1]
//! ops = ["identity", "sin", "beta_mul"]
//! [positions.u2]
//! ops = ["tanh", "sigmoid"]
//! [positions.b]
//! ops = ["mul", "add"]
//! ```
//!
//! Every position of the shape (`u1`, `u2`, `b` for small; `u1`, `u2`, `b1`, `u3`, `u4`, `b2`
//! for huge) must be listed with at least one op of its kind from the op set. Every mistake is a
//! one-line error naming the file, the position and the fix.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::cell::{CellShape, CellSpace, Position};
use super::cell_ops::{OpSet, PosKind};

/// The file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellFile {
    shape: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ops_set: Option<String>,
    #[serde(default)]
    positions: BTreeMap<String, PositionFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionFile {
    ops: Vec<String>,
}

impl CellSpace {
    /// A space by name (`small`, `huge`, `grafs`, `core1`, `core2`) or a `PATH.toml` cell file.
    pub fn parse(spec: &str) -> Result<CellSpace> {
        if let Some(space) = CellSpace::builtin(spec) {
            return Ok(space);
        }
        if spec.ends_with(".toml") {
            return load(std::path::Path::new(spec));
        }
        bail!("unknown search space '{spec}' (use small, huge, grafs, core1, core2 or a PATH.toml cell file)")
    }
}

/// Reads the cell file at `path`; the space is named after the path.
pub fn load(path: &Path) -> Result<CellSpace> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read cell file {} (check the path)", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses cell-file text; `file` names it in errors and becomes the space's name.
pub fn parse(text: &str, file: &str) -> Result<CellSpace> {
    let cell: CellFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
        let message = e.message().lines().next().unwrap_or("syntax error").trim_end_matches('.');
        anyhow::anyhow!(
            "cell file {file}: {message}{at} (expected shape = \"small\" or \"huge\", optional ops_set, and \
             [positions.NAME] tables with ops = [...])"
        )
    })?;
    let Some(shape) = CellShape::from_name(&cell.shape) else {
        bail!("cell file {file}: unknown shape \"{}\" (set shape = \"small\" or \"huge\")", cell.shape);
    };
    let set_name = cell.ops_set.as_deref().unwrap_or("seed");
    let Some(set) = OpSet::from_name(set_name) else {
        bail!("cell file {file}: unknown ops_set \"{set_name}\" (use \"seed\", \"grafs\" or \"core\")");
    };
    let layout = shape.layout();
    let names: Vec<&str> = layout.iter().map(|(n, _)| *n).collect();
    if let Some(extra) = cell.positions.keys().find(|k| !names.contains(&k.as_str())) {
        bail!(
            "cell file {file}: unknown position {extra} (the {} shape has positions {})",
            shape.name(),
            names.join(", ")
        );
    }
    let mut positions = Vec::with_capacity(layout.len());
    for &(name, kind) in layout {
        let Some(entry) = cell.positions.get(name) else {
            bail!(
                "cell file {file}: position {name} is missing (add [positions.{name}] with ops = [...]; the {} shape \
                 has positions {})",
                shape.name(),
                names.join(", ")
            );
        };
        positions.push(position(file, name, kind, set, &entry.ops)?);
    }
    CellSpace::new(file, shape, set, positions).with_context(|| format!("cell file {file}"))
}

/// Checks one position's op list against the op set.
fn position(file: &str, name: &str, kind: PosKind, set: OpSet, ops: &[String]) -> Result<Position> {
    let valid = || set.ops(kind).iter().map(|op| op.name).collect::<Vec<_>>().join(", ");
    if ops.is_empty() {
        bail!("cell file {file}: position {name} has no ops (list at least one of: {})", valid());
    }
    for (i, op) in ops.iter().enumerate() {
        if ops[..i].contains(op) {
            bail!("cell file {file}: position {name} lists \"{op}\" twice (list each op once)");
        }
        if set.find(kind, op).is_some() {
            continue;
        }
        let other = match kind {
            PosKind::Unary => PosKind::Binary,
            PosKind::Binary => PosKind::Unary,
        };
        if set.find(other, op).is_some() {
            bail!(
                "cell file {file}: position {name} is {} but \"{op}\" is a {} op (use {} ops here: {})",
                kind.name(),
                other.name(),
                kind.name(),
                valid()
            );
        }
        bail!(
            "cell file {file}: position {name}: unknown op \"{op}\" (the {} {} ops are: {})",
            set.name(),
            kind.name(),
            valid()
        );
    }
    Position::new(name, kind, set, ops)
}

/// The cell file text of `space` (the inverse of [`parse`]).
pub fn to_toml(space: &CellSpace) -> String {
    let cell = CellFile {
        shape: space.shape.name().to_string(),
        ops_set: Some(space.set.name().to_string()),
        positions: space.positions().iter().map(|p| (p.name.clone(), PositionFile { ops: p.ops.clone() })).collect(),
    };
    // Strings, string lists and tables of them always serialize.
    toml::to_string(&cell).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
shape = "small"

[positions.u1]
ops = ["identity", "sin", "beta_mul"]

[positions.u2]
ops = ["tanh", "sigmoid"]

[positions.b]
ops = ["mul", "add"]
"#;

    fn err(text: &str) -> String {
        let e = parse(text, "my.toml").unwrap_err();
        let msg = format!("{e:#}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.starts_with("cell file my.toml"), "{msg}");
        msg
    }

    #[test]
    fn reads_a_cell_file() {
        let space = parse(SMALL, "my.toml").unwrap();
        assert_eq!(space.name, "my.toml");
        assert_eq!(space.shape, CellShape::Small);
        assert_eq!(space.set, OpSet::Seed);
        let ops: Vec<Vec<String>> = space.positions().iter().map(|p| p.ops.clone()).collect();
        assert_eq!(ops, [vec!["identity", "sin", "beta_mul"], vec!["tanh", "sigmoid"], vec!["mul", "add"]]);
        assert_eq!(space.genotype(&[2, 0, 0]).unwrap().formula, "b*x*tanh(x)");
        assert_eq!(space.op_template(0, 1).to_string(), "sin(x1)");
    }

    #[test]
    fn round_trips_through_text() {
        for name in ["small", "huge", "grafs", "core1", "core2"] {
            let space = CellSpace::parse(name).unwrap();
            let back = parse(&to_toml(&space), name).unwrap();
            assert_eq!(back, space, "{name}");
        }
        let space = parse(SMALL, "my.toml").unwrap();
        assert_eq!(parse(&to_toml(&space), "my.toml").unwrap(), space);
    }

    #[test]
    fn loads_from_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.toml");
        std::fs::write(&path, SMALL).unwrap();
        let space = CellSpace::parse(path.to_str().unwrap()).unwrap();
        assert_eq!(space.name, path.display().to_string());
        let missing = dir.path().join("nope.toml");
        let e = format!("{:#}", CellSpace::parse(missing.to_str().unwrap()).unwrap_err());
        assert!(e.starts_with(&format!("cannot read cell file {} (check the path)", missing.display())), "{e}");
    }

    #[test]
    fn mistakes_are_one_line_errors_with_a_fix() {
        let e = err(&SMALL.replace("\"small\"", "\"medium\""));
        assert_eq!(e, "cell file my.toml: unknown shape \"medium\" (set shape = \"small\" or \"huge\")");
        let e = err(&format!("ops_set = \"fancy\"\n{SMALL}"));
        assert_eq!(e, "cell file my.toml: unknown ops_set \"fancy\" (use \"seed\", \"grafs\" or \"core\")");
        let e = err(&SMALL.replace("[positions.u2]\nops = [\"tanh\", \"sigmoid\"]\n", ""));
        assert!(e.contains("position u2 is missing (add [positions.u2] with ops = [...]"), "{e}");
        let e = err(&SMALL.replace("positions.b]", "positions.b9]"));
        assert_eq!(e, "cell file my.toml: unknown position b9 (the small shape has positions u1, u2, b)");
        let e = err(&SMALL.replace("[\"tanh\", \"sigmoid\"]", "[]"));
        assert!(
            e.starts_with("cell file my.toml: position u2 has no ops (list at least one of: identity, zero,"),
            "{e}"
        );
        let e = err(&SMALL.replace("\"sin\"", "\"sine\""));
        assert!(
            e.starts_with("cell file my.toml: position u1: unknown op \"sine\" (the seed unary ops are: identity,"),
            "{e}"
        );
        let e = err(&SMALL.replace("\"sin\"", "\"mul\""));
        assert!(
            e.starts_with("cell file my.toml: position u1 is unary but \"mul\" is a binary op (use unary ops here:"),
            "{e}"
        );
        let e = err(&SMALL.replace("[\"mul\", \"add\"]", "[\"mul\", \"tanh\"]"));
        assert!(e.contains("position b is binary but \"tanh\" is a unary op"), "{e}");
        let e = err(&SMALL.replace("\"add\"", "\"mul\""));
        assert_eq!(e, "cell file my.toml: position b lists \"mul\" twice (list each op once)");
        // An op of another set.
        let e = err(&SMALL.replace("\"sin\"", "\"gelu\""));
        assert!(e.contains("unknown op \"gelu\""), "{e}");
        assert!(parse(&format!("ops_set = \"grafs\"\n{}", SMALL.replace("\"sin\"", "\"gelu\"")), "g.toml").is_ok());
        // Syntax errors and unknown keys name the line.
        let e = err("shape = \"small\"\n[positions.u1\nops = []");
        assert!(e.contains("at line 2"), "{e}");
        let e = err(&SMALL.replace("ops = [\"tanh\"", "opz = [\"tanh\""));
        assert!(e.contains("unknown field `opz`") && e.contains("at line"), "{e}");
        let e = err("shapes = \"small\"");
        assert!(e.contains("unknown field `shapes`"), "{e}");
        let e = err("");
        assert!(e.contains("missing field `shape`"), "{e}");
    }
}
