//! The report model: run directories read back into plain data. A run is any directory
//! holding the files `actsearch eval` or `search` write (`errors.json`, `config.json`,
//! `log.log`, ...); what else it holds decides its kind:
//!
//! - `alphas.jsonl` (one-shot search): the softmaxed weights of every epoch, plus the final
//!   `genotype.json` if the search finished;
//! - `children.jsonl` (sample-based search): one line per trained child,
//!   `{"child": N, "formula": "...", "reward": R}` (other fields are ignored);
//! - neither: an eval run.
//!
//! Runs are also looked for below every directory given to the report (e.g. the `seed-N`
//! folders of a multi-seed eval, or the evals a search's `--then-eval` writes inside it).
//!
//! A run may not have finished (killed, still training, failed): [`Run::progress`] says
//! whether it did, from `config.json`'s `"epochs"` and what the run wrote. A folder that
//! cannot be read as a run at all (e.g. a run that failed before its first epoch leaves
//! `config.json` and `log.log` but no `errors.json`) is skipped by [`scan`], which says so,
//! and is an error for [`load`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use super::shown_path;
use crate::space::genotype::Genotype;

/// Files whose presence marks a directory as a run.
const RUN_FILES: [&str; 5] = ["errors.json", "config.json", "log.log", "alphas.jsonl", "children.jsonl"];

/// How deep below a given directory runs are looked for.
const MAX_DEPTH: usize = 3;

/// One run directory, read.
#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    /// A short unique name (set by [`load`]): the directory's name, with its parent's for
    /// `seed-N` folders.
    pub name: String,
    pub errors: Errors,
    pub kind: RunKind,
    /// The epochs `config.json` asks for (None: no config.json, or no `"epochs"` in it).
    pub planned_epochs: Option<usize>,
    /// Whether the file a run writes once it is done exists: `model.safetensors` for an
    /// eval, `genotype.json` for a one-shot search.
    pub final_file: bool,
    /// When `errors.json` was last written (which of two runs of one seed is the later).
    pub written: Option<SystemTime>,
    /// How it was trained, apart from its network, dataset, activation and seed.
    pub recipe: Recipe,
}

/// What a run was trained with apart from its network, dataset, activation and seed (from
/// `config.json`): results are only compared between runs of one recipe, because 3 epochs
/// and 200 epochs of the same activation are different experiments.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Recipe {
    /// Every `config.json` field that changes what is trained, as one JSON text (fields that
    /// do not, such as paths, threads and the backend, are left out); empty without a
    /// `config.json`.
    pub key: String,
    /// A few words for tables: "3 epochs on 5000 images, 1000 test".
    pub label: String,
}

/// `config.json` fields that do not change what a run computes (or that the groups hold
/// apart already): left out of [`Recipe::key`].
const NOT_RECIPE: [&str; 14] = [
    "requested_subset",
    "requested_test_subset",
    "seed",
    "out",
    "threads",
    "backend",
    "data_dir",
    "dataset",
    "network",
    "activation",
    "activation_spec",
    "eval_batch_size",
    "method",
    // `--mlp gated` is compared, as part of the activation (`silu(x) (gated)`; see read_run).
    "mlp",
];

impl Recipe {
    pub fn of_config(config: &serde_json::Value) -> Recipe {
        let Some(object) = config.as_object() else { return Recipe::default() };
        // serde_json's map is ordered by key, so equal recipes give equal text.
        let kept: serde_json::Map<String, serde_json::Value> = object
            .iter()
            .filter(|(k, _)| !NOT_RECIPE.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let count = |field: &str| match object.get(field).and_then(|v| v.as_u64()) {
            Some(n) => n.to_string(),
            None => "all".to_string(),
        };
        let epochs = match object.get("epochs").and_then(|v| v.as_u64()) {
            Some(1) => "1 epoch".to_string(),
            Some(e) => format!("{e} epochs"),
            None => "? epochs".to_string(),
        };
        let label = match object.get("steps").and_then(|v| v.as_u64()) {
            Some(steps) => {
                let batch = object.get("batch_size").and_then(|v| v.as_u64()).unwrap_or(0);
                format!("{steps} steps of batch {batch}")
            }
            None => format!("{epochs} on {} images, {} test", count("subset"), count("test_subset")),
        };
        Recipe { key: serde_json::Value::Object(kept).to_string(), label }
    }
}

/// Whether a run got to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Finished,
    /// `done` epochs in `errors.json` of `planned` (None: config.json does not say), and the
    /// final file the run has not written, when the epochs are all there but it is not.
    Unfinished {
        done: usize,
        planned: Option<usize>,
        missing: Option<&'static str>,
    },
}

