//! `actsearch predict RUN_DIR --against OTHER_DIR`: fits the surrogate's regressors on one
//! sample-based search and reports how well they rank the rewards of another search's
//! functions that the first does not hold (Spearman's rank correlation, with its 95% interval
//! and p-value), for the output features alone and with the Fisher features, over all of them
//! and over those that trained (a diverged child's floor reward is easy to rank apart).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::stdout;
use crate::report::shown_path;
use crate::report::stats::Correlation;
use crate::search::sample::holdout::{Holdout, holdout};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The sample-based search whose rewards the surrogate is fit to.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// The search whose functions it predicts: those RUN_DIR does not hold. It must train the
    /// same child recipe on the same dataset.
    #[arg(long, value_name = "OTHER_DIR")]
    pub against: PathBuf,
    /// Compare rewards at this many child steps (a search with successive halving holds one
    /// per rung) [default: the step count both hold most functions at].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Where the data of RUN_DIR's children lies, for the Fisher features [default: its
    /// config.json's data_dir].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print the result as JSON, each tested function's predictions included.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let bar = ProgressBar::hidden();
    bar.set_style(ProgressStyle::with_template("Fisher features {bar:30} {pos}/{len} functions")?);
    let mut progress = |done: usize, total: usize| {
        if bar.is_hidden() && total > 0 {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(total as u64);
        }
        bar.set_position(done as u64);
    };
    let h = holdout(&args.run, &args.against, args.steps, args.data_dir.as_deref(), &mut progress)?;
    bar.finish_and_clear();
    if args.json {
        return stdout(&format!("{}\n", serde_json::to_string_pretty(&to_json(&h))?));
    }
    let mut text = format!(
        "fit on {} functions of {}, tested on the {} functions of {} it does not hold, rewards at {} steps:\n",
        h.fit,
        shown_path(&args.run),
        h.tested.len(),
        shown_path(&args.against),
        h.steps
    );
    let ok = h.tested.iter().filter(|t| t.ok).count();
    for (title, outputs, both) in [
        (format!("all {}", h.tested.len()), h.outputs, h.both),
        (format!("the {ok} that trained (not diverged)"), h.outputs_ok, h.both_ok),
    ] {
        text += &format!("  over {title}:\n    output features:          {}\n", line(outputs));
        text += &match &h.no_fisher {
            None => format!("    output + Fisher features: {}\n", line(both)),
            Some(why) => format!("    output + Fisher features: none ({why})\n"),
        };
    }
    stdout(&text)
}

/// "Spearman rho 0.412 [0.081, 0.660], p = 0.019", or why there is none.
fn line(c: Option<Correlation>) -> String {
    let Some(c) = c else { return "no rank correlation: the predictions (or the rewards) are all equal".into() };
    let ci = c.ci95.map_or(String::new(), |(lo, hi)| format!(" [{lo:.3}, {hi:.3}]"));
    let p = c.p.map_or(String::new(), |p| format!(", p = {p:.3}"));
    format!("Spearman rho {:.3}{ci}{p}", c.rho)
}

fn to_json(h: &Holdout) -> serde_json::Value {
    let corr = |c: Option<Correlation>| {
        c.map(|c| serde_json::json!({"rho": c.rho, "n": c.n, "ci95": c.ci95.map(|(a, b)| [a, b]), "p": c.p}))
    };
    serde_json::json!({
        "steps": h.steps,
        "fit": h.fit,
        "outputs": corr(h.outputs),
        "outputs_and_fisher": corr(h.both),
        "trained_only": {"outputs": corr(h.outputs_ok), "outputs_and_fisher": corr(h.both_ok)},
        "no_fisher": h.no_fisher,
        "tested": h.tested,
    })
}
