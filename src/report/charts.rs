//! Line charts drawn with plotters: a [`Figure`] is a grid of [`Panel`]s, each a set of
//! [`Line`]s; the same figure renders to PNG, to an SVG file or to an SVG string (for the
//! self-contained HTML report). Text uses DejaVu Sans embedded in the binary, so nothing
//! depends on the system's fonts.
//!
//! Colors: up to [`PALETTE`]`.len()` lines per panel get distinct colors; lines marked as
//! background (`color: None`) are drawn thin and grey under one legend entry, which is how
//! callers keep 20+ series readable (highlight a few, group the rest, or facet into panels).

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
    /// The stroke width in pixels; None is 2 for a coloured line, 1 for a background one.
    pub width: Option<u32>,
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
    /// Put the legend in a column right of the plot instead of inside it (for charts whose
    /// curves fill the plot, such as activation functions).
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
    for (panel, cell) in figure.panels.iter().zip(area.split_evenly(figure.grid())) {
        draw_panel(&cell, panel)?;
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

/// Width of a legend column beside the plot, and the characters of a label per line in it.
const LEGEND_WIDTH: u32 = 360;
const LEGEND_CHARS: usize = 40;

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

fn draw_panel<DB: DrawingBackend>(cell: &DrawingArea<DB, Shift>, panel: &Panel) -> Drawn {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let width = cell.dim_in_pixel().0;
    let (area, side) = match panel.legend_outside && width > 2 * LEGEND_WIDTH {
        true => {
            let (plot, side) = cell.split_horizontally(width - LEGEND_WIDTH);
            (plot, Some(side))
        }
        false => (cell.clone(), None),
    };
    let area = &area;
    let points = || panel.lines.iter().flat_map(|l| l.segments.iter().flatten());
    let (x0, x1) = panel.x_range.unwrap_or_else(|| extent(points().map(|p| p.0), 0.0));
    let (y0, y1) = panel.y_range.unwrap_or_else(|| extent(points().map(|p| p.1), 0.05));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let whole = |v: &f64| format!("{v:.0}");
    let decimal = |v: &f64| format!("{v}");
    // As many decimals as a tenth of the y range needs.
    let y_decimals = (-((y1 - y0) / 10.0).log10()).ceil().clamp(0.0, 6.0) as usize;
    let y_format = |v: &f64| format!("{v:.y_decimals$}");
    let x_labels = match panel.integer_x {
        true => ((x1 - x0).floor() as usize + 1).clamp(2, 10),
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
    // Background lines first, so the highlighted ones sit on top.
    let mut order: Vec<&Line> = panel.lines.iter().filter(|l| l.color.is_none()).collect();
    order.extend(panel.lines.iter().filter(|l| l.color.is_some()));
    let (mut legend, mut legend_rows) = (false, 0);
    for line in order {
        let (color, width) = match line.color {
            Some(i) => (PALETTE[i % PALETTE.len()], line.width.unwrap_or(2)),
            None => (BACKGROUND, line.width.unwrap_or(1)),
        };
        let style = ShapeStyle::from(color).stroke_width(width);
        // Pieces inside the y range (a line leaving it is cut, not bridged).
        let pieces: Vec<Vec<(f64, f64)>> = line
            .segments
            .iter()
            .flat_map(|seg| seg.split(|p| !(p.1 >= y0 && p.1 <= y1)).filter(|s| !s.is_empty()).map(<[_]>::to_vec))
            .collect();
        for (k, piece) in pieces.iter().enumerate() {
            let drawn = match line.dashed {
                true => chart.draw_series(DashedLineSeries::new(piece.clone(), 6, 4, style)).map_err(err)?,
                false => chart.draw_series(LineSeries::new(piece.clone(), style)).map_err(err)?,
            };
            if let (0, Some(label), Some(side)) = (k, &line.label, &side) {
                let y = 50 + 18 * legend_rows;
                let to = if line.dashed { 34 } else { 44 };
                side.draw(&PathElement::new(vec![(14, y), (to, y)], style)).map_err(err)?;
                for (row, text) in wrap(label, LEGEND_CHARS).into_iter().enumerate() {
                    side.draw(&Text::new(text, (52, y - 8 + 18 * row as i32), (FONT, 13))).map_err(err)?;
                    legend_rows += 1;
                }
            } else if let (0, Some(label)) = (k, &line.label) {
                legend = true;
                let dashed = line.dashed;
                drawn.label(label.as_str()).legend(move |(x, y)| {
                    let to = if dashed { x + 10 } else { x + 20 };
                    PathElement::new(vec![(x, y), (to, y)], style)
                });
            }
            if line.markers {
                chart.draw_series(piece.iter().map(|&p| Circle::new(p, 3, style.filled()))).map_err(err)?;
            }
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn empty_and_constant_data_still_draw() {
        let flat = Panel { lines: vec![Line::new("c", vec![(1.0, 2.0)], 0)], ..Default::default() };
        let empty = Panel::default();
        let svg = svg_string(&Figure { title: None, panels: vec![flat, empty], columns: 3, panel_size: None }).unwrap();
        assert!(svg.contains("</svg>"));
    }
}
