//! Search spaces: the op table (value + derivative of every scalar op) that formulas, cells
//! and kernels are all built from.

pub mod genotype;
pub mod ops;

pub use ops::{BinOp, EPS, Func, Real, powi_eval};