impl fmt::Display for Progress {
    /// "finished", "1 of 3 epochs", "3 of 3 epochs, no model.safetensors", "2 epochs, no genotype.json".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Progress::Finished => write!(f, "finished"),
            Progress::Unfinished { done, planned, missing } => {
                match planned {
                    Some(planned) => write!(f, "{done} of {planned} epochs")?,
                    None => write!(f, "{done} epoch{}", if done == 1 { "" } else { "s" })?,
                }
                match missing {
                    Some(file) => write!(f, ", no {file}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Run {
    /// Whether the run finished: an eval run when `errors.json` holds the `"epochs"` its
    /// `config.json` asks for (a `TrainConfig`) and `model.safetensors` exists; a one-shot
    /// search when `errors.json` holds its `config.json`'s (a `SearchConfig`) `"epochs"` and
    /// `genotype.json` exists. Without an `"epochs"` in `config.json` the final file alone
    /// decides. A sample-based search has no such rule yet and counts as finished.
    ///
    /// Only finished runs are final results: a killed or still running run's last epoch is
    /// not its final accuracy.
    pub fn progress(&self) -> Progress {
        let final_file = match self.kind {
            RunKind::Eval => "model.safetensors",
            RunKind::OneShot(_) => "genotype.json",
            RunKind::Sample(_) => return Progress::Finished,
        };
        let done = self.errors.epochs();
        let short = self.planned_epochs.is_some_and(|planned| done < planned);
        // Epochs short say it all; a missing final file is worth saying when they are all there.
        let missing = (!short && !self.final_file).then_some(final_file);
        match (short, missing) {
            (false, None) => Progress::Finished,
            _ => Progress::Unfinished { done, planned: self.planned_epochs, missing },
        }
    }

    pub fn finished(&self) -> bool {
        self.progress() == Progress::Finished
    }
}

#[derive(Clone, Debug)]
pub enum RunKind {
    Eval,
    OneShot(OneShot),
    Sample(Sample),
}

/// `errors.json`: the identifying scalars and every per-epoch array.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Errors {
    pub seed: Option<u64>,
    pub network: String,
    pub dataset: String,
    pub activation: String,
    /// Per-epoch arrays by NASLib name (`train_acc`, `valid_acc`, `test_acc`, ...).
    pub curves: BTreeMap<String, Vec<f64>>,
    /// A search's formula after each epoch.
    pub formulas: Vec<String>,
    /// The curve the run is judged by (`test_acc` when the file does not say) and its
    /// direction.
    pub metric: String,
    pub higher_is_better: bool,
}

impl Errors {
    /// The per-epoch values of `name` (empty if the run did not record it).
    pub fn curve(&self, name: &str) -> &[f64] {
        self.curves.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Epochs recorded (every run records `train_acc` once per epoch).
    pub fn epochs(&self) -> usize {
        self.curve("train_acc").len()
    }

    /// The last epoch's test accuracy, if the run measured one.
    pub fn final_test_acc(&self) -> Option<f64> {
        self.curve("test_acc").last().copied()
    }

    /// The last value of the metric the run is judged by, if the run measured one.
    pub fn headline(&self) -> Option<f64> {
        self.curve(&self.metric).last().copied()
    }
}

/// A one-shot search: the weights of every epoch and the final genotype.
#[derive(Clone, Debug)]
pub struct OneShot {
    pub method: Option<String>,
    /// Position names and each position's op names.
    pub positions: Vec<String>,
    pub ops: Vec<Vec<String>>,
    /// Per epoch: its number, its formula and the weights `[site][position][op]`.
    pub epochs: Vec<AlphaEpoch>,
    pub genotype: Option<Genotype>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AlphaEpoch {
    pub epoch: usize,
    /// The step it came after, in a search counted in steps (a language model's).
    #[serde(default)]
    pub step: Option<usize>,
    pub formula: String,
    pub weights: Vec<Vec<Vec<f64>>>,
}

impl OneShot {
    /// The found formula: the genotype's, else the last epoch's.
    pub fn formula(&self) -> Option<&str> {
        self.genotype.as_ref().map(|g| g.formula.as_str()).or(self.epochs.last().map(|e| e.formula.as_str()))
    }

    pub fn sites(&self) -> usize {
        self.epochs.first().map_or(0, |e| e.weights.len())
    }

    /// Whether the search counted steps (a language model's), its alphas recorded per step.
    pub fn by_steps(&self) -> bool {
        self.epochs.first().is_some_and(|e| e.step.is_some())
    }
}

/// A sample-based search: every child trained, in order.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub method: String,
    pub children: Vec<Child>,
    /// What `compare` groups and reports it by.
    pub facts: SearchFacts,
}

/// Space, child recipe (with its dataset) and `--budget-steps`: what searches must share to be
/// compared.
pub type SearchKey = (String, String, Option<usize>);

/// Items of sample-based searches grouped as `compare` groups them: by [`SearchKey`] (with
/// the group's child label), then by arm ([`SearchFacts::arm`]), in their order.
pub type ByArm<T> = BTreeMap<SearchKey, (String, BTreeMap<String, Vec<T>>)>;

/// `items` grouped into [`ByArm`].
pub fn by_arm<'a, T>(items: impl IntoIterator<Item = (&'a Sample, T)>) -> ByArm<T> {
    let mut groups = ByArm::new();
    for (s, item) in items {
        let (_, arms) =
            groups.entry(s.facts.group_key()).or_insert_with(|| (s.facts.child_label.clone(), BTreeMap::new()));
        arms.entry(s.facts.arm(&s.method)).or_insert_with(Vec::new).push(item);
    }
    groups
}

/// A sample-based search's setting and outcome, as `compare` reads them: from `config.json`,
/// `top.json`, `errors.json` and `log.log`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchFacts {
    pub space: String,
    /// The child recipe and dataset as one JSON text: searches compare only within one.
    pub child_key: String,
    /// "resnet8, 180 steps of batch 32 on 5000 images".
    pub child_label: String,
    pub child_steps: usize,
    pub budget_steps: Option<usize>,
    /// "full", or "halving (20 steps up, eta 3)".
    pub fidelity: String,
    /// The best function (`top.json`'s first) and the child steps its reward is at.
    pub best: Option<(String, f64, usize)>,
    /// The search's wall-clock seconds (`errors.json`'s last `runtime`).
    pub runtime: Option<f64>,
    /// Whether its last session ended with the budget spent, the space exhausted or the
    /// method converged (`finished:` in the log), not stopped or killed.
    pub finished: bool,
}

