//! The local executor: each task is a child process (`actsearch child SPEC --exit-with-parent`
//! by default), at most `workers` at a time, with its output in `child.log` beside the spec.
//! A process that exits non-zero, crashes or is killed is reported as failed with its exit
//! status and the last line it wrote; the search goes on.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use super::{Executor, Outcome, Task};

pub struct LocalExecutor {
    /// The program and the arguments before the spec path.
    command: Vec<String>,
    /// Arguments after the spec path.
    suffix: Vec<String>,
    workers: usize,
    queue: VecDeque<Task>,
    running: Vec<(Task, Child)>,
}

impl LocalExecutor {
    /// Runs `actsearch child SPEC --exit-with-parent --threads N` with this very binary.
    pub fn new(workers: usize) -> Result<LocalExecutor> {
        let exe = std::env::current_exe().context("cannot find the actsearch binary to run children with")?;
        let exe = exe.to_str().context("the actsearch binary's path is not UTF-8")?.to_string();
        Ok(LocalExecutor::with_command(vec![exe, "child".into()], vec!["--exit-with-parent".into()], workers))
    }

    /// Runs `command... SPEC suffix... --threads N` for each task.
    pub fn with_command(command: Vec<String>, suffix: Vec<String>, workers: usize) -> LocalExecutor {
        LocalExecutor { command, suffix, workers: workers.max(1), queue: VecDeque::new(), running: Vec::new() }
    }

    fn start(&mut self, task: Task) -> Result<()> {
        let log_path = log_path(&task);
        let log = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .arg(&task.spec)
            .args(&self.suffix)
            .arg("--threads")
            .arg(task.threads.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start a child process ({})", self.command[0]))?;
        self.running.push((task, child));
        Ok(())
    }
}

fn log_path(task: &Task) -> PathBuf {
    task.spec.with_file_name("child.log")
}

/// The last non-empty line of a child's log, for a failure's reason.
fn last_line(task: &Task) -> Option<String> {
    let text = std::fs::read_to_string(log_path(task)).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string())
}

impl Executor for LocalExecutor {
    fn submit(&mut self, task: Task) -> Result<Option<String>> {
        self.queue.push_back(task);
        Ok(None)
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
                        Some(code) => format!("the child process exited with status {code}"),
                        None => {
                            use std::os::unix::process::ExitStatusExt;
                            format!("the child process was killed by signal {}", status.signal().unwrap_or(0))
                        }
                    };
                    let reason = match last_line(&task) {
                        Some(line) => format!("{how}: {line}"),
                        None => how,
                    };
                    ended.push((task.id, Outcome::Failed(reason)));
                }
                Err(e) => ended.push((task.id, Outcome::Failed(format!("cannot wait for the child process: {e}")))),
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

    fn cancel_all(&mut self) -> Result<()> {
        self.queue.clear();
        for (_, child) in &mut self.running {
            let _ = child.kill();
        }
        for (_, mut child) in std::mem::take(&mut self.running) {
            let _ = child.wait();
        }
        Ok(())
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

    /// Each task runs `sh -c SCRIPT SPEC --threads N`; `$0` is the spec path.
    #[test]
    fn exits_crashes_and_kills_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"case "$0" in
            *a/spec.json) echo ok ;;
            *b/spec.json) echo "error: no such dataset" >&2; exit 3 ;;
            *c/spec.json) kill -9 $$ ;;
        esac"#;
        let mut ex = LocalExecutor::with_command(vec!["sh".into(), "-c".into(), script.into()], vec![], 2);
        for (id, name) in ["a", "b", "c"].iter().enumerate() {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            ex.submit(Task { id, spec: dir.path().join(name).join("spec.json"), threads: 1 }).unwrap();
        }
        let out = wait_all(&mut ex);
        assert_eq!(out[0], (0, Outcome::Exited));
        assert_eq!(
            out[1],
            (1, Outcome::Failed("the child process exited with status 3: error: no such dataset".into()))
        );
        assert_eq!(out[2], (2, Outcome::Failed("the child process was killed by signal 9".into())));
        assert_eq!(std::fs::read_to_string(dir.path().join("a/child.log")).unwrap(), "ok\n");
    }

    #[test]
    fn at_most_workers_run_at_once_and_cancel_stops_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut ex = LocalExecutor::with_command(vec!["sh".into(), "-c".into(), "sleep 30".into()], vec![], 2);
        for id in 0..3 {
            let d = dir.path().join(id.to_string());
            std::fs::create_dir_all(&d).unwrap();
            ex.submit(Task { id, spec: d.join("spec.json"), threads: 1 }).unwrap();
        }
        assert!(ex.poll().unwrap().is_empty());
        assert_eq!(ex.running.len(), 2);
        assert_eq!(ex.in_flight(), 3);
        ex.cancel_all().unwrap();
        assert_eq!(ex.in_flight(), 0);
    }
}
