//! An evaluation grid: networks × activations × seeds, each run an `actsearch eval` task in
//! its own folder (`OUT/<network>/<activation-slug>/seed-N`), run by an executor (local
//! processes, or one Slurm job array), then one summary over the grid with the comparison
//! statistics of `report::stats` against a baseline activation.
//!
//! A run's `model.safetensors` (the last file an eval writes) says it finished; `grid.json`
//! records the plan and every job id, so a grid rerun with `--resume` skips finished runs,
//! follows jobs still queued or running, and submits the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::history::write_json;
use super::run_dir::{DIVERGED_FILE, LOCK_FILE, MODEL_FILE, RunLog};
use crate::exec::follow::{Followed, Follower, Pending, Submission, follow};
use crate::exec::{Executor, Outcome, Task};
use crate::files::Lock;
use crate::observer::Observer;
use crate::report::stats;

/// One run of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridRun {
    pub network: String,
    /// The activation as given (a name, a formula or a genotype path).
    pub activation: String,
    /// Its canonical formula (what runs of the same function share).
    pub formula: String,
    pub seed: u64,
    /// The run's folder.
    pub dir: PathBuf,
    /// The command that trains it (`actsearch eval ... --out DIR --resume`).
    pub argv: Vec<String>,
    pub threads: usize,
}

impl GridRun {
    /// Where the run's output goes.
    pub fn log(&self) -> PathBuf {
        self.dir.join("eval.log")
    }
}

/// The result file of a grid task: the run's model, written last.
pub fn result_of(task: &Task) -> PathBuf {
    task.log.with_file_name(MODEL_FILE)
}

/// What `grid.json` keeps: the plan and the job ids of each run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct GridState {
    runs: Vec<GridRun>,
    /// Job ids by run index, in submission order.
    jobs: BTreeMap<usize, Vec<String>>,
    /// Why a run failed, by run index.
    failed: BTreeMap<usize, String>,
    /// The runs that diverged (`DIVERGED_FILE`), by run index: their failure is the recipe's,
    /// and a rerun would diverge again.
    #[serde(default)]
    diverged: BTreeSet<usize>,
}

const STATE_FILE: &str = "grid.json";

/// How a grid ended.
#[derive(Clone, Debug)]
pub struct GridOutcome {
    pub finished: usize,
    /// (run folder, why) of the runs that failed, and whether each diverged (a rerun would
    /// diverge again: `--resume` does not retry it).
    pub failed: Vec<(PathBuf, String, bool)>,
    /// The user stopped it (the executor's tasks were cancelled); --resume continues.
    pub stopped: bool,
    /// The comparison table (Markdown) of the finished runs.
    pub table: String,
}

