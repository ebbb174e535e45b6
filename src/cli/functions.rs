//! `actsearch functions`: every named activation with its formula, and every function usable
//! inside formulas with its exact semantics.

use std::fmt::Write;

use anyhow::Result;

use super::stdout;
use crate::expr::named::NAMED;
use crate::expr::ops::Func;

pub fn run() -> Result<()> {
    let mut text = String::from("Named activations (use with --activation NAME):\n");
    let width = NAMED.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in NAMED {
        writeln!(text, "  {:width$}  {:36}  {}", f.name, f.formula, f.about)?;
    }
    text.push_str("\nFunctions usable in formulas, e.g. --activation \"x*sigmoid(b*x)\":\n");
    for f in Func::ALL {
        writeln!(text, "  {:10}  {}", f.name(), f.doc())?;
    }
    writeln!(text, "  {:10}  larger of a and b", "max(a, b)")?;
    writeln!(text, "  {:10}  smaller of a and b", "min(a, b)")?;
    text.push_str("\nOperators: + - * / ^ (integer powers), unary minus, |a| for abs(a).\n");
    text.push_str("Parameters: each `b` (or `beta`) is its own trainable per-channel parameter, initialised\n");
    text.push_str("to 1; `b1`, `b2`, ... name parameters shared by all their occurrences.\n");
    stdout(&text)
}
