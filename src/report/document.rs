//! The report itself: sections of text, figures and tables built from the runs, written as
//! one PNG and one SVG per figure, `report.md` (pointing at the PNGs) and a self-contained
//! `report.html` (the SVGs inline, no external assets; it opens offline).
//!
//! - Results: final test accuracy, mean ± std over seeds, per network × dataset × activation,
//!   of finished runs only; unfinished runs and repeated seeds are listed under the table.
//! - Evaluations: train / valid / test accuracy per epoch, one panel per seed of a group.
//! - One-shot searches: per site (or per position for a shared cell) the softmaxed weights
//!   over epochs, the found formula's shape next to ReLU and SiLU, and the search's accuracy.
//! - Sample-based searches: best reward so far against children trained, all methods on one
//!   chart, and each run's top formulas.
//!
//! What the reader of the terminal should know too (runs left out, a repeated seed, a
//! function that cannot be drawn) is also returned in [`Report::notes`] and
//! [`Report::warnings`], for the cli to print.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::charts::{self, Figure, Line, PALETTE, Panel};
use super::runs::{OneShot, Progress, Run, RunKind, Sample, by_arm};
use super::shapes::{self, Shape};
use super::shown;
use super::tables::{self, ResultGroup, Table, escape};

/// Ops highlighted per position in an alpha chart (by peak weight); the rest are grey.
const HIGHLIGHT: usize = 6;
/// An op is highlighted when its peak weight exceeds uniform (1 / ops) by this factor.
const ABOVE_UNIFORM: f64 = 1.05;
/// Lines per panel before a chart is split into panels.
const PER_PANEL: usize = 8;
/// Rows of a sample-based search's top table.
const TOP_K: usize = 10;
/// The x range of a search's found-function chart.
const FOUND_RANGE: (f64, f64) = (-5.0, 5.0);

pub enum Block {
    Text(String),
    Figure { file: String, figure: Figure, caption: String },
    Table { caption: String, table: Table },
}

pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

pub struct Report {
    pub sections: Vec<Section>,
    /// Things the report leaves out by design (unfinished runs), one line each.
    pub notes: Vec<String>,
    /// Things that would otherwise mislead (a repeated seed, a function that cannot be
    /// drawn), one line each.
    pub warnings: Vec<String>,
}

/// What [`write`] wrote.
pub struct Written {
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub images: Vec<PathBuf>,
}

/// The report of `runs`; the results table compares every activation with `baseline` (a
/// canonical formula) of the same network, dataset and recipe.
pub fn build(runs: &[Run], baseline: &tables::Baseline) -> Result<Report> {
    let mut sections = Vec::new();
    let (mut notes, mut warnings) = (Vec::new(), Vec::new());
    let evals: Vec<&Run> = runs.iter().filter(|r| matches!(r.kind, RunKind::Eval)).collect();
    let groups = tables::result_groups(runs);
    let unfinished: Vec<String> =
        evals.iter().filter(|r| !r.finished()).map(|r| format!("{} ({})", r.name, r.progress())).collect();
    if !groups.is_empty() || !unfinished.is_empty() {
        let mut blocks = Vec::new();
        if !groups.is_empty() {
            blocks.push(Block::Text(format!(
                "Final test accuracy of the finished eval runs (a language model's validation loss, where lower is \
                     better): mean ± sample standard deviation over seeds, the 95% \
                     confidence interval of the mean, and the difference to {} trained with the same network, data and \
                     recipe, with its 95% interval (paired by seed when both ran the same seeds, Welch otherwise), the \
                     two-sided p-value, the verdict, and about how many seeds a difference of that size would need \
                     (80% power). A single seed gives no verdict, nor does a difference with no spread (the same in \
                     every seed): there is no interval to test it by.",
                baseline.shown()
            )));
            blocks.push(Block::Table {
                caption: tables::metric_header(&groups),
                table: tables::results_table(&groups, baseline),
            });
        }
        if !unfinished.is_empty() {
            let line = format!("unfinished runs, left out of the results table: {}", unfinished.join(", "));
            blocks.push(Block::Text(format!("{}.", capitalized(&line))));
            notes.push(line);
        }
        for line in repeated_seeds(&groups) {
            blocks.push(Block::Text(format!("{}.", capitalized(&line))));
            warnings.push(line);
        }
        sections.push(Section { title: "Results".into(), blocks });
    }
    if !evals.is_empty() {
        sections.push(Section { title: "Evaluations".into(), blocks: eval_blocks(&evals) });
    }
    for run in runs {
        if let RunKind::OneShot(search) = &run.kind {
            let blocks = one_shot_blocks(run, search, &mut warnings)?;
            sections.push(Section { title: format!("Search {}", run.name), blocks });
        }
    }
    let samples: Vec<(&Run, &Sample)> = runs
        .iter()
        .filter_map(|r| match &r.kind {
            RunKind::Sample(s) => Some((r, s)),
            _ => None,
        })
        .collect();
    if !samples.is_empty() {
        sections.push(Section { title: "Sample-based searches".into(), blocks: sample_blocks(&samples) });
    }
    Ok(Report { sections, notes, warnings })
}