/// Runs (or resumes) the grid `runs` into `out` with `executor`; writes `OUT/summary.json`
/// and `OUT/summary.md` comparing every activation with `baseline` (a canonical formula) on
/// each network.
pub fn run_grid(
    out: &Path,
    runs: Vec<GridRun>,
    baseline: &str,
    executor: &mut dyn Executor,
    resume: bool,
    obs: &dyn Observer,
) -> Result<GridOutcome> {
    std::fs::create_dir_all(out)?;
    let _lock = Lock::try_exclusive(&out.join(LOCK_FILE), &format!("eval grid folder {}", out.display()))?;
    let state_path = out.join(STATE_FILE);
    let mut state = match (state_path.exists(), resume) {
        (true, false) => bail!(
            "{} holds an eval grid; pass --resume to continue it (finished runs are kept), or choose another --out",
            out.display()
        ),
        (true, true) => {
            let saved: GridState = serde_json::from_str(&std::fs::read_to_string(&state_path)?)
                .map_err(|e| anyhow::anyhow!("{} is unreadable ({e}); choose another --out", state_path.display()))?;
            // The same runs with the same recipe; the binary's path, threads and backend may differ.
            let plan = |r: &[GridRun]| -> Vec<(PathBuf, Vec<String>)> {
                r.iter()
                    .map(|r| {
                        let recipe = r
                            .argv
                            .iter()
                            .skip(1)
                            .filter(|a| !a.starts_with("--threads=") && !a.starts_with("--backend="));
                        (r.dir.clone(), recipe.cloned().collect())
                    })
                    .collect()
            };
            let (was, now) = (plan(&saved.runs), plan(&runs));
            if was != now {
                bail!(
                    "{} holds a different grid ({}); give the same flags to --resume it, or choose another --out (nothing was changed)",
                    out.display(),
                    plan_difference(&was, &now)
                );
            }
            GridState { runs: runs.clone(), jobs: saved.jobs, ..GridState::default() }
        }
        (false, _) => GridState { runs: runs.clone(), ..GridState::default() },
    };
    write_json(&state_path, &state)?;
    let mut log = RunLog::open(&out.join("log.log"), obs)?;
    log.line(&format!("eval grid: {} runs into {}", runs.len(), out.display()))?;

    let task = |i: usize, r: &GridRun| Task { id: i, argv: r.argv.clone(), log: r.log(), threads: r.threads };
    let mut pending = Vec::new();
    let mut finished = 0;
    for (i, r) in runs.iter().enumerate() {
        if r.dir.join(MODEL_FILE).exists() {
            finished += 1;
            continue;
        }
        if let Some(why) = divergence(&r.dir) {
            log.line(&format!(
                "{}: {why}, in an earlier attempt; not run again, since the same recipe diverges again (delete its folder to force a rerun)",
                r.dir.display()
            ))?;
            state.failed.insert(i, why);
            state.diverged.insert(i);
            continue;
        }
        std::fs::create_dir_all(&r.dir)?;
        pending.push(Pending { task: task(i, r), job: state.jobs.get(&i).and_then(|j| j.last()).cloned() });
    }
    if finished > 0 {
        log.line(&format!("{finished} run(s) already finished"))?;
    }
    let script = out.join("slurm-array.sh");
    let mut follower =
        GridFollower { runs: &runs, state: &mut state, state_path: &state_path, log: &mut log, finished, obs };
    let followed = follow(executor, pending, Submission::Together(&script), &mut follower)?;
    let finished = follower.finished;
    let stopped = matches!(followed, Followed::Stopped(_));
    if let Followed::Stopped(what) = followed {
        if let Some(what) = what {
            log.line(&format!("stopped by the user: {what}; --resume continues"))?;
        }
        write_json(&state_path, &state)?;
    }
    let table = summarize(out, &runs, baseline, &state.diverged)?;
    let failed =
        state.failed.iter().map(|(&i, why)| (runs[i].dir.clone(), why.clone(), state.diverged.contains(&i))).collect();
    if !stopped {
        log.line(&format!(
            "grid done: {finished} of {} runs finished; summary in {}",
            runs.len(),
            out.join("summary.json").display()
        ))?;
    }
    Ok(GridOutcome { finished, failed, stopped, table })
}

/// The grid's side of the follow loop: job ids and failures go to `grid.json`, each end to
/// the log.
struct GridFollower<'a, 'l> {
    runs: &'a [GridRun],
    state: &'a mut GridState,
    state_path: &'a Path,
    log: &'a mut RunLog<'l>,
    finished: usize,
    obs: &'a dyn Observer,
}

impl Follower for GridFollower<'_, '_> {
    fn adopted(&mut self, i: usize, job: &str) -> Result<()> {
        let dir = self.runs[i].dir.display();
        self.log.line(&format!("{dir}: following job {job}, submitted before the grid was resumed"))
    }

    fn submitted(&mut self, i: usize, job: &str, retry: Option<&str>) -> Result<()> {
        self.state.jobs.entry(i).or_default().push(job.to_string());
        match retry {
            Some(why) => self.log.line(&format!("{}: {why}: resubmitted as job {job}", self.runs[i].dir.display())),
            None => Ok(()),
        }
    }

    fn retrying(&mut self, i: usize, why: &str) -> Result<()> {
        self.log.line(&format!("{}: {why}: started again", self.runs[i].dir.display()))
    }

    fn ended(&mut self, i: usize, outcome: Outcome) -> Result<()> {
        let run = &self.runs[i];
        let dir = run.dir.display().to_string();
        // A run whose job was seen failing may still have finished (a result seen late).
        if run.dir.join(MODEL_FILE).exists() {
            self.finished += 1;
            return self.log.line(&format!("{dir}: finished ({} of {})", self.finished, self.runs.len()));
        }
        let why = match (divergence(&run.dir), outcome) {
            (Some(why), _) => {
                self.state.diverged.insert(i);
                why
            }
            (None, Outcome::Failed(why)) => why,
            _ => {
                let last = crate::exec::last_line(&run.log()).map_or(String::new(), |l| format!(": {l}"));
                format!("the eval exited without finishing{last}")
            }
        };
        self.state.failed.insert(i, why.clone());
        self.log.line(&format!("{dir}: failed ({why})"))
    }

