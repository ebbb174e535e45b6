//! `actsearch report RUN_DIR...`: reads eval and search runs and writes charts, `report.md`
//! and a self-contained `report.html`. What the report skipped or left out (folders that are
//! not readable runs, unfinished runs, repeated seeds, functions it cannot draw) is printed on
//! stderr, one `note:` or `warning:` line each.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::stdout;
use crate::report::{document, runs, shown_path};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories (the --out of `actsearch eval` or `search`), or folders holding runs
    /// (e.g. a multi-seed eval's seed-N subfolders are found by themselves).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Where to write report.md, report.html and the PNG/SVG charts (files of an earlier
    /// report there are replaced).
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// The activation the results table compares every other one with (a name or a
    /// formula), within the same network, dataset and recipe [default: the networks' usual
    /// one: relu for the ResNets, gelu for the transformers].
    #[arg(long, allow_hyphen_values = true)]
    pub baseline: Option<String>,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let runs::Scanned { runs, skipped } = runs::scan(&args.runs)?;
    let baseline = super::compare::baseline_for(args.baseline.as_deref())?;
    let report = document::build(&runs, &baseline)?;
    for s in &skipped {
        eprintln!("note: skipped {}: {}", shown_path(&s.dir), s.reason);
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    let spinner = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg}")?);
    spinner.set_message(format!("drawing the report of {} runs", runs.len()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let written = document::write(&report, &args.out);
    spinner.finish_and_clear();
    let written = written?;
    let mut text = format!("read {} runs:", runs.len());
    for r in &runs {
        let kind = match &r.kind {
            runs::RunKind::Eval => "eval",
            runs::RunKind::OneShot(_) => "one-shot search",
            runs::RunKind::Sample(_) => "sample-based search",
        };
        match r.progress() {
            runs::Progress::Finished => text += &format!(" {} ({kind}),", r.name),
            unfinished => text += &format!(" {} ({kind}, unfinished: {unfinished}),", r.name),
        }
    }
    text.pop();
    text += &format!(
        "\nwrote {} and {} with {} images in {}\n",
        written.markdown.display(),
        written.html.display(),
        written.images.len(),
        args.out.display()
    );
    if !skipped.is_empty() {
        text += &format!("skipped {} folder(s) that are not readable runs (see the notes above)\n", skipped.len());
    }
    stdout(&text)
}