/// One line per seed that several finished runs of a group hold: which run the table uses.
fn repeated_seeds(groups: &[ResultGroup]) -> Vec<String> {
    let mut lines = Vec::new();
    for g in groups {
        for r in &g.repeated {
            lines.push(format!(
                "seed {} of {} on {} with {} is in {} runs: the table uses {} (written last) and leaves out {}",
                r.seed,
                g.network,
                g.dataset,
                shown(&g.activation),
                r.left_out.len() + 1,
                r.used,
                r.left_out.join(", ")
            ));
        }
    }
    lines
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
}

/// A file name from free text: lowercase letters, digits and dashes.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c.is_ascii_alphanumeric() {
            true => out.push(c.to_ascii_lowercase()),
            false if !out.ends_with('-') => out.push('-'),
            false => {}
        }
    }
    out.trim_matches('-').chars().take(80).collect()
}

fn epochs_of(values: &[f64]) -> Vec<(f64, f64)> {
    values.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect()
}

/// Train / valid / test accuracy per epoch of one run (the curves it recorded), or for a run
/// judged by a loss (a language model) its training and validation loss per step.
/// Whether `run`'s curves are its losses per step: a language or translation model's (a
/// translation model's BLEU is one number at the end).
fn by_loss(run: &Run) -> bool {
    !run.errors.higher_is_better || run.errors.metric.ends_with("_bleu")
}

fn accuracy_panel(run: &Run, title: String) -> Panel {
    let by_loss = by_loss(run);
    let curves: &[(&str, &str)] = match by_loss {
        true => &[("train", "train_loss"), ("valid", "valid_loss")],
        false => &[("train", "train_acc"), ("valid", "valid_acc"), ("test", "test_acc")],
    };
    let steps = run.errors.curve("step");
    let points = |values: &[f64]| match by_loss && steps.len() == values.len() {
        true => steps.iter().copied().zip(values.iter().copied()).collect(),
        false => epochs_of(values),
    };
    let lines: Vec<Line> = curves
        .iter()
        .enumerate()
        .filter(|(_, (_, key))| !run.errors.curve(key).is_empty())
        .map(|(i, (name, key))| {
            let points = points(run.errors.curve(key));
            Line { markers: points.len() <= 30, ..Line::new(*name, points, i) }
        })
        .collect();
    Panel {
        title,
        x_label: if by_loss { "step" } else { "epoch" }.into(),
        y_label: if by_loss { "loss (nats, lower is better)" } else { "accuracy (%)" }.into(),
        lines,
        integer_x: true,
        ..Default::default()
    }
}

fn eval_blocks(evals: &[&Run]) -> Vec<Block> {
    let mut groups: BTreeMap<(String, String, String), Vec<&Run>> = BTreeMap::new();
    for run in evals {
        let e = &run.errors;
        groups.entry((e.network.clone(), e.dataset.clone(), e.activation.clone())).or_default().push(run);
    }
    groups
        .into_iter()
        .map(|((network, dataset, activation), runs)| {
            let panels = same_y_range(
                runs.iter()
                    .map(|r| {
                        let seed = r.errors.seed.map_or("?".into(), |s| s.to_string());
                        let status = match r.progress() {
                            Progress::Finished => String::new(),
                            unfinished => format!(", unfinished: {unfinished}"),
                        };
                        accuracy_panel(r, format!("{} (seed {seed}{status})", r.name))
                    })
                    .collect(),
            );
            let title = format!("{network} on {dataset}, {activation}");
            Block::Figure {
                file: format!("eval-{}", slug(&title)),
                figure: Figure { title: Some(title.clone()), panels, columns: 2, panel_size: None },
                caption: match runs.first().is_some_and(|r| by_loss(r)) {
                    true => format!("{title}: loss per step, one panel per seed"),
                    false => format!("{title}: accuracy per epoch, one panel per seed"),
                },
            }
        })
        .collect()
}