    fn polled(&mut self) -> Result<()> {
        write_json(self.state_path, &*self.state)
    }

    fn should_stop(&self) -> bool {
        self.obs.should_stop()
    }
}

/// What differs between a saved grid's plan and the one asked now, in a few words: the runs
/// only one of them holds, or the arguments of the first run both hold that differ.
fn plan_difference(was: &[(PathBuf, Vec<String>)], now: &[(PathBuf, Vec<String>)]) -> String {
    let list = |runs: Vec<&PathBuf>| -> String {
        let shown: Vec<String> = runs.iter().take(3).map(|p| p.display().to_string()).collect();
        let more = runs.len().saturating_sub(3);
        shown.join(", ") + &if more > 0 { format!(" and {more} more") } else { String::new() }
    };
    let dirs = |plan: &[(PathBuf, Vec<String>)]| plan.iter().map(|p| p.0.clone()).collect::<BTreeSet<_>>();
    let (a, b) = (dirs(was), dirs(now));
    let mut parts = Vec::new();
    if !a.is_subset(&b) {
        parts.push(format!("runs only in the saved grid: {}", list(a.difference(&b).collect())));
    }
    if !b.is_subset(&a) {
        parts.push(format!("runs only in this one: {}", list(b.difference(&a).collect())));
    }
    if parts.is_empty()
        && let Some(((dir, x), (_, y))) = was.iter().zip(now).find(|(x, y)| x != y)
    {
        let only = |p: &[String], q: &[String]| match p.iter().filter(|s| !q.contains(s)).cloned().collect::<Vec<_>>() {
            v if v.is_empty() => "nothing".to_string(),
            v => v.join(" "),
        };
        parts.push(format!("{}: {} in the saved grid vs {} now", dir.display(), only(x, y), only(y, x)));
    }
    parts.join("; ")
}

/// "diverged: WHAT", when the run in `dir` left a [`DIVERGED_FILE`].
fn divergence(dir: &Path) -> Option<String> {
    let note: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(DIVERGED_FILE)).ok()?).ok()?;
    Some(format!("diverged: {}", note["what"].as_str().unwrap_or("a loss stopped being finite")))
}

/// The final value of the metric a finished run is judged by (as `report` reads it), with the
/// metric's name and direction.
fn headline(dir: &Path) -> Option<(f64, String, bool)> {
    if !dir.join(MODEL_FILE).exists() {
        return None;
    }
    let errors = crate::report::runs::read_run(dir).ok()?.errors;
    Some((errors.headline()?, errors.metric, errors.higher_is_better))
}

