//! Function shapes: activations (a name, a formula or a search's `genotype.json`) sampled over
//! a range, optionally with their first derivatives, as one chart. Parameters take their
//! initial value (1, or the genotype's `init`), or for a genotype with learned values the mean
//! of those over every site and channel; the legend says which.
//!
//! A curve is cut where the function is not finite (1/x at 0). A function that is finite
//! nowhere on the range (x/0, 0/0), or whose values all lie outside the chart's y range, is
//! left out of the chart and named in a warning, never drawn as a silent empty curve.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::charts::{Figure, Line, Panel};
use super::shown;
use crate::expr::print::format_number;
use crate::expr::{Formula, resolve};
use crate::space::genotype::Genotype;

/// Points sampled per curve.
const SAMPLES: usize = 401;

/// A function to draw: its legend label, formula and parameter values.
#[derive(Clone, Debug)]
pub struct Shape {
    pub label: String,
    pub formula: Formula,
    pub params: Vec<f64>,
}

/// The shape of an activation given as on the command line: a `*.json` genotype, a named
/// activation or a formula.
pub fn shape(spec: &str) -> Result<Shape> {
    if spec.ends_with(".json") {
        return of_genotype(&Genotype::load(Path::new(spec))?);
    }
    let formula = resolve(spec).with_context(|| format!("cannot plot \"{}\"", shown(spec)))?;
    let params = vec![1.0; formula.num_params()];
    Ok(labelled(formula, params, "initial"))
}

/// The shape of a genotype's formula, its parameters at their learned mean if it has them.
pub fn of_genotype(genotype: &Genotype) -> Result<Shape> {
    let formula = genotype.parsed()?;
    if genotype.params.len() != formula.num_params() {
        bail!("the genotype's formula has {} parameters but it lists {}", formula.num_params(), genotype.params.len());
    }
    let learned: Option<Vec<f64>> = genotype
        .params
        .iter()
        .map(|p| {
            let values: Vec<f64> = p.learned.iter().flatten().flatten().map(|&v| v as f64).collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        })
        .collect();
    Ok(match learned {
        Some(values) => labelled(formula, values, "learned mean"),
        None => labelled(formula, genotype.init_values(), "initial"),
    })
}

/// A shape labelled with its canonical formula and, if it has parameters, their values.
fn labelled(formula: Formula, params: Vec<f64>, origin: &str) -> Shape {
    let mut label = formula.canonical().to_string();
    if !params.is_empty() {
        let values: Vec<String> = params.iter().map(|&v| format_number((v * 1000.0).round() / 1000.0)).collect();
        label += &format!("  [params {} ({origin})]", values.join(", "));
    }
    Shape { label, formula, params }
}

impl Shape {
    /// (value, derivative) at x.
    pub fn at(&self, x: f64) -> (f64, f64) {
        let mut dparams = vec![0.0; self.params.len()];
        self.formula.eval_grad(x, &self.params, &mut dparams)
    }
}

/// A chart of functions, and what of them it could not show.
pub struct ShapeChart {
    pub figure: Figure,
    /// Indices (into the shapes given) of the functions whose curve is on the chart.
    pub drawn: Vec<usize>,
    /// One line per function (or derivative) that is not on the chart, saying why.
    pub warnings: Vec<String>,
}

