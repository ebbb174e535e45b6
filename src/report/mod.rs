//! Reports and plots, drawn by the tool itself (no Python, no notebook): run directories read
//! into a report model (`runs`), summarized (`tables`), drawn with plotters (`charts`,
//! `shapes` for function shapes), and written as PNG/SVG files, `report.md` and a
//! self-contained `report.html` (`document`). Nothing here prints: what a reader should know
//! (runs skipped or left out, functions that cannot be drawn) comes back as notes and
//! warnings for the cli to show.

pub mod charts;
pub mod document;
pub mod runs;
pub mod searches;
pub mod shapes;
pub mod stats;
pub mod tables;

/// Text a user gave (a formula, a path) as it is shown in a message: the first 80 characters,
/// then `...`, on one line (the same cut as every message, `expr::shorten`).
pub use crate::expr::shorten as shown;

/// A path as [`shown`] shows it.
pub fn shown_path(path: &std::path::Path) -> String {
    shown(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shown_cuts_long_text_at_80_characters_on_one_line() {
        assert_eq!(super::shown("x + 1"), "x + 1");
        assert_eq!(super::shown(&"x".repeat(80)), "x".repeat(80));
        assert_eq!(super::shown(&"é".repeat(81)), format!("{}...", "é".repeat(80)));
        assert_eq!(super::shown("a\nb"), "a b");
    }
}
