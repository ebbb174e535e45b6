//! The comparison of sample-based searches, as evals are compared: searches are grouped by
//! space, child recipe (with its dataset) and `--budget-steps`, so that every search of a
//! group had the same compute; within a group, each method and fidelity ("random", "random +
//! halving (20 steps up, eta 3)") is an arm, its search seeds the samples, and its number is
//! the best reward a search reached at the full child steps (a halving search's best at its
//! top rung). Each arm is compared with random search at full fidelity of the same group,
//! paired by search seed where both ran the same seeds (`stats::compare`), with the mean wall
//! time of its searches and the functions they trained.
//!
//! A search that did not finish (stopped, killed or still running) and one that reached no
//! reward at the full child steps are left out, with a note saying why.

use super::runs::{Run, RunKind, SearchFacts, by_arm};
use super::stats::{Summary, compare};
use super::tables::Table;

/// The searches of one space × child recipe × budget.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchGroup {
    pub space: String,
    pub child_label: String,
    pub budget_steps: Option<usize>,
    pub arms: Vec<Arm>,
}

/// One method and fidelity within a group: its searches, one per seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    /// "random", "surrogate + halving (20 steps up, eta 3)".
    pub name: String,
    /// (search seed, best reward at the full child steps, its formula).
    pub bests: Vec<(u64, f64, String)>,
    /// Each search's wall seconds, where recorded.
    pub runtimes: Vec<f64>,
    /// Each search's distinct functions trained.
    pub trained: Vec<usize>,
}

/// The arm every other one is compared with.
pub const BASELINE: &str = "random";

/// The sample-based searches among `runs`, grouped; and a note for each left out.
pub fn search_groups(runs: &[Run]) -> (Vec<SearchGroup>, Vec<String>) {
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    for r in runs {
        let RunKind::Sample(sample) = &r.kind else { continue };
        let f: &SearchFacts = &sample.facts;
        match &f.best {
            _ if !f.finished => notes.push(format!(
                "{} has not finished (its log has no \"finished:\" after its last start): left out",
                r.name
            )),
            Some((formula, reward, steps)) if *steps == f.child_steps => {
                let best = (r.errors.seed.unwrap_or(0), *reward, formula.clone());
                kept.push((sample, (best, f.runtime, sample.children.len())));
            }
            _ => notes.push(format!(
                "{} reached no reward at the full {} child steps: left out (raise --budget-steps, or lower --eta)",
                r.name, f.child_steps
            )),
        }
    }
    let groups = by_arm(kept)
        .into_iter()
        .map(|((space, _, budget_steps), (child_label, arms))| {
            let mut arms: Vec<Arm> = arms
                .into_iter()
                .map(|(name, searches)| Arm {
                    name,
                    bests: searches.iter().map(|s| s.0.clone()).collect(),
                    runtimes: searches.iter().filter_map(|s| s.1).collect(),
                    trained: searches.iter().map(|s| s.2).collect(),
                })
                .collect();
            // The baseline first, then by name.
            arms.sort_by_key(|a| (a.name != BASELINE, a.name.clone()));
            SearchGroup { space, child_label, budget_steps, arms }
        })
        .collect();
    (groups, notes)
}

