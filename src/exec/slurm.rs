//! The Slurm executor: each task becomes one Slurm job, submitted with `sbatch --parsable`
//! from a batch script written beside the task's log (`slurm.sh`, kept so that a user can
//! read it and resubmit it by hand), at most `max_jobs` queued or running at once. Job states
//! come from `squeue -t all`, and from `sacct` where accounting exists; the task's result
//! file, written atomically on the shared filesystem, is the source of truth, as in Nextflow:
//! a job that ends without one (non-zero exit, time limit, node failure, `scancel`) is
//! resubmitted up to `retries` times, then reported failed with Slurm's reason.
//!
//! Slurm is the engine: no queue or worker protocol of our own. Every job is named
//! `actsearch-<run>-<task>`, `<run>` a hash of the run folder, so that a search resumed after
//! its controller died finds its jobs still queued or running (by the job ids in its store,
//! or by name for a job submitted just before the controller died) instead of submitting
//! them twice.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Executor, Outcome, Task};

/// The cluster options of `--slurm-*`, `--retries` and `--max-jobs`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    /// `--time` of each job (for example `1:00:00`).
    pub time: Option<String>,
    /// `--gres` of each job (for example `gpu:1`).
    pub gres: Option<String>,
    /// `--cpus-per-task`; the task's threads when absent.
    pub cpus: Option<usize>,
    /// `--mem` of each job (for example `8G`).
    pub mem: Option<String>,
    /// More `sbatch` arguments, passed as they are.
    pub args: Vec<String>,
    /// Resubmissions of a job that ended without a result.
    pub retries: usize,
    /// Jobs queued or running at once.
    pub max_jobs: usize,
}

/// A job that completed (exit 0) without a result file visible here is given this long for it
/// to appear (a shared filesystem's attribute cache can hide it) before it counts as failed;
/// a job that failed, timed out or was cancelled, this long.
const GRACE_COMPLETED: Duration = Duration::from_secs(30);
const GRACE_FAILED: Duration = Duration::from_secs(5);

/// How often the queue is asked about the jobs (each ask is one call to `squeue`).
const QUEUE_EVERY: Duration = Duration::from_secs(3);

/// Tasks in one job array (Slurm's MaxArraySize is 1001 by default).
const ARRAY_MAX: usize = 1000;

/// Reasons for which a pending job will never start, whatever the wait.
const NEVER_STARTS: &[&str] = &[
    "PartitionTimeLimit",
    "PartitionNodeLimit",
    "PartitionConfig",
    "DependencyNeverSatisfied",
    "BadConstraints",
    "InvalidQOS",
    "InvalidAccount",
    "QOSMaxWallDurationPerJobLimit",
    "QOSMaxCpuPerJobLimit",
    "QOSMaxGRESPerJob",
];

/// A task waiting for its (next) submission.
struct Queued {
    task: Task,
    /// The submission it waits for (1 for the first).
    attempt: usize,
    /// Why it is submitted again, for the log.
    retry: Option<String>,
    /// sbatch calls that failed for this submission.
    sbatch_errors: usize,
}

impl Queued {
    fn new(task: Task) -> Queued {
        Queued { task, attempt: 1, retry: None, sbatch_errors: 0 }
    }
}

struct Job {
    task: Task,
    id: String,
    /// Submissions so far (1 for the first).
    attempt: usize,
    /// When the job was first seen ended without a result file.
    ended_at: Option<Instant>,
}

pub struct SlurmExecutor {
    config: SlurmConfig,
    /// Names the run's jobs: `actsearch-<run>-<task id>`.
    run: String,
    /// Where the task's result file lies, from the task.
    result_of: fn(&Task) -> PathBuf,
    queue: VecDeque<Queued>,
    jobs: Vec<Job>,
    /// Jobs of this run already in the queue when the executor started, by name.
    found: Option<HashMap<String, String>>,
    /// Every job's state when first asked (for adopting a resumed run's jobs).
    at_start: Option<HashMap<String, String>>,
    /// Whether `sacct` answers (unknown until first asked).
    sacct: Option<bool>,
    last_queue: Option<Instant>,
    /// Calls of `squeue` that failed in a row (a restarting slurmctld): tolerated for a while.
    queue_failures: usize,
    /// Whether any sbatch worked: a first one that fails is a setup error (a bad option, no
    /// such partition) that stops the run instead of failing every task.
    submitted_once: bool,
    fatal: Option<anyhow::Error>,
    pending: Vec<(usize, Outcome)>,
}

/// Failed `squeue` calls in a row (QUEUE_EVERY apart) before the executor gives up.
const QUEUE_FAILURES: usize = 60;

