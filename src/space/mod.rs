//! Search spaces: the op table (value + derivative of every scalar op) that formulas, cells
//! and kernels are all built from, and the cells' op tables (`cell_ops`).

pub mod cell_ops;
pub mod genotype;
pub mod ops;

pub use cell_ops::{CellOp, OpSet, PosKind};
pub use ops::{BinOp, EPS, Func, Real, powi_eval};
