//! Line charts drawn with plotters: a [`Figure`] is a grid of [`Panel`]s, each a set of
//! [`Line`]s; the same figure renders to PNG, to an SVG file or to an SVG string (for the
//! self-contained HTML report). Text uses DejaVu Sans embedded in the binary, so nothing
//! depends on the system's fonts.
//!
//! Colors: up to [`PALETTE`]`.len()` lines per panel get distinct colors; lines marked as
//! background (`color: None`) are drawn thin and grey under one legend entry, which is how
//! callers keep 20+ series readable (highlight a few, group the rest, or facet into panels).
//! The line a chart is about (`focal`) is drawn last and thickest, over the others.
//!
//! Legends never cover data: a legend inside the plot goes to the first corner (then edge
//! middle) that no drawn curve crosses, found on a layout of the same chart before drawing;
//! where every spot is taken it goes beside the plot, or below it in a narrow panel.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Tableau 10: distinguishable, and still distinguishable for most color-blind readers.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const BACKGROUND: RGBColor = RGBColor(200, 200, 200);
const FONT: &str = "sans-serif";
/// Height of one line of a figure title, and the width of a character of it (bold, 20 px).
const TITLE_LINE: u32 = 30;
const TITLE_CHAR_WIDTH: u32 = 12;
const PANEL_SIZE: (u32, u32) = (640, 420);

/// One curve: its legend label (None: no legend entry), its pieces (split where the values
/// are undefined), its palette index (None: a grey background line).
#[derive(Clone, Debug, Default)]
pub struct Line {
    pub label: Option<String>,
    pub segments: Vec<Vec<(f64, f64)>>,
    pub color: Option<usize>,
    pub dashed: bool,
    /// Draw a dot at every point (for curves with few points, e.g. one epoch).
    pub markers: bool,
    /// The stroke width in pixels; None is 3 for the focal line, 2 for another coloured line,
    /// 1 for a background one.
    pub width: Option<u32>,
    /// The line the chart is about (the found function): drawn last, on top of the others.
    pub focal: bool,
    /// A step function (a best-so-far curve): each value holds until the next point's x,
    /// where the line rises or falls vertically, instead of a slope between the points.
    pub steps: bool,
}

impl Line {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Self {
        Line { label: Some(label.into()), segments: vec![points], color: Some(color), ..Default::default() }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    /// Axis ranges; None fits the data.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    /// Label the x axis with whole numbers only (epochs, children).
    pub integer_x: bool,
    /// Put the legend in a column right of the plot (for charts whose curves fill the plot,
    /// such as activation functions). Otherwise it goes inside the plot where no curve
    /// crosses it, or, where every spot is taken, beside or below the plot: never over data.
    pub legend_outside: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Figure {
    pub title: Option<String>,
    pub panels: Vec<Panel>,
    /// Panels per row (at least 1).
    pub columns: usize,
    /// Pixels per panel; None is 640x420.
    pub panel_size: Option<(u32, u32)>,
}

impl Figure {
    pub fn single(panel: Panel) -> Self {
        Figure { title: None, panels: vec![panel], columns: 1, panel_size: None }
    }

    fn grid(&self) -> (usize, usize) {
        let columns = self.columns.clamp(1, self.panels.len().max(1));
        (self.panels.len().div_ceil(columns).max(1), columns)
    }

    fn size(&self) -> (u32, u32) {
        let (rows, columns) = self.grid();
        let (w, h) = self.panel_size.unwrap_or(PANEL_SIZE);
        let width = w * columns as u32;
        (width, h * rows as u32 + TITLE_LINE * self.title_lines(width).len() as u32)
    }

    /// The title wrapped to the figure's width.
    fn title_lines(&self, width: u32) -> Vec<String> {
        self.title.as_deref().map_or(Vec::new(), |t| wrap(t, (width / TITLE_CHAR_WIDTH) as usize))
    }
}

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // The embedded font is valid; a failure would only make text invisible, not wrong.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Writes the figure as a PNG.
pub fn save_png(figure: &Figure, path: &Path) -> Result<()> {
    register_fonts();
    let root = BitMapBackend::new(path, figure.size()).into_drawing_area();
    render(&root, figure).map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))?;
    root.present().map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

/// The figure as an SVG document.
pub fn svg_string(figure: &Figure) -> Result<String> {
    register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, figure.size()).into_drawing_area();
        render(&root, figure).map_err(|e| anyhow!("cannot draw an SVG chart: {e}"))?;
        root.present().map_err(|e| anyhow!("cannot draw an SVG chart: {e}"))?;
    }
    Ok(svg)
}