impl SlurmExecutor {
    /// An executor for the run in `run_dir`; `result_of` says where a task's result file is.
    /// Fails with a clear message where `sbatch` is missing.
    pub fn new(config: SlurmConfig, run_dir: &Path, result_of: fn(&Task) -> PathBuf) -> Result<SlurmExecutor> {
        if !available() {
            bail!(
                "--executor slurm needs Slurm's sbatch and squeue on the PATH of this machine (a login node of the cluster); they were not found"
            );
        }
        let abs = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
        let run = format!("{:08x}", xxhash_rust::xxh3::xxh3_64(abs.to_string_lossy().as_bytes()) as u32);
        Ok(SlurmExecutor {
            config: SlurmConfig { max_jobs: config.max_jobs.max(1), ..config },
            run,
            result_of,
            queue: VecDeque::new(),
            jobs: Vec::new(),
            found: None,
            at_start: None,
            sacct: None,
            last_queue: None,
            queue_failures: 0,
            submitted_once: false,
            fatal: None,
            pending: Vec::new(),
        })
    }

    fn job_name(&self, task: &Task) -> String {
        format!("actsearch-{}-{}", self.run, task.id)
    }

    /// The batch script of `task`, written beside its log.
    fn write_script(&self, task: &Task) -> Result<PathBuf> {
        let dir = task.log.parent().context("a task's log has a folder")?;
        let path = dir.join("slurm.sh");
        let text = batch_script(&self.config, &self.job_name(task), task);
        crate::files::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Submits `q`: a job followed from now on, or, when sbatch fails, the task queued
    /// again (failed after more than `retries` sbatch errors); a first sbatch that fails
    /// stops the run (a bad option fails every job alike).
    fn sbatch(&mut self, mut q: Queued) {
        let id = q.task.id;
        match self.write_script(&q.task).and_then(|script| sbatch(&script, &[])) {
            Ok(job) => {
                self.submitted_once = true;
                self.pending.push((id, Outcome::Submitted { job: job.clone(), retry: q.retry }));
                self.jobs.push(Job { task: q.task, id: job, attempt: q.attempt, ended_at: None });
            }
            Err(e) if !self.submitted_once => {
                self.fatal = Some(e.context(
                    "sbatch refused the first job; fix what it says (a --slurm-* option?) and rerun with --resume",
                ));
                self.queue.push_front(q);
            }
            Err(e) => {
                q.sbatch_errors += 1;
                if q.sbatch_errors > self.config.retries {
                    let why = format!("sbatch failed {} time(s): {e:#}", q.sbatch_errors);
                    self.pending.push((id, Outcome::Failed(why)));
                } else {
                    self.queue.push_back(q);
                }
            }
        }
    }

    /// The state of `job` when this executor first asked ("" when Slurm does not know it):
    /// a resumed run adopts all its jobs at once, so one `squeue` answers for all of them.
    fn state_at_start(&mut self, job: &str) -> String {
        let queue = self.at_start.get_or_insert_with(|| {
            let text = run("squeue", &["-h", "-r", "--me", "-t", "all", "-o", "%i|%T"]).unwrap_or_default();
            text.lines().filter_map(|l| l.split_once('|')).map(|(i, t)| (i.trim().to_string(), t.to_string())).collect()
        });
        queue.get(job).cloned().unwrap_or_default()
    }

    /// The run's jobs already queued or running, by name (asked once).
    fn found_jobs(&mut self) -> Result<&HashMap<String, String>> {
        if self.found.is_none() {
            let prefix = format!("actsearch-{}-", self.run);
            let text = run("squeue", &["-h", "-r", "--me", "-o", "%j|%i|%T"])?;
            let found = text
                .lines()
                .filter_map(|l| {
                    let mut f = l.split('|');
                    let (name, id, state) = (f.next()?, f.next()?, f.next()?);
                    (name.starts_with(&prefix) && !ended_state(state)).then(|| (name.to_string(), id.to_string()))
                })
                .collect();
            self.found = Some(found);
        }
        Ok(self.found.as_ref().expect("just set"))
    }

    /// Every job's state, from `squeue` (and `sacct` for jobs that left the queue).
    fn states(&mut self) -> Result<HashMap<String, (String, String)>> {
        // -r: one line per array task, pending ones too.
        let text = run("squeue", &["-h", "-r", "--me", "-t", "all", "-o", "%i|%T|%r"])?;
        let mut states: HashMap<String, (String, String)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split('|');
                Some((f.next()?.trim().to_string(), (f.next()?.to_string(), f.next().unwrap_or("").to_string())))
            })
            .collect();
        let gone: Vec<String> =
            self.jobs.iter().filter(|j| !states.contains_key(&j.id)).map(|j| j.id.clone()).collect();
        if !gone.is_empty() && self.sacct != Some(false) {
            match run("sacct", &["-n", "-X", "-P", "-o", "JobID,State,Reason", "-j", &gone.join(",")]) {
                Ok(text) => {
                    self.sacct = Some(true);
                    for l in text.lines() {
                        let f: Vec<&str> = l.split('|').collect();
                        if f.len() >= 2 {
                            let state = f[1].split_whitespace().next().unwrap_or("").to_string();
                            states.insert(f[0].to_string(), (state, f.get(2).unwrap_or(&"").to_string()));
                        }
                    }
                }
                // No accounting (the common case on small clusters): squeue alone.
                Err(e) if format!("{e}").contains("disabled") => self.sacct = Some(false),
                Err(_) => {}
            }
        }
        Ok(states)
    }
}

