//! The one loop that follows submitted tasks to their end, for every caller (the children of a
//! sample-based search, the runs of an eval grid): it takes back the jobs an earlier process
//! submitted (adopt), submits the rest, polls the executor until every task has ended, and on
//! the user's stop cancels what is still in flight. What a task is and what its result means
//! stay with the caller, which hears of each job and each end through a [`Follower`], and may
//! add tasks as results come in ([`Follower::more`]: successive halving's promotions).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::{Executor, Outcome, Task};

/// How often the loop looks at the executor when nothing happened.
const POLL: Duration = Duration::from_millis(50);

/// A task to run, with the job an earlier process submitted it as (a resumed run), if any.
pub struct Pending {
    pub task: Task,
    pub job: Option<String>,
}

/// How the tasks are handed to the executor.
pub enum Submission<'a> {
    /// One by one (a Slurm job each).
    Each,
    /// As one group (one Slurm job array, its batch script at this path).
    Together(&'a Path),
}

/// What the caller hears while its tasks run.
pub trait Follower {
    /// Task `id` is followed as `job`, which an earlier process submitted.
    fn adopted(&mut self, id: usize, job: &str) -> Result<()>;
    /// Task `id` was handed to the cluster as `job` (again, after a failure, when `retry`
    /// says why).
    fn submitted(&mut self, id: usize, job: &str, retry: Option<&str>) -> Result<()>;
    /// Task `id` ended without a result for the machine's reasons and was queued again (why:
    /// what happened, and which retry this is).
    fn retrying(&mut self, id: usize, why: &str) -> Result<()>;
    /// Task `id` ended: `Outcome::Exited` or `Outcome::Failed` (its result file, if any, says
    /// the rest).
    fn ended(&mut self, id: usize, outcome: Outcome) -> Result<()>;
    /// After the events of one poll have been told (to save the caller's state once per poll).
    fn polled(&mut self) -> Result<()> {
        Ok(())
    }
    /// Whether the user asked to stop.
    fn should_stop(&self) -> bool;
    /// Tasks to run besides those given, asked after each poll's events and whenever nothing
    /// is in flight; following ends when nothing is in flight and this gives none. Each is
    /// submitted one by one.
    fn more(&mut self) -> Result<Vec<Pending>> {
        Ok(Vec::new())
    }
}

/// How following ended.
#[derive(Debug, PartialEq)]
pub enum Followed {
    /// Every task ended.
    All,
    /// The user stopped: the tasks in flight were cancelled, and the executor said this of it.
    Stopped(Option<String>),
}

/// Runs `pending` on `executor` until each has ended or the user stops.
pub fn follow(
    executor: &mut dyn Executor,
    pending: Vec<Pending>,
    submission: Submission,
    follower: &mut dyn Follower,
) -> Result<Followed> {
    let mut waiting = start(executor, pending, &submission, follower)?;
    loop {
        if waiting == 0 {
            let more = follower.more()?;
            if more.is_empty() {
                break;
            }
            waiting += start(executor, more, &Submission::Each, follower)?;
        }
        if follower.should_stop() {
            return Ok(Followed::Stopped(executor.cancel_all()?));
        }
        let events = executor.poll()?;
        if follower.should_stop() {
            // What ended as the user stopped (a task hit by the same Ctrl-C) is not a result.
            return Ok(Followed::Stopped(executor.cancel_all()?));
        }
        if events.is_empty() {
            std::thread::sleep(POLL);
            continue;
        }
        for (id, outcome) in events {
            match outcome {
                Outcome::Submitted { job, retry } => follower.submitted(id, &job, retry.as_deref())?,
                Outcome::Retrying(why) => follower.retrying(id, &why)?,
                ended => {
                    waiting -= 1;
                    follower.ended(id, ended)?;
                }
            }
        }
        follower.polled()?;
        let more = follower.more()?;
        waiting += start(executor, more, &Submission::Each, follower)?;
    }
    Ok(Followed::All)
}

/// Adopts or submits `pending`; returns how many there were.
fn start(
    executor: &mut dyn Executor,
    pending: Vec<Pending>,
    submission: &Submission,
    follower: &mut dyn Follower,
) -> Result<usize> {
    let count = pending.len();
    let mut fresh = Vec::new();
    for Pending { task, job } in pending {
        if let Some(job) = job
            && executor.adopt(task.clone(), &job)?
        {
            follower.adopted(task.id, &job)?;
            continue;
        }
        match submission {
            Submission::Each => executor.submit(task)?,
            Submission::Together(_) => fresh.push(task),
        }
    }
    if let Submission::Together(script) = submission {
        executor.submit_all(fresh, script)?;
    }
    Ok(count)
}
