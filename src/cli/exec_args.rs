//! Where tasks run: `--executor local|slurm`, `--workers`, and the `--slurm-*` options, shared
//! by the sample-based searches (one task per child) and eval grids (one task per run).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::exec::local::LocalExecutor;
use crate::exec::slurm::{SlurmConfig, SlurmExecutor};
use crate::exec::{Executor, Task};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    /// Processes on this machine, --workers at a time, --threads divided between them.
    Local,
    /// One Slurm job per task (`sbatch`), --max-jobs (default --workers) queued or running at
    /// once; needs sbatch and squeue here and the run folder, the data and this binary on a
    /// filesystem every node shares.
    Slurm,
}

#[derive(Args, Clone, Debug)]
pub struct ExecArgs {
    /// Tasks at once: processes on this machine (local), or Slurm jobs queued or running.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub workers: usize,
    /// Where tasks run.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorArg,
    /// Slurm: jobs queued or running at once (the `%` throttle of an eval grid's job array)
    /// [default: --workers].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub max_jobs: Option<usize>,
    /// Restarts of a task that ends without a result for reasons of the machine, before it is
    /// recorded as failed [default: 2]. Slurm: the job failed, timed out, was cancelled or lost
    /// its node. Local: the process was killed by a signal (a crash, the OOM killer), or its
    /// folder was locked by another process. A task that fails on its own input is not retried.
    #[arg(long, allow_negative_numbers = true, value_parser = super::whole)]
    pub retries: Option<u64>,
    /// Slurm: the partition of every job (sbatch --partition).
    #[arg(long)]
    pub slurm_partition: Option<String>,
    /// Slurm: the time limit of every job (sbatch --time, e.g. 2:00:00).
    #[arg(long)]
    pub slurm_time: Option<String>,
    /// Slurm: generic resources of every job (sbatch --gres, e.g. gpu:1 with --backend cuda).
    #[arg(long)]
    pub slurm_gres: Option<String>,
    /// Slurm: CPUs of every job (sbatch --cpus-per-task), also the task's threads [default:
    /// --threads, or 1].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub slurm_cpus: Option<usize>,
    /// Slurm: memory of every job (sbatch --mem, e.g. 8G).
    #[arg(long)]
    pub slurm_mem: Option<String>,
    /// Slurm: one more sbatch argument, as it is (repeatable: --slurm-arg=--qos=high
    /// --slurm-arg=--account=lab).
    #[arg(long, allow_hyphen_values = true)]
    pub slurm_arg: Vec<String>,
}

impl ExecArgs {
    /// The Slurm options given while the executor is local: an error names them.
    pub fn check(&self) -> Result<()> {
        if self.executor == ExecutorArg::Slurm {
            return Ok(());
        }
        let flags = [
            ("--max-jobs", self.max_jobs.is_some()),
            ("--slurm-partition", self.slurm_partition.is_some()),
            ("--slurm-time", self.slurm_time.is_some()),
            ("--slurm-gres", self.slurm_gres.is_some()),
            ("--slurm-cpus", self.slurm_cpus.is_some()),
            ("--slurm-mem", self.slurm_mem.is_some()),
            ("--slurm-arg", !self.slurm_arg.is_empty()),
        ];
        super::refuse_flags(&flags, "--executor slurm")
    }

    /// Threads of each task: locally `threads` (this machine's) divided between the workers;
    /// on Slurm each job's own CPUs.
    pub fn task_threads(&self, threads: Option<usize>, local_threads: usize) -> usize {
        match self.executor {
            ExecutorArg::Local => (local_threads / self.workers).max(1),
            ExecutorArg::Slurm => self.slurm_cpus.or(threads).unwrap_or(1),
        }
    }

    pub fn name(&self) -> &'static str {
        match self.executor {
            ExecutorArg::Local => "local",
            ExecutorArg::Slurm => "slurm",
        }
    }

    /// The executor for the run in `run_dir`, whose tasks' results lie where `result_of`
    /// says.
    pub fn executor(&self, run_dir: &Path, result_of: fn(&Task) -> PathBuf) -> Result<Box<dyn Executor>> {
        Ok(match self.executor {
            ExecutorArg::Local => Box::new(LocalExecutor::new(self.workers, self.retries(), result_of)),
            ExecutorArg::Slurm => Box::new(SlurmExecutor::new(self.slurm_config(), run_dir, result_of)?),
        })
    }

    /// `--retries`, default 2.
    fn retries(&self) -> usize {
        self.retries.unwrap_or(2) as usize
    }

    pub fn slurm_config(&self) -> SlurmConfig {
        SlurmConfig {
            partition: self.slurm_partition.clone(),
            time: self.slurm_time.clone(),
            gres: self.slurm_gres.clone(),
            cpus: self.slurm_cpus,
            mem: self.slurm_mem.clone(),
            args: self.slurm_arg.clone(),
            retries: self.retries(),
            max_jobs: self.max_jobs.unwrap_or(self.workers),
        }
    }
}