/// The functions (and their derivatives, dashed, if `derivative`) over `range` on one chart;
/// those that cannot be seen there are left out and named in the warnings.
pub fn figure(shapes: &[Shape], range: (f64, f64), derivative: bool, title: &str) -> ShapeChart {
    let xs: Vec<f64> = (0..SAMPLES).map(|i| range.0 + (range.1 - range.0) * i as f64 / (SAMPLES - 1) as f64).collect();
    let over = format!("{}..{}", format_number(range.0), format_number(range.1));
    let mut warnings = Vec::new();
    // (index of the shape, is it the derivative, line)
    let mut curves: Vec<(usize, bool, Line)> = Vec::new();
    // Each function's values at xs (for the difference panel).
    let mut values: Vec<Vec<f64>> = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        let points: Vec<(f64, f64, f64)> = xs
            .iter()
            .map(|&x| {
                let (y, dy) = s.at(x);
                (x, y, dy)
            })
            .collect();
        values.push(points.iter().map(|p| p.1).collect());
        let name = shown(&s.formula.canonical().to_string());
        let value = finite_runs(points.iter().map(|p| (p.0, p.1)));
        if value.is_empty() {
            warnings.push(format!("{name} is undefined over the whole range {over} (no finite values): not drawn"));
            continue;
        }
        let focal = i == 0;
        curves.push((i, false, Line { segments: value, focal, ..Line::new(&s.label, vec![], i) }));
        if derivative {
            let slope = finite_runs(points.iter().map(|p| (p.0, p.2)));
            match slope.is_empty() {
                true => warnings
                    .push(format!("the derivative of {name} is undefined over the whole range {over}: not drawn")),
                false => curves.push((
                    i,
                    true,
                    Line {
                        segments: slope,
                        dashed: true,
                        focal,
                        ..Line::new(format!("d/dx of {}", s.formula.canonical()), vec![], i)
                    },
                )),
            }
        }
    }
    let all: Vec<Line> = curves.iter().map(|c| c.2.clone()).collect();
    let (lo, hi) = y_range(&all, range);
    let mut lines = Vec::new();
    let mut drawn = Vec::new();
    for (i, is_derivative, line) in curves {
        if !visible(&line, (lo, hi)) {
            let what = match is_derivative {
                true => format!("the derivative of {}", shown(&shapes[i].formula.canonical().to_string())),
                false => shown(&shapes[i].formula.canonical().to_string()),
            };
            warnings.push(format!(
                "{what} lies outside the chart's y range {}..{} over all of {over}: not drawn (plot it on its own to see it)",
                format_number(round3(lo)),
                format_number(round3(hi))
            ));
            continue;
        }
        if !is_derivative {
            drawn.push(i);
        }
        lines.push(line);
    }
    let panel = Panel {
        title: title.into(),
        x_label: "x".into(),
        y_label: if derivative { "f(x), f'(x) dashed" } else { "f(x)" }.into(),
        lines,
        x_range: Some(range),
        y_range: Some((lo, hi)),
        integer_x: false,
        legend_outside: true,
    };
    let mut panels = vec![panel];
    let gaps: Vec<(usize, Vec<f64>)> = match drawn.first() {
        Some(&0) => {
            drawn[1..].iter().map(|&j| (j, values[0].iter().zip(&values[j]).map(|(f, g)| f - g).collect())).collect()
        }
        _ => Vec::new(),
    };
    if coincides(&gaps, hi - lo) {
        panels.push(difference_panel(shapes, &gaps, &xs, range));
    }
    let size = if panels.len() == 1 { (980, 460) } else { (980, 400) };
    ShapeChart { figure: Figure { title: None, panels, columns: 1, panel_size: Some(size) }, drawn, warnings }
}

/// The height in pixels of the plot area of a function chart's panel (400 px tall, less its
/// caption, margins and x labels); a difference smaller than one pixel of it is invisible.
const PLOT_PIXELS: f64 = 320.0;

/// Whether the first (focal) function and some other drawn one lie within a pixel of each
/// other (`span` is the y range drawn) over at least half of the range, so that the focal
/// curve hides the other; `gaps` are `f - g` at the sampled x for each other function g.
fn coincides(gaps: &[(usize, Vec<f64>)], span: f64) -> bool {
    let pixel = span / PLOT_PIXELS;
    gaps.iter().any(|(_, gap)| 2 * gap.iter().filter(|d| d.is_finite() && d.abs() < pixel).count() >= gap.len())
}

