//! `actsearch plot FORMULA...`: the functions (and optionally their derivatives) on one chart,
//! the first drawn on top of the others (with a difference panel where it hides one), written
//! as PNG or SVG. A function that cannot be drawn over the range (undefined there, or
//! off the chart) gets one warning line on stderr; when none can be drawn, nothing is written
//! and the command fails.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::stdout;
use crate::report::{charts, shapes, shown, shown_path};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Activations to draw: names (relu, silu, ...; see `actsearch functions`), formulas
    /// ("x*sigmoid(b*x)") or a search's genotype.json (drawn with its learned parameters'
    /// mean). Parameters of names and formulas are drawn at their initial value 1.
    /// A formula starting with '-' goes after `--` (plot -- -x) or in parentheses ("(-x)").
    /// The first is the chart's subject: drawn last and thicker, over the others; where it
    /// lies within a pixel of another over most of the range, a second panel shows their
    /// difference.
    #[arg(required = true, value_name = "FORMULA", allow_negative_numbers = true)]
    pub formulas: Vec<String>,
    /// Output image; the extension picks the format (.png or .svg).
    #[arg(long, default_value = "plot.png")]
    pub out: PathBuf,
    /// The x range as LOW,HIGH.
    #[arg(long, default_value = "-5,5", allow_hyphen_values = true, value_parser = parse_range)]
    pub range: (f64, f64),
    /// Also draw each function's first derivative (dashed, same color).
    #[arg(long)]
    pub derivative: bool,
    /// Chart title.
    #[arg(long, default_value = "activation functions", allow_hyphen_values = true)]
    pub title: String,
}

fn parse_range(text: &str) -> std::result::Result<(f64, f64), String> {
    let bad =
        || format!("\"{}\" is not a range: write LOW,HIGH with LOW < HIGH (|values| <= 1e12), e.g. -5,5", shown(text));
    let (lo, hi) = text.split_once(',').ok_or_else(bad)?;
    let (lo, hi): (f64, f64) = (lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?);
    match lo < hi && lo.abs() <= 1e12 && hi.abs() <= 1e12 {
        true => Ok((lo, hi)),
        false => Err(bad()),
    }
}

pub fn run(args: PlotArgs) -> Result<()> {
    let list = args.formulas.iter().map(|f| shapes::shape(f)).collect::<Result<Vec<_>>>()?;
    if list.len() > charts::PALETTE.len() {
        bail!("{} functions on one chart are unreadable: plot at most {} at a time", list.len(), charts::PALETTE.len());
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        bail!("cannot write {}: the folder {} does not exist", shown_path(&args.out), shown_path(dir));
    }
    let chart = shapes::figure(&list, args.range, args.derivative, &args.title);
    for warning in &chart.warnings {
        eprintln!("warning: {warning}");
    }
    if chart.drawn.is_empty() {
        let (lo, hi) = args.range;
        match list.len() {
            1 => bail!(
                "nothing to draw: {} cannot be drawn over {lo}..{hi} (see the warning above), so nothing was written; try another --range",
                shown(&args.formulas[0])
            ),
            n => bail!(
                "nothing to draw: none of the {n} functions can be drawn over {lo}..{hi} (see the warnings above), so nothing was written; try another --range"
            ),
        }
    }
    charts::save(&chart.figure, &args.out)?;
    let mut text = format!("wrote {}\n", args.out.display());
    for &i in &chart.drawn {
        text += &format!("  {}\n", list[i].label);
    }
    stdout(&text)
}