/// Writes the figure as an SVG file.
pub fn save_svg(figure: &Figure, path: &Path) -> Result<()> {
    std::fs::write(path, svg_string(figure)?).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

/// Writes the figure as PNG or SVG, by the extension of `path`.
pub fn save(figure: &Figure, path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => save_png(figure, path),
        Some("svg") => save_svg(figure, path),
        _ => Err(anyhow!("cannot tell the image format of {}: name it .png or .svg", path.display())),
    }
}

type Drawn = std::result::Result<(), String>;

fn render<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, figure: &Figure) -> Drawn {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (width, _) = root.dim_in_pixel();
    let lines = figure.title_lines(width);
    let (title, area) = root.split_vertically(TITLE_LINE * lines.len() as u32);
    let style =
        (FONT, 20).into_font().style(FontStyle::Bold).into_text_style(&title).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, line) in lines.into_iter().enumerate() {
        let y = 8 + (TITLE_LINE * i as u32) as i32;
        title.draw(&Text::new(line, (width as i32 / 2, y), style.clone())).map_err(|e| e.to_string())?;
    }
    // Legend columns beside the plots are as wide as the widest needs, so that panels one
    // above the other keep the same x axis.
    let side = figure
        .panels
        .iter()
        .filter(|p| p.legend_outside)
        .map(|p| (legend_size(root, &entries(p, LEGEND_CHARS), 1).0 + 2 * LEGEND_PAD) as u32)
        .max()
        .unwrap_or(0);
    for (panel, cell) in figure.panels.iter().zip(area.split_evenly(figure.grid())) {
        draw_panel(&cell, panel, side)?;
    }
    Ok(())
}

/// The data's extent along one axis, padded; a single value gets a unit-wide range. Values
/// beyond ±1e12 are left out (an axis spanning ±1e308 would overflow).
pub(crate) fn extent(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.abs() <= 1e12).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    match (lo.is_finite(), hi > lo) {
        (false, _) => (0.0, 1.0),
        (true, false) => (lo - 0.5, hi + 0.5),
        (true, true) => (lo - pad * (hi - lo), hi + pad * (hi - lo)),
    }
}

/// The widest a legend column beside the plot may be, and the characters of a label per line
/// in it.
const LEGEND_WIDTH: u32 = 360;
const LEGEND_CHARS: usize = 40;
/// A legend's row height, the space before a row's text (its line sample), and its padding.
const LEGEND_ROW: i32 = 18;
const LEGEND_SAMPLE: i32 = 36;
const LEGEND_PAD: i32 = 8;
/// Pixels kept clear around a legend box inside the plot.
const LEGEND_CLEARANCE: i32 = 4;

/// `text` broken at spaces into lines of at most `width` characters (a longer word keeps
/// its own line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Where a panel's legend goes: in a box inside the plot at this offset from the cell's
/// top-left corner (a spot no curve crosses), in a column right of the plot, or in rows
/// below it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Placement {
    Inside(i32, i32),
    Right,
    Below,
}

/// One legend entry: the line's style, whether it is dashed, and its label's lines.
struct Entry {
    style: ShapeStyle,
    dashed: bool,
    text: Vec<String>,
}

/// A line's color and stroke width: the focal line is thickest, background lines are grey.
fn stroke(line: &Line) -> ShapeStyle {
    let (color, width) = match line.color {
        Some(i) => (PALETTE[i % PALETTE.len()], line.width.unwrap_or(if line.focal { 3 } else { 2 })),
        None => (BACKGROUND, line.width.unwrap_or(1)),
    };
    ShapeStyle::from(color).stroke_width(width)
}

