//! How well the surrogate predicts rewards it has not seen (`actsearch predict RUN --against
//! OTHER`): its regressors (`search::sample::surrogate`: the kNN on output features, and the
//! kNN on output and Fisher features) are fit to the rewards of one sample-based search and
//! scored on the functions of another that the first does not hold, by Spearman's rank
//! correlation of predicted against actual rewards. The quality of the surrogate is then a
//! measurement, not an assumption.
//!
//! Rewards are compared at one step count: a full-fidelity search holds each function's at
//! the recipe's steps, a search with successive halving at each rung it reached. The two
//! searches must train the same child recipe on the same dataset, or their rewards do not
//! compare.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::child::Status;
use super::config::SampleConfig;
use super::fisher::FisherProbe;
use super::screen::{Screen, identity, screen};
use super::space::TokenSpace;
use super::store::Store;
use super::surrogate::{K, both_knn};
use crate::report::stats::{Correlation, spearman};
use crate::search::predict::{Knn, output_features};
use crate::train::run_dir::CONFIG_FILE;

/// One function of the tested search: its actual reward and the two predictions.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Tested {
    pub formula: String,
    pub actual: f64,
    /// Whether it trained (status ok), rather than diverged to the task's floor.
    pub ok: bool,
    /// Predicted from the output features alone.
    pub outputs: f64,
    /// Predicted from output and Fisher features (None without Fisher features).
    pub both: Option<f64>,
}

/// What [`holdout`] measured.
#[derive(Clone, Debug)]
pub struct Holdout {
    /// The step count the rewards are at.
    pub steps: usize,
    /// Functions the regressors were fit to.
    pub fit: usize,
    pub tested: Vec<Tested>,
    /// Spearman's correlation of the output-feature predictions, and of those on both sets.
    pub outputs: Option<Correlation>,
    pub both: Option<Correlation>,
    /// The same over the tested functions that trained (not diverged): how well the surrogate
    /// ranks functions that work, beyond telling them from those that blow up.
    pub outputs_ok: Option<Correlation>,
    pub both_ok: Option<Correlation>,
    /// Why there are no Fisher features, where there are none.
    pub no_fisher: Option<String>,
}

/// One search as this reads it: its configuration, its space, and its functions' rewards by
/// step count.
struct Search {
    dir: PathBuf,
    config: SampleConfig,
    space: TokenSpace,
    functions: Vec<Function>,
    /// The identity of every function its store holds, trained or not.
    held: HashSet<String>,
}

struct Function {
    key: String,
    tokens: Vec<usize>,
    formula: String,
    /// Reward by step count, and whether it trained there (rather than diverged); a failed
    /// child's reward is unknown: none.
    rewards: BTreeMap<usize, (f64, bool)>,
}

/// Fits on the search in `run`, tests on the one in `other`, at `steps` (None: the step count
/// at which the smaller of the two sets is largest). `data_dir` overrides where the Fisher
/// features' data lies (the fit search's `data_dir` otherwise). `progress(done, total)` follows
/// the Fisher features.
pub fn holdout(
    run: &Path,
    other: &Path,
    steps: Option<usize>,
    data_dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Holdout> {
    let (fit, test) = (Search::read(run)?, Search::read(other)?);
    same_recipe(&fit, &test)?;
    let steps = match steps {
        Some(s) => s,
        None => default_steps(&fit, &test)?,
    };
    let fit_set: Vec<&Function> = fit.functions.iter().filter(|f| f.rewards.contains_key(&steps)).collect();
    let test_set: Vec<&Function> =
        test.functions.iter().filter(|f| f.rewards.contains_key(&steps) && !fit.held.contains(&f.key)).collect();
    if fit_set.is_empty() {
        bail!("{} has no reward at {steps} steps; {}", fit.dir.display(), held_steps(&fit));
    }
    if test_set.len() < 3 {
        bail!(
            "{} has {} function(s) with a reward at {steps} steps that {} does not hold; a rank correlation needs at least 3 (search it longer, or give --steps; {})",
            test.dir.display(),
            test_set.len(),
            fit.dir.display(),
            held_steps(&test)
        );
    }
    let data_dir = data_dir.map_or_else(|| fit.config.data_dir.clone(), Path::to_path_buf);
    let c = &fit.config;
    let mut probe = FisherProbe::open(&c.child, &c.dataset, &data_dir, c.seed)
        .with_context(|| format!("the Fisher features need the data of {}; give --data-dir", fit.dir.display()))?;
    let no_fisher = probe.is_none().then(|| "a translation child has no Fisher features".to_string());
    let total = if probe.is_some() { fit_set.len() + test_set.len() } else { 0 };
    let mut done = 0;
    let mut features = |search: &Search, f: &Function| -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let cand = search.space.decode(&f.tokens)?;
        let outputs = output_features(&cand.formula, &cand.init);
        let fisher = match probe.as_mut() {
            Some(p) => Some(p.features(&f.key, &cand.formula, &cand.init)?),
            None => None,
        };
        done += 1;
        progress(done, total);
        Ok((outputs, fisher))
    };
    let (mut knn, mut knn_both) = (Knn::new(K), both_knn());
    for f in &fit_set {
        let (outputs, fisher) = features(&fit, f)?;
        if let Some(fisher) = fisher {
            knn_both.add([outputs.clone(), fisher].concat(), f.rewards[&steps].0);
        }
        knn.add(outputs, f.rewards[&steps].0);
    }
    let mut tested = Vec::new();
    for f in &test_set {
        let (outputs, fisher) = features(&test, f)?;
        let predicted = knn.predict(std::slice::from_ref(&outputs)).unwrap_or_default();
        let both = fisher.and_then(|fisher| knn_both.predict(&[[outputs, fisher].concat()])).map(|p| p[0]);
        let (actual, ok) = f.rewards[&steps];
        tested.push(Tested { formula: f.formula.clone(), actual, ok, outputs: predicted[0], both });
    }
    let correlations = |only_ok: bool| {
        let kept: Vec<&Tested> = tested.iter().filter(|t| t.ok || !only_ok).collect();
        let actual: Vec<f64> = kept.iter().map(|t| t.actual).collect();
        let outputs = spearman(&kept.iter().map(|t| t.outputs).collect::<Vec<_>>(), &actual);
        let both = match no_fisher {
            None => spearman(&kept.iter().map(|t| t.both.unwrap_or(f64::NAN)).collect::<Vec<_>>(), &actual),
            Some(_) => None,
        };
        (outputs, both)
    };
    let ((outputs, both), (outputs_ok, both_ok)) = (correlations(false), correlations(true));
    Ok(Holdout { steps, fit: fit_set.len(), tested, outputs, both, outputs_ok, both_ok, no_fisher })
}