/// The panels with one y range covering all of them, so seeds compare at a glance.
fn same_y_range(mut panels: Vec<Panel>) -> Vec<Panel> {
    let values = panels.iter().flat_map(|p| p.lines.iter().flat_map(|l| l.segments.iter().flatten().map(|q| q.1)));
    let range = charts::extent(values, 0.05);
    panels.iter_mut().for_each(|p| p.y_range = Some(range));
    panels
}

/// One panel per position: that position's op weights over epochs at site `site`.
fn alpha_panels(search: &OneShot, site: usize, title_prefix: &str) -> Vec<Panel> {
    (0..search.positions.len())
        .map(|pos| {
            let ops = &search.ops[pos];
            let series: Vec<Vec<(f64, f64)>> = (0..ops.len())
                .map(|op| {
                    search.epochs.iter().map(|e| (e.step.unwrap_or(e.epoch) as f64, e.weights[site][pos][op])).collect()
                })
                .collect();
            // The ops that mattered: ranked by their peak weight at any epoch, and only those
            // that rose above uniform; the rest are grey.
            let peak = |op: usize| series[op].iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let mut ranked: Vec<usize> = (0..ops.len()).collect();
            ranked.sort_by(|&a, &b| peak(b).total_cmp(&peak(a)));
            let uniform = 1.0 / ops.len().max(1) as f64;
            let shown = ranked.iter().take(HIGHLIGHT).take_while(|&&op| peak(op) > ABOVE_UNIFORM * uniform).count();
            let few = search.epochs.len() <= 30;
            let mut lines: Vec<Line> = ranked[..shown]
                .iter()
                .enumerate()
                .map(|(i, &op)| Line { markers: few, ..Line::new(&ops[op], series[op].clone(), i) })
                .collect();
            let rest = &ranked[shown..];
            for (i, &op) in rest.iter().enumerate() {
                let label = (i == 0).then(|| {
                    let top = rest.iter().map(|&op| peak(op)).fold(f64::NEG_INFINITY, f64::max);
                    match top > ABOVE_UNIFORM * uniform {
                        true => format!("{} other ops (peak weight at most {top:.3})", rest.len()),
                        false => format!("{} other ops (never above uniform, 1/{})", rest.len(), ops.len()),
                    }
                });
                lines.push(Line { label, segments: vec![series[op].clone()], markers: few, ..Default::default() });
            }
            Panel {
                title: format!("{title_prefix}position {}", search.positions[pos]),
                x_label: match search.by_steps() {
                    true => "step".into(),
                    false => "epoch".into(),
                },
                y_label: "softmaxed weight".into(),
                lines,
                integer_x: true,
                ..Default::default()
            }
        })
        .collect()
}

