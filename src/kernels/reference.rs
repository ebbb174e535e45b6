//! The reference path: a formula evaluated on burn tensors by composing the tensor form of
//! each op from `expr::ops`. Works on every backend and gets its backward pass from autodiff.
//!
//! Constants are kept as scalars while possible so that `x + 1` is one `add_scalar`, not a
//! broadcast of a full tensor.

use burn::prelude::*;

use crate::expr::ops::BinOp;
use crate::expr::{Expr, Formula};

/// A partially evaluated sub-expression: a scalar constant or a tensor broadcastable to `x`.
/// Short-lived values on the stack of one evaluation, so the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Val<const D: usize> {
    Num(f64),
    T(Tensor<D>),
}

/// Evaluate `formula` at `x`, with `params[i]` the (broadcastable) value of parameter slot i.
/// The result has the shape of `x`.
pub fn eval<const D: usize>(formula: &Formula, x: Tensor<D>, params: &[Tensor<D>]) -> Tensor<D> {
    eval_args(formula, x, &[], params)
}

/// Evaluate a cell op template at `x` with argument `k` (`x{k+1}`) set to `args[k]`
/// (broadcastable to `x`). A missing argument or parameter reads as NaN, as in `Formula::eval`.
/// The result has the shape of `x`.
pub fn eval_args<const D: usize>(
    formula: &Formula,
    x: Tensor<D>,
    args: &[Tensor<D>],
    params: &[Tensor<D>],
) -> Tensor<D> {
    let dims = x.dims();
    let inputs = Inputs { x: &x, args, params };
    match inputs.eval(&formula.expr) {
        Val::T(t) if t.dims() == dims => t,
        Val::T(t) => t.expand(dims),
        Val::Num(c) => x.zeros_like().add_scalar(c),
    }
}

/// What the leaves of an expression read.
struct Inputs<'a, const D: usize> {
    x: &'a Tensor<D>,
    args: &'a [Tensor<D>],
    params: &'a [Tensor<D>],
}

impl<const D: usize> Inputs<'_, D> {
    fn eval(&self, e: &Expr) -> Val<D> {
        match e {
            Expr::X => Val::T(self.x.clone()),
            Expr::Arg(k) => self.leaf(self.args, *k),
            Expr::Num(c) => Val::Num(*c),
            Expr::Param(i) => self.leaf(self.params, *i),
            Expr::Neg(a) => match self.eval(a) {
                Val::Num(c) => Val::Num(-c),
                Val::T(t) => Val::T(t.neg()),
            },
            Expr::Pow(a, n) => match self.eval(a) {
                Val::Num(c) => Val::Num(crate::expr::ops::powi_eval(c, *n).0),
                Val::T(t) => Val::T(crate::expr::ops::powi_tensor(t, *n)),
            },
            Expr::Call(f, a) => match self.eval(a) {
                Val::Num(c) => Val::Num(f.value(c)),
                Val::T(t) => Val::T(f.tensor(t)),
            },
            Expr::Bin(op, a, b) => binary(*op, self.eval(a), self.eval(b)),
        }
    }

    /// `values[i]`, or NaN past the end.
    fn leaf(&self, values: &[Tensor<D>], i: usize) -> Val<D> {
        match values.get(i) {
            Some(t) => Val::T(t.clone()),
            None => Val::Num(f64::NAN),
        }
    }
}

fn binary<const D: usize>(op: BinOp, a: Val<D>, b: Val<D>) -> Val<D> {
    match (a, b) {
        (Val::Num(a), Val::Num(b)) => Val::Num(op.eval(a, b).0),
        (Val::T(a), Val::Num(c)) => Val::T(match op {
            BinOp::Add => a.add_scalar(c),
            BinOp::Sub => a.sub_scalar(c),
            BinOp::Mul => a.mul_scalar(c),
            BinOp::Div => a.div_scalar(c),
            _ => op.tensor(a.clone(), a.full_like(c)),
        }),
        (Val::Num(c), Val::T(b)) => Val::T(match op {
            BinOp::Add => b.add_scalar(c),
            BinOp::Sub => b.neg().add_scalar(c),
            BinOp::Mul => b.mul_scalar(c),
            _ => op.tensor(b.full_like(c), b),
        }),
        (Val::T(a), Val::T(b)) => Val::T(op.tensor(a, b)),
    }
}
