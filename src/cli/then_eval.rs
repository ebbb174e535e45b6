//! `search --then-eval`, for both kinds of search: the found function and the baseline
//! trained from scratch with eval's quick preset over the same seeds, compared with intervals,
//! a p-value and a verdict, written to `OUT/summary.json`, then the report.

use anyhow::Result;

use super::search_args::SearchArgs;
use super::stdout;

/// `--then-eval`: the found function (`found`: a genotype path or a formula) and the baseline
/// trained from scratch over the same seeds, compared (paired by seed), the comparison in
/// `OUT/summary.json`, then the report.
pub fn compare(
    args: &SearchArgs,
    searched: crate::model::Network,
    seed: u64,
    dataset: &str,
    out: &std::path::Path,
    found: &str,
    undecided: &[String],
) -> Result<()> {
    use super::eval::{self, EvalArgs};
    use crate::report::stats;
    let network = args.eval_network(searched);
    let baseline = args.baseline(searched);
    let runs = [(found.to_string(), out.join("eval-found")), (baseline.clone(), out.join("eval-baseline"))];
    let seeds = args.eval_seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
    stdout(&format!(
        "found: {}\ntraining it and {} from scratch on {} (eval's quick preset, seeds {seeds}) to compare\n",
        crate::space::resolve::resolve_activation(found)?,
        baseline,
        network.name()
    ))?;
    let mut summaries = Vec::new();
    for (activation, dir) in &runs {
        let mut eval = EvalArgs::quick(network, activation, dir, seed, args.common.clone());
        eval.seeds = args.eval_seeds.clone();
        if !network.is_resnet() {
            eval.mlp = args.mlp;
        }
        // The search's languages, test split and vocabulary.
        eval.translation = args.translation.clone();
        eval.resume = args.resume;
        summaries.push(eval::run_summary(eval)?);
    }
    let pairs =
        |s: &crate::train::seeds::Summary| s.seeds.iter().copied().zip(s.values().iter().copied()).collect::<Vec<_>>();
    let c = stats::compare_directed(&pairs(&summaries[0]), &pairs(&summaries[1]), summaries[1].higher_is_better);
    let quick = crate::train::config::Preset::Quick.defaults_for(network)?;
    let recipe = match quick.steps {
        Some(steps) => format!("{} on {}, {steps} steps, seeds {seeds}", network.name(), dataset),
        None => format!(
            "{} on {}, {} epochs on {} images, {} test images, seeds {seeds}",
            network.name(),
            dataset,
            quick.epochs,
            quick.subset.map_or("all".into(), |n| n.to_string()),
            quick.test_subset.map_or("all".into(), |n| n.to_string()),
        ),
    };
    let side = |s: &crate::train::seeds::Summary, dir: &std::path::Path| {
        serde_json::json!({
            "activation": s.activation, "seeds": s.seeds, "metric": s.metric, s.metric.as_str(): s.values(), "mean": s.mean, "std": s.std,
            "ci95": s.ci95, "runs": dir.strip_prefix(out).unwrap_or(dir).to_string_lossy(),
        })
    };
    let summary = serde_json::json!({
        "found": side(&summaries[0], &runs[0].1),
        "baseline": side(&summaries[1], &runs[1].1),
        "comparison": c.to_json(),
        "recipe": recipe,
    });
    crate::train::history::write_json(&out.join("summary.json"), &summary)?;
    // The search and the evals inside it.
    let loaded = crate::report::runs::load(&[out.to_path_buf()])?;
    let report = crate::report::document::build(&loaded, &summaries[1].activation.as_str().into())?;
    let written = crate::report::document::write(&report, &out.join("report"))?;
    let plot = written.images.iter().find(|p| p.to_string_lossy().ends_with("-formula.png"));
    let line = |name: &str, s: &crate::train::seeds::Summary| {
        let ci = s.ci95.map_or("no interval from one seed".to_string(), |[lo, hi]| {
            format!("95% CI [{}, {}]", s.show(lo), s.show(hi))
        });
        format!(
            "{name:<10} {:>7} ± {}  ({ci})  {}\n",
            s.show(s.mean),
            s.show(s.std),
            crate::report::shown(&s.activation)
        )
    };
    // Accuracies differ in points to 2 decimals, losses in nats to 4.
    let (unit, places) = if summaries[1].higher_is_better { ("points", 2) } else { ("nats (lower is better)", 4) };
    let verdict = match c.ci {
        Some((lo, hi)) => format!(
            "found - baseline: {:+.places$} {unit}, 95% CI [{lo:+.places$}, {hi:+.places$}] ({}), p = {:.3}: {}{}\n",
            c.diff,
            c.test.words(),
            c.p.unwrap_or(f64::NAN),
            c.verdict.words(),
            c.seeds_needed_clause().map_or(String::new(), |clause| format!(" ({clause})"))
        ),
        None => {
            let test = match c.test {
                crate::report::stats::Test::None => String::new(),
                test => format!(" ({})", test.words()),
            };
            format!("found - baseline: {:+.places$} {unit}{test}: {}\n", c.diff, c.verdict.words())
        }
    };
    let undecided = match undecided.is_empty() {
        true => String::new(),
        false => format!(
            "warning: the search had not chosen at {} position(s) ({}): those ops are an argmax of noise\n",
            undecided.len(),
            undecided.join("; ")
        ),
    };
    stdout(&format!(
        "\n{undecided}{}{}{verdict}({}, {recipe}: a quick check; train both longer with `actsearch eval {} --seeds 0,1,2`)\ncomparison: {}\nplot of the found function: {}\nreport: {}\n",
        line("found", &summaries[0]),
        line("baseline", &summaries[1]),
        summaries[1].metric_words(),
        if quick.steps.is_some() { "--preset standard" } else { "--epochs 200" },
        out.join("summary.json").display(),
        plot.map_or("(none)".into(), |p| p.display().to_string()),
        written.html.display()
    ))
}
