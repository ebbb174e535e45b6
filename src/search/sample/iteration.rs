//! One controller iteration of a sample-based search: the method's proposals are decoded,
//! screened (`screen`) and looked up by fingerprint in the store; new functions become child
//! specs that the executor runs through the follow loop of `exec`; every proposal ends as a row.
//! `--budget` counts distinct functions trained: a repeat gets its stored reward for free and
//! a rejected function gets reward 0, and neither counts. `--budget-steps` counts the child
//! steps they cost.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use super::child::{ChildResult, ChildSpec, Status, read_result, result_path, write_spec};
use super::config::SampleConfig;
use super::screen::{Screen, screen};
use super::space::TokenSpace;
use super::store::{Row, Store};
use crate::exec::follow::{Followed, Follower, Pending, Submission, follow};
use crate::exec::{Executor, Outcome, Task};
use crate::observer::{Event, Observer};
use crate::train::run_dir::RunLog;

/// What one proposal became.
enum Slot {
    /// Its row is known (stored, rejected, or a repeat of a stored child).
    Done(Box<Row>),
    /// A new function, trained by child `id`.
    Training,
    /// A repeat of proposal `id` of this iteration, still training.
    RepeatOf(usize),
}

/// Where an iteration starts: its first proposal's id, its number (0-based), and the
/// distinct functions trained and the best reward before it.
pub(super) struct At {
    pub(super) first_id: usize,
    pub(super) step: usize,
    pub(super) trained_before: usize,
    pub(super) best_before: f64,
    /// The child steps spent before it (`Row::cost`).
    pub(super) spent_before: usize,
}

/// One iteration's proposals on their way to rows.
pub(super) struct IterationRun<'a> {
    config: &'a SampleConfig,
    space: &'a TokenSpace,
    store: &'a mut Store,
    first_id: usize,
    step: usize,
    trained_before: usize,
    best_before: f64,
    spent_before: usize,
    obs: &'a dyn Observer,
    slots: Vec<Slot>,
    /// Formula, fingerprint and tokens of each proposal.
    meta: Vec<(String, Option<u64>, String)>,
    /// Rows of children trained in this iteration, stored as they finished.
    stored: Vec<Row>,
}

impl<'a> IterationRun<'a> {
    pub(super) fn new(
        config: &'a SampleConfig,
        space: &'a TokenSpace,
        store: &'a mut Store,
        at: At,
        obs: &'a dyn Observer,
    ) -> Self {
        let At { first_id, step, trained_before, best_before, spent_before } = at;
        let (slots, meta, stored) = (Vec::new(), Vec::new(), Vec::new());
        IterationRun {
            config,
            space,
            store,
            first_id,
            step,
            trained_before,
            best_before,
            spent_before,
            obs,
            slots,
            meta,
            stored,
        }
    }

    /// Trains again the children of committed iterations that failed (`Row::lost`), when a
    /// search is resumed: their rows, and those of their repeats, get the real result. The
    /// method learned from reward 0 for them when their iteration ended; that stays.
    /// Returns false when the user stopped the search.
    pub(super) fn retry_lost(
        config: &'a SampleConfig,
        space: &'a TokenSpace,
        store: &'a mut Store,
        next_id: usize,
        executor: &mut dyn Executor,
        log: &mut RunLog,
        obs: &'a dyn Observer,
    ) -> Result<bool> {
        let rows: Vec<Row> = store.rows()?.into_iter().filter(|r| r.id < next_id).collect();
        let lost: Vec<usize> = rows.iter().filter(|r| r.lost()).map(|r| r.id).collect();
        if lost.is_empty() {
            return Ok(true);
        }
        if rows.iter().enumerate().any(|(i, r)| r.id != i) {
            anyhow::bail!("search.db lacks the rows of some proposals before {next_id}; it is damaged");
        }
        let shown: Vec<String> = lost.iter().map(|id| id.to_string()).collect();
        log.line(&format!("training again the {} child(ren) that failed: {}", lost.len(), shown.join(", ")))?;
        let trained_before = rows.iter().filter(|r| r.trained() && !r.lost()).count();
        let best_before = rows.iter().map(|r| r.reward).fold(0.0, f64::max);
        let at = At { first_id: 0, step: 0, trained_before, best_before, spent_before: 0 };
        let mut run = IterationRun::new(config, space, store, at, obs);
        run.meta = rows.into_iter().map(|r| (r.formula, r.fingerprint, r.tokens)).collect();
        run.train(&lost, executor, log)
    }

    fn row(&self, id: usize, status: Status, reward: f64, reason: Option<String>, same_as: Option<usize>) -> Row {
        let (formula, fingerprint, tokens) = self.meta[id - self.first_id].clone();
        Row {
            id,
            formula,
            fingerprint,
            tokens,
            reward,
            status,
            reason,
            seconds: 0.0,
            method: self.config.method.name().to_string(),
            controller_step: self.step,
            job_id: None,
            train_loss: None,
            same_as,
            steps: Some(0),
        }
    }

