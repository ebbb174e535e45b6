//! The local executor: each task is a process on this machine, at most `workers` at a time,
//! with its output appended to the task's log; it exits when the executor's process is gone.
//!
//! A process that ends without its result file because of the machine rather than its input
//! (killed by a signal: a crash, the OOM killer, kill; or its folder's lock busy, exit
//! [`Busy::EXIT_CODE`](crate::files::Busy)) is started again, up to `retries` times, as the
//! Slurm executor resubmits a lost job. A process that exits non-zero on its own (its input
//! is bad, its run diverged) is reported failed at once, with its exit status and the last
//! line it wrote; the search goes on.

use std::collections::{HashMap, VecDeque};
use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::{Context, Result};

use super::{EXIT_WITH_PARENT_ENV, Executor, Outcome, TASK_ENV, Task};

/// The running process's own binary (Linux), which outlives a replaced file.
const SELF_EXE: &str = "/proc/self/exe";

pub struct LocalExecutor {
    workers: usize,
    /// Restarts of a task that ended without a result for the machine's reasons.
    retries: usize,
    /// Where a task's result file is.
    result_of: fn(&Task) -> PathBuf,
    queue: VecDeque<Task>,
    running: Vec<(Task, Child)>,
    /// Starts so far, per task id.
    attempts: HashMap<usize, usize>,
}

impl LocalExecutor {
    /// At most `workers` tasks at once; a task lost to the machine is started again up to
    /// `retries` times; its result file is where `result_of` says.
    pub fn new(workers: usize, retries: usize, result_of: fn(&Task) -> PathBuf) -> LocalExecutor {
        LocalExecutor {
            workers: workers.max(1),
            retries,
            result_of,
            queue: VecDeque::new(),
            running: Vec::new(),
            attempts: HashMap::new(),
        }
    }

    fn start(&mut self, task: Task) -> Result<()> {
        *self.attempts.entry(task.id).or_default() += 1;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&task.log)
            .with_context(|| format!("cannot open {}", task.log.display()))?;
        let program = task.argv.first().context("a task without a command")?;
        let mut command = match super::this_program() {
            // This very binary, even if the file was replaced since it started (a rebuild
            // while a search runs), so that every task of a run runs the same code.
            Ok(me) if *program == me && Path::new(SELF_EXE).exists() => {
                let mut c = Command::new(SELF_EXE);
                c.arg0(program);
                c
            }
            _ => Command::new(program),
        };
        let child = command
            .args(&task.argv[1..])
            .env(EXIT_WITH_PARENT_ENV, "1")
            .env(TASK_ENV, "1")
            // Its own process group: Ctrl-C reaches the search, which stops its tasks itself.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start a process ({program})"))?;
        self.running.push((task, child));
        Ok(())
    }
}

/// Whether a process that ended with `status` was lost to the machine (a signal, or its lock
/// busy) rather than failing on its input.
fn lost(status: ExitStatus) -> bool {
    status.signal().is_some() || status.code() == Some(crate::files::Busy::EXIT_CODE)
}

