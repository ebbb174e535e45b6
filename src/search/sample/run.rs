//! The loop of every sample-based search, on one fair budget: the method proposes a batch of
//! sequences; one iteration (`iteration`) turns them into rows, training the new functions as
//! children; the rewards go back to the method; the rows and the method's checkpoint are
//! committed together.
//!
//! Resuming: the method's state at the last committed iteration is restored, so it proposes
//! the same batch again; proposals already in the store keep their rows, children whose
//! result file exists are collected without training, and only the rest run. The store then
//! ends equal to that of an uninterrupted search.
//!
//! Outputs, rewritten from the store after every iteration: `children.jsonl`, `top.json`,
//! `errors.json`; `log.log` gets a line per child and per iteration and ends with the top
//! functions.

use std::collections::HashSet;

use anyhow::{Context, Result, bail};

use super::census::{REPEATS_IN_A_ROW, census};
pub use super::config::{ChildRecipe, SampleConfig, SampleMethod, build_method};
use super::iteration::{At, IterationRun};
use super::method::Method;
use super::outputs::write_outputs;
pub use super::outputs::{Iteration, Top, remove_child_checkpoints, top_functions};
use super::space::TokenSpace;
use super::store::{Checkpoint, Row, Store};
use crate::exec::Executor;
use crate::files::write_atomic;
use crate::observer::Observer;
use crate::search::fidelity::Asha;
use crate::train::run_dir::{CONFIG_FILE, RunDir, RunLog};

/// What a finished (or stopped) search reports.
#[derive(Clone, Debug)]
pub struct SampleOutcome {
    pub top: Vec<Top>,
    pub trained: usize,
    pub proposals: usize,
    /// Why the search ended before its budget, if it did.
    pub ended_early: Option<String>,
    /// True when the user stopped it (Ctrl-C): `--resume` continues.
    pub stopped: bool,
}

/// Runs (or resumes) the search `config` with children run by `executor`.
pub fn run(
    config: &SampleConfig,
    executor: &mut dyn Executor,
    resume: bool,
    obs: &dyn Observer,
) -> Result<SampleOutcome> {
    let space = TokenSpace::parse(&config.space)?;
    if config.budget == 0 {
        bail!("--budget must be at least 1");
    }
    if config.batch_children == 0 {
        bail!("--batch-children must be at least 1");
    }
    let (_dir, _start) = RunDir::open(&config.out, config, resume)?;
    write_atomic(&config.out.join(CONFIG_FILE), serde_json::to_string_pretty(config)?.as_bytes())?;
    let device = burn::prelude::Device::flex();
    let method = build_method(config, &space, &device)?;
    run_method(config, &space, method, executor, obs)
}