/// `f - g` for the focal function f and each other drawn function g (`gaps`, at `xs`), with a
/// zero line: where curves that coincide on the main chart differ, and by how much.
fn difference_panel(shapes: &[Shape], gaps: &[(usize, Vec<f64>)], xs: &[f64], range: (f64, f64)) -> Panel {
    let focal = shown(&shapes[0].formula.canonical().to_string());
    let mut lines = vec![Line { segments: vec![vec![(range.0, 0.0), (range.1, 0.0)]], ..Default::default() }];
    for (j, gap) in gaps {
        let name = shown(&shapes[*j].formula.canonical().to_string());
        let segments = finite_runs(xs.iter().copied().zip(gap.iter().copied()));
        lines.push(Line { segments, ..Line::new(format!("f - {name}"), vec![], *j) });
    }
    let (lo, hi) = y_range(&lines, range);
    Panel {
        title: format!("where they differ: f - baseline, f = {focal}"),
        x_label: "x".into(),
        y_label: "f(x) - baseline(x)".into(),
        lines,
        x_range: Some(range),
        y_range: Some((lo.min(-1e-3), hi.max(1e-3))),
        integer_x: false,
        legend_outside: true,
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Whether some piece of the line (two neighbouring points) lies inside the y range, which is
/// what the chart draws of it.
fn visible(line: &Line, (lo, hi): (f64, f64)) -> bool {
    let inside = |p: &(f64, f64)| p.1 >= lo && p.1 <= hi;
    line.segments.iter().any(|seg| seg.windows(2).any(|w| inside(&w[0]) && inside(&w[1])))
}

/// The curve split where it is not finite, without lone points (a line needs two).
fn finite_runs(points: impl Iterator<Item = (f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let points: Vec<(f64, f64)> = points.collect();
    points.split(|p| !p.1.is_finite()).filter(|s| s.len() >= 2).map(<[_]>::to_vec).collect()
}

/// The values' extent from their 2nd to 98th percentile (so a spike at a kink does not set
/// it), limited to 10x the x extent so one steep function (exp, x^3) does not flatten the
/// others; the curves are cut where they leave it.
fn y_range(lines: &[Line], range: (f64, f64)) -> (f64, f64) {
    let limit = 10.0 * range.0.abs().max(range.1.abs()).max(1.0);
    let mut values: Vec<f64> = lines.iter().flat_map(|l| l.segments.iter().flatten().map(|p| p.1)).collect();
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return (-1.0, 1.0);
    }
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    let (lo, hi) = match (at(0.02).max(-limit), at(0.98).min(limit)) {
        // Everything beyond the limit (e.g. exp over 4..5): the data's own range then.
        (lo, hi) if lo >= hi => (at(0.02), at(0.98)),
        clamped => clamped,
    };
    match hi > lo && (hi - lo).is_finite() {
        true => (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)),
        false => (lo.clamp(-1e12, 1e12) - 1.0, lo.clamp(-1e12, 1e12) + 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::genotype::{ParamInfo, PositionChoice};

    #[test]
    fn shapes_evaluate_with_their_parameters_and_say_where_they_come_from() {
        let swish = shape("x*sigmoid(b*x)").unwrap();
        assert!(swish.label.contains("(initial)"), "{}", swish.label);
        assert!((swish.at(2.0).0 - 2.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
        assert_eq!(shape("relu").unwrap().label, "relu(x)");
        let genotype = Genotype {
            space: "small".into(),
            ops: vec![PositionChoice { position: "u1".into(), op: "beta_mul".into() }],
            formula: "b*x".into(),
            params: vec![ParamInfo {
                name: "b".into(),
                init: 1.0,
                position: "u1".into(),
                slot: 0,
                learned: Some(vec![vec![1.0, 2.0], vec![3.0, 4.0]]),
            }],
            layout: Default::default(),
        };
        let learned = of_genotype(&genotype).unwrap();
        assert_eq!(learned.params, vec![2.5]);
        assert!(learned.label.contains("2.5 (learned mean)"), "{}", learned.label);
        assert!(shape("x*").unwrap_err().to_string().contains("cannot plot"));
    }

    #[test]
    fn the_first_function_is_focal_and_a_difference_panel_shows_what_it_hides() {
        let [found, relu, silu] = ["max(x, 0.01*x)", "relu", "silu"].map(|f| shape(f).unwrap());
        let chart = figure(&[found.clone(), relu.clone(), silu.clone()], (-5.0, 5.0), true, "t");
        let main = &chart.figure.panels[0];
        let focal: Vec<bool> = main.lines.iter().map(|l| l.focal).collect();
        assert_eq!(focal, [true, true, false, false, false, false], "the found function and its derivative");
        // Within a pixel of relu over most of the range: a second panel gives f - baseline.
        assert_eq!(chart.figure.panels.len(), 2);
        let gap = &chart.figure.panels[1];
        let labels: Vec<_> = gap.lines.iter().filter_map(|l| l.label.as_deref()).collect();
        assert_eq!(labels, ["f - relu(x)", "f - silu(x)"]);
        let at = |line: &Line, x: f64| line.segments.iter().flatten().find(|p| (p.0 - x).abs() < 1e-9).unwrap().1;
        assert!((at(&gap.lines[1], -4.0) - (-0.04)).abs() < 1e-9 && at(&gap.lines[1], 2.0).abs() < 1e-12);
        // A function unlike the baselines needs no second panel.
        let apart = figure(&[shape("sin(x)").unwrap(), relu, silu], (-5.0, 5.0), false, "t");
        assert_eq!(apart.figure.panels.len(), 1);
        let single = figure(&[found], (-5.0, 5.0), false, "t");
        assert_eq!(single.figure.panels.len(), 1);
    }

    #[test]
    fn the_figure_cuts_undefined_and_out_of_range_values() {
        let shapes = [shape("log(x)").unwrap(), shape("exp(x)").unwrap()];
        let chart = figure(&shapes, (-5.0, 5.0), true, "t");
        assert!(chart.warnings.is_empty() && chart.drawn == [0, 1], "{:?}", chart.warnings);
        let panel = &chart.figure.panels[0];
        assert_eq!(panel.lines.len(), 4);
        assert!(panel.lines[1].dashed && panel.lines[1].label.as_deref().unwrap().starts_with("d/dx"));
        let (lo, hi) = panel.y_range.unwrap();
        // exp(5) = 148 is cut at 10x the x extent (50), plus 5% of the range as margin.
        assert!(hi <= 50.0 + 0.05 * (50.0 - lo) + 1e-9, "{lo}..{hi}");
        // log's protected value for x <= 0 (log(1e-10) = -23) is a real value: it stays in.
        assert!(lo < -23.0, "{lo}..{hi}");
        for line in &panel.lines {
            assert!(line.segments.iter().flatten().all(|p| p.1.is_finite()));
        }
        // All values beyond the cap: the range is the data's, not inverted.
        let steep = figure(&[shape("exp(x)").unwrap()], (4.0, 5.0), false, "t");
        let (lo, hi) = steep.figure.panels[0].y_range.unwrap();
        assert!(lo < 60.0 && hi > 140.0, "{lo}..{hi}");
    }

    #[test]
    fn functions_that_cannot_be_seen_are_left_out_with_a_warning() {
        let shapes = ["x/0", "1/x", "0/0", "x", "x + 1000"].map(|f| shape(f).unwrap());
        let chart = figure(&shapes, (-5.0, 5.0), false, "t");
        // 1/x is cut at 0, not dropped; x + 1000 is beyond the 10x cap that x sets.
        assert_eq!(chart.drawn, [1, 3], "{:?}", chart.warnings);
        assert_eq!(chart.figure.panels[0].lines.len(), 2);
        assert_eq!(chart.warnings.len(), 3, "{:?}", chart.warnings);
        let undefined = chart.warnings.iter().filter(|w| w.contains("is undefined over the whole range -5..5")).count();
        assert_eq!(undefined, 2, "{:?}", chart.warnings);
        assert!(chart.warnings[2].contains("1000 lies outside the chart's y range"), "{:?}", chart.warnings);
        // A huge formula is named by its first 80 characters.
        fn sum(from: usize, to: usize) -> String {
            match to - from {
                1 => format!("sin(x + {from})"),
                n => format!("({} + {})", sum(from, from + n / 2), sum(from + n / 2, to)),
            }
        }
        let chart = figure(&[shape(&format!("{}/0", sum(0, 1024))).unwrap()], (-5.0, 5.0), false, "t");
        assert!(chart.drawn.is_empty());
        assert!(chart.warnings[0].len() < 200 && chart.warnings[0].contains("..."), "{}", chart.warnings[0]);
    }
}
