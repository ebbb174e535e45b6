//! Search spaces: the op table (value + derivative of every scalar op) that formulas, cells
//! and kernels are all built from; the cells' op tables (`cell_ops`), cells and their spaces
//! (`cell`, user cell files in `cell_toml`), genotypes, a search's result (`genotype`), and
//! activations given on the command line (`resolve`).

pub mod cell;
pub mod cell_ops;
pub mod cell_toml;
pub mod genotype;
pub mod ops;
pub mod resolve;

pub use cell::{CellShape, CellSpace, Position};
pub use cell_ops::{CellOp, OpSet, PosKind};
pub use genotype::{Genotype, ParamInfo, PositionChoice};
pub use ops::{BinOp, EPS, Func, Real, powi_eval};