/// The blocks of one one-shot search; a found function that cannot be drawn is said in the
/// text and in `warnings`.
fn one_shot_blocks(run: &Run, search: &OneShot, warnings: &mut Vec<String>) -> Result<Vec<Block>> {
    let e = &run.errors;
    let method = search.method.as_deref().unwrap_or("one-shot");
    let formula = search.formula().unwrap_or("(none)");
    let found_text = match run.progress() {
        Progress::Finished => format!("Found: `{formula}`."),
        unfinished => format!("Unfinished ({unfinished}): the formula of its last epoch so far is `{formula}`."),
    };
    let mut blocks = vec![Block::Text(format!(
        "{method} search on {} ({}), {} {}, {} sites. {found_text}",
        e.network,
        e.dataset,
        match search.by_steps() {
            true => search.epochs.last().and_then(|a| a.step).unwrap_or(0),
            false => search.epochs.len(),
        },
        match search.by_steps() {
            true => "steps",
            false => "epochs",
        },
        search.sites()
    ))];
    let name = slug(&run.name);
    if search.sites() == 1 {
        for (pos, panel) in alpha_panels(search, 0, "shared cell, ").into_iter().enumerate() {
            blocks.push(Block::Figure {
                file: format!("{name}-alphas-{}", slug(&search.positions[pos])),
                caption: format!("{}: weights of position {} (shared cell)", run.name, search.positions[pos]),
                figure: Figure::single(panel),
            });
        }
    } else {
        for site in 0..search.sites() {
            let panels = alpha_panels(search, site, "");
            let columns = panels.len().min(3);
            blocks.push(Block::Figure {
                file: format!("{name}-alphas-site{site}"),
                caption: format!("{}: weights at site {site}, one panel per position", run.name),
                figure: Figure {
                    title: Some(format!("{} — site {site}", run.name)),
                    panels,
                    columns,
                    panel_size: None,
                },
            });
        }
    }
    let found = match (&search.genotype, search.formula()) {
        (Some(g), _) => Some(shapes::of_genotype(g)),
        (None, Some(f)) => Some(shapes::shape(f)),
        (None, None) => None,
    };
    match found {
        Some(Ok(found)) => {
            let mut list: Vec<Shape> = vec![found];
            list.extend(["relu", "silu"].iter().map(|n| shapes::shape(n)).collect::<Result<Vec<_>>>()?);
            let chart = shapes::figure(&list, FOUND_RANGE, false, &format!("{}: found function", run.name));
            let found_hidden = !chart.drawn.contains(&0);
            for w in &chart.warnings {
                warnings.push(format!("search {}: {w}", run.name));
            }
            match found_hidden {
                true => blocks.push(Block::Text(format!(
                    "No chart of the found function: {}.",
                    chart.warnings.first().map_or("it cannot be drawn", String::as_str)
                ))),
                false => blocks.push(Block::Figure {
                    file: format!("{name}-formula"),
                    caption: format!("{}: the found function next to ReLU and SiLU", run.name),
                    figure: chart.figure,
                }),
            }
        }
        Some(Err(e)) => {
            let line = format!("search {}: cannot draw its found function: {e:#}", run.name);
            blocks.push(Block::Text(format!("No chart of the found function: {e:#}.")));
            warnings.push(line);
        }
        None => {}
    }
    // The file keeps its name for a language model, whose chart is the loss per step.
    let (what, per) = match run.errors.higher_is_better {
        true => ("accuracy", "per epoch"),
        false => ("loss (lower is better)", "per step"),
    };
    blocks.push(Block::Figure {
        file: format!("{name}-accuracy"),
        caption: format!("{}: {what} of the supernet {per}", run.name),
        figure: Figure::single(accuracy_panel(run, format!("{}: {what}", run.name))),
    });
    Ok(blocks)
}

