//! The run folder (`--out`) of an eval or a search, and the rules that keep its results safe:
//!
//! - a run holds an exclusive OS lock on its folder (`.lock`) from start to end, so a second
//!   run into the same folder fails at once; the lock dies with the process (kill -9 leaves
//!   none behind);
//! - a folder that holds a run is never written to without `--resume`, and `--resume` first
//!   checks the folder's `config.json` against the flags given, whether or not a checkpoint is
//!   there;
//! - a finished run (its `model.safetensors`, the last file a run writes, exists) is never
//!   rewritten: `--resume` on it reads its results back and changes nothing.
//!
//! Also `log.log` ([`RunLog`]) and the text a failure leaves for the user.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::checkpoint;
use super::history::History;
use crate::files::{Lock, remove_stale_temporaries};
use crate::observer::{Event, Observer};

/// The lock file inside a run folder.
pub const LOCK_FILE: &str = ".lock";
/// The resolved configuration of the run.
pub const CONFIG_FILE: &str = "config.json";
/// The final weights: written last, so its presence marks a finished run.
pub const MODEL_FILE: &str = "model.safetensors";
/// Written by an eval whose training diverged (what happened, and the advice): a rerun of the
/// same recipe diverges again, so executors and an eval grid do not retry it.
pub const DIVERGED_FILE: &str = crate::exec::GAVE_UP_FILE;

/// Files any run writes; one of them in a folder means the folder holds a run.
const RUN_FILES: [&str; 7] =
    [CONFIG_FILE, "errors.json", checkpoint::FILE, MODEL_FILE, "log.log", "alphas.jsonl", "genotype.json"];

/// How a run starts in its folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// An empty or new folder.
    Fresh,
    /// `--resume` of a run that failed before its first checkpoint: it starts again from
    /// epoch 1 (same configuration).
    Restart,
    /// `--resume` from the checkpoint.
    Resume,
    /// `--resume` of a finished run: nothing is trained or written.
    Finished,
}

/// A locked run folder.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    _lock: Lock,
}

impl RunDir {
    /// Creates and locks `out` and decides how the run with `config` starts there. Errors
    /// (nothing written): another process holds the folder; the folder holds a run and
    /// `resume` is false; `resume` is true but the folder's `config.json` differs from
    /// `config` (or is missing or unreadable while other run files are there).
    pub fn open<C: Serialize>(out: &Path, config: &C, resume: bool) -> Result<(RunDir, Start)> {
        if out.exists() && !out.is_dir() {
            bail!("--out {} is a file, not a folder; choose another --out", out.display());
        }
        std::fs::create_dir_all(out)
            .with_context(|| format!("cannot create the output directory {}", out.display()))?;
        let lock = Lock::try_exclusive(&out.join(LOCK_FILE), &format!("run folder {}", out.display()))?;
        remove_stale_temporaries(out);
        let dir = RunDir { path: out.to_path_buf(), _lock: lock };
        let start = dir.start(config, resume)?;
        Ok((dir, start))
    }

    fn start<C: Serialize>(&self, config: &C, resume: bool) -> Result<Start> {
        let out = &self.path;
        if !RUN_FILES.iter().any(|f| out.join(f).exists()) {
            return Ok(Start::Fresh);
        }
        let finished = out.join(MODEL_FILE).exists();
        let now = serde_json::to_value(config)?;
        let held = self.held();
        if !resume {
            if held.ends {
                bail!("{} holds {}; choose another --out (nothing was changed)", out.display(), held.what);
            }
            bail!(
                "{} holds {}; pass --resume to continue it, or choose another --out (nothing was changed)",
                out.display(),
                held.what
            );
        }
        let saved = self.saved_config()?;
        let (was, is) = (RunKind::of(&saved), RunKind::of(&now));
        if was != is {
            bail!(
                "--resume: {} holds {}, not {}; choose another --out (nothing was changed)",
                out.display(),
                held.what,
                is.article()
            );
        }
        check_same_run(&saved, &now, out)?;
        Ok(if finished {
            Start::Finished
        } else if out.join(checkpoint::FILE).exists() {
            Start::Resume
        } else {
            Start::Restart
        })
    }

