//! `genotype.json`, the result of a search: the space, the op chosen at each position, the
//! discretized canonical `formula`, and per parameter slot its printed name, initial value,
//! origin and (filled in by the search) learned per-channel values. `eval` accepts the file
//! wherever it accepts a formula, and reads only its `formula`.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::expr::{Formula, resolve};

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
        std::fs::write(path, text + "\n").with_context(|| {
            format!("cannot write {} (check that its directory exists and is writable)", path.display())
        })
    }

    /// Reads a genotype written by [`Genotype::save`].
    pub fn load(path: &Path) -> Result<Genotype> {
        let text = read(path)?;
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

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!("cannot read genotype {}: check the path (it is written by `actsearch search`)", path.display())
    })
}

/// The initial value of each parameter slot of the activation `spec`: a full genotype's
/// `init` values (e.g. 0 for GRAFS' gate, so sigmoid(g) starts at 0.5), else 1 for every slot.
pub fn initial_values(spec: &str, formula: &Formula) -> Vec<f64> {
    let from_genotype = spec.ends_with(".json").then(|| Genotype::load(Path::new(spec)).ok()).flatten();
    match from_genotype {
        Some(g) if g.params.len() == formula.num_params() => g.init_values(),
        _ => vec![1.0; formula.num_params()],
    }
}

/// Where an eval's activation parameters start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitParams {
    /// The genotype's init values (1 for every slot of a formula given by name or text).
    #[default]
    Init,
    /// The values the search learned, per site and per channel (same network as the search).
    Learned,
    /// The mean of the learned values of each parameter, in every site and channel (any network).
    LearnedMean,
}

/// The starting values `[site][slot][channel]` of the activation `spec` for a network whose
/// sites have `site_channels` channels.
pub fn site_values(
    spec: &str,
    formula: &Formula,
    mode: InitParams,
    site_channels: &[usize],
) -> Result<Vec<Vec<Vec<f32>>>> {
    let broadcast = |values: Vec<f64>| -> Vec<Vec<Vec<f32>>> {
        site_channels.iter().map(|&c| values.iter().map(|&v| vec![v as f32; c]).collect()).collect()
    };
    if mode == InitParams::Init {
        return Ok(broadcast(initial_values(spec, formula)));
    }
    if !spec.ends_with(".json") {
        bail!(
            "--init-params {} needs --activation PATH/genotype.json from a search; '{spec}' is not a genotype",
            mode_name(mode)
        );
    }
    let genotype = Genotype::load(Path::new(spec))?;
    if genotype.params.len() != formula.num_params() {
        bail!(
            "{spec}: the genotype lists {} parameters but its formula has {}; use --init-params init",
            genotype.params.len(),
            formula.num_params()
        );
    }
    let mut learned = Vec::with_capacity(genotype.params.len());
    for p in &genotype.params {
        match &p.learned {
            Some(values) if !values.is_empty() => learned.push(values),
            _ => bail!(
                "{spec}: parameter {} has no learned values (the search did not record them); use --init-params init",
                p.name
            ),
        }
    }
    match mode {
        InitParams::LearnedMean => Ok(broadcast(
            learned
                .iter()
                .map(|sites| {
                    let all: Vec<f64> = sites.iter().flatten().map(|&v| v as f64).collect();
                    all.iter().sum::<f64>() / all.len().max(1) as f64
                })
                .collect(),
        )),
        _ => {
            let shape: Vec<usize> = learned[0].iter().map(Vec::len).collect();
            if learned.iter().any(|sites| sites.iter().map(Vec::len).collect::<Vec<_>>() != shape)
                || shape != site_channels
            {
                bail!(
                    "{spec}: the learned values are for {} activation sites with {:?} channels, this network has {} sites with {:?}; eval the search's network or use --init-params learned-mean",
                    shape.len(),
                    shape,
                    site_channels.len(),
                    site_channels
                );
            }
            Ok((0..site_channels.len()).map(|site| learned.iter().map(|sites| sites[site].clone()).collect()).collect())
        }
    }
}

fn mode_name(mode: InitParams) -> &'static str {
    match mode {
        InitParams::Init => "init",
        InitParams::Learned => "learned",
        InitParams::LearnedMean => "learned-mean",
    }
}

/// The formula stored in a genotype file.
pub fn load_formula(path: &Path) -> Result<Formula> {
    let text = read(path)?;
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

#[cfg(test)]
mod init_tests {
    use super::*;
    use crate::space::cell::CellSpace;

    #[test]
    fn a_grafs_gate_starts_at_its_genotype_init() {
        let dir = tempfile::tempdir().unwrap();
        let space = CellSpace::parse("grafs").unwrap();
        let gate = space.positions()[2].ops.iter().position(|o| o == "gate_mix").unwrap();
        let mut choice = vec![0; space.positions().len()];
        choice[2] = gate;
        let genotype = space.genotype(&choice).unwrap();
        let path = dir.path().join("genotype.json");
        genotype.save(&path).unwrap();
        let spec = path.to_str().unwrap();
        let formula = resolve_activation(spec).unwrap();
        let init = initial_values(spec, &formula);
        assert!(init.contains(&0.0), "{} {init:?}", genotype.formula);
        assert_eq!(initial_values("x*sigmoid(b*x)", &resolve_activation("x*sigmoid(b*x)").unwrap()), vec![1.0]);
    }

    /// `learned` starts every site and channel at the search's values, `learned-mean` at each
    /// parameter's mean; a network with other sites, or a genotype without learned values, is
    /// a clear error.
    #[test]
    fn learned_values_start_an_eval_where_the_search_left_them() {
        let dir = tempfile::tempdir().unwrap();
        let space = CellSpace::parse("small").unwrap();
        let mut genotype = space.genotype(&[7, 8, 0]).unwrap(); // beta_mul, add_beta, add
        assert_eq!(genotype.params.len(), 2, "{}", genotype.formula);
        let path = dir.path().join("genotype.json");
        genotype.save(&path).unwrap();
        let spec = path.to_str().unwrap();
        let formula = resolve_activation(spec).unwrap();
        let err = site_values(spec, &formula, InitParams::Learned, &[2, 3]).unwrap_err().to_string();
        assert!(err.contains("no learned values") && err.contains("--init-params init"), "{err}");

        genotype.params[0].learned = Some(vec![vec![0.5, 1.5], vec![2.0, 2.0, 2.0]]);
        genotype.params[1].learned = Some(vec![vec![-1.0, 1.0], vec![0.0, 0.0, 3.0]]);
        genotype.save(&path).unwrap();
        let exact = site_values(spec, &formula, InitParams::Learned, &[2, 3]).unwrap();
        assert_eq!(exact[1], vec![vec![2.0, 2.0, 2.0], vec![0.0, 0.0, 3.0]]);
        assert_eq!(exact[0][1], vec![-1.0, 1.0]);
        let mean = site_values(spec, &formula, InitParams::LearnedMean, &[4]).unwrap();
        assert_eq!(mean, vec![vec![vec![1.6; 4], vec![0.6; 4]]]);
        let err = site_values(spec, &formula, InitParams::Learned, &[16, 16, 16]).unwrap_err().to_string();
        assert!(err.contains("learned-mean"), "{err}");
        let err = site_values("silu", &resolve_activation("silu").unwrap(), InitParams::Learned, &[2]).unwrap_err();
        assert!(err.to_string().contains("genotype"), "{err}");
        assert_eq!(site_values(spec, &formula, InitParams::Init, &[1]).unwrap(), vec![vec![vec![1.0], vec![1.0]]]);
    }
}
