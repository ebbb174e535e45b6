//! Search spaces, built from the op table of `expr::ops`: the cells' op tables (`cell_ops`), cells and their spaces
//! (`cell`, user cell files in `cell_toml`), genotypes, a search's result (`genotype`), and
//! activations given on the command line (`resolve`).

pub mod cell;
pub mod cell_ops;
pub mod cell_toml;
pub mod genotype;
pub mod resolve;

pub use cell::{CellShape, CellSpace, Position};
pub use cell_ops::{CellOp, OpSet, PosKind};
pub use genotype::{Genotype, ParamInfo, PositionChoice};