    /// The folder's `config.json`, which `--resume` must match.
    fn saved_config(&self) -> Result<serde_json::Value> {
        let path = self.path.join(CONFIG_FILE);
        let other_run =
            "so --resume cannot check that it continues the same run; choose another --out (nothing was changed)";
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("{} holds files of a run but no {CONFIG_FILE}, {}", self.path.display(), other_run)
            }
            Err(e) => bail!("cannot read {} ({e}), {}", path.display(), other_run),
        };
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not valid JSON ({e}), {}", path.display(), other_run))
    }

    /// What the folder holds, in words ("a finished eval run", "a sample-based search (6
    /// distinct functions trained)", "an unfinished one-shot search (2 of 5 epochs done)"),
    /// and whether that run has ended for good (it cannot be continued).
    fn held(&self) -> Held {
        let out = &self.path;
        let kind = self.saved_config().map(|c| RunKind::of(&c)).unwrap_or(RunKind::Unknown);
        if kind == RunKind::Sample || out.join("search.db").exists() {
            let trained = std::fs::read_to_string(out.join("children.jsonl")).map_or(0, |t| t.lines().count());
            let what = format!("a sample-based search ({trained} distinct functions trained, see its log.log)");
            return Held { what, ends: false };
        }
        let name = match kind {
            RunKind::OneShot => "one-shot search",
            RunKind::Eval => "eval run",
            _ => "run",
        };
        if out.join(MODEL_FILE).exists() || out.join("genotype.json").exists() {
            return Held { what: format!("a finished {name}"), ends: true };
        }
        Held { what: format!("an unfinished {name} ({})", self.progress_text()), ends: false }
    }

    /// "2 of 3 epochs done" from `errors.json` and `config.json`, or "no epoch done".
    fn progress_text(&self) -> String {
        let done = History::read(&self.path.join("errors.json")).map(|h| h.epochs_done()).unwrap_or(0);
        let planned = self.saved_config().ok().and_then(|c| c.get("epochs").and_then(|e| e.as_u64()));
        match (done, planned) {
            (0, _) => "no epoch done".to_string(),
            (d, Some(p)) => format!("{d} of {p} epochs done"),
            (d, None) => format!("{d} epochs done"),
        }
    }
}

/// What a run folder holds, in words, and whether that run has ended for good.
struct Held {
    what: String,
    ends: bool,
}

/// The kinds of run a folder can hold, told apart by their `config.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunKind {
    Eval,
    OneShot,
    Sample,
    Unknown,
}

impl RunKind {
    fn of(config: &serde_json::Value) -> RunKind {
        let has = |key: &str| config.get(key).is_some();
        if has("budget") && has("child") {
            RunKind::Sample
        } else if has("space") && has("method") {
            RunKind::OneShot
        } else if has("activation") {
            RunKind::Eval
        } else {
            RunKind::Unknown
        }
    }

    /// "an eval run", for "holds X, not an eval run".
    fn article(self) -> &'static str {
        match self {
            RunKind::Eval => "an eval run",
            RunKind::OneShot => "a one-shot search",
            RunKind::Sample => "a sample-based search",
            RunKind::Unknown => "this run",
        }
    }
}

/// A resumed run must be the same run: only what cannot change its results may differ (the
/// threads, backend, paths, and how many tasks run at once where). The error names every
/// field that differs, nested ones by their path (`child.lr`), with both values.
/// A `requested_K` (what was asked for `K`, where the run used less: `Splits::settle`) stands
/// for `K` on either side: the flags must match what was asked.
pub(crate) fn check_same_run(saved: &serde_json::Value, now: &serde_json::Value, out: &Path) -> Result<()> {
    const VOLATILE: [&str; 6] = ["threads", "backend", "out", "data_dir", "workers", "executor"];
    let (Some(a), Some(b)) = (saved.as_object(), now.as_object()) else { return Ok(()) };
    // What was asked, on either side (a run's own config, or its checkpoint's, holds both).
    let as_asked = |config: &serde_json::Map<String, serde_json::Value>| {
        let mut config = config.clone();
        let requested: Vec<String> = config.keys().filter(|k| k.starts_with("requested_")).cloned().collect();
        for key in requested {
            let value = config.remove(&key).unwrap_or_default();
            config.insert(key["requested_".len()..].to_string(), value);
        }
        config
    };
    let mut diffs = Vec::new();
    differences("", &as_asked(a), &as_asked(b), &VOLATILE, &mut diffs);
    if !diffs.is_empty() {
        bail!(
            "--resume: {} holds another run ({}); rerun with that run's flags, or choose another --out (nothing was changed)",
            out.display(),
            diffs.join(", ")
        );
    }
    Ok(())
}