impl SlurmExecutor {
    /// One job array of `tasks` (task k of the array runs `tasks[k]`) from the script `script`.
    fn submit_array(&mut self, tasks: Vec<Task>, script: &Path) -> Result<()> {
        let name = format!("actsearch-{}-array", self.run);
        let text = array_script(&self.config, &name, &tasks, script);
        crate::files::write_atomic(script, text.as_bytes())?;
        let id = sbatch(script, &[&format!("--array=0-{}%{}", tasks.len() - 1, self.config.max_jobs)])?;
        self.submitted_once = true;
        for (k, task) in tasks.into_iter().enumerate() {
            let job = format!("{id}_{k}");
            self.pending.push((task.id, Outcome::Submitted { job: job.clone(), retry: None }));
            self.jobs.push(Job { task, id: job, attempt: 1, ended_at: None });
        }
        Ok(())
    }

    /// Tells which followed jobs ended: with a result (exited), or without one after a grace
    /// (queued again while retries are left, else failed with Slurm's state and reason).
    fn follow(&mut self, states: &HashMap<String, (String, String)>) {
        let mut still = Vec::with_capacity(self.jobs.len());
        for mut job in std::mem::take(&mut self.jobs) {
            let result = (self.result_of)(&job.task);
            // Listing the folder makes an NFS client look again instead of trusting its cache.
            if let Some(dir) = result.parent() {
                let _ = std::fs::read_dir(dir).map(|d| d.count());
            }
            if result.exists() || result.with_file_name(super::GAVE_UP_FILE).exists() {
                self.pending.push((job.task.id, Outcome::Exited));
                continue;
            }
            let (state, reason) = states.get(&job.id).cloned().unwrap_or(("GONE".into(), "it left the queue".into()));
            if let Some(never) = NEVER_STARTS.iter().find(|r| reason.starts_with(**r)) {
                // Pending for a reason no wait fixes (a --slurm-time over the partition's
                // limit, say): the same options would keep every job waiting, so stop the run.
                let _ = run("scancel", &["--quiet", &job.id]);
                self.fatal.get_or_insert_with(|| {
                    anyhow::anyhow!(
                        "slurm job {} can never start ({never}: see `scontrol show job`); fix the --slurm-* options and rerun with --resume",
                        job.id
                    )
                });
                self.queue.push_front(Queued::new(job.task));
                continue;
            }
            if !ended_state(&state) {
                job.ended_at = None; // requeued by Slurm, say
                still.push(job);
                continue;
            }
            let grace = if state == "COMPLETED" { GRACE_COMPLETED } else { GRACE_FAILED };
            if job.ended_at.get_or_insert_with(Instant::now).elapsed() < grace {
                still.push(job);
                continue;
            }
            let why = match reason.as_str() {
                "" | "None" => format!("slurm job {} {state}", job.id),
                r => format!("slurm job {} {state} ({r})", job.id),
            };
            if job.attempt <= self.config.retries {
                let note = format!("{why} without a result; retry {} of {}", job.attempt, self.config.retries);
                let retry = Queued { task: job.task, attempt: job.attempt + 1, retry: Some(note), sbatch_errors: 0 };
                self.queue.push_front(retry);
            } else {
                let last = super::last_line(&job.task.log).map_or(String::new(), |l| format!("; its log ends: {l}"));
                let what = format!("{why} without a result, after {} submission(s){last}", job.attempt);
                self.pending.push((job.task.id, Outcome::Failed(what)));
            }
        }
        self.jobs = still;
    }
}

