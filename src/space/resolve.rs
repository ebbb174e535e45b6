//! An activation given on the command line (`--activation NAME|FORMULA|PATH/genotype.json`)
//! turned into what a run needs: its formula, checked (a genotype's formula must be what its
//! ops build), and the starting values of its parameters per site and channel
//! (`--init-params init|learned|learned-mean`).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::cell::CellSpace;
use super::genotype::{Genotype, read_genotype_text};
use crate::expr::{Formula, resolve, shorten};

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
    if learned.is_empty() {
        // Nothing was learned because there is nothing to learn: every mode starts the same.
        return Ok(broadcast(Vec::new()));
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
    let text = read_genotype_text(path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    let formula = value.get("formula").and_then(|f| f.as_str()).ok_or_else(|| {
        anyhow!("{} has no \"formula\" string; is it a genotype.json from `actsearch search`?", path.display())
    })?;
    let parsed = resolve(formula).with_context(|| format!("the formula in {}", path.display()))?;
    // A full genotype (space, ops, params) must agree with itself.
    if let Ok(genotype) = serde_json::from_value::<Genotype>(value) {
        check_ops_build_formula(path, &genotype, &parsed)?;
    }
    Ok(parsed)
}

/// Checks that the ops of `genotype` build its formula `parsed` (the same canonical formula,
/// or one with the same values). A genotype whose space cannot be read (a cell file that has
/// moved) cannot be checked and is accepted.
fn check_ops_build_formula(path: &Path, genotype: &Genotype, parsed: &Formula) -> Result<()> {
    let Ok(space) = CellSpace::parse(&genotype.space) else { return Ok(()) };
    let fix = "fix the file, or run the search again";
    let choice = space
        .choice_of(genotype)
        .map_err(|e| anyhow!("genotype {} does not fit its space: {e}; {fix}", shorten(&path.display().to_string())))?;
    let built = space.genotype(&choice)?.parsed()?;
    let same =
        built == parsed.canonical() || (built.fingerprint().is_some() && built.fingerprint() == parsed.fingerprint());
    if !same {
        bail!(
            "genotype {}: its formula {} is not what its ops build ({}); {fix}",
            shorten(&path.display().to_string()),
            shorten(&parsed.to_string()),
            shorten(&built.to_string())
        );
    }
    if genotype.params.len() != parsed.num_params() {
        bail!(
            "genotype {}: it lists {} parameters but its formula has {}; {fix}",
            shorten(&path.display().to_string()),
            genotype.params.len(),
            parsed.num_params()
        );
    }
    Ok(())
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

#[cfg(test)]
mod check_tests {
    use super::*;

    /// The panic of issue 11: `--init-params learned` on a genotype without parameters.
    #[test]
    fn learned_values_of_a_genotype_without_parameters_are_no_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let space = CellSpace::parse("small").unwrap();
        let u = |name: &str| space.positions()[0].ops.iter().position(|o| o == name).unwrap();
        let b = space.positions()[2].ops.iter().position(|o| o == "add").unwrap();
        let genotype = space.genotype(&[u("sinc"), u("sigmoid"), b]).unwrap();
        assert!(genotype.params.is_empty(), "{}", genotype.formula);
        let path = dir.path().join("genotype.json");
        genotype.save(&path).unwrap();
        let spec = path.to_str().unwrap();
        let formula = resolve_activation(spec).unwrap();
        for mode in [InitParams::Init, InitParams::Learned, InitParams::LearnedMean] {
            assert_eq!(site_values(spec, &formula, mode, &[4, 8]).unwrap(), vec![Vec::<Vec<f32>>::new(); 2]);
        }
    }

    #[test]
    fn a_genotype_whose_formula_contradicts_its_ops_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let space = CellSpace::parse("small").unwrap();
        let mut genotype = space.genotype(&[5, 16, 0]).unwrap();
        let path = dir.path().join("genotype.json");
        genotype.save(&path).unwrap();
        let good = resolve_activation(path.to_str().unwrap()).unwrap();
        assert_eq!(good.to_string(), genotype.formula);

        // An equivalent spelling is the same function: accepted.
        let original = genotype.formula.clone();
        genotype.formula = format!("({original})");
        genotype.save(&path).unwrap();
        assert_eq!(resolve_activation(path.to_str().unwrap()).unwrap(), good);

        genotype.formula = "relu(x)".to_string();
        genotype.save(&path).unwrap();
        let err = format!("{:#}", resolve_activation(path.to_str().unwrap()).unwrap_err());
        assert!(err.contains("is not what its ops build") && err.contains(&original), "{err}");

        genotype.formula = original;
        genotype.ops[0].op = "no_such_op".to_string();
        genotype.save(&path).unwrap();
        let err = format!("{:#}", resolve_activation(path.to_str().unwrap()).unwrap_err());
        assert!(err.contains("has no op 'no_such_op'"), "{err}");
        genotype.ops.pop();
        genotype.save(&path).unwrap();
        let err = format!("{:#}", resolve_activation(path.to_str().unwrap()).unwrap_err());
        assert!(err.contains("does not fit its space"), "{err}");
    }
}

#[cfg(test)]
mod genotype_files {
    //! Genotype files written and read back, through `resolve_activation` as eval reads them.
    use super::resolve_activation;
    use crate::space::cell::CellSpace;
    use crate::space::genotype::Genotype;

    #[test]
    fn reads_the_formula_of_a_genotype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genotype.json");
        std::fs::write(&path, r#"{"formula": "x*sigmoid(b*x)", "ops": [["mul"]]}"#).unwrap();
        assert_eq!(resolve_activation(path.to_str().unwrap()).unwrap().to_string(), "x*sigmoid(b*x)");
    }

    #[test]
    fn genotypes_round_trip_and_resolve_to_their_formula() {
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