/// "key: A in the run vs B now" for each key of `a` or `b` (but `skip`) whose values differ,
/// going into objects both sides hold.
fn differences(
    prefix: &str,
    a: &serde_json::Map<String, serde_json::Value>,
    b: &serde_json::Map<String, serde_json::Value>,
    skip: &[&str],
    out: &mut Vec<String>,
) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).filter(|k| !skip.contains(&k.as_str())).collect();
    keys.sort();
    keys.dedup();
    let shown =
        |v: Option<&serde_json::Value>| v.map_or("nothing".to_string(), |v| crate::expr::shorten(&v.to_string()));
    for key in keys {
        let (x, y) = (a.get(key.as_str()), b.get(key.as_str()));
        if x == y {
            continue;
        }
        let path = format!("{prefix}{key}");
        match (x.and_then(|x| x.as_object()), y.and_then(|y| y.as_object())) {
            (Some(x), Some(y)) => differences(&format!("{path}."), x, y, &[], out),
            _ => out.push(format!("{path}: {} in the run vs {} now", shown(x), shown(y))),
        }
    }
}

/// What is left after a failure in epoch `epoch` (0-based).
pub(crate) fn checkpoint_note(epoch: usize, out: &Path) -> String {
    if epoch == 0 {
        "no checkpoint was written yet".to_string()
    } else {
        format!("the checkpoint of epoch {epoch} in {} is kept", out.display())
    }
}

/// `log.log`: appended to, one line per event, and mirrored to the observer.
pub struct RunLog<'a> {
    file: File,
    obs: &'a dyn Observer,
}

impl<'a> RunLog<'a> {
    pub fn open(path: &Path, obs: &'a dyn Observer) -> Result<RunLog<'a>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(RunLog { file, obs })
    }

    /// Write to the log file only (the observer gets the line another way).
    pub fn write(&mut self, line: &str) -> Result<()> {
        writeln!(self.file, "{line}").context("cannot write log.log")
    }

