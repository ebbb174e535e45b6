//! One controller iteration of a sample-based search: the method's proposals are decoded,
//! screened (`screen`) and looked up by fingerprint in the store; new functions become child
//! specs that the executor runs through the follow loop of `exec`; every proposal ends as a row.
//! `--budget` counts distinct functions trained: a repeat gets its stored reward for free and
//! a rejected function gets reward 0, and neither counts. `--budget-steps` counts the child
//! steps they cost.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use super::child::{ChildResult, ChildSpec, RungSpec, Status, read_result, read_spec, result_path, write_spec};
use super::config::SampleConfig;
use super::screen::{Screen, screen};
use super::space::TokenSpace;
use super::store::{Row, RungRow, Store};
use crate::exec::follow::{Followed, Follower, Pending, Submission, follow};
use crate::exec::{Executor, Outcome, Task};
use crate::observer::{Event, Observer};
use crate::search::fidelity::{Asha, Rungs, Seen, Sequencer};
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
    /// Rows of children trained in this iteration, stored as they finished (at rung 0 with
    /// successive halving).
    stored: Vec<Row>,
    /// Successive halving's part, when the search uses it.
    halving: Option<Halving>,
}

/// Successive halving within an iteration: the rungs, the search's promotion state, the order
/// in which results count, and the promotions waiting to start.
struct Halving {
    rungs: Rungs,
    asha: Asha,
    order: Sequencer,
    /// The rung each child in flight (or being collected) trains to.
    rung_of: HashMap<usize, usize>,
    /// Children started and not yet ended.
    running: HashSet<usize>,
    /// Promotions decided and not yet started: (rung, child), in the order decided.
    promoted: VecDeque<(usize, usize)>,
    /// True when the budget of steps could bind in this iteration: promotions then start only
    /// when nothing is in flight, lower rungs first, so that which ones fit does not depend
    /// on timing.
    tight: bool,
    /// False while failed children are trained again on resume: their results counted
    /// (as failures) when their iteration ran.
    seeing: bool,
    /// The child steps spent before the iteration and granted in it.
    granted: usize,
    /// Why a promotion did not start, if one did not: the budget of steps is spent.
    refused: Option<String>,
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
            halving: None,
        }
    }

    /// With `--fidelity halving`: new functions train to `rungs`' lowest rung, and the
    /// promotions of `asha` (the search's state at the iteration's start) train on.
    pub(super) fn with_halving(mut self, rungs: Rungs, asha: Asha) -> Self {
        if !rungs.is_full() {
            let order = Sequencer::new(rungs.count());
            self.halving = Some(Halving {
                rungs,
                asha,
                order,
                rung_of: HashMap::new(),
                running: HashSet::new(),
                promoted: VecDeque::new(),
                tight: false,
                seeing: true,
                granted: self.spent_before,
                refused: None,
            });
        }
        self
    }

    /// The promotion state after the iteration (None at full fidelity).
    pub(super) fn asha(&self) -> Option<&Asha> {
        self.halving.as_ref().map(|h| &h.asha)
    }

    /// Why a promotion of this iteration did not start (the budget of steps is spent), if one
    /// did not.
    pub(super) fn refused(&self) -> Option<&str> {
        self.halving.as_ref().and_then(|h| h.refused.as_deref())
    }

    /// The steps a new function costs: its lowest rung's.
    fn first_cost(&self) -> usize {
        self.halving.as_ref().map_or(self.config.child.steps, |h| h.rungs.cost(0))
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
        let rungs = config.fidelity.rungs(config.child.steps)?;
        let count = rungs.count();
        run = run.with_halving(rungs, Asha::new(2, count));
        if let Some(h) = run.halving.as_mut() {
            h.seeing = false;
        }
        run.meta = rows.into_iter().map(|r| (r.formula, r.fingerprint, r.tokens)).collect();
        run.train(&lost, &[], executor, log)
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
        // The new functions of this iteration in proposal order, and those of them stored
        // before the search was stopped.
        let (mut fresh, mut stored) = (Vec::new(), Vec::new());
        let mut kept = proposals.len();
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
                    fresh.push(id);
                    stored.push(id);
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
            let cost = self.first_cost();
            let spent = self.spent_before + new_in_batch * cost;
            if self.trained_before + new_in_batch >= self.config.budget
                || self.config.budget_steps.is_some_and(|b| spent + cost > b)
            {
                // A budget is spent: this proposal and the rest of the batch are dropped.
                self.slots.truncate(i);
                self.meta.truncate(i);
                kept = i;
                break;
            }
            new_in_batch += 1;
            first_of.insert(fp, id);
            self.slots.push(Slot::Training);
            let mut spec = self.spec(id, &formula, candidate.init);
            let rung = self.halving.as_ref().map(|h| RungSpec { index: 0, steps: h.rungs.steps(0) });
            spec.rung = rung;
            let spec_path = self.spec_path(id, rung.map(|r| r.index));
            std::fs::create_dir_all(spec_path.parent().unwrap_or(&self.config.out))?;
            write_spec(&spec_path, &spec)?;
            tasks.push(id);
            fresh.push(id);
        }
        if let Some(h) = self.halving.as_mut() {
            for &id in &fresh {
                h.order.expect(0, id);
            }
            let worst = h.asha.worst_cost(fresh.len(), &h.rungs);
            h.tight = self.config.budget_steps.is_some_and(|b| self.spent_before + worst > b);
            h.granted = self.spent_before + fresh.len() * h.rungs.cost(0);
        }
        let done = self.train(&tasks, &stored, executor, log)?;
        Ok(done.then_some(kept))
    }

    fn child_dir(&self, id: usize) -> PathBuf {
        self.config.out.join("children").join(id.to_string())
    }

    /// Where child `id`'s spec lies: `children/ID/spec.json`, or with successive halving the
    /// spec of its rung, `children/ID/rungK/spec.json`.
    fn spec_path(&self, id: usize, rung: Option<usize>) -> PathBuf {
        match rung {
            Some(k) => self.child_dir(id).join(format!("rung{k}")).join("spec.json"),
            None => self.child_dir(id).join("spec.json"),
        }
    }

    /// The spec path of child `id` at the rung it trains to now.
    fn current_spec(&self, id: usize) -> PathBuf {
        let rung = self.halving.as_ref().map(|h| h.rung_of.get(&id).copied().unwrap_or(0));
        self.spec_path(id, rung)
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
    /// jobs an earlier controller submitted where the executor can), after the results of
    /// `stored` (children of this iteration stored before a stop) count; with successive
    /// halving, the promotions follow. False when the user stopped the search (the executor's
    /// tasks are then cancelled). A `failed` result is not collected: the child is trained
    /// again.
    fn train(
        &mut self,
        ids: &[usize],
        stored: &[usize],
        executor: &mut dyn Executor,
        log: &mut RunLog,
    ) -> Result<bool> {
        if let Some(h) = self.halving.as_mut() {
            for &id in ids {
                h.rung_of.insert(id, 0);
            }
        }
        for &id in stored {
            if self.halving.is_none() {
                break;
            }
            let result = match self.store.rung_row(id, 0)? {
                Some(r) => Seen { child: id, reward: r.reward, ok: r.status == Status::Ok },
                None => {
                    let row = self.store.row(id)?.with_context(|| format!("child {id} has no row"))?;
                    Seen { child: id, reward: row.reward, ok: row.status == Status::Ok }
                }
            };
            self.see(0, result, log)?;
        }
        let mut pending = Vec::new();
        for &id in ids {
            if let Some(p) = self.launch(id, log)? {
                pending.push(p);
            }
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

    /// Child `id`'s task at the rung it trains to now (its spec written), or None when its
    /// result is there already and was collected. Only a rung-0 task follows the job an
    /// earlier controller submitted (a higher rung's job is submitted again; the child's lock
    /// keeps two from training at once).
    fn launch(&mut self, id: usize, log: &mut RunLog) -> Result<Option<Pending>> {
        let spec = self.current_spec(id);
        match read_result(&result_path(&spec), id, &self.config.child)? {
            Some(result) if result.status == Status::Failed => {
                std::fs::remove_file(result_path(&spec))
                    .with_context(|| format!("cannot remove the failed result of child {id}"))?;
            }
            Some(result) => {
                self.record(id, result, log)?;
                return Ok(None);
            }
            None => {}
        }
        let threads = self.config.threads;
        let argv = vec![
            crate::exec::this_program()?,
            "child".into(),
            spec.to_string_lossy().into_owned(),
            "--threads".into(),
            threads.to_string(),
        ];
        let task = Task { id, argv, log: spec.with_file_name("child.log"), threads };
        let rung = self.halving.as_ref().map_or(0, |h| h.rung_of.get(&id).copied().unwrap_or(0));
        let job = if rung == 0 { self.store.job(id)? } else { None };
        if let Some(h) = self.halving.as_mut() {
            h.running.insert(id);
        }
        Ok(Some(Pending { task, job }))
    }

    /// A result counts at `rung`: with the ones it let through, in order, it goes to ASHA,
    /// and each promotion it decides waits to start.
    fn see(&mut self, rung: usize, result: Seen, log: &mut RunLog) -> Result<()> {
        let Some(h) = self.halving.as_mut().filter(|h| h.seeing) else { return Ok(()) };
        for seen in h.order.arrive(rung, result) {
            if let Some(child) = h.asha.see(rung, seen) {
                h.promoted.push_back((rung + 1, child));
                let steps = h.rungs.steps(rung + 1);
                log.line(&format!("child {child}: promoted to rung {} ({steps} steps)", rung + 1))?;
            }
        }
        Ok(())
    }

    /// The promotions that may start now, as tasks: at once, or when the budget of steps
    /// could bind, only when nothing is in flight and lower rungs first. One that would go
    /// past `--budget-steps` does not start.
    fn promotions(&mut self, log: &mut RunLog) -> Result<Vec<Pending>> {
        let mut pending = Vec::new();
        loop {
            let Some(h) = self.halving.as_mut() else { return Ok(pending) };
            if h.promoted.is_empty() || (h.tight && (!h.running.is_empty() || !pending.is_empty())) {
                return Ok(pending);
            }
            let mut wave: Vec<(usize, usize)> = h.promoted.drain(..).collect();
            if h.tight {
                wave.sort_by_key(|&(rung, _)| rung);
            }
            for (rung, child) in wave {
                let h = self.halving.as_mut().expect("halving");
                let cost = h.rungs.cost(rung);
                if let Some(b) = self.config.budget_steps.filter(|&b| h.granted + cost > b) {
                    let why = format!(
                        "the budget of {b} child steps is spent: {} granted, and child {child}'s promotion to rung {rung} needs {cost} more",
                        h.granted
                    );
                    log.line(&format!("child {child}: not promoted: {why}"))?;
                    h.refused.get_or_insert(why);
                    continue;
                }
                h.granted += cost;
                h.rung_of.insert(child, rung);
                h.order.expect(rung, child);
                let steps = h.rungs.steps(rung);
                let below = self.spec_path(child, Some(0));
                let mut spec = read_spec(&below)?;
                spec.rung = Some(RungSpec { index: rung, steps });
                let path = self.spec_path(child, Some(rung));
                std::fs::create_dir_all(path.parent().unwrap_or(&self.config.out))?;
                write_spec(&path, &spec)?;
                if let Some(p) = self.launch(child, log)? {
                    pending.push(p);
                }
            }
        }
    }

    /// Stores a child's result as soon as it is in: its row (rung 0, or at full fidelity),
    /// or its result at a higher rung, which becomes its row's.
    fn record(&mut self, id: usize, result: ChildResult, log: &mut RunLog) -> Result<()> {
        let job = self.store.job(id)?;
        let floor = self.config.child.reward_floor;
        let reward = if result.status == Status::Ok && result.reward.is_finite() { result.reward } else { floor };
        let rung = self.halving.as_mut().map(|h| {
            h.running.remove(&id);
            (h.rung_of.remove(&id).unwrap_or(0), h.rungs.clone())
        });
        let what = match result.status {
            Status::Ok => format!("reward {reward:.4}"),
            other => format!("{} ({})", other.name(), result.error.as_deref().unwrap_or("no reason given")),
        };
        let seen = Seen { child: id, reward, ok: result.status == Status::Ok };
        if let Some((k, rungs)) = rung.as_ref().filter(|(k, _)| *k > 0) {
            let row = RungRow {
                child: id,
                rung: *k,
                steps: rungs.steps(*k),
                reward,
                status: result.status,
                reason: result.error.clone(),
                seconds: result.seconds,
                train_loss: result.train_loss,
            };
            self.store.rung_result(&row, None)?;
            let formula = self.store.row(id)?.map_or(String::new(), |r| r.formula);
            log.line(&format!(
                "child {id}: {formula} at rung {k} ({} steps) {what} in {:.1} s",
                row.steps, row.seconds
            ))?;
            return self.see(*k, seen, log);
        }
        let mut row = self.row(id, result.status, reward, result.error.clone(), None);
        row.seconds = result.seconds;
        row.train_loss = result.train_loss;
        row.steps = Some(rung.as_ref().map_or(self.config.child.steps, |(_, r)| r.steps(0)));
        row.job_id = job;
        if let Some(old) = self.store.row(id)? {
            // A failed child trained again (`retry_failed`, or an iteration replayed).
            row.controller_step = old.controller_step;
        }
        match &rung {
            Some((_, rungs)) => {
                let at = RungRow {
                    child: id,
                    rung: 0,
                    steps: rungs.steps(0),
                    reward,
                    status: result.status,
                    reason: result.error.clone(),
                    seconds: result.seconds,
                    train_loss: result.train_loss,
                };
                self.store.rung_result(&at, Some(&row))?;
            }
            None => self.store.retrained(&row)?,
        }
        let at = match &rung {
            Some((_, rungs)) => format!(" at rung 0 ({} steps)", rungs.steps(0)),
            None => String::new(),
        };
        log.line(&format!("child {id}: {}{at} {what} in {:.1} s", row.formula, row.seconds))?;
        self.stored.push(row);
        let trained = self.trained_before + self.stored.len();
        let best = self.stored.iter().map(|r| r.reward).fold(self.best_before, f64::max);
        self.obs.event(Event::Children {
            done: trained,
            budget: self.config.budget,
            best,
            current: self.meta[id - self.first_id].0.clone(),
        });
        self.see(0, seen, log)
    }

    /// The reward a method learns from for `row`: its own, or with successive halving the
    /// reward at rung 0 of the function it trained or repeats, which every function has
    /// (rewards at different rungs are not comparable).
    fn learned_reward(&self, row: &Row) -> Result<f64> {
        if self.halving.is_none() || !(row.trained() || row.same_as.is_some()) {
            return Ok(row.reward);
        }
        let child = row.same_as.unwrap_or(row.id);
        Ok(self.store.rung_row(child, 0)?.map_or(row.reward, |r| r.reward))
    }

    /// The rows not yet stored (rejections, repeats), every kept proposal's reward (for the
    /// method), and how many of them were trained.
    pub(super) fn finish(&mut self) -> Result<(Vec<Row>, Vec<f64>, usize)> {
        let mut rows = Vec::new();
        let mut trained = 0;
        let mut rewards = Vec::with_capacity(self.slots.len());
        for (i, slot) in self.slots.iter().enumerate() {
            let id = self.first_id + i;
            match slot {
                Slot::Done(row) => {
                    rewards.push(self.learned_reward(row)?);
                    trained += row.trained() as usize;
                    if self.store.row(id)?.is_none() {
                        rows.push(row.as_ref().clone());
                    }
                }
                Slot::Training => {
                    let row = self.store.row(id)?.with_context(|| format!("child {id} has no row"))?;
                    rewards.push(self.learned_reward(&row)?);
                    trained += 1;
                }
                Slot::RepeatOf(original) => {
                    let o = self.store.row(*original)?.with_context(|| format!("child {original} has no row"))?;
                    let reason = format!("same function as child {original}");
                    let row = self.row(id, o.status, o.reward, Some(reason), Some(*original));
                    rewards.push(self.learned_reward(&row)?);
                    rows.push(row);
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
        let spec = self.run.current_spec(id);
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

    fn more(&mut self) -> Result<Vec<Pending>> {
        self.run.promotions(self.log)
    }
}