impl SearchFacts {
    /// The arm a search of `method` is in: "random", "random + halving (20 steps up, eta 3)".
    pub fn arm(&self, method: &str) -> String {
        match self.fidelity.as_str() {
            "full" => method.to_string(),
            halving => format!("{method} + {halving}"),
        }
    }

    /// What searches must share to be compared: space, child recipe and budget.
    pub fn group_key(&self) -> SearchKey {
        (self.space.clone(), self.child_key.clone(), self.budget_steps)
    }

    /// The facts of the sample-based search in `dir`, whose `config.json` is `config`.
    fn read(dir: &Path, config: &serde_json::Value, errors: &Errors) -> SearchFacts {
        let child = config.get("child").cloned().unwrap_or_default();
        let child_steps = child.get("steps").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        let int = |v: &serde_json::Value, k: &str| v.get(k).and_then(|v| v.as_u64());
        let fidelity = match config.get("fidelity") {
            Some(f) if f.get("kind").and_then(|k| k.as_str()) == Some("halving") => {
                format!("halving ({} steps up, eta {})", int(f, "min_steps").unwrap_or(0), int(f, "eta").unwrap_or(0))
            }
            _ => "full".to_string(),
        };
        let child_label = format!(
            "{}, {child_steps} steps of batch {} on {} images",
            child.get("network").and_then(|v| v.as_str()).unwrap_or("?"),
            int(&child, "batch_size").unwrap_or(0),
            int(&child, "subset").map_or("all".to_string(), |n| n.to_string())
        );
        let key = serde_json::json!({ "child": child, "dataset": config.get("dataset") });
        let best = fs::read_to_string(dir.join("top.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|top| {
                let first = top.as_array()?.first()?.clone();
                let steps = first.get("steps").and_then(|v| v.as_u64()).map_or(child_steps, |s| s as usize);
                Some((first.get("formula")?.as_str()?.to_string(), first.get("reward")?.as_f64()?, steps))
            });
        let log = fs::read_to_string(dir.join("log.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let last = |prefix: &str| lines.iter().rposition(|l| l.starts_with(prefix));
        let finished = match (last("finished: "), last("resuming")) {
            (Some(f), Some(r)) => f > r,
            (f, _) => f.is_some(),
        };
        SearchFacts {
            space: config.get("space").and_then(|v| v.as_str()).unwrap_or("?").to_string(),
            child_key: key.to_string(),
            child_label,
            child_steps,
            budget_steps: int(config, "budget_steps").map(|b| b as usize),
            fidelity,
            best,
            runtime: errors.curves.get("runtime").and_then(|r| r.last().copied()).filter(|t| t.is_finite()),
            finished,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Child {
    pub child: usize,
    pub formula: String,
    pub reward: f64,
    /// The child steps and seconds it cost (all its rungs'); absent in older searches.
    #[serde(default)]
    pub steps: Option<usize>,
    #[serde(default)]
    pub seconds: Option<f64>,
}

impl Sample {
    /// The best reward after each child, as (children trained, best so far).
    pub fn best_so_far(&self) -> Vec<(f64, f64)> {
        let mut n = 0.0;
        self.best_against(|_| {
            n += 1.0;
            Some(n)
        })
        .unwrap_or_default()
    }

    /// The best reward after each child against the child steps spent so far (with halving, a
    /// child's promotions count at its place); None for a search that did not record them.
    pub fn best_so_far_by_steps(&self) -> Option<Vec<(f64, f64)>> {
        let mut spent = 0.0;
        self.best_against(|c| {
            spent += c.steps? as f64;
            Some(spent)
        })
    }

    /// As [`Sample::best_so_far_by_steps`], against the child-seconds spent so far.
    pub fn best_so_far_by_seconds(&self) -> Option<Vec<(f64, f64)>> {
        let mut spent = 0.0;
        self.best_against(|c| {
            spent += c.seconds?;
            Some(spent)
        })
    }

    /// (x, best so far) after each child, x accumulated by `x` over every child.
    fn best_against(&self, mut x: impl FnMut(&Child) -> Option<f64>) -> Option<Vec<(f64, f64)>> {
        let mut best = f64::NEG_INFINITY;
        let mut points = Vec::new();
        for c in &self.children {
            let at = x(c)?;
            if c.reward.is_finite() {
                best = best.max(c.reward);
                points.push((at, best));
            }
        }
        Some(points)
    }
}

/// A folder that looks like a run but could not be read as one, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub dir: PathBuf,
    pub reason: String,
}

/// What [`scan`] found: the runs, named uniquely, and the folders it had to skip.
#[derive(Clone, Debug)]
pub struct Scanned {
    pub runs: Vec<Run>,
    pub skipped: Vec<Skipped>,
}

/// Every run in `dirs` (each a run or a folder of runs), named uniquely; a folder that cannot
/// be read as a run is skipped and listed with its reason. Errors: no directories, one that
/// is not a directory or holds no run folder, or nothing readable at all.
pub fn scan(dirs: &[PathBuf]) -> Result<Scanned> {
    if dirs.is_empty() {
        bail!("no run directories given: pass the --out folders of `actsearch eval` or `search` runs");
    }
    let (mut runs, mut skipped) = (Vec::new(), Vec::new());
    // A run reached from two given directories (`report runs runs/a`) is read once.
    let mut seen = std::collections::BTreeSet::new();
    for dir in dirs {
        check_given(dir)?;
        let mut found = Vec::new();
        find_runs(dir, 0, &mut found, &mut skipped)?;
        if found.is_empty() {
            bail!(
                "no runs in {}: a run directory holds errors.json and config.json (written by `actsearch eval` or `search`)",
                shown_path(dir)
            );
        }
        for run_dir in found {
            if !seen.insert(fs::canonicalize(&run_dir).unwrap_or(run_dir.clone())) {
                continue;
            }
            match read_run(&run_dir) {
                Ok(run) => runs.push(run),
                Err(e) => skipped.push(Skipped { dir: run_dir, reason: format!("{e:#}") }),
            }
        }
    }
    if runs.is_empty() {
        let first = &skipped[0];
        bail!(
            "nothing to report: no run folder could be read ({} skipped); {}: {}",
            skipped.len(),
            shown_path(&first.dir),
            first.reason
        );
    }
    name_runs(&mut runs);
    Ok(Scanned { runs, skipped })
}

/// Every run in `dirs`, named uniquely; strict: a folder that cannot be read as a run is an
/// error (use [`scan`] to skip such folders and say so).
pub fn load(dirs: &[PathBuf]) -> Result<Vec<Run>> {
    let scanned = scan(dirs)?;
    if let Some(s) = scanned.skipped.first() {
        bail!("{}: {}", shown_path(&s.dir), s.reason);
    }
    Ok(scanned.runs)
}

/// A directory given to the report: it must exist and be a directory.
fn check_given(dir: &Path) -> Result<()> {
    let fix = "pass the --out folder of an `actsearch eval` or `search` run";
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => {
                bail!("{} is a file, not a directory: {fix} (here maybe {})", shown_path(dir), shown_path(parent))
            }
            None => bail!("{} is a file, not a directory: {fix}", shown_path(dir)),
        },
        Err(_) => bail!("{} is not a directory (it does not exist): {fix}", shown_path(dir)),
    }
}

/// Whether `dir` holds a run of its own. The root of an eval grid (`grid.json`) or of a
/// multi-seed eval (`summary.json` beside `seed-N/`) holds runs, below it, but is not one.
fn is_run(dir: &Path) -> bool {
    let root =
        dir.join("grid.json").is_file() || (dir.join("summary.json").is_file() && !dir.join("errors.json").is_file());
    !root && RUN_FILES.iter().any(|f| dir.join(f).is_file())
}

/// Runs at or below `dir` (a run may hold more runs, e.g. a search's `--then-eval` evals); a
/// folder below `dir` that cannot be listed is skipped.
fn find_runs(dir: &Path, depth: usize, found: &mut Vec<PathBuf>, skipped: &mut Vec<Skipped>) -> Result<()> {
    if is_run(dir) {
        found.push(dir.to_path_buf());
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if depth == 0 => return Err(anyhow!("cannot list {}: {e}", shown_path(dir))),
        Err(e) => {
            skipped.push(Skipped { dir: dir.to_path_buf(), reason: format!("cannot list it: {e}") });
            return Ok(());
        }
    };
    let mut subdirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    // A sample-based search's children are trained through the same loop as an eval (their
    // folders hold errors.json and log.log) but are parts of the search, not runs of their own.
    if dir.join("search.db").is_file() || dir.join("children.jsonl").is_file() {
        subdirs.retain(|p| p.file_name().is_none_or(|n| n != "children"));
    }
    subdirs.sort();
    for sub in subdirs {
        find_runs(&sub, depth + 1, found, skipped)?;
    }
    Ok(())
}

/// Reads one run directory.
pub fn read_run(dir: &Path) -> Result<Run> {
    let sample = dir.join("search.db").is_file() || dir.join("children.jsonl").is_file();
    if sample && !dir.join("children.jsonl").is_file() {
        bail!(
            "a sample-based search without its children.jsonl; rerun the search with --resume, which writes it again from search.db"
        );
    }
    let mut errors = read_errors(dir)?;
    let config = read_config(dir)?;
    // A transformer's gated MLP is compared as part of its activation: SwiGLU is
    // `silu(x) (gated)`, beside `gelu(x)` in one table.
    if config.get("mlp").and_then(|m| m.as_str()) == Some("gated") {
        errors.activation = format!("{} (gated)", errors.activation);
    }
    let method = config.get("method").and_then(|m| m.as_str()).map(str::to_string);
    let planned_epochs = config.get("epochs").and_then(|e| e.as_u64()).map(|e| e as usize);
    let recipe = Recipe::of_config(&config);
    let written = fs::metadata(dir.join("errors.json")).and_then(|m| m.modified()).ok();
    let kind = if dir.join("alphas.jsonl").is_file() {
        RunKind::OneShot(read_one_shot(dir, method)?)
    } else if dir.join("children.jsonl").is_file() {
        let children = read_jsonl::<Child>(&dir.join("children.jsonl"), "child/formula/reward")?;
        let facts = SearchFacts::read(dir, &config, &errors);
        RunKind::Sample(Sample { method: method.unwrap_or_else(|| "sample".into()), children, facts })
    } else {
        RunKind::Eval
    };
    let final_file = match &kind {
        RunKind::OneShot(search) => search.genotype.is_some(),
        _ => dir.join("model.safetensors").is_file(),
    };
    Ok(Run { dir: dir.to_path_buf(), name: String::new(), errors, kind, planned_epochs, final_file, written, recipe })
}

fn read_errors(dir: &Path) -> Result<Errors> {
    let path = dir.join("errors.json");
    let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!(
            "{} is missing: the run stopped before its first epoch (its log.log may say why); rerun it or leave the directory out",
            shown_path(&path)
        ),
        _ => anyhow!("{} is unreadable ({e}); rerun the run or leave the directory out", shown_path(&path)),
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow!("{} is corrupt ({e}): rerun the run or leave the directory out of the report", shown_path(&path))
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| anyhow!("{} is not a JSON object; is it an actsearch errors.json?", shown_path(&path)))?;
    let text_field =
        |name: &str| -> Result<String> {
            object.get(name).and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| {
                anyhow!("{} has no \"{name}\" string; is it an actsearch errors.json?", shown_path(&path))
            })
        };
    let mut curves = BTreeMap::new();
    for (key, v) in object {
        let Some(items) = v.as_array() else { continue };
        if key == "formula" {
            continue;
        }
        // A NaN (a diverged loss) is written as null: read it back as NaN, not as corruption.
        let values: Option<Vec<f64>> = items.iter().map(|x| x.as_f64().or(x.is_null().then_some(f64::NAN))).collect();
        let values =
            values.ok_or_else(|| anyhow!("{}: \"{key}\" holds something other than numbers", shown_path(&path)))?;
        curves.insert(key.clone(), values);
    }
    // An eval or one-shot search has per-epoch training curves; a sample-based search has
    // per-iteration rewards instead.
    if !curves.contains_key("train_acc") && !curves.contains_key("mean_reward") {
        bail!("{} has no \"train_acc\" array; is it an actsearch errors.json?", shown_path(&path));
    }
    let formulas = object
        .get("formula")
        .and_then(|f| f.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Ok(Errors {
        seed: object.get("seed").and_then(|s| s.as_u64()),
        network: text_field("network")?,
        dataset: text_field("dataset")?,
        activation: text_field("activation")?,
        curves,
        formulas,
        metric: object.get("metric").and_then(|m| m.as_str()).unwrap_or("test_acc").to_string(),
        higher_is_better: object.get("higher_is_better").and_then(|h| h.as_bool()).unwrap_or(true),
    })
}

/// `config.json` as loose JSON (only a few fields are read); absent is fine, corrupt is not.
fn read_config(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("config.json");
    match fs::read_to_string(&path) {
        Err(_) => Ok(serde_json::Value::Null),
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            anyhow!("{} is corrupt ({e}): rerun the run or leave it out of the report", shown_path(&path))
        }),
    }
}