/// Whether Slurm's client commands are on the PATH.
pub fn available() -> bool {
    ["sbatch", "squeue"].iter().all(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// A state after which a job runs no more.
fn ended_state(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESV_DEL_HOLD"
    )
}

/// The batch script of one task: `#SBATCH` lines from the options, then the task's command.
pub fn batch_script(config: &SlurmConfig, name: &str, task: &Task) -> String {
    let log = directive(&task.log.to_string_lossy().replace('%', "%%"));
    let mut s = String::from(
        "#!/bin/bash\n# Written by actsearch: one task of a run. Resubmit it by hand with `sbatch THIS_FILE`.\n",
    );
    s += &format!("#SBATCH --job-name={name}\n#SBATCH --output={log}\n#SBATCH --open-mode=append\n");
    s += &options(config, task.threads);
    s += "echo \"actsearch: slurm job $SLURM_JOB_ID on $(hostname)\"\n";
    s += &format!("export {}=1\n", super::TASK_ENV);
    s += &format!("exec {}\n", task.argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
    s
}

/// The batch script of a job array: task `k` of the array runs `tasks[k]`, its output
/// appended to the task's log. A failed task is resubmitted alone, with its own script.
pub fn array_script(config: &SlurmConfig, name: &str, tasks: &[Task], script: &Path) -> String {
    let first = tasks.first().map_or(1, |t| t.threads);
    let mut s = String::from(
        "#!/bin/bash\n# Written by actsearch: one array task per run of an eval grid. Resubmit it by hand with\n# `sbatch --array=0-N THIS_FILE` (N: the last task below), or one task with --array=K.\n",
    );
    s += &format!("#SBATCH --job-name={name}\n");
    let dir = script.parent().unwrap_or(Path::new(".")).to_string_lossy().replace('%', "%%");
    s += &format!("#SBATCH --output={}\n", directive(&format!("{dir}/slurm-%A_%a.out")));
    s += &options(config, first);
    s += "echo \"actsearch: slurm job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname)\"\n";
    s += &format!("export {}=1\n", super::TASK_ENV);
    s += "case \"$SLURM_ARRAY_TASK_ID\" in\n";
    for (k, t) in tasks.iter().enumerate() {
        let cmd = t.argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
        s += &format!("  {k}) exec {cmd} >> {} 2>&1 ;;\n", shell_quote(&t.log.to_string_lossy()));
    }
    s += "  *) echo \"no task $SLURM_ARRAY_TASK_ID in this array\" >&2; exit 2 ;;\nesac\n";
    s
}

/// `#SBATCH` lines of the options shared by every job.
fn options(config: &SlurmConfig, threads: usize) -> String {
    // Retries are actsearch's (it knows whether a result came back), not Slurm's requeue.
    let mut s = format!("#SBATCH --cpus-per-task={}\n#SBATCH --no-requeue\n", config.cpus.unwrap_or(threads).max(1));
    for (flag, value) in
        [("partition", &config.partition), ("time", &config.time), ("gres", &config.gres), ("mem", &config.mem)]
    {
        if let Some(v) = value {
            s += &format!("#SBATCH --{flag}={}\n", directive(v));
        }
    }
    for a in &config.args {
        s += &format!("#SBATCH {}\n", directive(a));
    }
    s
}

/// A value on an `#SBATCH` line: sbatch splits those lines at blanks and reads `#` as the
/// start of a comment, so a value with either (a path with a space) is written in double
/// quotes, with `"` and `\\` escaped.
fn directive(value: &str) -> String {
    if value.chars().any(|c| c.is_whitespace() || matches!(c, '#' | '"' | '\'' | '\\')) {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

/// `text` as one word for bash.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// `sbatch --parsable [OPTIONS] SCRIPT`: the job id (of the array, for `--array=...`).
fn sbatch(script: &Path, options: &[&str]) -> Result<String> {
    let path = script.to_string_lossy();
    let args: Vec<&str> =
        ["--parsable"].iter().copied().chain(options.iter().copied()).chain([path.as_ref()]).collect();
    let text = run("sbatch", &args)?;
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed no job id for {} (it said: {})", script.display(), text.trim());
    }
    Ok(id)
}

/// Runs a Slurm command; its stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{program} {} failed: {}", args.join(" "), err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Executor for SlurmExecutor {
    fn submit(&mut self, task: Task) -> Result<()> {
        // A job of this task submitted just before an earlier controller died, its id never
        // stored: follow it rather than start a second one on the same folder.
        let name = self.job_name(&task);
        if let Some(job) = self.found_jobs()?.get(&name).cloned() {
            self.submitted_once = true;
            self.pending.push((task.id, Outcome::Submitted { job: job.clone(), retry: None }));
            self.jobs.push(Job { task, id: job, attempt: 1, ended_at: None });
            return Ok(());
        }
        self.queue.push_back(Queued::new(task));
        Ok(())
    }

    fn submit_all(&mut self, tasks: Vec<Task>, script: &Path) -> Result<()> {
        // Slurm's MaxArraySize is 1001 by default: larger grids become several arrays, each
        // with its own script and `%` throttle.
        let chunks: Vec<Vec<Task>> = tasks.chunks(ARRAY_MAX).map(|c| c.to_vec()).collect();
        let several = chunks.len() > 1;
        for (c, chunk) in chunks.into_iter().enumerate() {
            let path = match several {
                false => script.to_path_buf(),
                true => script.with_file_name(format!("slurm-array-{}.sh", c + 1)),
            };
            self.submit_array(chunk, &path)?;
        }
        Ok(())
    }

    /// Follows `job` if Slurm still has it queued or running (a job cancelled by Ctrl-C, or
    /// long gone, is not followed: the task is submitted afresh), or else a live job of the
    /// task found by name.
    fn adopt(&mut self, task: Task, job: &str) -> Result<bool> {
        let live = |state: &str| !state.is_empty() && !ended_state(state);
        let followed = match live(&self.state_at_start(job)) {
            true => Some(job.to_string()),
            false => {
                let name = self.job_name(&task);
                let found = self.found_jobs()?.get(&name).cloned();
                if let Some(other) = &found {
                    self.pending.push((task.id, Outcome::Submitted { job: other.clone(), retry: None }));
                }
                found
            }
        };
        let Some(id) = followed else { return Ok(false) };
        self.submitted_once = true;
        self.jobs.push(Job { task, id, attempt: 1, ended_at: None });
        Ok(true)
    }

    fn poll(&mut self) -> Result<Vec<(usize, Outcome)>> {
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        let due = self.last_queue.is_none_or(|t| t.elapsed() >= QUEUE_EVERY);
        if due && !self.jobs.is_empty() {
            self.last_queue = Some(Instant::now());
            match self.states() {
                Ok(states) => {
                    self.queue_failures = 0;
                    self.follow(&states);
                }
                Err(e) => {
                    self.queue_failures += 1;
                    if self.queue_failures >= QUEUE_FAILURES {
                        return Err(e.context(
                            "Slurm's queue did not answer for three minutes; rerun with --resume once it does",
                        ));
                    }
                }
            }
        }
        while self.jobs.len() < self.config.max_jobs && self.fatal.is_none() {
            let Some(q) = self.queue.pop_front() else { break };
            self.sbatch(q);
        }
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        Ok(std::mem::take(&mut self.pending))
    }

    fn in_flight(&self) -> usize {
        self.queue.len() + self.jobs.len()
    }

    fn cancel_all(&mut self) -> Result<Option<String>> {
        self.queue.clear();
        let ids: Vec<String> = std::mem::take(&mut self.jobs).into_iter().map(|j| j.id).collect();
        self.pending.clear();
        if ids.is_empty() {
            return Ok(None);
        }
        let mut args = vec!["--quiet"];
        args.extend(ids.iter().map(String::as_str));
        run("scancel", &args)?;
        Ok(Some(format!("cancelled slurm job(s) {}", ids.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_script_carries_the_options_and_the_quoted_command() {
        let config = SlurmConfig {
            partition: Some("gpu".into()),
            time: Some("1:00:00".into()),
            gres: Some("gpu:1".into()),
            cpus: None,
            mem: Some("8G".into()),
            args: vec!["--qos=high".into()],
            retries: 2,
            max_jobs: 4,
        };
        let task = Task {
            id: 3,
            argv: ["/opt/actsearch", "child", "/runs/a b/children/3/spec.json", "--threads", "4"]
                .map(String::from)
                .to_vec(),
            log: PathBuf::from("/runs/a b/children/3/child.log"),
            threads: 4,
        };
        let s = batch_script(&config, "actsearch-0000abcd-3", &task);
        for line in [
            "#SBATCH --job-name=actsearch-0000abcd-3",
            "#SBATCH --output=\"/runs/a b/children/3/child.log\"",
            "#SBATCH --no-requeue",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=1:00:00",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --mem=8G",
            "#SBATCH --qos=high",
            "exec /opt/actsearch child '/runs/a b/children/3/spec.json' --threads 4",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} missing in\n{s}");
        }
        assert!(s.starts_with("#!/bin/bash\n"));
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn states_that_end_a_job() {
        for s in ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "GONE"] {
            assert!(ended_state(s), "{s}");
        }
        for s in ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING"] {
            assert!(!ended_state(s), "{s}");
        }
    }
}