    /// Classifies the proposals, trains the new ones, and returns how many proposals were
    /// kept (the tail past the budget is dropped), or None when the user stopped the search.
    pub(super) fn run(
        &mut self,
        proposals: &[Vec<usize>],
        executor: &mut dyn Executor,
        log: &mut RunLog,
    ) -> Result<Option<usize>> {
        let mut new_in_batch = 0;
        let mut first_of: HashMap<u64, usize> = HashMap::new();
        let mut tasks: Vec<usize> = Vec::new();
        for (i, tokens) in proposals.iter().enumerate() {
            let id = self.first_id + i;
            let candidate = self.space.decode(tokens)?;
            let formula = candidate.formula.to_string();
            let verdict = screen(&candidate.formula, &candidate.init);
            let fingerprint = match &verdict {
                Screen::Train { fingerprint } => Some(*fingerprint),
                Screen::Reject { fingerprint, .. } => *fingerprint,
            };
            self.meta.push((formula.clone(), fingerprint, self.space.tokens_text(tokens)));
            if let Some(row) = self.store.row(id)?.filter(|r| !r.lost()) {
                if row.trained() {
                    new_in_batch += 1;
                    if let Some(fp) = row.fingerprint {
                        first_of.entry(fp).or_insert(id);
                    }
                }
                self.slots.push(Slot::Done(Box::new(row)));
                continue;
            }
            let fp = match verdict {
                Screen::Reject { reason, .. } => {
                    let row = self.row(id, Status::Rejected, self.config.child.reward_floor, Some(reason), None);
                    self.slots.push(Slot::Done(Box::new(row)));
                    continue;
                }
                Screen::Train { fingerprint } => fingerprint,
            };
            if let Some(original) = self.store.trained_with(fp)?.filter(|r| r.id < self.first_id) {
                let reason = format!("same function as child {}", original.id);
                let row = self.row(id, original.status, original.reward, Some(reason), Some(original.id));
                self.slots.push(Slot::Done(Box::new(row)));
                continue;
            }
            if let Some(&original) = first_of.get(&fp) {
                self.slots.push(Slot::RepeatOf(original));
                continue;
            }
            let steps = self.config.child.steps;
            let spent = self.spent_before + new_in_batch * steps;
            if self.trained_before + new_in_batch >= self.config.budget
                || self.config.budget_steps.is_some_and(|b| spent + steps > b)
            {
                // A budget is spent: this proposal and the rest of the batch are dropped.
                self.slots.truncate(i);
                self.meta.truncate(i);
                return self.train(&tasks, executor, log).map(|done| done.then_some(i));
            }
            new_in_batch += 1;
            first_of.insert(fp, id);
            self.slots.push(Slot::Training);
            let spec = self.spec(id, &formula, candidate.init);
            let spec_path = self.child_dir(id).join("spec.json");
            std::fs::create_dir_all(self.child_dir(id))?;
            write_spec(&spec_path, &spec)?;
            tasks.push(id);
        }
        let done = self.train(&tasks, executor, log)?;
        Ok(done.then_some(proposals.len()))
    }

    fn child_dir(&self, id: usize) -> PathBuf {
        self.config.out.join("children").join(id.to_string())
    }

    fn spec(&self, id: usize, formula: &str, init: Vec<f64>) -> ChildSpec {
        ChildSpec {
            id,
            tokens: self.meta[id - self.first_id].2.clone(),
            formula: formula.to_string(),
            init,
            recipe: self.config.child.clone(),
            dataset: self.config.dataset.clone(),
            data_dir: self.config.data_dir.clone(),
            seed: self.config.seed,
            threads: self.config.threads,
            backend: self.config.backend.clone(),
            rung: None,
        }
    }

    /// Runs the children `ids` (collecting results that are already there, and following
    /// jobs an earlier controller submitted where the executor can); false when the user
    /// stopped the search (the executor's tasks are then cancelled). A `failed` result is
    /// not collected: the child is trained again.
    fn train(&mut self, ids: &[usize], executor: &mut dyn Executor, log: &mut RunLog) -> Result<bool> {
        let program = crate::exec::this_program()?;
        let mut pending = Vec::new();
        for &id in ids {
            let spec = self.child_dir(id).join("spec.json");
            match read_result(&result_path(&spec), id, &self.config.child)? {
                Some(result) if result.status == Status::Failed => {
                    std::fs::remove_file(result_path(&spec))
                        .with_context(|| format!("cannot remove the failed result of child {id}"))?;
                }
                Some(result) => {
                    self.record(id, result, log)?;
                    continue;
                }
                None => {}
            }
            let threads = self.config.threads;
            let argv = vec![
                program.clone(),
                "child".into(),
                spec.to_string_lossy().into_owned(),
                "--threads".into(),
                threads.to_string(),
            ];
            let task = Task { id, argv, log: spec.with_file_name("child.log"), threads };
            pending.push(Pending { task, job: self.store.job(id)? });
        }
        let mut follower = ChildFollower { run: self, log, since: Instant::now() };
        match follow(executor, pending, Submission::Each, &mut follower)? {
            Followed::All => Ok(true),
            Followed::Stopped(what) => {
                if let Some(what) = what {
                    log.line(&format!("stopped by the user: {what}"))?;
                }
                Ok(false)
            }
        }
    }

