//! `actsearch functions`: every named activation with its formula, and every function usable
//! inside formulas with its exact semantics.

use anyhow::Result;

use crate::expr::named::NAMED;
use crate::space::ops::Func;

pub fn run() -> Result<()> {
    println!("Named activations (use with --activation NAME):");
    let width = NAMED.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in NAMED {
        println!("  {:width$}  {:36}  {}", f.name, f.formula, f.about);
    }
    println!();
    println!("Functions usable in formulas, e.g. --activation \"x*sigmoid(b*x)\":");
    for f in Func::ALL {
        println!("  {:10}  {}", f.name(), f.doc());
    }
    println!("  {:10}  larger of a and b", "max(a, b)");
    println!("  {:10}  smaller of a and b", "min(a, b)");
    println!();
    println!("Operators: + - * / ^ (integer powers), unary minus, |a| for abs(a).");
    println!("Parameters: each `b` (or `beta`) is its own trainable per-channel parameter, initialised");
    println!("to 1; `b1`, `b2`, ... name parameters shared by all their occurrences.");
    Ok(())
}