    /// Write to the log file and tell the observer.
    pub fn line(&mut self, line: &str) -> Result<()> {
        self.write(line)?;
        self.obs.event(Event::Info(line.to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn open(out: &Path, config: &serde_json::Value, resume: bool) -> Result<Start> {
        RunDir::open(out, config, resume).map(|(_, start)| start)
    }

    #[test]
    fn a_run_folder_is_locked_while_open() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let config = json!({"epochs": 3});
        let (first, start) = RunDir::open(&out, &config, false).unwrap();
        assert_eq!(start, Start::Fresh);
        let err = RunDir::open(&out, &config, false).unwrap_err().to_string();
        assert!(err.contains("in use by another actsearch process"), "{err}");
        drop(first);
        assert_eq!(open(&out, &config, false).unwrap(), Start::Fresh);
    }

    #[test]
    fn resume_checks_config_json_with_or_without_a_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        std::fs::create_dir_all(&out).unwrap();
        let config = json!({"epochs": 3, "activation": "relu(x)", "threads": 2});
        std::fs::write(out.join(CONFIG_FILE), config.to_string()).unwrap();
        std::fs::write(out.join("log.log"), "a run\n").unwrap();
        // Without --resume: refused, and the folder says what it holds.
        let err = open(&out, &config, false).unwrap_err().to_string();
        assert!(err.contains("holds an unfinished eval run (no epoch done)") && err.contains("--resume"), "{err}");
        // A different activation: refused although there is no checkpoint.
        let other = json!({"epochs": 3, "activation": "silu(x)", "threads": 2});
        let err = open(&out, &other, true).unwrap_err().to_string();
        assert!(err.contains("holds another run") && err.contains("silu"), "{err}");
        assert!(!err.contains("delete"), "{err}");
        // Same run, other thread count: restarts (no checkpoint) or resumes (checkpoint).
        let threads = json!({"epochs": 3, "activation": "relu(x)", "threads": 8});
        assert_eq!(open(&out, &threads, true).unwrap(), Start::Restart);
        std::fs::write(out.join(checkpoint::FILE), b"x").unwrap();
        assert_eq!(open(&out, &threads, true).unwrap(), Start::Resume);
        // Finished: never rewritten, with or without --resume.
        std::fs::write(out.join(MODEL_FILE), b"x").unwrap();
        assert_eq!(open(&out, &config, true).unwrap(), Start::Finished);
        let err = open(&out, &config, false).unwrap_err().to_string();
        assert!(err.contains("holds a finished eval run; choose another --out (nothing was changed)"), "{err}");
        assert_eq!(std::fs::read_to_string(out.join(CONFIG_FILE)).unwrap(), config.to_string());
    }

    /// A folder is described for what it holds, a run of another kind is never resumed, and
    /// a changed field is named by its path, both values shown, however long the config.
    #[test]
    fn the_folder_says_what_it_holds_and_resume_names_each_difference() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("search");
        std::fs::create_dir_all(&out).unwrap();
        let padding = "x".repeat(200);
        let search = json!({"method": "ppo", "budget": 6, "workers": 1, "executor": "local", "notes": padding,
            "child": {"network": "resnet8", "steps": 3, "lr": 0.1, "subset": null}});
        std::fs::write(out.join(CONFIG_FILE), search.to_string()).unwrap();
        std::fs::write(out.join("log.log"), "a search\n").unwrap();
        std::fs::write(out.join("search.db"), "").unwrap();
        std::fs::write(out.join("children.jsonl"), "{}\n{}\n").unwrap();
        let eval = json!({"epochs": 3, "activation": "relu(x)"});
        let err = open(&out, &eval, false).unwrap_err().to_string();
        assert!(err.contains("holds a sample-based search (2 distinct functions trained"), "{err}");
        let err = open(&out, &eval, true).unwrap_err().to_string();
        assert!(err.contains("holds a sample-based search") && err.contains("not an eval run"), "{err}");
        let mut changed = search.clone();
        changed["child"]["lr"] = json!(0.2);
        changed["workers"] = json!(2);
        changed["executor"] = json!("slurm");
        let err = open(&out, &changed, true).unwrap_err().to_string();
        assert!(err.contains("(child.lr: 0.1 in the run vs 0.2 now)"), "{err}");
        changed["child"]["lr"] = json!(0.1);
        assert_eq!(open(&out, &changed, true).unwrap(), Start::Restart, "--workers and --executor do not block");

        let oneshot = tmp.path().join("oneshot");
        std::fs::create_dir_all(&oneshot).unwrap();
        std::fs::write(oneshot.join(CONFIG_FILE), json!({"method": "darts", "space": "small"}).to_string()).unwrap();
        std::fs::write(oneshot.join("genotype.json"), "{}").unwrap();
        let err = open(&oneshot, &eval, false).unwrap_err().to_string();
        assert!(err.contains("holds a finished one-shot search; choose another --out"), "{err}");
    }

    #[test]
    fn run_files_without_a_config_cannot_be_resumed() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("errors.json"), "{}").unwrap();
        let err = open(&out, &json!({"epochs": 1}), true).unwrap_err().to_string();
        assert!(err.contains("no config.json"), "{err}");
        std::fs::write(out.join(CONFIG_FILE), "{not json").unwrap();
        let err = open(&out, &json!({"epochs": 1}), true).unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn out_that_is_a_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("file");
        std::fs::write(&out, b"keep").unwrap();
        let err = open(&out, &json!({}), false).unwrap_err().to_string();
        assert!(err.contains("is a file"), "{err}");
        assert_eq!(std::fs::read(&out).unwrap(), b"keep");
    }
}