    /// Stores the row of a trained child as soon as its result is in.
    fn record(&mut self, id: usize, result: ChildResult, log: &mut RunLog) -> Result<()> {
        let job = self.store.job(id)?;
        let reward = if result.status == Status::Ok && result.reward.is_finite() { result.reward } else { 0.0 };
        let mut row = self.row(id, result.status, reward, result.error.clone(), None);
        row.seconds = result.seconds;
        row.train_loss = result.train_loss;
        row.steps = Some(self.config.child.steps);
        row.job_id = job;
        match self.store.row(id)? {
            // A failed child trained again (`retry_failed`, or an iteration replayed).
            Some(old) => {
                row.controller_step = old.controller_step;
                self.store.retrained(&row)?
            }
            None => self.store.insert(std::slice::from_ref(&row))?,
        }
        let what = match result.status {
            Status::Ok => format!("reward {reward:.4}"),
            other => format!("{} ({})", other.name(), result.error.as_deref().unwrap_or("no reason given")),
        };
        log.line(&format!("child {id}: {} {what} in {:.1} s", row.formula, row.seconds))?;
        self.stored.push(row);
        let trained = self.trained_before + self.stored.len();
        let best = self.stored.iter().map(|r| r.reward).fold(self.best_before, f64::max);
        self.obs.event(Event::Children {
            done: trained,
            budget: self.config.budget,
            best,
            current: self.meta[id - self.first_id].0.clone(),
        });
        Ok(())
    }

    /// The rows not yet stored (rejections, repeats), every kept proposal's reward, and how
    /// many of them were trained.
    pub(super) fn finish(&mut self) -> Result<(Vec<Row>, Vec<f64>, usize)> {
        let mut rows = Vec::new();
        let mut trained = 0;
        let mut rewards = Vec::with_capacity(self.slots.len());
        let reward_of: HashMap<usize, Row> = self.stored.iter().map(|r| (r.id, r.clone())).collect();
        for (i, slot) in self.slots.iter().enumerate() {
            let id = self.first_id + i;
            match slot {
                Slot::Done(row) => {
                    rewards.push(row.reward);
                    trained += row.trained() as usize;
                    if self.store.row(id)?.is_none() {
                        rows.push(row.as_ref().clone());
                    }
                }
                Slot::Training => {
                    let row = match reward_of.get(&id) {
                        Some(r) => r.clone(),
                        None => self.store.row(id)?.with_context(|| format!("child {id} has no row"))?,
                    };
                    rewards.push(row.reward);
                    trained += 1;
                }
                Slot::RepeatOf(original) => {
                    let o = match reward_of.get(original) {
                        Some(r) => r.clone(),
                        None => self.store.row(*original)?.with_context(|| format!("child {original} has no row"))?,
                    };
                    let reason = format!("same function as child {original}");
                    rewards.push(o.reward);
                    rows.push(self.row(id, o.status, o.reward, Some(reason), Some(*original)));
                }
            }
        }
        Ok((rows, rewards, trained))
    }
}

/// The search's side of the follow loop: job ids go to the store, and each ended child's
/// result file (or why there is none) becomes its row.
struct ChildFollower<'r, 'a, 'l> {
    run: &'r mut IterationRun<'a>,
    log: &'r mut RunLog<'l>,
    /// When the last events came in (a failed child's seconds count from there).
    since: Instant,
}

impl Follower for ChildFollower<'_, '_, '_> {
    fn adopted(&mut self, id: usize, job: &str) -> Result<()> {
        self.log.line(&format!("child {id}: following job {job}, submitted before the search was resumed"))
    }

    fn submitted(&mut self, id: usize, job: &str, retry: Option<&str>) -> Result<()> {
        self.run.store.set_job(id, job)?;
        match retry {
            Some(why) => self.log.line(&format!("child {id}: {why}: resubmitted as job {job}")),
            None => Ok(()),
        }
    }

    fn retrying(&mut self, id: usize, why: &str) -> Result<()> {
        self.log.line(&format!("child {id}: {why}: started again"))
    }

    fn ended(&mut self, id: usize, outcome: Outcome) -> Result<()> {
        let spec = self.run.child_dir(id).join("spec.json");
        let elapsed = self.since.elapsed().as_secs_f64();
        let recipe = &self.run.config.child;
        let floor = recipe.reward_floor;
        let result = match (read_result(&result_path(&spec), id, recipe), outcome) {
            (Ok(Some(r)), _) => r,
            (Ok(None), Outcome::Failed(why)) => ChildResult::failed(id, why, elapsed, floor),
            (Ok(None), _) => ChildResult::failed(id, "the child exited without a result".into(), elapsed, floor),
            (Err(e), _) => ChildResult::failed(id, format!("{e:#}"), elapsed, floor),
        };
        self.run.record(id, result, self.log)
    }

    fn polled(&mut self) -> Result<()> {
        self.since = Instant::now();
        Ok(())
    }

    fn should_stop(&self) -> bool {
        self.run.obs.should_stop()
    }
}
