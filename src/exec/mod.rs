//! Executors: where the children of a sample-based search and the runs of an eval grid run.
//! An executor takes tasks (a command that turns a spec into a result file in its own folder),
//! runs them somewhere, and says when each has ended; the result file, written atomically by
//! the task, is the source of truth, so the caller reads it and never trusts a process's word
//! alone. Executors know nothing of what a task trains, and the callers nothing of executors.
//!
//! - [`follow::follow`]: the one loop that adopts, submits, polls and cancels tasks;
//! - [`local::LocalExecutor`]: up to `--workers` processes on this machine;
//! - [`slurm::SlurmExecutor`]: one Slurm job per task (`sbatch --parsable`), followed with
//!   `squeue`, resubmitted when a job fails without a result.

pub mod follow;
pub mod local;
pub mod slurm;

use std::path::PathBuf;

use anyhow::{Context, Result};

/// One task to run: a command line (for a child, `actsearch child SPEC --threads N`) that
/// writes its own result file, its output going to `log`, on `threads` CPU threads.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: usize,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Where the task's output (stdout and stderr) goes; its folder is the task's own.
    pub log: PathBuf,
    pub threads: usize,
}

/// Set in the environment of every process the local executor starts: the process exits
/// when the one that started it is gone (see `cli`), so that killing a search or an eval grid
/// never leaves its tasks running.
pub const EXIT_WITH_PARENT_ENV: &str = "ACTSEARCH_EXIT_WITH_PARENT";

/// A task that failed for good on its own, with nothing a retry would change (an eval whose
/// training diverged), leaves this file beside its result file: executors do not retry it.
pub const GAVE_UP_FILE: &str = "diverged.json";

/// Set in the environment of every task, local or on Slurm: a task waits up to
/// [`TASK_LOCK_PATIENCE`] for its folder's lock (`files::wait_for_busy_locks`), which the
/// task of a killed run may still hold on its way out when the run is resumed at once.
pub const TASK_ENV: &str = "ACTSEARCH_TASK";

/// How long a task waits for its folder's lock before it fails (and is retried).
pub const TASK_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// For tests only: a child holds its lock this many milliseconds before it trains, and a task
/// whose parent is gone keeps running (and holding its lock) as long before it exits, so that
/// a test can make the race of a kill and an immediate `--resume` certain instead of likely.
pub const TEST_LINGER_ENV: &str = "ACTSEARCH_TEST_LINGER_MS";

/// The [`TEST_LINGER_ENV`] delay (zero when unset).
pub fn test_linger() -> std::time::Duration {
    let ms = std::env::var(TEST_LINGER_ENV).ok().and_then(|ms| ms.parse().ok()).unwrap_or(0);
    std::time::Duration::from_millis(ms)
}

/// The last non-empty line of a task's log (or any text file), for a failure's reason.
pub fn last_line(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string())
}

/// This very binary's path, to run tasks with (`actsearch child ...`, `actsearch eval ...`).
/// A binary rebuilt or upgraded while the run goes on leaves Linux saying `PATH (deleted)`:
/// the path is still the one to give a cluster's jobs (the local executor starts this very
/// process's binary instead, see `local`).
pub fn this_program() -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the actsearch binary to run tasks with")?;
    let path = exe.to_str().context("the actsearch binary's path is not UTF-8")?;
    Ok(path.strip_suffix(" (deleted)").unwrap_or(path).to_string())
}

/// What became of a task, as [`Executor::poll`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It was handed to the cluster as job `job` (again, after a failure, when `retry` says
    /// why); it is still in flight.
    Submitted { job: String, retry: Option<String> },
    /// It exited normally (its result file says what happened).
    Exited,
    /// It failed, crashed or was killed, with what is known of why.
    Failed(String),
    /// It ended without a result for the machine's reasons (killed, its lock busy), and was
    /// queued again, as the reason says; it is still in flight.
    Retrying(String),
}

impl Outcome {
    /// Whether the task has ended (it is no longer in flight).
    pub fn ended(&self) -> bool {
        !matches!(self, Outcome::Submitted { .. } | Outcome::Retrying(_))
    }
}

pub trait Executor {
    /// Queues a task.
    fn submit(&mut self, task: Task) -> Result<()>;

    /// Queues tasks that belong together (the runs of an eval grid): one job array on Slurm,
    /// its batch script at `script`; one by one elsewhere.
    fn submit_all(&mut self, tasks: Vec<Task>, _script: &std::path::Path) -> Result<()> {
        tasks.into_iter().try_for_each(|t| self.submit(t))
    }

    /// Takes back a task that an earlier process submitted as `job` (a resumed search): true
    /// when the executor follows it from now on as if submitted, false when it cannot (a
    /// local process died with the search that started it), and the task is then submitted
    /// again.
    fn adopt(&mut self, _task: Task, _job: &str) -> Result<bool> {
        Ok(false)
    }

    /// Starts what may start and returns what happened to tasks since the last call. Does not
    /// block.
    fn poll(&mut self) -> Result<Vec<(usize, Outcome)>>;

    /// Tasks submitted and not yet reported ended by [`Executor::poll`].
    fn in_flight(&self) -> usize;

    /// Stops every task in flight (they are then not reported); returns what it did, for the
    /// user (for example the Slurm jobs it cancelled).
    fn cancel_all(&mut self) -> Result<Option<String>>;
}
