//! The local executor: each task is a process on this machine, at most `workers` at a time,
//! with its output in the task's log; it exits when the executor's process is gone.
//! A process that exits non-zero, crashes or is killed is reported as failed with its exit
//! status and the last line it wrote; the search goes on.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use super::{EXIT_WITH_PARENT_ENV, Executor, Outcome, Task};

/// The running process's own binary (Linux), which outlives a replaced file.
const SELF_EXE: &str = "/proc/self/exe";

pub struct LocalExecutor {
    workers: usize,
    queue: VecDeque<Task>,
    running: Vec<(Task, Child)>,
}

impl LocalExecutor {
    /// At most `workers` tasks at once.
    pub fn new(workers: usize) -> LocalExecutor {
        LocalExecutor { workers: workers.max(1), queue: VecDeque::new(), running: Vec::new() }
    }

    fn start(&mut self, task: Task) -> Result<()> {
        let log = File::create(&task.log).with_context(|| format!("cannot create {}", task.log.display()))?;
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
                        None => {
                            use std::os::unix::process::ExitStatusExt;
                            format!("the process was killed by signal {}", status.signal().unwrap_or(0))
                        }
                    };
                    let reason = match super::last_line(&task.log) {
                        Some(line) => format!("{how}: {line}"),
                        None => how,
                    };
                    ended.push((task.id, Outcome::Failed(reason)));
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

    /// Each task runs `sh -c SCRIPT SPEC`; `$0` is the spec path.
    #[test]
    fn exits_crashes_and_kills_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"case "$0" in
            *a/spec.json) echo ok ;;
            *b/spec.json) echo "error: no such dataset" >&2; exit 3 ;;
            *c/spec.json) kill -9 $$ ;;
        esac"#;
        let mut ex = LocalExecutor::new(2);
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
        let mut ex = LocalExecutor::new(2);
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