#[derive(Deserialize)]
struct AlphaHeader {
    positions: Vec<String>,
    ops: Vec<Vec<String>>,
}

fn read_one_shot(dir: &Path, method: Option<String>) -> Result<OneShot> {
    let path = dir.join("alphas.jsonl");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", shown_path(&path)))?;
    let first = text.lines().find(|l| !l.trim().is_empty()).ok_or_else(|| {
        anyhow!("{} is empty: the search did not finish an epoch; rerun it or leave it out", shown_path(&path))
    })?;
    let header: AlphaHeader = serde_json::from_str(first)
        .map_err(|e| anyhow!("{} line 1 is corrupt ({e}); rerun the search or leave it out", shown_path(&path)))?;
    if header.positions.len() != header.ops.len() {
        bail!(
            "{} names {} positions but lists ops for {}",
            shown_path(&path),
            header.positions.len(),
            header.ops.len()
        );
    }
    let epochs = read_jsonl::<AlphaEpoch>(&path, "epoch/formula/weights")?;
    let sites = epochs.first().map_or(0, |e| e.weights.len());
    for e in &epochs {
        if e.weights.len() != sites {
            bail!("{}: epoch {} has {} sites, the first epoch {sites}", shown_path(&path), e.epoch, e.weights.len());
        }
        let fits = e.weights.iter().all(|site| {
            site.len() == header.ops.len() && site.iter().zip(&header.ops).all(|(w, ops)| w.len() == ops.len())
        });
        if !fits || e.weights.is_empty() {
            bail!("{}: epoch {}'s weights do not match its positions and ops", shown_path(&path), e.epoch);
        }
    }
    let genotype_path = dir.join("genotype.json");
    let genotype = match genotype_path.is_file() {
        true => Some(Genotype::load(&genotype_path)?),
        false => None,
    };
    Ok(OneShot { method, positions: header.positions, ops: header.ops, epochs, genotype })
}