/// The lines in drawing order: grey background lines first, then the coloured ones, and the
/// focal lines last, on top of everything.
fn drawing_order(lines: &[Line]) -> Vec<&Line> {
    let rank = |l: &Line| match (l.focal, l.color) {
        (true, _) => 2,
        (false, Some(_)) => 1,
        (false, None) => 0,
    };
    let mut order: Vec<&Line> = lines.iter().collect();
    order.sort_by_key(|l| rank(l));
    order
}

/// The pieces of a line that the chart draws: inside the y range, cut (not bridged) where
/// the line leaves it.
fn pieces(line: &Line, (y0, y1): (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let stepped = |seg: &Vec<(f64, f64)>| match line.steps {
        true => seg
            .iter()
            .enumerate()
            .flat_map(|(i, &p)| (i > 0).then(|| (p.0, seg[i - 1].1)).into_iter().chain([p]))
            .collect(),
        false => seg.clone(),
    };
    line.segments
        .iter()
        .map(stepped)
        .flat_map(|seg| {
            seg.split(|p| !(p.1 >= y0 && p.1 <= y1)).filter(|s| !s.is_empty()).map(<[_]>::to_vec).collect::<Vec<_>>()
        })
        .collect()
}

/// The panel's axis ranges: as given, else fitted to the data.
fn ranges(panel: &Panel) -> ((f64, f64), (f64, f64)) {
    let points = || panel.lines.iter().flat_map(|l| l.segments.iter().flatten());
    let x = panel.x_range.unwrap_or_else(|| extent(points().map(|p| p.0), 0.0));
    let y = panel.y_range.unwrap_or_else(|| extent(points().map(|p| p.1), 0.05));
    (x, y)
}

type Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// The chart of `panel` on `area`, its caption and label areas laid out (not yet drawn on).
fn chart_on<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    panel: &Panel,
    ((x0, x1), (y0, y1)): ((f64, f64), (f64, f64)),
) -> Result<Chart<'a, DB>, String> {
    ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())
}

/// The legend's entries, in the order of the panel's lines, with labels wrapped to `chars`.
fn entries(panel: &Panel, chars: usize) -> Vec<Entry> {
    panel
        .lines
        .iter()
        .filter_map(|l| Some(Entry { style: stroke(l), dashed: l.dashed, text: wrap(l.label.as_ref()?, chars) }))
        .filter(|e| !e.text.is_empty())
        .collect()
}

/// The pixel size of a legend box holding `entries` in `columns` columns, and the width of
/// one column.
fn legend_size<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    columns: usize,
) -> (i32, i32, i32) {
    let font = TextStyle::from((FONT, 13).into_font());
    let text_width = |t: &str| area.estimate_text_size(t, &font).map_or(7 * t.chars().count() as u32, |s| s.0) as i32;
    let widest = entries.iter().flat_map(|e| e.text.iter()).map(|t| text_width(t)).max().unwrap_or(0);
    let column = LEGEND_SAMPLE + widest + LEGEND_PAD;
    let rows_per_column = column_rows(entries, columns.max(1));
    let height = 2 * LEGEND_PAD + LEGEND_ROW * rows_per_column.into_iter().max().unwrap_or(0) as i32;
    (columns.max(1) as i32 * column + LEGEND_PAD, height, column)
}

/// The text rows that each of `columns` columns holds when entries fill them in turn.
fn column_rows(entries: &[Entry], columns: usize) -> Vec<usize> {
    let mut rows = vec![0; columns];
    for (i, e) in entries.iter().enumerate() {
        rows[i % columns] += e.text.len();
    }
    rows
}