/// [`run`] with the method given, in a run folder [`run`] has opened.
fn run_method(
    config: &SampleConfig,
    space: &TokenSpace,
    mut method: Box<dyn Method>,
    executor: &mut dyn Executor,
    obs: &dyn Observer,
) -> Result<SampleOutcome> {
    let out = &config.out;
    let census = census(space)?;
    let mut store = Store::open(&out.join("search.db"))?;
    let mut log = RunLog::open(&out.join("log.log"), obs)?;

    let rungs = config.fidelity.rungs(config.child.steps)?;
    let eta = match config.fidelity {
        crate::search::fidelity::Fidelity::Halving { eta, .. } => eta,
        crate::search::fidelity::Fidelity::Full => 2,
    };
    let mut asha = Asha::new(eta, rungs.count());
    let mut iterations: Vec<Iteration> = Vec::new();
    let mut next_id = 0;
    match store.checkpoint()? {
        Some(cp) => {
            method.load_state(&cp.method["state"]).context("cannot restore the search's state from search.db")?;
            if !rungs.is_full() {
                asha = serde_json::from_value(cp.method["asha"].clone())
                    .context("cannot restore successive halving's state from search.db")?;
            }
            iterations = serde_json::from_value(cp.method["errors"].clone()).unwrap_or_default();
            next_id = cp.next_id;
            log.line(&format!("resuming after iteration {} ({} proposals stored)", cp.iterations, next_id))?;
        }
        None => log.line(&format!(
            "{} search of {}: budget {} distinct functions{}, {} per iteration; children: {} for {} steps{}",
            config.method.name(),
            space.describe(),
            config.budget,
            config.budget_steps.map_or(String::new(), |b| format!(" or {b} child steps")),
            config.batch_children,
            config.child.network.name(),
            config.child.steps,
            match rungs.is_full() {
                true => String::new(),
                false => format!(", successive halving at rungs of {:?} steps, eta {eta}", rungs.all()),
            }
        ))?,
    }
    if let Some(c) = census.filter(|c| c.trainable < config.budget) {
        log.line(&format!(
            "warning: --budget {} exceeds the {} distinct functions the {} space holds (of {} sequences, {} distinct functions are rejected untrained); the search stops once it has trained them all",
            config.budget, c.trainable, space.name, c.sequences, c.rejected
        ))?;
    }

    // Wall time counts on from the last committed iteration's.
    let (runtime_before, started) =
        (iterations.last().and_then(|i| i.runtime).unwrap_or(0.0), std::time::Instant::now());
    let mut ended_early = None;
    let mut stopped = !IterationRun::retry_lost(config, space, &mut store, next_id, executor, &mut log, obs)?;
    while !stopped {
        let rows = store.rows()?;
        let trained = rows.iter().filter(|r| r.id < next_id && r.trained()).count();
        let best = rows.iter().filter(|r| r.id < next_id).map(|r| r.reward).fold(config.child.reward_floor, f64::max);
        let spent = spent_steps(rows.iter().filter(|r| r.id < next_id), config);
        if trained >= config.budget || config.budget_steps.is_some_and(|b| spent + rungs.cost(0) > b) {
            break;
        }
        if let Some(c) = census.filter(|c| trained >= c.trainable) {
            ended_early = Some(format!(
                "the space is exhausted: all {} distinct functions of the {} space were trained",
                c.trainable, space.name
            ));
            break;
        }
        let repeats = repeats_in_a_row(rows.iter().filter(|r| r.id < next_id));
        if repeats >= REPEATS_IN_A_ROW {
            ended_early = Some(format!(
                "the last {repeats} proposals were all functions the search had seen, with {trained} of {} distinct functions trained: the method has converged or the space is exhausted",
                config.budget
            ));
            break;
        }
        if next_id >= config.max_proposals {
            ended_early = Some(format!(
                "{next_id} proposals made (--max-proposals) with {trained} of {} distinct functions trained: the method keeps proposing functions it has seen",
                config.budget
            ));
            break;
        }
        let proposals = method.propose(config.batch_children)?;
        if proposals.is_empty() {
            ended_early = Some(format!("every sequence of the {} space was proposed", space.name));
            break;
        }
        let step = iterations.len();
        let mut it = IterationRun::new(
            config,
            space,
            &mut store,
            At { first_id: next_id, step, trained_before: trained, best_before: best, spent_before: spent },
            obs,
        )
        .with_halving(rungs.clone(), asha.clone());
        let kept = match it.run(&proposals, executor, &mut log)? {
            Some(kept) => kept,
            None => {
                stopped = true;
                break;
            }
        };
        let (new_rows, rewards, trained_in_batch) = it.finish()?;
        let refused = it.refused().map(str::to_string);
        if let Some(a) = it.asha() {
            asha = a.clone();
        }
        let batch: Vec<(Vec<usize>, f64)> = proposals[..kept].iter().cloned().zip(rewards.iter().copied()).collect();
        let learned = method.learn(&batch)?;
        let children = trained + trained_in_batch;
        let record = Iteration {
            iteration: step + 1,
            proposals: kept,
            mean_reward: mean(&rewards),
            best_reward: rewards.iter().copied().fold(config.child.reward_floor, f64::max),
            entropy: learned.entropy,
            children,
            runtime: Some(runtime_before + started.elapsed().as_secs_f64()),
        };
        iterations.push(record.clone());
        next_id += kept;
        let mut state = serde_json::json!({ "state": method.state()?, "errors": iterations });
        if !rungs.is_full() {
            state["asha"] = serde_json::to_value(&asha)?;
        }
        let checkpoint = Checkpoint { iterations: iterations.len(), next_id, method: state };
        store.commit_iteration(&new_rows, &checkpoint)?;
        write_outputs(out, &store.rows()?, &iterations, config)?;
        let entropy = record.entropy.map_or(String::new(), |h| format!(", entropy {h:.3}"));
        log.line(&format!(
            "iteration {}: {} proposals, mean reward {:.4}, best {:.4}{entropy}, {}/{} trained",
            record.iteration, kept, record.mean_reward, record.best_reward, children, config.budget
        ))?;
        if kept < proposals.len() {
            break;
        }
        if let Some(why) = refused {
            log.line(&format!("the search ends: {why}"))?;
            break;
        }
    }
    let rows = store.rows()?;
    write_outputs(out, &rows, &iterations, config)?;
    let top = top_functions(&rows, config.top_k);
    let trained = rows.iter().filter(|r| r.trained()).count();
    if stopped {
        log.line(&format!("stopped: {trained} functions trained are kept in search.db; --resume continues"))?;
    } else {
        if let Some(why) = &ended_early {
            log.line(&format!("ended before the budget: {why}"))?;
        }
        let steps = match config.budget_steps {
            Some(b) => format!(", {} of {b} child steps spent", spent_steps(rows.iter(), config)),
            None => String::new(),
        };
        log.line(&format!("finished: {trained} distinct functions trained, {} proposals{steps}", rows.len()))?;
        for t in &top {
            let steps = match (rungs.is_full(), t.steps) {
                (false, Some(steps)) => format!(", {steps} steps"),
                _ => String::new(),
            };
            log.line(&format!("top {}: {} reward {:.4} (child {}{steps})", t.rank, t.formula, t.reward, t.child))?;
        }
    }
    Ok(SampleOutcome { top, trained, proposals: rows.len(), ended_early, stopped })
}

/// The child steps that `rows` cost (`Row::cost`).
fn spent_steps<'r>(rows: impl Iterator<Item = &'r Row>, config: &SampleConfig) -> usize {
    rows.map(|r| r.cost(config.child.steps)).sum()
}