/// Every non-empty line of a JSON-lines file.
fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path, fields: &str) -> Result<Vec<T>> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", shown_path(path)))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                anyhow!(
                    "{} line {} is corrupt ({e}; expected {fields}); rerun or leave it out",
                    shown_path(path),
                    i + 1
                )
            })
        })
        .collect()
}

/// Gives every run a short unique name: its folder name, prefixed by its parent's for
/// `seed-N` folders, then numbered if still not unique.
fn name_runs(runs: &mut [Run]) {
    let base = |dir: &Path| {
        let last = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
        let parent = dir.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
        match (last.starts_with("seed-"), parent) {
            (true, Some(p)) => format!("{p}/{last}"),
            _ => last,
        }
    };
    let names: Vec<String> = runs.iter().map(|r| base(&fs::canonicalize(&r.dir).unwrap_or(r.dir.clone()))).collect();
    for (i, run) in runs.iter_mut().enumerate() {
        let same = names.iter().filter(|n| **n == names[i]).count();
        run.name = match same {
            1 => names[i].clone(),
            _ => format!("{}#{}", names[i], names[..i].iter().filter(|n| **n == names[i]).count() + 1),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(file), text).unwrap();
    }

    const ERRORS: &str = r#"{"seed": 1, "network": "resnet8", "dataset": "cifar10", "activation": "relu",
        "params": 78000, "train_acc": [20.0, 30.0], "valid_acc": [], "test_acc": [25.0, 35.5],
        "runtime": [1.0, 2.0]}"#;

    #[test]
    fn reads_eval_and_one_shot_runs_and_finds_seed_folders() {
        let root = tempfile::tempdir().unwrap();
        let eval = root.path().join("eval");
        write(&eval.join("seed-0"), "errors.json", ERRORS);
        write(&eval.join("seed-1"), "errors.json", &ERRORS.replace("35.5", "36.5"));
        let search = root.path().join("search");
        write(
            &search,
            "errors.json",
            &ERRORS.replace("\"runtime\"", "\"formula\": [\"x\", \"x + sin(x)\"], \"runtime\""),
        );
        write(&search, "config.json", r#"{"method": "darts"}"#);
        let line = |epoch: usize, w: f64| {
            format!(
                r#"{{"epoch":{epoch},"formula":"x","positions":["u1","b"],"ops":[["identity","sin"],["add","mul"]],"weights":[[[{w},{}],[0.5,0.5]]]}}"#,
                1.0 - w
            )
        };
        write(&search, "alphas.jsonl", &format!("{}\n{}\n", line(1, 0.5), line(2, 0.7)));
        let runs = load(&[eval, search]).unwrap();
        assert_eq!(runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["eval/seed-0", "eval/seed-1", "search"]);
        assert_eq!(runs[1].errors.final_test_acc(), Some(36.5));
        assert_eq!(runs[0].errors.seed, Some(1));
        assert!(matches!(runs[0].kind, RunKind::Eval));
        let RunKind::OneShot(s) = &runs[2].kind else { panic!("not a one-shot search") };
        assert_eq!((s.method.as_deref(), s.sites(), s.epochs.len()), (Some("darts"), 1, 2));
        assert_eq!(s.epochs[1].weights[0][0], vec![0.7, 1.0 - 0.7]);
        assert_eq!(s.ops[1], vec!["add", "mul"]);
        assert_eq!(runs[2].errors.formulas, vec!["x", "x + sin(x)"]);
        assert_eq!(s.formula(), Some("x"));
    }

    /// A gated MLP is part of the activation that is compared, not of the recipe; a language
    /// model's run is judged by the metric its errors.json names, and its recipe counts steps.
    #[test]
    fn a_gated_mlp_is_part_of_the_activation_and_a_loss_is_the_metric() {
        let root = tempfile::tempdir().unwrap();
        let lm = ERRORS.replace(
            "\"runtime\"",
            "\"valid_loss\": [2.1, 1.9], \"metric\": \"valid_loss\", \"higher_is_better\": false, \"runtime\"",
        );
        let recipe = |mlp: &str| format!(r#"{{"steps": 2000, "batch_size": 12, "lr": 0.001, "mlp": "{mlp}"}}"#);
        write(&root.path().join("gated"), "errors.json", &lm);
        write(&root.path().join("gated"), "config.json", &recipe("gated"));
        write(&root.path().join("plain"), "errors.json", &lm);
        write(&root.path().join("plain"), "config.json", &recipe("standard"));
        let runs = load(&[root.path().join("gated"), root.path().join("plain")]).unwrap();
        assert_eq!(runs[0].errors.activation, "relu (gated)");
        assert_eq!(runs[1].errors.activation, "relu");
        assert_eq!(runs[0].recipe, runs[1].recipe, "one recipe: the MLP is compared, not a setting");
        assert_eq!(runs[0].recipe.label, "2000 steps of batch 12");
        assert_eq!((runs[0].errors.headline(), runs[0].errors.higher_is_better), (Some(1.9), false));
        // Files written before the metric was recorded are judged by their test accuracy.
        write(&root.path().join("old"), "errors.json", ERRORS);
        let old = load(&[root.path().join("old")]).unwrap();
        assert_eq!((old[0].errors.headline(), old[0].errors.higher_is_better), (Some(35.5), true));
    }

    #[test]
    fn reads_sample_searches_and_their_best_so_far() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "errors.json", ERRORS);
        write(root.path(), "config.json", r#"{"method": "ppo"}"#);
        let children = r#"{"child": 1, "formula": "x", "reward": 0.5}
{"child": 2, "formula": "relu(x)", "reward": 0.7, "epochs": 3}
{"child": 3, "formula": "sin(x)", "reward": 0.6}"#;
        write(root.path(), "children.jsonl", children);
        let run = read_run(root.path()).unwrap();
        let RunKind::Sample(s) = run.kind else { panic!("not a sample search") };
        assert_eq!(s.method, "ppo");
        assert_eq!(s.best_so_far(), vec![(1.0, 0.5), (2.0, 0.7), (3.0, 0.7)]);
        // A search from before the steps were recorded has no curves against them.
        assert_eq!((s.best_so_far_by_steps(), s.best_so_far_by_seconds()), (None, None));
        let children = r#"{"child": 0, "formula": "x", "reward": 0.5, "steps": 10, "seconds": 1.5}
{"child": 1, "formula": "relu(x)", "reward": 0.7, "steps": 90, "seconds": 6.0}
{"child": 2, "formula": "sin(x)", "reward": 0.6, "steps": 30, "seconds": 2.5}"#;
        write(root.path(), "children.jsonl", children);
        let RunKind::Sample(s) = read_run(root.path()).unwrap().kind else { panic!("not a sample search") };
        assert_eq!(s.best_so_far_by_steps().unwrap(), vec![(10.0, 0.5), (100.0, 0.7), (130.0, 0.7)]);
        assert_eq!(s.best_so_far_by_seconds().unwrap(), vec![(1.5, 0.5), (7.5, 0.7), (10.0, 0.7)]);
    }

    #[test]
    fn bad_directories_and_files_are_clear_errors() {
        let root = tempfile::tempdir().unwrap();
        let message = |dirs: &[PathBuf]| load(dirs).unwrap_err().to_string();
        assert!(message(&[]).contains("no run directories"));
        assert!(message(&[root.path().join("nope")]).contains("is not a directory"));
        assert!(message(&[root.path().to_path_buf()]).contains("no runs in"));
        let run = root.path().join("run");
        write(&run, "config.json", "{}");
        assert!(message(std::slice::from_ref(&run)).contains("errors.json is missing"));
        write(&run, "errors.json", "{\"seed\": 1, \"train_acc\": [1");
        assert!(message(std::slice::from_ref(&run)).contains("errors.json is corrupt"));
        write(&run, "errors.json", r#"{"network": "resnet8", "dataset": "c", "activation": "relu"}"#);
        assert!(message(std::slice::from_ref(&run)).contains("no \"train_acc\""));
        write(&run, "errors.json", ERRORS);
        write(
            &run,
            "alphas.jsonl",
            "{\"epoch\": 1, \"formula\": \"x\", \"positions\": [\"u1\"], \"ops\": [[\"sin\"]], \"weights\": [[[1.0, 2.0]]]}\n",
        );
        assert!(message(std::slice::from_ref(&run)).contains("do not match"));
        write(
            &run,
            "alphas.jsonl",
            "{\"epoch\": 1, \"formula\": \"x\", \"positions\": [\"u1\", \"b\"], \"ops\": [[\"sin\"]], \"weights\": [[[1.0]]]}\n",
        );
        assert!(message(std::slice::from_ref(&run)).contains("names 2 positions but lists ops for 1"));
        write(&run, "alphas.jsonl", "{\"epoch\": 1,\n");
        assert!(message(&[run]).contains("alphas.jsonl line 1 is corrupt"));
    }

    #[test]
    fn a_run_is_finished_when_it_holds_its_planned_epochs_and_its_final_file() {
        let root = tempfile::tempdir().unwrap();
        let [done, killed, no_model, no_config] =
            ["done", "killed", "no-model", "no-config"].map(|n| root.path().join(n));
        for dir in [&done, &killed, &no_model] {
            write(dir, "config.json", r#"{"epochs": 2}"#);
        }
        for dir in [&done, &killed, &no_model, &no_config] {
            write(dir, "errors.json", ERRORS);
        }
        write(&killed, "errors.json", &ERRORS.replace("[20.0, 30.0]", "[20.0]"));
        write(&killed, "config.json", r#"{"epochs": 3}"#);
        for dir in [&done, &killed, &no_config] {
            write(dir, "model.safetensors", "");
        }
        let progress = |dir: &Path| read_run(dir).unwrap().progress();
        assert_eq!(progress(&done), Progress::Finished);
        assert_eq!(progress(&no_config), Progress::Finished);
        let killed = progress(&killed);
        assert_eq!(killed, Progress::Unfinished { done: 1, planned: Some(3), missing: None });
        assert_eq!(killed.to_string(), "1 of 3 epochs");
        assert_eq!(progress(&no_model).to_string(), "2 of 2 epochs, no model.safetensors");
        // A one-shot search is done with its genotype.json, not a model.
        let search = root.path().join("search");
        write(&search, "config.json", r#"{"epochs": 2, "method": "darts"}"#);
        write(&search, "errors.json", ERRORS);
        write(
            &search,
            "alphas.jsonl",
            &format!(
                "{}\n",
                r#"{"epoch":1,"formula":"x","positions":["u1"],"ops":[["identity"]],"weights":[[[1.0]]]}"#
            ),
        );
        assert_eq!(progress(&search).to_string(), "2 of 2 epochs, no genotype.json");
    }

    /// The root of an eval grid is not a run (its runs are below it), and a sample-based
    /// search without children.jsonl is named as such, with the fix.
    #[test]
    fn grid_roots_hold_runs_and_a_sample_search_without_children_is_named() {
        let root = tempfile::tempdir().unwrap();
        let grid = root.path().join("grid");
        write(&grid, "grid.json", "{}");
        write(&grid, "log.log", "a grid\n");
        write(&grid.join("resnet8/relu/seed-0"), "errors.json", ERRORS);
        let scanned = scan(std::slice::from_ref(&grid)).unwrap();
        assert_eq!((scanned.runs.len(), scanned.skipped.len()), (1, 0), "{:?}", scanned.skipped);
        let sample = root.path().join("sample");
        write(&sample, "errors.json", &ERRORS.replace("\"train_acc\"", "\"mean_reward\""));
        write(&sample, "search.db", "");
        let err = read_run(&sample).unwrap_err().to_string();
        assert!(
            err.starts_with("a sample-based search without its children.jsonl; rerun the search with --resume"),
            "{err}"
        );
    }

    #[test]
    fn a_diverged_loss_is_read_as_nan_and_a_run_given_twice_is_read_once() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "errors.json", &ERRORS.replace("\"runtime\"", "\"train_loss\": [2.3, null], \"runtime\""));
        let dirs = [root.path().to_path_buf(), root.path().join(".")];
        let runs = scan(&dirs).unwrap().runs;
        assert_eq!(runs.len(), 1);
        let loss = runs[0].errors.curve("train_loss");
        assert!(loss[0] == 2.3 && loss[1].is_nan(), "{loss:?}");
    }

    #[test]
    fn scan_skips_folders_that_are_not_readable_runs_and_says_why() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("good"), "errors.json", ERRORS);
        // A run that failed before its first epoch: config.json and log.log, no errors.json.
        write(&root.path().join("failed"), "config.json", r#"{"epochs": 3}"#);
        write(&root.path().join("failed"), "log.log", "error: out of memory\n");
        write(&root.path().join("corrupt"), "errors.json", "{\"train_acc\": [1");
        let scanned = scan(&[root.path().to_path_buf()]).unwrap();
        assert_eq!(scanned.runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["good"]);
        let skipped: Vec<(String, &str)> = scanned
            .skipped
            .iter()
            .map(|s| (s.dir.file_name().unwrap().to_string_lossy().into_owned(), s.reason.as_str()))
            .collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].0 == "corrupt" && skipped[0].1.contains("errors.json is corrupt"), "{skipped:?}");
        assert!(skipped[1].0 == "failed" && skipped[1].1.contains("errors.json is missing"), "{skipped:?}");
        // Strict loading (the search's --then-eval report) still refuses them.
        assert!(load(&[root.path().to_path_buf()]).unwrap_err().to_string().contains("corrupt"));
        // A file, not a folder.
        let file = root.path().join("good/errors.json");
        let message = scan(&[file]).unwrap_err().to_string();
        assert!(message.contains("is a file, not a directory") && message.contains("good"), "{message}");
    }
}
