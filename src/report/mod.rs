//! Reports and plots, drawn by the tool itself (no Python, no notebook): run directories read
//! into a report model (`runs`), summarized (`tables`), drawn with plotters (`charts`,
//! `shapes` for function shapes), and written as PNG/SVG files, `report.md` and a
//! self-contained `report.html` (`document`).

pub mod charts;
pub mod document;
pub mod runs;
pub mod shapes;
pub mod tables;