/// Draws the legend box with its top-left corner at `at` (pixels of `area`).
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    columns: usize,
    at: (i32, i32),
) -> Drawn {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (w, h, column) = legend_size(area, entries, columns);
    let corners = [at, (at.0 + w, at.1 + h)];
    area.draw(&Rectangle::new(corners, WHITE.mix(0.85).filled())).map_err(err)?;
    area.draw(&Rectangle::new(corners, ShapeStyle::from(LEGEND_BORDER))).map_err(err)?;
    let mut rows = vec![0i32; columns.max(1)];
    for (i, entry) in entries.iter().enumerate() {
        let c = i % columns.max(1);
        let x = at.0 + LEGEND_PAD + c as i32 * column;
        let y = at.1 + LEGEND_PAD + LEGEND_ROW * rows[c] + LEGEND_ROW / 2;
        let sample = match entry.dashed {
            true => vec![vec![(x, y), (x + 10, y)], vec![(x + 16, y), (x + 26, y)]],
            false => vec![vec![(x, y), (x + 26, y)]],
        };
        for piece in sample {
            area.draw(&PathElement::new(piece, entry.style)).map_err(err)?;
        }
        for (row, text) in entry.text.iter().enumerate() {
            let pos = (x + LEGEND_SAMPLE - LEGEND_PAD, y - 7 + LEGEND_ROW * row as i32);
            area.draw(&Text::new(text.clone(), pos, (FONT, 13))).map_err(err)?;
        }
        rows[c] += entry.text.len() as i32;
    }
    Ok(())
}

/// The legend's box border, which also tells a legend apart in an SVG.
const LEGEND_BORDER: RGBColor = RGBColor(180, 180, 180);

/// Whether the segment from `a` to `b` passes within the rectangle `[x0, x1] x [y0, y1]`
/// (Liang-Barsky clipping).
fn crosses(a: (f64, f64), b: (f64, f64), (x0, y0, x1, y1): (f64, f64, f64, f64)) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a.0 - x0), (dx, x1 - a.0), (-dy, a.1 - y0), (dy, y1 - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

/// The first spot inside the plot, of its corners, then the middles of its edges, where a
/// `size` legend box crosses no drawn curve (nor a marker); None when every spot does.
/// Offsets are from the top-left corner of the cell.
fn free_spot(panel: &Panel, cell: (u32, u32), size: (i32, i32)) -> Option<(i32, i32)> {
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, cell).into_drawing_area();
    let (x, y) = ranges(panel);
    let chart = chart_on(&root, panel, (x, y)).ok()?;
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    // Each drawn segment in pixels, with how far its stroke (or markers) reaches from it.
    type Reach = ((f64, f64), (f64, f64), f64);
    let segments: Vec<Reach> = panel
        .lines
        .iter()
        .flat_map(|line| {
            let reach = stroke(line).stroke_width as f64 / 2.0 + if line.markers { 3.0 } else { 0.0 };
            let chart = &chart;
            pieces(line, y).into_iter().flat_map(move |piece| {
                let px: Vec<(f64, f64)> =
                    piece.iter().map(|p| chart.backend_coord(p)).map(|(a, b)| (a as f64, b as f64)).collect();
                let pairs: Vec<_> = match px.len() {
                    1 => vec![(px[0], px[0], reach)],
                    _ => px.windows(2).map(|w| (w[0], w[1], reach)).collect(),
                };
                pairs
            })
        })
        .collect();
    let (w, h) = size;
    let inset = 2 * LEGEND_CLEARANCE;
    let (left, right) = (xs.start + inset, xs.end - inset - w);
    let (top, bottom) = (ys.start + inset, ys.end - inset - h);
    if right < left || bottom < top {
        return None;
    }
    let (mid_x, mid_y) = ((left + right) / 2, (top + bottom) / 2);
    let spots = [
        (left, top),
        (right, top),
        (right, bottom),
        (left, bottom),
        (mid_x, top),
        (mid_x, bottom),
        (left, mid_y),
        (right, mid_y),
    ];
    spots.into_iter().find(|&(sx, sy)| {
        let c = LEGEND_CLEARANCE as f64;
        segments.iter().all(|&(a, b, reach)| {
            let r = (
                sx as f64 - c - reach,
                sy as f64 - c - reach,
                (sx + w) as f64 + c + reach,
                (sy + h) as f64 + c + reach,
            );
            !crosses(a, b, r)
        })
    })
}