/// `summary.json` and `summary.md` over the grid: per network and activation the seeds'
/// accuracies, mean ± std and 95% interval, and the comparison with the baseline of the same
/// network. Returns the Markdown table.
fn summarize(out: &Path, runs: &[GridRun], baseline: &str, diverged: &BTreeSet<usize>) -> Result<String> {
    /// (activation as given, (seed, metric) of finished runs, runs planned, runs diverged)
    type Group = (String, Vec<(u64, f64)>, usize, usize);
    // (network, formula) -> its group
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    // Each network's metric and direction (one task per network).
    let mut metrics: BTreeMap<String, (String, bool)> = BTreeMap::new();
    // Each run's result, read once.
    let results: Vec<Option<(f64, String, bool)>> = runs.iter().map(|r| headline(&r.dir)).collect();
    for (i, r) in runs.iter().enumerate() {
        let g =
            groups.entry((r.network.clone(), r.formula.clone())).or_insert((r.activation.clone(), Vec::new(), 0, 0));
        g.2 += 1;
        g.3 += diverged.contains(&i) as usize;
        if let Some((value, metric, higher)) = &results[i] {
            g.1.push((r.seed, *value));
            metrics.insert(r.network.clone(), (metric.clone(), *higher));
        }
    }
    let header = match metrics.values().map(|m| m.0.as_str()).collect::<BTreeSet<_>>() {
        m if m.len() == 1 && m.contains("valid_loss") => "validation loss (lower is better)",
        m if m.len() > 1 => "test acc (%) or validation loss (by network)",
        _ => "test acc (%)",
    };
    let mut md = format!(
        "| network | activation | seeds | {header} | 95% CI of the mean | vs baseline [95% CI] | p | verdict |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut json_groups = Vec::new();
    for ((network, formula), (given, finals, planned, diverged)) in &groups {
        let values: Vec<f64> = finals.iter().map(|f| f.1).collect();
        let s = stats::Summary::of(&values);
        let base = groups.get(&(network.clone(), baseline.to_string())).map(|b| &b.1);
        let comparison = match base {
            Some(b) if formula != baseline && !finals.is_empty() && !b.is_empty() => {
                let higher = metrics.get(network).is_none_or(|m| m.1);
                Some(stats::compare_directed(finals, b, higher))
            }
            _ => None,
        };
        let seeds = finals.iter().map(|f| f.0.to_string()).collect::<Vec<_>>().join(",");
        // Accuracies in points to 2 decimals, losses to 4.
        let places = if metrics.get(network).is_some_and(|m| m.0.ends_with("_loss")) { 4 } else { 2 };
        let (mean, ci) = match finals.is_empty() {
            true => ("no finished run".to_string(), String::new()),
            false => (
                format!("{:.places$} ± {:.places$}", s.mean, s.std),
                s.ci95().map_or("one seed".into(), |(lo, hi)| format!("[{lo:.places$}, {hi:.places$}]")),
            ),
        };
        let (vs, p, verdict) = match (&comparison, formula == baseline) {
            (_, true) => ("baseline".to_string(), String::new(), String::new()),
            (Some(c), _) => (
                match c.ci {
                    Some((lo, hi)) => {
                        format!("{:+.places$} [{lo:+.places$}, {hi:+.places$}], {}", c.diff, c.test.words())
                    }
                    None if c.test == crate::report::stats::Test::None => format!("{:+.places$}", c.diff),
                    None => format!("{:+.places$}, {}", c.diff, c.test.words()),
                },
                c.p.map_or(String::new(), |p| format!("{p:.3}")),
                c.verdict.words(),
            ),
            (None, _) if finals.is_empty() && *diverged > 0 => {
                (format!("diverged in {diverged} of {planned} runs"), String::new(), String::new())
            }
            (None, _) if finals.is_empty() => ("no finished run to compare".to_string(), String::new(), String::new()),
            (None, _) => ("no finished baseline run on this network".to_string(), String::new(), String::new()),
        };
        let shown = crate::report::shown(formula);
        md += &format!("| {network} | `{shown}` | {seeds} | {mean} | {ci} | {vs} | {p} | {verdict} |\n");
        json_groups.push(serde_json::json!({
            "network": network,
            "activation": formula,
            "given": given,
            "runs_planned": planned,
            "runs_diverged": diverged,
            "seeds": finals.iter().map(|f| f.0).collect::<Vec<_>>(),
            "metric": metrics.get(network).map_or("test_acc", |m| m.0.as_str()),
            "higher_is_better": metrics.get(network).is_none_or(|m| m.1),
            "values": values,
            "test_acc": if metrics.get(network).is_none_or(|m| m.0 == "test_acc") { Some(&values) } else { None },
            "mean": s.mean,
            "std": s.std,
            "ci95": s.ci95().map(|(lo, hi)| [lo, hi]),
            "comparison": comparison.as_ref().map(|c| c.to_json()),
        }));
    }
    let summary = serde_json::json!({
        "baseline": baseline,
        "groups": json_groups,
        "runs": runs.iter().zip(&results).map(|(r, f)| serde_json::json!({
            "network": r.network, "activation": r.formula, "seed": r.seed,
            "dir": r.dir.strip_prefix(out).unwrap_or(&r.dir).to_string_lossy(),
            "value": f.as_ref().map(|h| h.0),
            "test_acc": f.as_ref().filter(|h| h.1 == "test_acc").map(|h| h.0),
        })).collect::<Vec<_>>(),
    });
    write_json(&out.join("summary.json"), &summary)?;
    crate::files::write_atomic(&out.join("summary.md"), md.as_bytes())?;
    Ok(md)
}