fn sample_blocks(samples: &[(&Run, &Sample)]) -> Vec<Block> {
    type Curve = fn(&Sample) -> Option<Vec<(f64, f64)>>;
    let against: [(&str, &str, bool, Curve); 3] = [
        ("sample-best-reward", "children trained", true, |s| Some(s.best_so_far())),
        ("sample-best-reward-steps", "child steps spent", false, Sample::best_so_far_by_steps),
        ("sample-best-reward-seconds", "child-seconds spent", false, Sample::best_so_far_by_seconds),
    ];
    let mut blocks = Vec::new();
    for (file, x_label, integer_x, curve) in against {
        // Searches from before the steps and seconds were recorded have only the first.
        let Some(curves) = samples.iter().map(|(_, s)| curve(s)).collect::<Option<Vec<_>>>() else { continue };
        let runs: Vec<(String, Vec<(f64, f64)>)> = samples
            .iter()
            .zip(curves)
            .map(|((run, s), points)| (format!("{} ({})", s.method, run.name), points))
            .collect();
        let panels: Vec<Panel> = runs
            .chunks(PER_PANEL)
            .map(|chunk| Panel {
                title: "best reward so far".into(),
                x_label: x_label.into(),
                y_label: "reward (higher is better)".into(),
                integer_x,
                lines: chunk
                    .iter()
                    .enumerate()
                    .map(|(i, (name, points))| Line {
                        steps: true,
                        ..Line::new(name.clone(), points.clone(), i % PALETTE.len())
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        blocks.push(Block::Figure {
            file: file.into(),
            caption: format!("best reward so far against {x_label}, per run"),
            figure: Figure { title: None, panels, columns: 1, panel_size: None },
        });
    }
    blocks.extend(method_blocks(samples));
    for (run, s) in samples {
        blocks.push(Block::Table {
            caption: format!("{} ({}): top {TOP_K} formulas of {} children", run.name, s.method, s.children.len()),
            table: tables::top_k(s, TOP_K),
        });
    }
    blocks
}

/// Where several search seeds ran one method and fidelity (an arm, as `compare` groups
/// them): best reward so far against child-seconds, one panel per space × child recipe ×
/// budget, each seed a thin line and the arm's mean over its seeds a thick one, drawn last.
fn method_blocks(samples: &[(&Run, &Sample)]) -> Vec<Block> {
    let curves = samples.iter().filter_map(|(_, s)| Some((*s, s.best_so_far_by_seconds().filter(|c| !c.is_empty())?)));
    let groups = by_arm(curves);
    let panels: Vec<Panel> = groups
        .into_iter()
        .filter(|(_, (_, arms))| arms.values().any(|seeds| seeds.len() > 1))
        .map(|((space, _, budget), (label, arms))| {
            let mut lines = Vec::new();
            for (i, seeds) in arms.values().enumerate() {
                let color = i % PALETTE.len();
                for curve in seeds {
                    lines.push(Line {
                        label: None,
                        segments: vec![curve.clone()],
                        color: Some(color),
                        width: Some(1),
                        steps: true,
                        ..Default::default()
                    });
                }
            }
            for (i, (arm, seeds)) in arms.iter().enumerate() {
                let name = format!("{arm}: mean of {} seed{}", seeds.len(), if seeds.len() == 1 { "" } else { "s" });
                lines.push(Line {
                    width: Some(4),
                    steps: true,
                    ..Line::new(name, mean_curve(seeds), i % PALETTE.len())
                });
            }
            let budget = budget.map_or(String::new(), |b| format!(", budget {b} child steps"));
            Panel {
                title: format!("best reward so far: {space}{budget}"),
                x_label: format!("child-seconds spent (children: {label})"),
                y_label: "reward (higher is better)".into(),
                lines,
                legend_outside: true,
                ..Default::default()
            }
        })
        .collect();
    match panels.is_empty() {
        true => Vec::new(),
        false => vec![Block::Figure {
            file: "sample-methods-seconds".into(),
            caption: "best reward so far against child-seconds, per method and fidelity: thin lines are search seeds, thick ones their mean".into(),
            figure: Figure { title: None, panels, columns: 1, panel_size: Some((960, 480)) },
        }],
    }
}

/// The mean of step curves (each holds its value until its next point) where all are
/// defined: from the latest first point to the earliest last one.
fn mean_curve(curves: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
    let start = curves.iter().filter_map(|c| c.first()).map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let end = curves.iter().filter_map(|c| c.last()).map(|p| p.0).fold(f64::INFINITY, f64::min);
    let mut xs: Vec<f64> = curves.iter().flatten().map(|p| p.0).filter(|&x| x >= start && x <= end).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let at = |c: &[(f64, f64)], x: f64| c.iter().take_while(|p| p.0 <= x).last().map_or(f64::NAN, |p| p.1);
    xs.into_iter().map(|x| (x, curves.iter().map(|c| at(c, x)).sum::<f64>() / curves.len() as f64)).collect()
}

/// Writes every figure (PNG and SVG), `report.md` and `report.html` into `out`.
pub fn write(report: &Report, out: &Path) -> Result<Written> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut images = Vec::new();
    let mut md = String::from("# actsearch report\n\n");
    let mut html = String::from(HTML_HEAD);
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for section in &report.sections {
        md += &format!("## {}\n\n", section.title);
        html += &format!("<h2>{}</h2>\n", escape(&section.title));
        for block in &section.blocks {
            match block {
                Block::Text(text) => {
                    md += &format!("{text}\n\n");
                    html += &format!("<p>{}</p>\n", code_spans(&escape(text)));
                }
                Block::Table { caption, table } => {
                    md += &format!("**{caption}**\n\n{}\n", table.to_markdown());
                    html += &format!("<h3>{}</h3>\n{}", escape(caption), table.to_html());
                }
                Block::Figure { file, figure, caption } => {
                    let count = used.entry(file.clone()).or_insert(0);
                    *count += 1;
                    let file = if *count == 1 { file.clone() } else { format!("{file}-{count}") };
                    let (png, svg) = (out.join(format!("{file}.png")), out.join(format!("{file}.svg")));
                    charts::save_png(figure, &png)?;
                    let svg_text = charts::svg_string(figure)?;
                    fs::write(&svg, &svg_text).with_context(|| format!("cannot write {}", svg.display()))?;
                    images.extend([png, svg]);
                    md += &format!("![{caption}]({file}.png)\n\n*{caption}*\n\n");
                    html += &format!(
                        "<figure>{}<figcaption>{}</figcaption></figure>\n",
                        inline_svg(&svg_text),
                        escape(caption)
                    );
                }
            }
        }
    }
    html += "</body>\n</html>\n";
    let (markdown, html_path) = (out.join("report.md"), out.join("report.html"));
    fs::write(&markdown, md).with_context(|| format!("cannot write {}", markdown.display()))?;
    fs::write(&html_path, html).with_context(|| format!("cannot write {}", html_path.display()))?;
    Ok(Written { markdown, html: html_path, images })
}

/// An SVG document as an element inside HTML (without its XML declaration), scaled to the page.
fn inline_svg(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen("<svg", "<svg style=\"max-width:100%;height:auto\"", 1)
}

/// Markdown's `code` spans as HTML `<code>` (the text is already escaped).
fn code_spans(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        match i % 2 {
            1 => out += &format!("<code>{part}</code>"),
            _ => out += part,
        }
    }
    out
}

const HTML_HEAD: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>actsearch report</title>
<style>
body { font-family: sans-serif; max-width: 1320px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1em 0 2em; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f4f4f4; padding: 0.1em 0.3em; }
</style>
</head>
<body>
<h1>actsearch report</h1>
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::runs::{AlphaEpoch, Child, Errors};

    /// The mean of step curves is taken where every curve is defined, each holding its value
    /// between points; the methods' chart draws each arm's seeds thin and their mean thick,
    /// after every thin line, and only where an arm has more than one seed.
    #[test]
    fn the_methods_chart_draws_thin_seeds_then_thick_means() {
        let mean = mean_curve(&[vec![(0.0, 0.1), (2.0, 0.3), (5.0, 0.5)], vec![(1.0, 0.2), (4.0, 0.4)]]);
        assert_eq!(mean, vec![(1.0, 0.15000000000000002), (2.0, 0.25), (4.0, 0.35)]);
        let search = |seed: u64, method: &str| {
            let mut facts = crate::report::runs::SearchFacts { space: "core1".into(), ..Default::default() };
            facts.fidelity = "full".into();
            let child = |c, seconds| Child {
                child: c,
                formula: "x".into(),
                reward: 0.1 * c as f64,
                steps: Some(3),
                seconds: Some(seconds),
            };
            let sample =
                Sample { method: method.into(), children: vec![child(1, 1.0 + seed as f64), child(2, 2.0)], facts };
            (run(&format!("{method}{seed}"), seed, RunKind::Eval), sample)
        };
        let searches = [search(0, "random"), search(1, "random"), search(0, "evolution")];
        let pairs: Vec<(&Run, &Sample)> = searches.iter().map(|(r, s)| (r, s)).collect();
        let blocks = method_blocks(&pairs);
        let [Block::Figure { figure, .. }] = blocks.as_slice() else { panic!("one figure") };
        let widths: Vec<Option<u32>> = figure.panels[0].lines.iter().map(|l| l.width).collect();
        assert_eq!(widths, [Some(1), Some(1), Some(1), Some(4), Some(4)]);
        let labels: Vec<Option<&str>> = figure.panels[0].lines.iter().map(|l| l.label.as_deref()).collect();
        assert_eq!(labels[3..], [Some("evolution: mean of 1 seed"), Some("random: mean of 2 seeds")]);
        assert!(method_blocks(&pairs[2..]).is_empty(), "one seed per arm needs no mean");
    }

    fn run(name: &str, seed: u64, kind: RunKind) -> Run {
        let curves =
            [("train_acc".to_string(), vec![30.0, 40.0]), ("test_acc".to_string(), vec![35.0, 45.0 + seed as f64])];
        Run {
            dir: name.into(),
            name: name.into(),
            errors: Errors {
                seed: Some(seed),
                network: "resnet8".into(),
                dataset: "cifar10".into(),
                activation: "relu(x)".into(),
                curves: curves.into_iter().collect(),
                formulas: vec![],
                metric: "test_acc".into(),
                higher_is_better: true,
            },
            kind,
            planned_epochs: Some(2),
            final_file: true,
            written: None,
            recipe: Default::default(),
        }
    }

    fn one_shot(sites: usize) -> OneShot {
        let ops: Vec<String> = (0..9).map(|i| format!("op{i}")).collect();
        let epoch = |epoch: usize| AlphaEpoch {
            step: None,
            epoch,
            formula: "x + sin(x)".into(),
            weights: vec![vec![vec![1.0 / 9.0; 9], vec![0.5, 0.5]]; sites],
        };
        OneShot {
            method: Some("darts".into()),
            positions: vec!["u1".into(), "b".into()],
            ops: vec![ops, vec!["add".into(), "mul".into()]],
            epochs: vec![epoch(1), epoch(2)],
            genotype: None,
        }
    }

    /// The alpha legend names the ops by their peak weight at any epoch, only those that rose
    /// above uniform; an op heavy early and gone by the end is named, one never above uniform
    /// is grey.
    #[test]
    fn alpha_legends_name_the_ops_that_mattered() {
        let mut search = one_shot(1);
        let weights = |w: [f64; 9]| vec![vec![w.to_vec(), vec![0.5, 0.5]]];
        let u = 1.0 / 9.0;
        // op0 was the heaviest in epoch 1 and faded; op8 wins at the end; op3 rose a little;
        // the rest only fell.
        search.epochs[0].weights = weights([0.5, u, 0.05, 0.0, 0.05, 0.05, 0.05, 0.05, 0.2]);
        search.epochs[1].weights = weights([0.01, 0.05, 0.0, 0.14, 0.0, 0.0, 0.0, 0.0, 0.8]);
        let panels = alpha_panels(&search, 0, "");
        let labels: Vec<Option<&str>> = panels[0].lines.iter().map(|l| l.label.as_deref()).collect();
        assert_eq!(
            labels[..4],
            [Some("op8"), Some("op0"), Some("op3"), Some("6 other ops (never above uniform, 1/9)")]
        );
        assert!(panels[0].lines[3..].iter().all(|l| l.color.is_none()));
        // Every op of the binary position sat at uniform: all grey.
        let labels: Vec<Option<&str>> = panels[1].lines.iter().map(|l| l.label.as_deref()).collect();
        assert_eq!(labels, [Some("2 other ops (never above uniform, 1/2)"), None]);
    }

    #[test]
    fn writes_every_file_of_a_mixed_report() {
        let sample = Sample {
            method: "random".into(),
            children: vec![Child { child: 1, formula: "x".into(), reward: 0.4, steps: None, seconds: None }],
            ..Default::default()
        };
        let runs = vec![
            run("a", 0, RunKind::Eval),
            run("b", 1, RunKind::Eval),
            run("s", 0, RunKind::OneShot(one_shot(2))),
            run("shared", 0, RunKind::OneShot(one_shot(1))),
            run("r", 0, RunKind::Sample(sample)),
        ];
        let report = build(&runs, &"relu(x)".into()).unwrap();
        let titles: Vec<&str> = report.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["Results", "Evaluations", "Search s", "Search shared", "Sample-based searches"]);
        let dir = tempfile::tempdir().unwrap();
        let written = write(&report, dir.path()).unwrap();
        let names: Vec<String> =
            written.images.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for expected in [
            "eval-resnet8-on-cifar10-relu-x.png",
            "s-alphas-site0.svg",
            "s-alphas-site1.png",
            "shared-alphas-u1.png",
            "shared-alphas-b.svg",
            "s-formula.png",
            "s-accuracy.png",
            "sample-best-reward.png",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} not in {names:?}");
        }
        for image in &written.images {
            let bytes = fs::read(image).unwrap();
            match image.extension().unwrap().to_str().unwrap() {
                "png" => assert!(image::load_from_memory(&bytes).is_ok(), "{}", image.display()),
                _ => assert!(bytes.starts_with(b"<svg") && String::from_utf8_lossy(&bytes).contains("</svg>")),
            }
        }
        let md = fs::read_to_string(&written.markdown).unwrap();
        assert!(
            md.contains("| resnet8 | cifar10 |  | relu(x) | 45.50 ± 0.71 | 2 (0,1) | [39.15, 51.85] | baseline |"),
            "{md}"
        );
        assert!(md.contains("(s-alphas-site0.png)"));
        let html = fs::read_to_string(&written.html).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
        // Self-contained: every figure inline, nothing fetched.
        assert_eq!(html.matches("<svg").count(), names.len() / 2);
        assert!(!html.contains("src=") && !html.contains("href="));
        assert!(html.contains("<code>x + sin(x)</code>"));
    }

    /// Every chart of a report, each panel as drawn: no legend box crosses a data line, and
    /// the found function's curve is drawn last.
    #[test]
    fn no_report_chart_hides_data_under_a_legend() {
        use crate::report::charts::tests::{assert_legend_clear, data_and_legend, hex};
        let searches = (0..8).map(|seed| {
            let children = (1..=30)
                .map(|c| Child {
                    child: c,
                    formula: "x".into(),
                    reward: 0.5 - 0.4 / c as f64 + 0.01 * seed as f64,
                    steps: Some(3),
                    seconds: Some(c as f64),
                })
                .collect();
            let sample = Sample { method: "random".into(), children, ..Default::default() };
            run(&format!("r{seed}"), seed, RunKind::Sample(sample))
        });
        let mut runs = vec![
            run("a", 0, RunKind::Eval),
            run("s", 0, RunKind::OneShot(one_shot(2))),
            run("shared", 0, RunKind::OneShot(one_shot(1))),
        ];
        runs.extend(searches);
        let report = build(&runs, &"relu(x)".into()).unwrap();
        let mut checked = Vec::new();
        for block in report.sections.iter().flat_map(|s| &s.blocks) {
            let Block::Figure { file, figure, .. } = block else { continue };
            let size = figure.panel_size.unwrap_or((640, 420));
            for panel in figure.panels.iter().filter(|p| p.lines.iter().any(|l| l.label.is_some())) {
                assert_legend_clear(panel, size);
            }
            if file.ends_with("-formula") {
                let single = Figure { panel_size: Some(size), ..Figure::single(figure.panels[0].clone()) };
                let (data, _) = data_and_legend(&charts::svg_string(&single).unwrap());
                let last = data.last().unwrap();
                assert_eq!((last.1.clone(), last.2), (hex(PALETTE[0]), 3), "the found function comes last");
            }
            checked.push(file.clone());
        }
        for file in ["eval-resnet8-on-cifar10-relu-x", "s-alphas-site0", "s-formula", "sample-best-reward"] {
            assert!(checked.iter().any(|f| f == file), "{file} not in {checked:?}");
        }
    }

    #[test]
    fn a_found_function_that_cannot_be_drawn_is_said_not_charted() {
        let mut search = one_shot(1);
        search.epochs.iter_mut().for_each(|e| e.formula = "x/0".into());
        let report = build(&[run("s", 0, RunKind::OneShot(search))], &"relu(x)".into()).unwrap();
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(report.warnings[0].starts_with("search s: x/0 is undefined"), "{:?}", report.warnings);
        let dir = tempfile::tempdir().unwrap();
        let written = write(&report, dir.path()).unwrap();
        assert!(!written.images.iter().any(|p| p.to_string_lossy().contains("formula")), "{:?}", written.images);
        let md = fs::read_to_string(&written.markdown).unwrap();
        assert!(md.contains("No chart of the found function: x/0 is undefined"), "{md}");
    }

    #[test]
    fn unfinished_runs_repeated_seeds_and_undrawable_functions_are_said() {
        let killed = Run { planned_epochs: Some(3), final_file: false, ..run("killed", 0, RunKind::Eval) };
        let mut search = one_shot(1);
        search.epochs.iter_mut().for_each(|e| e.formula = "x/0".into());
        let runs = vec![
            run("done", 0, RunKind::Eval),
            run("copy", 0, RunKind::Eval),
            killed,
            Run { final_file: false, ..run("s", 0, RunKind::OneShot(search)) },
        ];
        let report = build(&runs, &"relu(x)".into()).unwrap();
        assert_eq!(report.notes, ["unfinished runs, left out of the results table: killed (2 of 3 epochs)"]);
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        assert!(
            report.warnings[0].starts_with("seed 0 of resnet8 on cifar10 with relu(x) is in 2 runs"),
            "{:?}",
            report.warnings
        );
        assert!(report.warnings[1].starts_with("search s: x/0 is undefined"), "{:?}", report.warnings);
        let dir = tempfile::tempdir().unwrap();
        let written = write(&report, dir.path()).unwrap();
        let md = fs::read_to_string(&written.markdown).unwrap();
        // One seed, once: not the killed run's accuracy, not the copy's twice.
        assert!(md.contains("| resnet8 | cifar10 |  | relu(x) | 45.00 ± 0.00 | 1 (0; seed 0 in several runs, one used) | (one seed) | baseline |"), "{md}");
        assert!(md.contains("Unfinished runs, left out of the results table: killed (2 of 3 epochs)."), "{md}");
        assert!(
            md.contains("Unfinished (2 of 2 epochs, no genotype.json): the formula of its last epoch so far is `x/0`."),
            "{md}"
        );
    }

    #[test]
    fn slugs_are_safe_file_names() {
        assert_eq!(slug("resnet20 on cifar10, x*sigmoid(b*x)"), "resnet20-on-cifar10-x-sigmoid-b-x");
        assert_eq!(slug("eval/seed-1#2"), "eval-seed-1-2");
    }
}