/// Draws one panel; a legend beside its plot is at least `side` pixels wide.
fn draw_panel<DB: DrawingBackend>(cell: &DrawingArea<DB, Shift>, panel: &Panel, side: u32) -> Drawn {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (width, height) = cell.dim_in_pixel();
    let legend = entries(panel, LEGEND_CHARS);
    // The legend's box in one column, and that column's width.
    let (w, h, column) = legend_size(cell, &legend, 1);
    let side_fits = width > 2 * LEGEND_WIDTH;
    let placement = match (legend.is_empty(), panel.legend_outside && side_fits) {
        (true, _) => None,
        (false, true) => Some(Placement::Right),
        (false, false) => Some(match free_spot(panel, (width, height), (w, h)) {
            Some((x, y)) => Placement::Inside(x, y),
            None if side_fits => Placement::Right,
            None => Placement::Below,
        }),
    };
    // The plot's area, and the legend's own area with its columns and where its box starts.
    let (area, side) = match placement {
        None | Some(Placement::Inside(..)) => (cell.clone(), None),
        Some(Placement::Right) => {
            // As wide as the legend needs, at most LEGEND_WIDTH.
            let needed = ((w + 2 * LEGEND_PAD) as u32).max(side);
            let (plot, side) = cell.split_horizontally(width - needed.min(LEGEND_WIDTH));
            (plot, Some((side, 1, (LEGEND_PAD, 48))))
        }
        Some(Placement::Below) => {
            let columns = ((width as i32 - 24) / column).clamp(1, 4) as usize;
            let rows = column_rows(&legend, columns).into_iter().max().unwrap_or(0) as i32;
            let below = (2 * LEGEND_PAD + LEGEND_ROW * rows + 12) as u32;
            let (plot, side) = cell.split_vertically(height.saturating_sub(below).max(height / 2));
            (plot, Some((side, columns, (LEGEND_PAD, 0))))
        }
    };
    let (x, y) = ranges(panel);
    let mut chart = chart_on(&area, panel, (x, y))?;
    let whole = |v: &f64| format!("{v:.0}");
    let decimal = |v: &f64| format!("{v}");
    // As many decimals as a tenth of the y range needs.
    let y_decimals = (-((y.1 - y.0) / 10.0).log10()).ceil().clamp(0.0, 6.0) as usize;
    // A tick that rounds to zero reads "0.00", not "-0.00".
    let y_format = |v: &f64| {
        let text = format!("{v:.y_decimals$}");
        match text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
            true => text.trim_start_matches('-').to_string(),
            false => text,
        }
    };
    let x_labels = match panel.integer_x {
        true => ((x.1 - x.0).floor() as usize + 1).clamp(2, 10),
        false => 10,
    };
    chart
        .configure_mesh()
        .x_labels(x_labels)
        .x_label_formatter(if panel.integer_x { &whole } else { &decimal })
        .y_label_formatter(&y_format)
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(err)?;
    for line in drawing_order(&panel.lines) {
        let style = stroke(line);
        for piece in pieces(line, y) {
            match line.dashed {
                true => chart.draw_series(DashedLineSeries::new(piece.clone(), 6, 4, style)).map_err(err)?,
                false => chart.draw_series(LineSeries::new(piece.clone(), style)).map_err(err)?,
            };
            if line.markers {
                chart.draw_series(piece.iter().map(|&p| Circle::new(p, 3, style.filled()))).map_err(err)?;
            }
        }
    }
    match (placement, side) {
        (Some(Placement::Inside(x, y)), _) => draw_legend(cell, &legend, 1, (x, y)),
        (_, Some((side, columns, at))) => draw_legend(&side, &legend, columns, at),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn figure() -> Figure {
        let mut background = Line { segments: vec![vec![(0.0, 0.1), (1.0, 0.2)]], ..Default::default() };
        background.label = Some("others (12)".into());
        let panel = Panel {
            title: "weights of u1 <site 0>".into(),
            x_label: "epoch".into(),
            y_label: "weight".into(),
            lines: vec![
                Line::new("sin", vec![(0.0, 0.3), (1.0, 0.6)], 0),
                Line { dashed: true, markers: true, ..Line::new("cos", vec![(0.0, 0.5), (1.0, 0.4)], 1) },
                background,
            ],
            ..Default::default()
        };
        Figure { title: Some("a & b".into()), panels: vec![panel.clone(), panel], columns: 2, panel_size: None }
    }

    #[test]
    fn png_and_svg_files_are_valid_images() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("f.png"), dir.path().join("f.svg"));
        save(&figure(), &png).unwrap();
        save(&figure(), &svg).unwrap();
        let image = image::open(&png).unwrap();
        assert_eq!((image.width(), image.height()), (1280, 420 + 30));
        // Not blank: some pixels are neither white nor grey (the colored lines).
        let rgb = image.to_rgb8();
        assert!(rgb.pixels().any(|p| p.0 == [31, 119, 180]));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
        assert!(text.contains("others (12)") && text.contains("a &amp; b") && text.contains("&lt;site 0&gt;"));
        assert!(save(&figure(), &dir.path().join("f.jpg")).unwrap_err().to_string().contains(".png or .svg"));
    }

    #[test]
    fn long_labels_wrap_at_spaces() {
        assert_eq!(wrap("ab  cd ef", 5), vec!["ab cd", "ef"]);
        assert_eq!(wrap("abcdefgh ij", 4), vec!["abcdefgh", "ij"]);
        let lines = wrap("b1*log(x) + (1 - b1)*tanh(x)  [params 0.996 (learned mean)]", LEGEND_CHARS);
        assert!(lines.len() == 2 && lines.iter().all(|l| l.chars().count() <= LEGEND_CHARS), "{lines:?}");
    }

    /// The `<polyline>`s and `<rect>`s of an SVG in document order: (tag, stroke colour,
    /// stroke width, points; for a rect its two corners).
    pub(crate) type Element = (String, String, u32, Vec<(f64, f64)>);

    fn elements(svg: &str) -> Vec<Element> {
        let attr = |el: &str, name: &str| {
            let key = format!(" {name}=\"");
            el.find(&key).map(|at| el[at + key.len()..].split('"').next().unwrap().to_string())
        };
        let num = |el: &str, name: &str| attr(el, name).map_or(0.0, |v| v.parse::<f64>().unwrap());
        svg.split('<')
            .filter_map(|el| {
                let tag = el.split([' ', '/', '>']).next()?.to_string();
                let stroke = attr(el, "stroke").unwrap_or_default();
                let width = attr(el, "stroke-width").map_or(1, |w| w.parse().unwrap());
                let points = match tag.as_str() {
                    "polyline" => attr(el, "points")?
                        .split_whitespace()
                        .map(|p| {
                            let (x, y) = p.split_once(',').unwrap();
                            (x.parse().unwrap(), y.parse().unwrap())
                        })
                        .collect(),
                    "rect" => {
                        let (x, y) = (num(el, "x"), num(el, "y"));
                        vec![(x, y), (x + num(el, "width"), y + num(el, "height"))]
                    }
                    _ => return None,
                };
                Some((tag, stroke, width, points))
            })
            .collect()
    }

    pub(crate) fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    /// The data lines (palette or background colour, drawn before the legend) and the legend's
    /// box of a one-panel SVG.
    pub(crate) fn data_and_legend(svg: &str) -> (Vec<Element>, (f64, f64, f64, f64)) {
        let all = elements(svg);
        let border = hex(LEGEND_BORDER);
        let at = all.iter().position(|e| e.0 == "rect" && e.1 == border).expect("a legend box");
        let (a, b) = (all[at].3[0], all[at].3[1]);
        let colors: Vec<String> = PALETTE.iter().chain([&BACKGROUND]).map(|&c| hex(c)).collect();
        let data = all[..at].iter().filter(|e| e.0 == "polyline" && colors.contains(&e.1)).cloned().collect();
        (data, (a.0, a.1, b.0, b.1))
    }

    /// Asserts that no data line of the one-panel figure crosses its legend box.
    pub(crate) fn assert_legend_clear(panel: &Panel, size: (u32, u32)) {
        let figure = Figure { panel_size: Some(size), ..Figure::single(panel.clone()) };
        let (data, legend) = data_and_legend(&svg_string(&figure).unwrap());
        assert!(!data.is_empty(), "{}: no data lines found", panel.title);
        for (_, color, width, points) in &data {
            let reach = *width as f64 / 2.0;
            let r = (legend.0 - reach, legend.1 - reach, legend.2 + reach, legend.3 + reach);
            for w in points.windows(2) {
                assert!(!crosses(w[0], w[1], r), "{}: a {color} line crosses the legend {legend:?}", panel.title);
            }
        }
    }

    /// Best reward so far of `runs` sample searches: rising steps from the lower left that
    /// flatten out near the top, as a search's curves do.
    fn best_so_far(runs: usize) -> Panel {
        let lines = (0..runs)
            .map(|r| {
                let points = (0..=40)
                    .map(|c| {
                        let t = c as f64 / 40.0;
                        (c as f64, 0.1 + 0.03 * r as f64 + 0.5 * (1.0 - (-6.0 * t).exp()))
                    })
                    .collect();
                Line::new(format!("random (search-seed-{r})"), points, r)
            })
            .collect();
        Panel {
            title: format!("{runs} runs"),
            x_label: "children".into(),
            y_label: "reward".into(),
            lines,
            ..Default::default()
        }
    }

    #[test]
    fn legends_never_cover_data() {
        // One run, eight runs, and curves crossing every spot of the plot (the legend then
        // goes beside or below it).
        let waves = Panel {
            title: "waves".into(),
            lines: (0..8)
                .map(|k| {
                    let points = (0..=200).map(|i| (i as f64 / 20.0, (i as f64 / 7.0 + k as f64).sin())).collect();
                    Line::new(format!("wave {k}"), points, k)
                })
                .collect(),
            ..Default::default()
        };
        for panel in [best_so_far(1), best_so_far(8), waves.clone()] {
            for size in [PANEL_SIZE, (980, 460)] {
                assert_legend_clear(&panel, size);
            }
        }
        // With every spot taken the legend leaves the plot: it is not where it would sit inside.
        let figure = Figure::single(waves.clone());
        let (_, legend) = data_and_legend(&svg_string(&figure).unwrap());
        assert!(legend.1 > 300.0, "the waves' legend should be below the plot: {legend:?}");
        let wide = Figure { panel_size: Some((980, 460)), ..Figure::single(waves) };
        let (_, legend) = data_and_legend(&svg_string(&wide).unwrap());
        assert!(
            legend.0 > 980.0 - LEGEND_WIDTH as f64,
            "the wide waves' legend should be right of the plot: {legend:?}"
        );
    }

    #[test]
    fn a_step_line_holds_each_value_until_the_next_point() {
        let line = Line { steps: true, ..Line::new("best", vec![(0.0, 0.0), (1.0, 1.0), (3.0, 2.0)], 0) };
        let expected = vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (3.0, 1.0), (3.0, 2.0)];
        assert_eq!(pieces(&line, (-10.0, 10.0)), vec![expected]);
        let sloped = Line { steps: false, ..line };
        assert_eq!(pieces(&sloped, (-10.0, 10.0)), vec![vec![(0.0, 0.0), (1.0, 1.0), (3.0, 2.0)]]);
    }

    #[test]
    fn the_focal_line_is_drawn_last_and_thickest() {
        let mut lines = best_so_far(3).lines;
        lines[0].focal = true;
        lines.push(Line { segments: vec![vec![(0.0, 0.2), (40.0, 0.3)]], ..Default::default() });
        let panel = Panel { lines, legend_outside: true, ..Default::default() };
        let svg = svg_string(&Figure { panel_size: Some((980, 460)), ..Figure::single(panel) }).unwrap();
        let (data, _) = data_and_legend(&svg);
        let last = data.last().unwrap();
        assert_eq!((last.1.as_str(), last.2), (hex(PALETTE[0]).as_str(), 3));
        assert!(data.iter().rev().skip(1).all(|e| e.2 < 3), "only the focal line is 3 px wide");
        assert_eq!(data[0].1, hex(BACKGROUND), "the background line is drawn first");
    }

    #[test]
    fn empty_and_constant_data_still_draw() {
        let flat = Panel { lines: vec![Line::new("c", vec![(1.0, 2.0)], 0)], ..Default::default() };
        let empty = Panel::default();
        let svg = svg_string(&Figure { title: None, panels: vec![flat, empty], columns: 3, panel_size: None }).unwrap();
        assert!(svg.contains("</svg>"));
    }
}
