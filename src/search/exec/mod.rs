//! Executors: where the children of a sample-based search run. An executor takes tasks (a
//! child spec file to turn into a result file beside it), runs them somewhere, and says when
//! each has ended; the result file, written atomically by the child, is the source of truth,
//! so the controller reads it and never trusts a process's word alone. Executors know nothing
//! about the methods, and the methods nothing about executors.
//!
//! - [`local::LocalExecutor`]: up to `--workers` child processes on this machine.

pub mod local;

use std::path::PathBuf;

use anyhow::Result;

/// One child to run: `actsearch child SPEC` with `threads` CPU threads.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: usize,
    pub spec: PathBuf,
    pub threads: usize,
}

/// How a task's process ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It exited normally (its result file says what happened).
    Exited,
    /// It failed, crashed or was killed, with what is known of why.
    Failed(String),
}

pub trait Executor {
    /// Queues a task; returns the job id where the executor has one (a process id, a Slurm job).
    fn submit(&mut self, task: Task) -> Result<Option<String>>;

    /// Starts what may start and returns the tasks that ended since the last call. Does not
    /// block.
    fn poll(&mut self) -> Result<Vec<(usize, Outcome)>>;

    /// Tasks submitted and not yet reported by [`Executor::poll`].
    fn in_flight(&self) -> usize;

    /// Stops every task in flight (they are then not reported).
    fn cancel_all(&mut self) -> Result<()>;
}