/// How many of the last `rows` (in id order) were functions seen before them, trained or
/// rejected (by fingerprint, or by formula for a function without one).
fn repeats_in_a_row<'r>(rows: impl Iterator<Item = &'r Row>) -> usize {
    let mut seen = HashSet::new();
    let mut run = 0;
    for r in rows {
        run = if seen.insert(super::screen::identity(r.fingerprint, &r.formula)) { 0 } else { run + 1 };
    }
    run
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::exec::{Outcome, Task};
    use crate::observer::Silent;
    use crate::search::sample::child::write_result;
    use crate::search::sample::child::{ChildResult, ChildSpec, Status, result_path};
    use crate::search::sample::config::test_config as config;

    /// Children scored by a function of their tokens, without training: the result file is
    /// written at submission. `die_after`: the executor fails (as a killed controller would
    /// stop) once it has run that many children.
    /// `lose`: children whose process is lost (reported failed, without a result).
    struct Scored<F: FnMut(&ChildSpec) -> f64> {
        score: F,
        ended: Vec<usize>,
        ran: usize,
        die_after: Option<usize>,
        lose: Vec<usize>,
    }

    impl<F: FnMut(&ChildSpec) -> f64> Scored<F> {
        fn new(score: F) -> Self {
            Scored { score, ended: Vec::new(), ran: 0, die_after: None, lose: Vec::new() }
        }
    }

    impl<F: FnMut(&ChildSpec) -> f64> Executor for Scored<F> {
        fn submit(&mut self, task: Task) -> Result<()> {
            if self.die_after.is_some_and(|n| self.ran >= n) {
                bail!("the executor died");
            }
            let spec_path = PathBuf::from(&task.argv[2]);
            if self.lose.contains(&task.id) {
                self.ended.push(task.id);
                return Ok(());
            }
            let spec = crate::search::sample::child::read_spec(&spec_path)?;
            let reward = (self.score)(&spec);
            let result = ChildResult {
                id: task.id,
                reward,
                train_loss: Some(1.0),
                seconds: 0.0,
                status: Status::Ok,
                error: None,
            };
            write_result(&result_path(&spec_path), &result)?;
            self.ran += 1;
            self.ended.push(task.id);
            Ok(())
        }
        fn poll(&mut self) -> Result<Vec<(usize, Outcome)>> {
            let ended = std::mem::take(&mut self.ended);
            let submitted = ended.iter().map(|&id| (id, Outcome::Submitted { job: format!("job-{id}"), retry: None }));
            let outcome = |id: usize| match self.lose.contains(&id) {
                true => Outcome::Failed("the process was killed by signal 9".into()),
                false => Outcome::Exited,
            };
            Ok(submitted.collect::<Vec<_>>().into_iter().chain(ended.iter().map(|&id| (id, outcome(id)))).collect())
        }
        fn in_flight(&self) -> usize {
            self.ended.len()
        }
        fn cancel_all(&mut self) -> Result<Option<String>> {
            Ok(None)
        }
    }

    /// The synthetic reward: the share of steps that match `identity sigmoid mul`
    /// (`x*sigmoid(x)`), so one sequence is best and every step is learnable.
    fn target_score(spec: &ChildSpec) -> f64 {
        let want = ["identity", "sigmoid", "mul"];
        let got: Vec<&str> = spec.tokens.split(' ').collect();
        want.iter().zip(&got).filter(|(a, b)| a == b).count() as f64 / 3.0
    }

    /// errors.json's iterations, from its columns.
    fn errors(out: &Path) -> Vec<Iteration> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("errors.json")).unwrap()).unwrap();
        let col = |k: &str| v[k].as_array().unwrap().clone();
        (0..col("iteration").len())
            .map(|i| Iteration {
                iteration: col("iteration")[i].as_u64().unwrap() as usize,
                proposals: col("proposals")[i].as_u64().unwrap() as usize,
                mean_reward: col("mean_reward")[i].as_f64().unwrap(),
                best_reward: col("best_reward")[i].as_f64().unwrap(),
                entropy: col("entropy")[i].as_f64(),
                children: col("children")[i].as_u64().unwrap() as usize,
                // Wall time differs between runs of one search.
                runtime: None,
            })
            .collect()
    }

    /// Every proposal's reward, in order (repeats and rejections included).
    fn all_rewards(out: &Path) -> Vec<f64> {
        Store::open(&out.join("search.db")).unwrap().rows().unwrap().iter().map(|r| r.reward).collect()
    }

    #[test]
    fn ppo_learns_the_synthetic_reward_and_beats_random_search() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ppo_mean, mut random_mean) = (0.0, 0.0);
        for seed in 0..3 {
            for method in [SampleMethod::Ppo, SampleMethod::Random] {
                let out = dir.path().join(format!("{}-{seed}", method.name()));
                let mut c = config(method, &out, 100);
                c.seed = seed;
                c.policy.lr = 0.05;
                c.max_proposals = 320;
                let mut ex = Scored::new(target_score);
                let outcome = run(&c, &mut ex, false, &Silent).unwrap();
                assert!(!outcome.stopped);
                let rewards = all_rewards(&out);
                let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
                if method == SampleMethod::Ppo {
                    let its = errors(&out);
                    let k = 3.min(its.len() / 2);
                    let early: f64 = its[..k].iter().map(|i| i.mean_reward).sum::<f64>() / k as f64;
                    let late: f64 = its[its.len() - k..].iter().map(|i| i.mean_reward).sum::<f64>() / k as f64;
                    assert!(late > early + 0.2, "seed {seed}: PPO's mean reward went from {early:.3} to {late:.3}");
                    assert!(its.iter().all(|i| i.entropy.is_some()));
                    ppo_mean += mean;
                } else {
                    random_mean += mean;
                }
            }
        }
        assert!(ppo_mean > random_mean + 0.3, "PPO {ppo_mean:.3} vs random {random_mean:.3} (sums over 3 seeds)");
    }

    /// The store of a search stopped part-way and resumed equals that of a search run at once,
    /// and nothing stored is trained again.
    #[test]
    fn resume_equals_uninterrupted() {
        for method in [
            SampleMethod::Ppo,
            SampleMethod::Reinforce,
            SampleMethod::Random,
            SampleMethod::Evolution,
            SampleMethod::Exhaustive,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let straight = dir.path().join("straight");
            let mut ex = Scored::new(target_score);
            run(&config(method, &straight, 20), &mut ex, false, &Silent).unwrap();
            let trained_once = ex.ran;

            let broken = dir.path().join("broken");
            let c = config(method, &broken, 20);
            let mut ex = Scored::new(target_score);
            ex.die_after = Some(11);
            assert!(run(&c, &mut ex, false, &Silent).is_err());
            let mut ex2 = Scored::new(target_score);
            run(&c, &mut ex2, true, &Silent).unwrap();
            assert_eq!(ex.ran + ex2.ran, trained_once, "{}: a stored child was trained again", method.name());

            let strip =
                |rows: Vec<Row>| rows.into_iter().map(|r| Row { seconds: 0.0, job_id: None, ..r }).collect::<Vec<_>>();
            let a = strip(Store::open(&straight.join("search.db")).unwrap().rows().unwrap());
            let b = strip(Store::open(&broken.join("search.db")).unwrap().rows().unwrap());
            assert_eq!(a, b, "{}", method.name());
            assert_eq!(errors(&straight), errors(&broken));
            for file in ["children.jsonl", "top.json"] {
                assert_eq!(
                    std::fs::read_to_string(straight.join(file)).unwrap(),
                    std::fs::read_to_string(broken.join(file)).unwrap()
                );
            }
            assert_eq!(a.iter().filter(|r| r.trained()).count(), 20);
        }
    }

    /// `--budget-steps` bounds the child steps: with children of 2 steps and 15 to spend, 7
    /// functions train whatever `--budget`, every trained row records its 2 steps, and a
    /// resumed search spends nothing more.
    #[test]
    fn the_budget_of_steps_bounds_the_children() {
        for method in [SampleMethod::Random, SampleMethod::Ppo, SampleMethod::Evolution] {
            let dir = tempfile::tempdir().unwrap();
            let mut c = config(method, dir.path(), 100);
            c.child.steps = 2;
            c.budget_steps = Some(15);
            let mut ex = Scored::new(target_score);
            let outcome = run(&c, &mut ex, false, &Silent).unwrap();
            assert_eq!((outcome.trained, ex.ran), (7, 7), "{}", method.name());
            let rows = Store::open(&dir.path().join("search.db")).unwrap().rows().unwrap();
            assert!(rows.iter().all(|r| r.steps == Some(if r.trained() { 2 } else { 0 })));
            assert_eq!(spent_steps(rows.iter(), &c), 14);
            let log = std::fs::read_to_string(dir.path().join("log.log")).unwrap();
            assert!(log.contains("budget 100 distinct functions or 15 child steps"), "{log}");
            assert!(
                log.contains("7 distinct functions trained") && log.contains("14 of 15 child steps spent"),
                "{log}"
            );
            let mut again = Scored::new(target_score);
            run(&c, &mut again, true, &Silent).unwrap();
            assert_eq!(again.ran, 0);
        }
    }

    /// Children that failed are trained again on `--resume`, their repeats updated: a random
    /// search (whose proposals do not depend on rewards) then ends with the store of a search
    /// where nothing failed.
    #[test]
    fn failed_children_are_trained_again_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let straight = dir.path().join("straight");
        run(&config(SampleMethod::Random, &straight, 20), &mut Scored::new(target_score), false, &Silent).unwrap();
        let rows = Store::open(&straight.join("search.db")).unwrap().rows().unwrap();
        // Lose two trained children, one of them repeated later, if any is.
        let repeated = rows.iter().find_map(|r| r.same_as).unwrap_or(0);
        let other = rows.iter().find(|r| r.trained() && r.id != repeated).unwrap().id;

        let lossy = dir.path().join("lossy");
        let c = config(SampleMethod::Random, &lossy, 20);
        let mut ex = Scored::new(target_score);
        ex.lose = vec![repeated, other];
        let outcome = run(&c, &mut ex, false, &Silent).unwrap();
        assert_eq!(outcome.trained, 20);
        let failed = Store::open(&lossy.join("search.db")).unwrap().rows().unwrap();
        assert_eq!(failed.iter().filter(|r| r.lost()).count(), 2);

        let mut ex = Scored::new(target_score);
        run(&c, &mut ex, true, &Silent).unwrap();
        assert_eq!(ex.ran, 2, "only the failed children are trained again");
        let strip =
            |rows: Vec<Row>| rows.into_iter().map(|r| Row { seconds: 0.0, job_id: None, ..r }).collect::<Vec<_>>();
        assert_eq!(
            strip(Store::open(&lossy.join("search.db")).unwrap().rows().unwrap()),
            strip(Store::open(&straight.join("search.db")).unwrap().rows().unwrap())
        );
        for file in ["children.jsonl", "top.json"] {
            assert_eq!(
                std::fs::read_to_string(straight.join(file)).unwrap(),
                std::fs::read_to_string(lossy.join(file)).unwrap(),
                "{file}"
            );
        }
        let log = std::fs::read_to_string(lossy.join("log.log")).unwrap();
        assert!(log.contains("training again the 2 child(ren) that failed"), "{log}");
    }

    /// The results of `inner`'s children held back for a few polls and handed over in
    /// reverse, as many workers finishing out of order would.
    struct Shuffled<E: Executor> {
        inner: E,
        held: Vec<(usize, Outcome)>,
        polls: usize,
    }

    impl<E: Executor> Executor for Shuffled<E> {
        fn submit(&mut self, task: Task) -> Result<()> {
            self.inner.submit(task)
        }
        fn poll(&mut self) -> Result<Vec<(usize, Outcome)>> {
            self.polls += 1;
            let mut events = Vec::new();
            for (id, o) in self.inner.poll()? {
                match o {
                    Outcome::Exited | Outcome::Failed(_) => self.held.push((id, o)),
                    other => events.push((id, other)),
                }
            }
            if self.polls.is_multiple_of(3) || self.inner.in_flight() == 0 {
                events.extend(std::mem::take(&mut self.held).into_iter().rev());
            }
            Ok(events)
        }
        fn in_flight(&self) -> usize {
            self.inner.in_flight() + self.held.len()
        }
        fn cancel_all(&mut self) -> Result<Option<String>> {
            Ok(None)
        }
    }

    /// The synthetic reward of a rung: the target score, higher with more steps.
    fn rung_score(spec: &ChildSpec) -> f64 {
        let steps = spec.rung.map_or(spec.recipe.steps, |r| r.steps);
        target_score(spec) * (0.5 + 0.5 * steps as f64 / spec.recipe.steps as f64)
    }

    /// The store's rows (times and jobs left out) and every rung's results.
    fn halving_store(out: &Path) -> (Vec<Row>, Vec<Vec<super::super::store::RungRow>>) {
        let store = Store::open(&out.join("search.db")).unwrap();
        let rows = store.rows().unwrap().into_iter().map(|r| Row { seconds: 0.0, job_id: None, ..r }).collect();
        let rungs = (0..4)
            .map(|k| {
                let mut v = store.rung_rows(k).unwrap();
                v.iter_mut().for_each(|r| r.seconds = 0.0);
                v
            })
            .collect();
        (rows, rungs)
    }

    fn halving(method: SampleMethod, out: &Path, budget: usize) -> SampleConfig {
        let mut c = config(method, out, budget);
        c.child.steps = 9;
        c.fidelity = crate::search::fidelity::Fidelity::Halving { min_steps: 1, eta: 3 };
        c
    }

    /// Successive halving: new functions train 1 step, the top third of each rung goes on to
    /// 3 and then 9 steps from its checkpoint; every function's row holds its highest rung's
    /// result, and top.json ranks the highest rung first. The decisions, the store and the
    /// outputs are the same whatever order the results come back in, and after a search is
    /// killed and resumed, which trains nothing twice.
    #[test]
    fn halving_decides_the_same_whatever_the_order_and_after_a_resume() {
        for method in [SampleMethod::Random, SampleMethod::Ppo, SampleMethod::Evolution] {
            let dir = tempfile::tempdir().unwrap();
            let straight = dir.path().join("straight");
            let mut ex = Scored::new(rung_score);
            run(&halving(method, &straight, 24), &mut ex, false, &Silent).unwrap();
            let (rows, rungs) = halving_store(&straight);
            let trained = rows.iter().filter(|r| r.trained()).count();
            assert_eq!(trained, 24, "{}", method.name());
            assert_eq!(rungs[0].len(), 24);
            // ASHA's rule gives at least floor(n / 3) promotions per rung.
            assert!(
                rungs[1].len() >= 8 && rungs[2].len() >= rungs[1].len() / 3,
                "{:?}",
                rungs.iter().map(Vec::len).collect::<Vec<_>>()
            );
            assert!(!rungs[2].is_empty() && rungs[3].is_empty());
            for r in &rungs[2] {
                let row = &rows[r.child];
                assert_eq!((row.steps, row.reward), (Some(9), r.reward));
            }
            assert_eq!(ex.ran, rungs.iter().map(Vec::len).sum::<usize>());
            let top: Vec<Top> =
                serde_json::from_str(&std::fs::read_to_string(straight.join("top.json")).unwrap()).unwrap();
            assert_eq!(top[0].steps, Some(9));
            assert!(top.windows(2).all(|w| w[0].steps >= w[1].steps));
            let log = std::fs::read_to_string(straight.join("log.log")).unwrap();
            assert!(log.contains("promoted to rung 2 (9 steps)"), "{log}");

            let shuffled = dir.path().join("shuffled");
            let mut ex = Shuffled { inner: Scored::new(rung_score), held: Vec::new(), polls: 0 };
            run(&halving(method, &shuffled, 24), &mut ex, false, &Silent).unwrap();
            assert_eq!(halving_store(&shuffled), (rows.clone(), rungs.clone()), "{}", method.name());

            let broken = dir.path().join("broken");
            let c = halving(method, &broken, 24);
            let mut ex = Scored::new(rung_score);
            ex.die_after = Some(17);
            assert!(run(&c, &mut ex, false, &Silent).is_err());
            let mut ex2 = Scored::new(rung_score);
            run(&c, &mut ex2, true, &Silent).unwrap();
            assert_eq!(ex.ran + ex2.ran, rungs.iter().map(Vec::len).sum::<usize>(), "{}", method.name());
            assert_eq!(halving_store(&broken), (rows, rungs), "{}", method.name());
            for file in ["children.jsonl", "top.json"] {
                assert_eq!(
                    std::fs::read_to_string(straight.join(file)).unwrap(),
                    std::fs::read_to_string(broken.join(file)).unwrap(),
                    "{file}"
                );
            }
            assert_eq!(errors(&straight), errors(&broken));
            // The wall time, over both sessions of the broken search, grows with the iterations.
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(broken.join("errors.json")).unwrap()).unwrap();
            let runtime: Vec<f64> = v["runtime"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
            assert_eq!(runtime.len(), errors(&broken).len());
            assert!(runtime[0] >= 0.0 && runtime.windows(2).all(|w| w[0] <= w[1]), "{runtime:?}");
        }
    }

    /// A child that failed gets its task's floor, not 0: for a language model's negated loss,
    /// 0 would be the best reward of all.
    #[test]
    fn a_failed_child_gets_the_tasks_floor() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(SampleMethod::Random, dir.path(), 4);
        c.child.reward_floor = -4.17;
        let mut ex = Scored::new(|_: &ChildSpec| -1.5);
        ex.lose = vec![0, 1, 2, 3, 4, 5, 6, 7];
        run(&c, &mut ex, false, &Silent).unwrap();
        let rows = Store::open(&dir.path().join("search.db")).unwrap().rows().unwrap();
        assert!(rows.iter().any(|r| r.lost()));
        for r in rows.iter().filter(|r| r.lost()) {
            assert_eq!(r.reward, -4.17, "child {}", r.id);
        }
    }

    /// With a budget of steps, halving spends at most it, the same way in any order.
    #[test]
    fn halving_keeps_to_the_budget_of_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = Vec::new();
        for (name, shuffle) in [("a", false), ("b", true)] {
            let out = dir.path().join(name);
            let mut c = halving(SampleMethod::Random, &out, 1000);
            c.budget_steps = Some(40);
            match shuffle {
                false => run(&c, &mut Scored::new(rung_score), false, &Silent).unwrap(),
                true => {
                    let mut ex = Shuffled { inner: Scored::new(rung_score), held: Vec::new(), polls: 0 };
                    run(&c, &mut ex, false, &Silent).unwrap()
                }
            };
            let (rows, rungs) = halving_store(&out);
            let spent: usize = rows.iter().map(|r| r.cost(9)).sum();
            assert!((30..=40).contains(&spent), "{spent}");
            assert!(!rungs[1].is_empty());
            stores.push((rows, rungs));
        }
        assert_eq!(stores[0], stores[1]);
    }

    /// The surrogate against random search at equal budget, on a synthetic, noisy reward
    /// that depends on the function's shape: closeness to x*erf(x) on [-3, 3], plus noise of
    /// up to 0.05 per child. Over 20 search seeds, the surrogate's best reward is higher on
    /// average and in most seeds.
    #[test]
    fn the_surrogate_beats_random_search_on_a_synthetic_reward() {
        let target = crate::expr::Formula::parse("x*erf(x)").unwrap();
        let shape = move |spec: &ChildSpec| {
            let f = crate::expr::Formula::parse(&spec.formula).unwrap();
            let mse = (0..61)
                .map(|i| {
                    let x = -3.0 + i as f64 * 0.1;
                    let d = f.eval(x, &spec.init) - target.eval(x, &[]);
                    if d.is_finite() { d * d } else { 100.0 }
                })
                .sum::<f64>()
                / 61.0;
            let noise = ((spec.id as u64 ^ spec.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64
                / (1u64 << 24) as f64
                * 0.05;
            ((-mse).exp() * 0.95 + noise).clamp(0.0, 1.0)
        };
        let space = TokenSpace::parse("core1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (mut wins, mut surrogate_sum, mut random_sum) = (0, 0.0, 0.0);
        for seed in 0..20 {
            let mut best = [0.0; 2];
            for (m, slot) in best.iter_mut().enumerate() {
                let out = dir.path().join(format!("{m}-{seed}"));
                let mut c = config(SampleMethod::Random, &out, 25);
                c.seed = seed;
                c.batch_children = 5;
                let method: Box<dyn Method> = match m {
                    0 => Box::new(super::super::surrogate::Surrogate::new(space.clone(), seed, None).unwrap()),
                    _ => Box::new(super::super::random::RandomSearch::new(vec![25, 25, 10], seed)),
                };
                let _dir = RunDir::open(&out, &c, false).unwrap();
                run_method(&c, &space, method, &mut Scored::new(shape.clone()), &Silent).unwrap();
                *slot = all_rewards(&out).into_iter().fold(0.0, f64::max);
            }
            wins += (best[0] > best[1]) as usize;
            surrogate_sum += best[0];
            random_sum += best[1];
        }
        assert!(
            surrogate_sum > random_sum && wins >= 12,
            "surrogate {surrogate_sum:.3} vs random {random_sum:.3} (sums of the best over 20 seeds), {wins} wins"
        );
        eprintln!("surrogate {surrogate_sum:.3} vs random {random_sum:.3}, {wins} wins of 20");
    }

    /// A method that proposes given sequences once.
    struct Fixed(Vec<Vec<usize>>);

    impl Method for Fixed {
        fn propose(&mut self, n: usize) -> Result<Vec<Vec<usize>>> {
            let k = n.min(self.0.len());
            Ok(self.0.drain(..k).collect())
        }
        fn learn(&mut self, _: &[(Vec<usize>, f64)]) -> Result<Learned> {
            Ok(Learned::default())
        }
        fn state(&self) -> Result<serde_json::Value> {
            Ok(serde_json::json!(self.0))
        }
        fn load_state(&mut self, s: &serde_json::Value) -> Result<()> {
            self.0 = serde_json::from_value(s.clone())?;
            Ok(())
        }
    }

    use super::super::method::Learned;

    /// Every method stops once a counted space is exhausted, with a warning at the start.
    #[test]
    fn a_search_stops_when_its_space_is_exhausted() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("two.toml");
        std::fs::write(&cell, crate::search::sample::census::tests::TWO).unwrap();
        for method in [
            SampleMethod::Ppo,
            SampleMethod::Reinforce,
            SampleMethod::Random,
            SampleMethod::Evolution,
            SampleMethod::Exhaustive,
        ] {
            let out = dir.path().join(method.name());
            let mut c = config(method, &out, 1_000_000);
            c.space = cell.to_string_lossy().into_owned();
            c.population = 2;
            c.tournament = 2;
            let mut ex = Scored::new(target_score);
            let outcome = run(&c, &mut ex, false, &Silent).unwrap();
            assert_eq!((outcome.trained, ex.ran), (2, 2), "{}", method.name());
            let why = outcome.ended_early.unwrap();
            assert!(why.contains("exhausted: all 2 distinct functions"), "{}: {why}", method.name());
            let log = std::fs::read_to_string(out.join("log.log")).unwrap();
            assert!(log.contains("warning: --budget 1000000 exceeds the 2 distinct functions"), "{log}");
        }
    }

    /// A method that proposes one sequence forever.
    struct Stuck(Vec<usize>);

    impl Method for Stuck {
        fn propose(&mut self, n: usize) -> Result<Vec<Vec<usize>>> {
            Ok(vec![self.0.clone(); n])
        }
        fn learn(&mut self, _: &[(Vec<usize>, f64)]) -> Result<Learned> {
            Ok(Learned::default())
        }
        fn state(&self) -> Result<serde_json::Value> {
            Ok(serde_json::json!(null))
        }
        fn load_state(&mut self, _: &serde_json::Value) -> Result<()> {
            Ok(())
        }
    }

    /// In a space too large to count, a method that only repeats itself is stopped after
    /// `REPEATS_IN_A_ROW` repeats, long before `--max-proposals`.
    #[test]
    fn a_method_that_only_repeats_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(SampleMethod::Random, dir.path(), 10);
        c.space = "core2".into();
        c.batch_children = 500;
        c.max_proposals = usize::MAX;
        let space = TokenSpace::parse("core2").unwrap();
        let mut ex = Scored::new(|_: &ChildSpec| 0.5);
        let method = Box::new(Stuck(vec![0; 8]));
        let outcome = run_method(&c, &space, method, &mut ex, &Silent).unwrap();
        let why = outcome.ended_early.unwrap();
        assert!(why.contains("the last 2499 proposals were all functions the search had seen"), "{why}");
        assert_eq!(outcome.proposals, REPEATS_IN_A_ROW + 500);
        assert!(ex.ran <= 1);
    }

    #[test]
    fn the_same_function_is_trained_once_and_useless_ones_not_at_all() {
        let space = TokenSpace::parse("core1").unwrap();
        let t = |names: &[&str]| -> Vec<usize> {
            space.steps().iter().zip(names).map(|(s, n)| s.choices.iter().position(|c| c == n).unwrap()).collect()
        };
        let seqs = vec![
            t(&["identity", "identity", "add"]), // x + x
            t(&["identity", "neg", "sub"]),      // x - (-x): the same function
            t(&["sin", "sin", "sub"]),           // constant 0: rejected
            t(&["identity", "sigmoid", "mul"]),  // new
        ];
        assert_eq!(
            space.decode(&seqs[0]).unwrap().formula.fingerprint(),
            space.decode(&seqs[1]).unwrap().formula.fingerprint()
        );
        let dir = tempfile::tempdir().unwrap();
        let c = config(SampleMethod::Random, dir.path(), 5);
        let mut store = Store::open(&dir.path().join("search.db")).unwrap();
        let mut log = RunLog::open(&dir.path().join("log.log"), &Silent).unwrap();
        let mut ex = Scored::new(|_: &ChildSpec| 0.5);
        let mut method = Fixed(seqs);
        let proposals = method.propose(8).unwrap();
        let mut it = IterationRun::new(
            &c,
            &space,
            &mut store,
            At { first_id: 0, step: 0, trained_before: 0, best_before: 0.0, spent_before: 0 },
            &Silent,
        );
        assert_eq!(it.run(&proposals, &mut ex, &mut log).unwrap(), Some(4));
        let (rows, rewards, trained) = it.finish().unwrap();
        store.insert(&rows).unwrap();
        assert_eq!(ex.ran, 2, "x + x and 2x trained once, the constant not at all");
        assert_eq!(trained, 2);
        assert_eq!(rewards, vec![0.5, 0.5, 0.0, 0.5]);
        let all = store.rows().unwrap();
        assert_eq!(all[1].same_as, Some(0));
        assert_eq!(all[1].reason.as_deref(), Some("same function as child 0"));
        assert_eq!(all[2].status, Status::Rejected);
        assert!(all[2].reason.as_deref().unwrap().contains("constant"));
        assert_eq!(all[0].job_id.as_deref(), Some("job-0"));
    }

    /// A child process that crashes every time is retried, then recorded as failed with its
    /// reason, and the search goes on to its budget.
    #[test]
    fn a_crashed_child_is_failed_and_the_search_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        // The first child started kills itself, every time; the others copy an ok result
        // (written with its checksum by `write_result`, as `actsearch child` writes it).
        let templates = dir.path().join("results");
        std::fs::create_dir_all(&templates).unwrap();
        for id in 0..20 {
            let ok =
                ChildResult { id, reward: 0.25, train_loss: Some(1.5), seconds: 0.1, status: Status::Ok, error: None };
            crate::search::sample::child::write_result(&templates.join(format!("{id}.json")), &ok).unwrap();
        }
        let script = format!(
            r#"id=$(basename "$(dirname "$0")")
            m="$(dirname "$(dirname "$0")")/.crashed"
            if mkdir "$m.d" 2>/dev/null; then echo "$id" > "$m"; fi
            if [ "$(cat "$m" 2>/dev/null)" = "$id" ]; then kill -9 $$; fi
            cp "{}/$id.json" "$(dirname "$0")/result.json""#,
            templates.display()
        );
        /// The local executor running `sh -c SCRIPT SPEC` instead of `actsearch child SPEC`.
        struct Scripted(crate::exec::local::LocalExecutor, String);
        impl Executor for Scripted {
            fn submit(&mut self, task: Task) -> Result<()> {
                let argv = vec!["sh".into(), "-c".into(), self.1.clone(), task.argv[2].clone()];
                self.0.submit(Task { argv, ..task })
            }
            fn poll(&mut self) -> Result<Vec<(usize, Outcome)>> {
                self.0.poll()
            }
            fn in_flight(&self) -> usize {
                self.0.in_flight()
            }
            fn cancel_all(&mut self) -> Result<Option<String>> {
                self.0.cancel_all()
            }
        }
        let result_of = |task: &Task| task.log.with_file_name("result.json");
        let mut ex = Scripted(crate::exec::local::LocalExecutor::new(2, 2, result_of), script);
        let mut c = config(SampleMethod::Random, &out, 6);
        c.batch_children = 3;
        let outcome = run(&c, &mut ex, false, &Silent).unwrap();
        assert_eq!(outcome.trained, 6);
        let rows = Store::open(&out.join("search.db")).unwrap().rows().unwrap();
        let failed: Vec<&Row> = rows.iter().filter(|r| r.status == Status::Failed).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].reward, 0.0);
        assert!(failed[0].reason.as_deref().unwrap().contains("killed by signal 9"), "{:?}", failed[0].reason);
        let log = std::fs::read_to_string(out.join("log.log")).unwrap();
        assert!(log.contains("top 1:"), "{log}");
        let id = failed[0].id;
        assert!(
            log.contains(&format!("child {id}: the process was killed by signal 9; retry 2 of 2: started again")),
            "{log}"
        );
        // children.jsonl lists the trained children, not the failed one.
        let lines = std::fs::read_to_string(out.join("children.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 5);
    }
}
