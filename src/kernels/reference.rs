//! The reference path: a formula evaluated on burn tensors by composing the tensor form of
//! each op from `space::ops`. Works on every backend and gets its backward pass from autodiff.
//!
//! Constants are kept as scalars while possible so that `x + 1` is one `add_scalar`, not a
//! broadcast of a full tensor.

use burn::prelude::*;

use crate::expr::{Expr, Formula};
use crate::space::ops::BinOp;

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
    let dims = x.dims();
    match eval_expr(&formula.expr, &x, params) {
        Val::T(t) if t.dims() == dims => t,
        Val::T(t) => t.expand(dims),
        Val::Num(c) => x.zeros_like().add_scalar(c),
    }
}

fn eval_expr<const D: usize>(e: &Expr, x: &Tensor<D>, params: &[Tensor<D>]) -> Val<D> {
    match e {
        Expr::X => Val::T(x.clone()),
        Expr::Num(c) => Val::Num(*c),
        Expr::Param(i) => Val::T(params[*i].clone()),
        Expr::Neg(a) => match eval_expr(a, x, params) {
            Val::Num(c) => Val::Num(-c),
            Val::T(t) => Val::T(t.neg()),
        },
        Expr::Pow(a, n) => match eval_expr(a, x, params) {
            Val::Num(c) => Val::Num(crate::space::ops::powi_eval(c, *n).0),
            Val::T(t) => Val::T(crate::space::ops::powi_tensor(t, *n)),
        },
        Expr::Call(f, a) => match eval_expr(a, x, params) {
            Val::Num(c) => Val::Num(f.value(c)),
            Val::T(t) => Val::T(f.tensor(t)),
        },
        Expr::Bin(op, a, b) => binary(*op, eval_expr(a, x, params), eval_expr(b, x, params)),
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