/// The table of every group's arms: the best reward's mean ± std over search seeds and its
/// 95% interval, the difference with random search (paired by seed where the seeds match)
/// with its interval, p-value and verdict, the mean wall time and functions trained.
pub fn search_table(groups: &[SearchGroup]) -> Table {
    let headers = [
        "space",
        "children",
        "budget (child steps)",
        "method",
        "seeds",
        "best reward",
        "95% CI of mean",
        "vs random [95% CI]",
        "p",
        "verdict",
        "wall time per search",
        "functions trained",
    ];
    let mut rows = Vec::new();
    for g in groups {
        let base = g.arms.iter().find(|a| a.name == BASELINE);
        for arm in &g.arms {
            let values: Vec<f64> = arm.bests.iter().map(|b| b.1).collect();
            let s = Summary::of(&values);
            let seeds: Vec<String> = arm.bests.iter().map(|b| b.0.to_string()).collect();
            let mut row = vec![
                g.space.clone(),
                g.child_label.clone(),
                g.budget_steps.map_or("none".into(), |b| b.to_string()),
                arm.name.clone(),
                format!("{} ({})", arm.bests.len(), seeds.join(",")),
                format!("{:.4} ± {:.4}", s.mean, s.std),
                s.ci95().map_or("(one seed)".into(), |(lo, hi)| format!("[{lo:.4}, {hi:.4}]")),
            ];
            match base {
                Some(b) if std::ptr::eq(b, arm) => row.extend(["baseline".into(), String::new(), String::new()]),
                Some(b) => {
                    let pairs = |a: &Arm| a.bests.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>();
                    let c = compare(&pairs(arm), &pairs(b));
                    row.push(c.difference_text(4));
                    row.push(c.p_text());
                    row.push(c.verdict.words());
                }
                None => row.extend(["(no random search at full fidelity here)".into(), String::new(), String::new()]),
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            row.push(match arm.runtimes.is_empty() {
                true => "(not recorded)".into(),
                false => format!("{:.0} s", mean(&arm.runtimes)),
            });
            let trained: Vec<f64> = arm.trained.iter().map(|&n| n as f64).collect();
            row.push(format!("{:.1}", mean(&trained)));
            rows.push(row);
        }
    }
    Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::runs::{Errors, Recipe, Sample};

    fn search(method: &str, fidelity: &str, seed: u64, best: f64, budget: usize) -> Run {
        let facts = SearchFacts {
            space: "core1".into(),
            child_key: "k".into(),
            child_label: "resnet8".into(),
            child_steps: 90,
            budget_steps: Some(budget),
            fidelity: fidelity.into(),
            best: Some(("x".into(), best, 90)),
            runtime: Some(10.0 * (seed + 1) as f64),
            finished: true,
        };
        Run {
            dir: format!("runs/{method}-{seed}").into(),
            name: format!("{method}-{fidelity}-{seed}"),
            errors: Errors { seed: Some(seed), ..Errors::default() },
            kind: RunKind::Sample(Sample { method: method.into(), children: Vec::new(), facts }),
            planned_epochs: None,
            final_file: false,
            written: None,
            recipe: Recipe::default(),
        }
    }

    /// Arms are method + fidelity within one budget; each is compared with random at full
    /// fidelity, paired by seed; an unfinished search and one without a full-steps reward
    /// are left out with a note; another budget is another group.
    #[test]
    fn searches_group_by_budget_and_compare_with_random_by_seed() {
        let mut runs = Vec::new();
        for seed in 0..3 {
            runs.push(search("random", "full", seed, 0.30 + seed as f64 * 0.01, 600));
            runs.push(search("random", "halving (10 steps up, eta 3)", seed, 0.35 + seed as f64 * 0.012, 600));
        }
        runs.push(search("random", "full", 0, 0.5, 900));
        let mut unfinished = search("evolution", "full", 0, 0.9, 600);
        let RunKind::Sample(s) = &mut unfinished.kind else { unreachable!() };
        s.facts.finished = false;
        runs.push(unfinished);
        let mut short = search("evolution", "full", 1, 0.9, 600);
        let RunKind::Sample(s) = &mut short.kind else { unreachable!() };
        s.facts.best = Some(("x".into(), 0.9, 30));
        runs.push(short);

        let (groups, notes) = search_groups(&runs);
        assert_eq!(groups.len(), 2);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("has not finished") && notes[1].contains("no reward at the full 90"), "{notes:?}");
        let g = &groups[0];
        assert_eq!(g.budget_steps, Some(600));
        let names: Vec<&str> = g.arms.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["random", "random + halving (10 steps up, eta 3)"]);
        let t = search_table(&groups);
        assert_eq!(t.rows[0][7], "baseline");
        // Differences 0.05, 0.052, 0.054: paired, a positive interval.
        assert!(t.rows[1][7].starts_with("+0.0520 [") && t.rows[1][7].ends_with("paired by seed"), "{:?}", t.rows[1]);
        assert_eq!(t.rows[1][9], "better");
        assert_eq!(t.rows[1][10], "20 s");
        // The other budget's lone random search has no interval.
        assert_eq!(t.rows[2][6], "(one seed)");
    }
}
