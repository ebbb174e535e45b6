//! Formulas: the infix language activation functions are written in.
//!
//! A formula is an expression in `x` with numbers, per-channel trainable parameters,
//! `+ - * /`, integer powers `^`, unary minus, `|...|`, calls of every [`Func`] by name and the
//! two-argument calls `max(a, b)` / `min(a, b)`. For example `x*sigmoid(b*x)`.
//!
//! Cell op templates ([`Formula::parse_template`]) also contain arguments `x1`, `x2`, ...
//! ([`Expr::Arg`]); [`Formula::substitute`] plugs formulas into them. Users' activations never
//! contain arguments: [`Formula::parse`] rejects `x1`.
//!
//! Parameters: each occurrence of `b` (or `beta`) is its own parameter; `b1`, `b2`, ... (or
//! `beta1`, ...) are named and shared by all their occurrences. All start at 1. Parameter slots
//! are numbered in order of first appearance reading left to right.
//!
//! - [`parse`]: text → [`Formula`] (tokens from `lex`); [`parse_error`]: one-line errors
//!   that name the problem, its column and a fix.
//! - [`print`]: the canonical text of a [`Formula`] (`Display`); `parse(print(f)) == f`.
//! - [`canonical`]: semantics-preserving simplification, ending with [`slots`]' renumbering.
//! - [`slots`]: substitution of formulas into templates and the slot renumbering pass.
//! - [`range`]: the interval of values an expression can take (drops redundant clamps).
//! - [`eval`]: value, derivatives (all from the `expr::ops` table) and numeric fingerprint.
//! - [`ops`]: the op table, the value and derivative of every scalar op, that formulas, cells
//!   and kernels are all built from.
//! - [`named`]: the named activations (`relu`, `mish`, the seed's searched functions, ...).

pub mod canonical;
pub mod eval;
mod lex;
pub mod named;
pub mod ops;
pub mod parse;
pub mod parse_error;
pub mod print;
#[cfg(test)]
mod random_tree;
pub mod range;
pub mod slots;
mod token;

pub use named::{NAMED, NamedFn, lookup, resolve};
pub use ops::{BinOp, EPS, Func, Real, powi_eval};
pub use parse_error::{ParseError, shorten};

/// An expression tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// The input.
    X,
    /// The k-th argument of a cell op template (printed `x{k+1}`); see [`Formula::parse_template`].
    Arg(usize),
    /// A constant.
    Num(f64),
    /// A trainable parameter: an index into [`Formula::params`].
    Param(usize),
    /// Unary minus.
    Neg(Box<Expr>),
    /// An integer power.
    Pow(Box<Expr>, i32),
    /// A unary function call.
    Call(Func, Box<Expr>),
    /// A binary operation (infix `+ - * /`, or the calls `max`/`min`).
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

/// How a parameter slot is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamName {
    /// `b` (or `beta`): one slot per occurrence.
    Anon,
    /// `b<N>` (or `beta<N>`): one slot shared by every occurrence.
    Named(u32),
}

/// A parsed formula: its expression and the names of its parameter slots.
#[derive(Clone, Debug, PartialEq)]
pub struct Formula {
    pub expr: Expr,
    pub params: Vec<ParamName>,
}

impl Formula {
    /// Number of parameter slots (each initialized to 1).
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// True if the formula depends on `x` syntactically (`b + 1` does not).
    pub fn uses_x(&self) -> bool {
        self.expr.uses_x()
    }

    /// One more than the highest argument index (`x1` is argument 0); 0 for a plain formula.
    pub fn num_args(&self) -> usize {
        self.expr.max_arg().map_or(0, |k| k + 1)
    }
}

impl Expr {
    /// True if `X` occurs in this expression.
    pub fn uses_x(&self) -> bool {
        match self {
            Expr::X => true,
            Expr::Num(_) | Expr::Param(_) | Expr::Arg(_) => false,
            Expr::Neg(a) | Expr::Pow(a, _) | Expr::Call(_, a) => a.uses_x(),
            Expr::Bin(_, a, b) => a.uses_x() || b.uses_x(),
        }
    }

    /// True if a parameter occurs in this expression.
    pub fn uses_params(&self) -> bool {
        match self {
            Expr::Param(_) => true,
            Expr::X | Expr::Num(_) | Expr::Arg(_) => false,
            Expr::Neg(a) | Expr::Pow(a, _) | Expr::Call(_, a) => a.uses_params(),
            Expr::Bin(_, a, b) => a.uses_params() || b.uses_params(),
        }
    }

    /// The highest argument index in this expression, if any argument occurs.
    pub fn max_arg(&self) -> Option<usize> {
        match self {
            Expr::Arg(k) => Some(*k),
            Expr::X | Expr::Num(_) | Expr::Param(_) => None,
            Expr::Neg(a) | Expr::Pow(a, _) | Expr::Call(_, a) => a.max_arg(),
            Expr::Bin(_, a, b) => a.max_arg().max(b.max_arg()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_x_and_params() {
        let f = Formula::parse("b + 1").unwrap();
        assert!(!f.uses_x());
        assert_eq!(f.num_params(), 1);
        let f = Formula::parse("x*sigmoid(x)").unwrap();
        assert!(f.uses_x());
        assert_eq!(f.num_params(), 0);
        assert!(!f.expr.uses_params());
    }
}