impl Executor for LocalExecutor {
    fn submit(&mut self, task: Task) -> Result<()> {
        self.queue.push_back(task);
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<(usize, Outcome)>> {
        let mut ended = Vec::new();
        let mut still = Vec::with_capacity(self.running.len());
        for (task, mut child) in std::mem::take(&mut self.running) {
            match child.try_wait() {
                Ok(None) => still.push((task, child)),
                Ok(Some(status)) if status.success() => ended.push((task.id, Outcome::Exited)),
                Ok(Some(status)) => {
                    let how = match status.code() {
                        Some(code) => format!("the process exited with status {code}"),
                        None => format!("the process was killed by signal {}", status.signal().unwrap_or(0)),
                    };
                    let reason = match super::last_line(&task.log) {
                        Some(line) => format!("{how}: {line}"),
                        None => how,
                    };
                    let attempt = self.attempts.get(&task.id).copied().unwrap_or(1);
                    if lost(status) && !(self.result_of)(&task).exists() && attempt <= self.retries {
                        let note = format!("{reason}; retry {attempt} of {}", self.retries);
                        ended.push((task.id, Outcome::Retrying(note)));
                        self.queue.push_front(task);
                    } else {
                        ended.push((task.id, Outcome::Failed(reason)));
                    }
                }
                Err(e) => ended.push((task.id, Outcome::Failed(format!("cannot wait for the process: {e}")))),
            }
        }
        self.running = still;
        while self.running.len() < self.workers {
            let Some(task) = self.queue.pop_front() else { break };
            if let Err(e) = self.start(task.clone()) {
                ended.push((task.id, Outcome::Failed(format!("{e:#}"))));
            }
        }
        Ok(ended)
    }

    fn in_flight(&self) -> usize {
        self.queue.len() + self.running.len()
    }

    fn cancel_all(&mut self) -> Result<Option<String>> {
        self.queue.clear();
        let stopped = self.running.len();
        for (_, child) in &mut self.running {
            let _ = child.kill();
        }
        for (_, mut child) in std::mem::take(&mut self.running) {
            let _ = child.wait();
        }
        Ok((stopped > 0).then(|| format!("stopped {stopped} running task process(es)")))
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        let _ = self.cancel_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_all(ex: &mut LocalExecutor) -> Vec<(usize, Outcome)> {
        let start = Instant::now();
        let mut out = Vec::new();
        while ex.in_flight() > 0 {
            out.extend(ex.poll().unwrap());
            assert!(start.elapsed() < Duration::from_secs(60), "tasks did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
        out.sort_by_key(|(id, _)| *id);
        out
    }

    fn task(dir: &std::path::Path, id: usize, name: &str, script: &str) -> Task {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let argv = ["sh", "-c", script, d.join("spec.json").to_str().unwrap()].map(String::from).to_vec();
        Task { id, argv, log: d.join("child.log"), threads: 1 }
    }

    fn result_of(task: &Task) -> std::path::PathBuf {
        task.log.with_file_name("result.json")
    }

    /// A task lost to the machine (killed, or its lock busy) is started again up to the
    /// retries, its log appended to; one that fails on its own is not.
    #[test]
    fn lost_tasks_are_retried_and_failures_of_their_own_are_not() {
        let dir = tempfile::tempdir().unwrap();
        // $0 is the spec; `tries` counts the starts of each task.
        let script = r#"d=$(dirname "$0"); echo start >> "$d/tries"; n=$(wc -l < "$d/tries")
            echo "attempt $n"
            case "$d" in
                */killed-once) [ "$n" -lt 2 ] && kill -9 $$; echo done > "$d/result.json" ;;
                */busy-twice) [ "$n" -lt 3 ] && { echo "error: the folder is in use" >&2; exit 75; }; echo done > "$d/result.json" ;;
                */always-killed) kill -9 $$ ;;
                */bad-input) echo "error: no such dataset" >&2; exit 3 ;;
            esac"#;
        let mut ex = LocalExecutor::new(2, 2, result_of);
        for (id, name) in ["killed-once", "busy-twice", "always-killed", "bad-input"].iter().enumerate() {
            ex.submit(task(dir.path(), id, name, script)).unwrap();
        }
        let out = wait_all(&mut ex);
        let of = |id: usize| -> Vec<&Outcome> { out.iter().filter(|(i, _)| *i == id).map(|(_, o)| o).collect() };
        let retry = |why: &str, k: usize| Outcome::Retrying(format!("{why}; retry {k} of 2"));
        assert_eq!(of(0), [&retry("the process was killed by signal 9: attempt 1", 1), &Outcome::Exited]);
        assert_eq!(
            of(1),
            [
                &retry("the process exited with status 75: error: the folder is in use", 1),
                &retry("the process exited with status 75: error: the folder is in use", 2),
                &Outcome::Exited
            ]
        );
        assert_eq!(
            of(2),
            [
                &retry("the process was killed by signal 9: attempt 1", 1),
                &retry("the process was killed by signal 9: attempt 2", 2),
                &Outcome::Failed("the process was killed by signal 9: attempt 3".into())
            ]
        );
        assert_eq!(of(3), [&Outcome::Failed("the process exited with status 3: error: no such dataset".into())]);
        let log = std::fs::read_to_string(dir.path().join("busy-twice/child.log")).unwrap();
        assert!(log.starts_with("attempt 1\n") && log.contains("attempt 3\n"), "{log}");
    }

    /// Each task runs `sh -c SCRIPT SPEC`; `$0` is the spec path.
    #[test]
    fn exits_crashes_and_kills_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"case "$0" in
            *a/spec.json) echo ok ;;
            *b/spec.json) echo "error: no such dataset" >&2; exit 3 ;;
            *c/spec.json) kill -9 $$ ;;
        esac"#;
        let mut ex = LocalExecutor::new(2, 0, result_of);
        for (id, name) in ["a", "b", "c"].iter().enumerate() {
            ex.submit(task(dir.path(), id, name, script)).unwrap();
        }
        let out = wait_all(&mut ex);
        assert_eq!(out[0], (0, Outcome::Exited));
        assert_eq!(out[1], (1, Outcome::Failed("the process exited with status 3: error: no such dataset".into())));
        assert_eq!(out[2], (2, Outcome::Failed("the process was killed by signal 9".into())));
        assert_eq!(std::fs::read_to_string(dir.path().join("a/child.log")).unwrap(), "ok\n");
    }

    #[test]
    fn at_most_workers_run_at_once_and_cancel_stops_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut ex = LocalExecutor::new(2, 0, result_of);
        for id in 0..3 {
            ex.submit(task(dir.path(), id, &id.to_string(), "sleep 30")).unwrap();
        }
        assert!(ex.poll().unwrap().is_empty());
        assert_eq!(ex.running.len(), 2);
        assert_eq!(ex.in_flight(), 3);
        ex.cancel_all().unwrap();
        assert_eq!(ex.in_flight(), 0);
    }
}