impl Search {
    fn read(dir: &Path) -> Result<Search> {
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).with_context(|| {
            format!("{} has no {CONFIG_FILE}: give the folder of a sample-based search", dir.display())
        })?;
        let config: SampleConfig = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a sample-based search's configuration (ppo, random, evolution, surrogate ...)",
                config_path.display()
            )
        })?;
        let space =
            TokenSpace::parse(&config.space).with_context(|| format!("the space of {}", config_path.display()))?;
        let store = Store::open_read(&dir.join("search.db"))?;
        let rows = store.rows()?;
        let held = rows.iter().map(|r| identity(r.fingerprint, &r.formula)).collect();
        let rungs = config.fidelity.rungs(config.child.steps)?;
        // A halving search's rewards come from its rungs (each child's at each rung it
        // reached), read once; a full search's from its rows.
        let mut by_child: BTreeMap<usize, BTreeMap<usize, (f64, bool)>> = BTreeMap::new();
        if !rungs.is_full() {
            for k in 0..rungs.count() {
                for g in store.rung_rows(k)?.into_iter().filter(|g| g.status != Status::Failed) {
                    by_child.entry(g.child).or_default().insert(g.steps, (g.reward, g.status == Status::Ok));
                }
            }
        }
        let mut functions = Vec::new();
        for r in rows.iter().filter(|r| r.trained()) {
            let rewards = match rungs.is_full() {
                true if r.status != Status::Failed => {
                    BTreeMap::from([(config.child.steps, (r.reward, r.status == Status::Ok))])
                }
                true => BTreeMap::new(),
                false => by_child.remove(&r.id).unwrap_or_default(),
            };
            let tokens =
                space.parse_tokens(&r.tokens).with_context(|| format!("child {} of {}", r.id, dir.display()))?;
            let cand = space.decode(&tokens)?;
            // What the screen rejects has no features; it never trains, so this is a guard.
            if matches!(screen(&cand.formula, &cand.init), Screen::Reject { .. }) || rewards.is_empty() {
                continue;
            }
            functions.push(Function {
                key: identity(r.fingerprint, &r.formula),
                tokens,
                formula: r.formula.clone(),
                rewards,
            });
        }
        Ok(Search { dir: dir.to_path_buf(), config, space, functions, held })
    }
}

/// Refuses two searches whose rewards do not compare: another child recipe (naming the
/// fields that differ) or another dataset.
fn same_recipe(fit: &Search, test: &Search) -> Result<()> {
    let (a, b) = (serde_json::to_value(&fit.config.child)?, serde_json::to_value(&test.config.child)?);
    let mut fields: Vec<String> = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for name in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
            if a.get(name) != b.get(name) {
                fields.push(format!("{name} {} vs {}", show(a.get(name)), show(b.get(name))));
            }
        }
    }
    if fit.config.dataset != test.config.dataset {
        fields.push(format!("dataset {} vs {}", fit.config.dataset, test.config.dataset));
    }
    if !fields.is_empty() {
        bail!(
            "{} and {} train their children differently ({}): their rewards do not compare; predict across searches of one child recipe",
            fit.dir.display(),
            test.dir.display(),
            fields.join(", ")
        );
    }
    Ok(())
}

fn show(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "(none)".into(), |v| v.to_string())
}

/// The step count at which the smaller of the fit set and the test set is largest (ties: more
/// steps).
fn default_steps(fit: &Search, test: &Search) -> Result<usize> {
    let counts = |s: &Search, skip: Option<&HashSet<String>>| -> BTreeMap<usize, usize> {
        let mut n = BTreeMap::new();
        for f in s.functions.iter().filter(|f| skip.is_none_or(|k| !k.contains(&f.key))) {
            f.rewards.keys().for_each(|&steps| *n.entry(steps).or_default() += 1);
        }
        n
    };
    let (a, b) = (counts(fit, None), counts(test, Some(&fit.held)));
    a.iter()
        .filter_map(|(steps, &n)| b.get(steps).map(|&m| (n.min(m), *steps)))
        .max()
        .map(|(_, steps)| steps)
        .with_context(|| {
            format!(
                "{} and {} share no step count to compare rewards at: {}; {}",
                fit.dir.display(),
                test.dir.display(),
                held_steps(fit),
                held_steps(test)
            )
        })
}

/// "DIR holds rewards at 10, 30 steps", for an error.
fn held_steps(s: &Search) -> String {
    let steps: std::collections::BTreeSet<usize> = s.functions.iter().flat_map(|f| f.rewards.keys().copied()).collect();
    let list: Vec<String> = steps.iter().map(usize::to_string).collect();
    match list.is_empty() {
        true => format!("{} holds no trained function", s.dir.display()),
        false => format!("{} holds rewards at {} steps", s.dir.display(), list.join(", ")),
    }
}
