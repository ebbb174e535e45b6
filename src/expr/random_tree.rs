//! Random expression trees for the round-trip and derivative tests (test builds only).

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{BinOp, Expr, Formula, Func, ParamName};

/// Functions that are smooth everywhere and stay moderate, for finite-difference checks.
const SMOOTH: &[Func] = &[
    Func::Sin,
    Func::Cos,
    Func::Tanh,
    Func::Atan,
    Func::Asinh,
    Func::Sigmoid,
    Func::Softplus,
    Func::Erf,
    Func::Silu,
    Func::Gelu,
    Func::Sinc,
];

/// Numbers that exercise printing: integers, fractions, tiny and huge magnitudes.
const NUMBERS: &[f64] = &[
    0.0,
    0.5,
    1.0,
    2.0,
    3.0,
    0.1,
    1e-3,
    1e-7,
    1.5e20,
    123.456,
    0.30000000000000004,
    std::f64::consts::PI,
    1.0 / 3.0,
    1e16,
    9.999e-6,
];

/// Generates formulas whose parameter slots are numbered in reading order, as the parser does.
pub struct TreeGen {
    rng: ChaCha8Rng,
    /// Only smooth functions, `+ - *` and non-negative powers, and no negative numbers.
    smooth: bool,
    params: Vec<ParamName>,
    named: HashMap<u32, usize>,
}

impl TreeGen {
    pub fn new(seed: u64, smooth: bool) -> Self {
        TreeGen { rng: ChaCha8Rng::seed_from_u64(seed), smooth, params: Vec::new(), named: HashMap::new() }
    }

    /// A fresh formula of at most `depth` levels.
    pub fn formula(&mut self, depth: u32) -> Formula {
        self.params.clear();
        self.named.clear();
        let expr = self.expr(depth);
        Formula { expr, params: std::mem::take(&mut self.params) }
    }

    fn expr(&mut self, depth: u32) -> Expr {
        if depth == 0 || self.rng.random_bool(0.25) {
            return self.leaf();
        }
        match self.rng.random_range(0..5) {
            0 => Expr::Neg(Box::new(self.expr(depth - 1))),
            1 => {
                let n = if self.smooth { self.rng.random_range(0..=3) } else { self.rng.random_range(-3..=3) };
                Expr::Pow(Box::new(self.expr(depth - 1)), n)
            }
            2 => {
                let funcs = if self.smooth { SMOOTH } else { Func::ALL };
                let f = funcs[self.rng.random_range(0..funcs.len())];
                Expr::Call(f, Box::new(self.expr(depth - 1)))
            }
            _ => {
                let ops: &[BinOp] = if self.smooth { &[BinOp::Add, BinOp::Sub, BinOp::Mul] } else { BinOp::ALL };
                let op = ops[self.rng.random_range(0..ops.len())];
                // Left operand first: slots follow reading order.
                let a = self.expr(depth - 1);
                let b = self.expr(depth - 1);
                Expr::Bin(op, Box::new(a), Box::new(b))
            }
        }
    }

    fn leaf(&mut self) -> Expr {
        match self.rng.random_range(0..4) {
            0 | 1 => Expr::X,
            2 => {
                let v = NUMBERS[self.rng.random_range(0..NUMBERS.len())];
                let v = if self.smooth { v.min(3.0) } else { v };
                Expr::Num(if !self.smooth && self.rng.random_bool(0.3) { -v } else { v })
            }
            _ => {
                if self.rng.random_bool(0.5) {
                    self.params.push(ParamName::Anon);
                    Expr::Param(self.params.len() - 1)
                } else {
                    let n = self.rng.random_range(1..=3);
                    let slot = match self.named.get(&n) {
                        Some(&s) => s,
                        None => {
                            self.params.push(ParamName::Named(n));
                            self.named.insert(n, self.params.len() - 1);
                            self.params.len() - 1
                        }
                    };
                    Expr::Param(slot)
                }
            }
        }
    }
}
