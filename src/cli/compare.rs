//! `actsearch compare RUN_DIR... [--baseline relu]`: the finished evals in the given folders,
//! grouped by network × dataset × activation, each compared with the baseline of the same
//! network and dataset: mean ± std, seeds, the difference with its 95% interval (paired by
//! seed when the seeds match, Welch otherwise), the p-value and a verdict in words. The
//! finished sample-based searches, in a table of their own (`report::searches`): each method
//! and fidelity by the best reward its searches reached, against random search at full
//! fidelity with the same space, child recipe and budget.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::stdout;
use crate::report::{runs, searches, shown_path, tables};
use crate::space::resolve::resolve_activation;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Eval run directories, sample-based search directories, or folders holding them
    /// (seed-N subfolders are found by themselves).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// The activation every other one is compared with: a name or a formula; it must have
    /// finished evals on the same network and dataset [default: the networks' usual one: relu
    /// for the ResNets, gelu for the transformers]. A gated MLP's is written with the suffix,
    /// as "silu (gated)".
    #[arg(long, allow_hyphen_values = true)]
    pub baseline: Option<String>,
}

/// The baseline as the groups name it: `given` as a canonical formula (with " (gated)" kept),
/// or without one each network's usual activation (relu for the ResNets, gelu for the
/// transformers).
pub fn baseline_for(given: Option<&str>) -> Result<tables::Baseline> {
    let Some(given) = given else { return Ok(tables::Baseline::Usual) };
    Ok(tables::Baseline::One(match given.trim().strip_suffix("(gated)") {
        Some(formula) => format!("{} (gated)", resolve_activation(formula.trim())?),
        None => resolve_activation(given)?.to_string(),
    }))
}

pub fn run(args: CompareArgs) -> Result<()> {
    let runs::Scanned { runs, skipped } = runs::scan(&args.runs)?;
    for s in &skipped {
        eprintln!("note: skipped {}: {}", shown_path(&s.dir), s.reason);
    }
    for r in &runs {
        let dir = shown_path(&r.dir);
        let name = if r.name == dir { dir.clone() } else { format!("{} ({dir})", r.name) };
        match &r.kind {
            runs::RunKind::Sample(_) => {}
            runs::RunKind::OneShot(_) => eprintln!(
                "note: {name} is a one-shot search, not an eval: left out; its genotype is compared once trained: actsearch eval --activation {} --seeds 0,1,2",
                r.dir.join("genotype.json").display()
            ),
            runs::RunKind::Eval if !r.finished() => {
                eprintln!("note: {name} is unfinished ({}): left out", r.progress())
            }
            runs::RunKind::Eval => {}
        }
    }
    let groups = tables::result_groups(&runs);
    let (searches, notes) = searches::search_groups(&runs);
    for note in &notes {
        eprintln!("note: {note}");
    }
    if groups.is_empty() && searches.is_empty() {
        bail!(
            "no finished eval with a final result, and no finished sample-based search, in the given folders; compare reads the --out folders of `actsearch eval` and `actsearch search`"
        );
    }
    let mut text = String::new();
    if !searches.is_empty() {
        let n: usize = searches.iter().flat_map(|g| &g.arms).map(|a| a.bests.len()).sum();
        let plural = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        eprintln!(
            "note: compared {} in {}",
            plural(n, "finished sample-based search", "finished sample-based searches"),
            plural(searches.len(), "group", "groups")
        );
        text += &format!(
            "{}\n(best reward reached at the full child steps, over search seeds; differences to random search at full fidelity with 95% confidence intervals, two-sided p-values; groups hold one space, child recipe and --budget-steps)\n",
            searches::search_table(&searches).to_markdown()
        );
    }
    if groups.is_empty() {
        return stdout(&text);
    }
    if !text.is_empty() {
        text += "\n";
    }
    let baseline = baseline_for(args.baseline.as_deref())?;
    for g in &groups {
        for r in &g.repeated {
            eprintln!(
                "warning: seed {} of {} is in several runs: {} used, {} left out",
                r.seed,
                g.activation,
                r.used,
                r.left_out.join(", ")
            );
        }
    }
    let table = tables::comparison_table(&groups, &baseline)?;
    let used: usize = groups.iter().map(|g| g.finals.len()).sum();
    eprintln!("note: compared {used} finished eval runs in {} groups", groups.len());
    stdout(&format!(
        "{text}{}\n(final {}; differences to the baseline {} with 95% confidence intervals, two-sided p-values; a verdict needs at least 2 seeds on each side)\n",
        table.to_markdown(),
        // Read from the groups' metrics, not from the table's header text.
        metric_words(&groups),
        baseline.shown()
    ))
}

/// What the groups' numbers are, with the direction of a lower-is-better one.
fn metric_words(groups: &[tables::ResultGroup]) -> String {
    let metrics: std::collections::BTreeSet<&str> = groups.iter().map(|g| g.metric.as_str()).collect();
    let words: Vec<&str> = metrics
        .into_iter()
        .map(|m| match m {
            "valid_loss" => "validation loss in nats for a language model (better means lower)",
            "test_bleu" => "test BLEU for a translation model",
            _ => "test accuracy",
        })
        .collect();
    match words.is_empty() {
        true => "test accuracy".to_string(),
        false => words.join(", or "),
    }
}
