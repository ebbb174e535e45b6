//! A searchable activation site: every position of a cell is a DARTS mixed op, the
//! weighted sum of all its candidate ops (`u1`, `u2`, `b`, ...), evaluated as one fused kernel
//! on the CPU backend (`kernels::fused`) and through the composed-tensor reference path
//! elsewhere. Each site owns the per-channel parameters of every candidate op and (unless the
//! cell is shared) its mixing logits (`alphas`). How the ops are mixed in a forward pass is a
//! [`Mix`] installed by the search: soft weights (DARTS, DrNAS) over the ops still in play, or
//! a single sampled path (GDAS).
//!
//! Parameters whose path contains `alphas` are architecture parameters; everything else is a
//! network weight (see `train::update`).

use std::sync::Arc;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::activation::Site;
use crate::expr::ops::{BinOp, Func};
use crate::expr::{Expr, Formula};
use crate::kernels::program::{Inst, Layout, Program};
use crate::kernels::{fused, reference};
use crate::space::cell::{CellSpace, Source};

/// How a cell mixes its candidate ops in the next forward pass. The search installs one
/// before every forward (`search::oneshot::mixing`), because the weights depend on the method
/// (softmax, Gumbel sample, Dirichlet sample) and may come from another site's alphas.
#[derive(Clone, Debug, Default)]
pub enum Mix {
    /// The softmax of the cell's own alphas over all ops (DARTS; the default).
    #[default]
    Own,
    /// The cell is this fixed function without parameters (the warm start trains the weights
    /// with it first: GRAFS' ReLU for the ResNets, GELU for the transformers).
    Fixed(Formula),
    /// One mixing rule per position.
    Positions(Vec<PositionMix>),
}

/// The mixing rule of one position. `ops` lists the candidate ops still in play (indices into
/// the position's op list); weights are aligned with it.
#[derive(Clone, Debug)]
pub enum PositionMix {
    /// The weighted sum of every op in `ops`.
    Soft { ops: Vec<usize>, weights: Tensor<1> },
    /// Only `ops[chosen]` is computed and multiplied by `gates[chosen]`; the other gates are
    /// added as constants, so that their gradients flow while their value (0 in the forward,
    /// for a straight-through one-hot) costs nothing. GDAS' single path.
    Hard { ops: Vec<usize>, chosen: usize, gates: Tensor<1> },
}

#[derive(Module, Debug)]
pub struct MixedCell {
    /// Mixing logits per position, one per candidate op (DARTS' alpha, initialised
    /// 1e-3*N(0,1)). Empty at every site but the first when the cell is shared.
    pub alphas: Vec<Param<Tensor<1>>>,
    /// `params[position][op][slot]`: per-channel values of each candidate op's parameters.
    pub params: Vec<Vec<Vec<Param<Tensor<1>>>>>,
    #[module(skip)]
    pub space: CellSpace,
    /// Clamp every position's output to `[-bound, bound]` (GRAFS' bounded outputs).
    #[module(skip)]
    pub bound: Option<f64>,
    #[module(skip)]
    pub mix: Mix,
}

impl MixedCell {
    /// A cell over `space` for `channels` channels; `alpha_init` gives the initial logits of
    /// each position (their lengths must match the positions' op counts), or nothing for a
    /// site that uses another site's alphas.
    pub fn new(space: &CellSpace, channels: usize, alpha_init: Vec<Vec<f32>>, device: &Device) -> MixedCell {
        let alphas =
            alpha_init.into_iter().map(|a| Param::from_data(TensorData::new(a.clone(), [a.len()]), device)).collect();
        let params = space
            .positions()
            .iter()
            .map(|p| {
                (0..p.ops.len())
                    .map(|k| {
                        p.op(k)
                            .init
                            .iter()
                            .map(|&v| Param::from_data(TensorData::new(vec![v as f32; channels], [channels]), device))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        MixedCell { alphas, params, space: space.clone(), bound: None, mix: Mix::Own }
    }

    /// The same cell with clamped position outputs.
    pub fn bounded(self, bound: Option<f64>) -> MixedCell {
        MixedCell { bound, ..self }
    }

    /// The same cell, mixing by `mix` from now on.
    pub fn with_mix(self, mix: Mix) -> MixedCell {
        MixedCell { mix, ..self }
    }

    /// The softmaxed mixing weights of each position of this cell's own alphas.
    pub fn weights(&self) -> Vec<Tensor<1>> {
        self.alphas.iter().map(|a| softmax(a.val(), 0)).collect()
    }

    /// The fused kernel on the CPU backend, the reference path elsewhere.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match fused::available(&x.device()) {
            true => self.forward_fused(x),
            false => self.forward_reference(x),
        }
    }

    /// The installed mix per position, or `None` for a fixed function.
    fn mixes(&self) -> Option<Vec<PositionMix>> {
        match &self.mix {
            Mix::Fixed(_) => None,
            Mix::Own => Some(
                self.weights()
                    .into_iter()
                    .map(|weights| PositionMix::Soft { ops: (0..weights.dims()[0]).collect(), weights })
                    .collect(),
            ),
            Mix::Positions(p) => Some(p.clone()),
        }
    }

    /// Composed burn tensor ops (every backend; the test oracle of the fused kernel).
    pub fn forward_reference(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_reference_on(x, Layout::Channels)
    }

    /// The cell on features along the last axis of `x` (the transformers' MLP hidden layers):
    /// the fused kernel in its feature layout on the CPU, the reference path elsewhere.
    pub fn forward_features<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match fused::available(&x.device()) {
            true => self.forward_fused_on(x, Layout::Features),
            false => self.forward_reference_on(x, Layout::Features),
        }
    }

    /// The reference path with the parameters on axis 1 (channels) or the last axis.
    pub fn forward_reference_on<const D: usize>(&self, x: Tensor<D>, layout: Layout) -> Tensor<D> {
        let Some(mixes) = self.mixes() else { return self.fixed(x, false) };
        let wiring = self.space.shape.wiring();
        let mut outputs: Vec<Tensor<D>> = Vec::with_capacity(wiring.len());
        for (i, mix) in mixes.into_iter().enumerate() {
            let args: Vec<Tensor<D>> = wiring[i]
                .iter()
                .map(|source| match source {
                    Source::Input => x.clone(),
                    Source::Pos(j) => outputs[*j].clone(),
                })
                .collect();
            let op = |k: usize| self.op(i, k, &x, &args, layout);
            let scalar = |t: Tensor<1>| t.reshape([1; D]);
            let mut out = match mix {
                PositionMix::Soft { ops, weights } => ops
                    .iter()
                    .enumerate()
                    .map(|(j, &k)| op(k) * scalar(weights.clone().slice(j..j + 1)))
                    .reduce(|a, b| a + b)
                    .expect("a position has at least one op"),
                PositionMix::Hard { ops, chosen, gates } => {
                    let n = ops.len();
                    let path = op(ops[chosen]) * scalar(gates.clone().slice(chosen..chosen + 1));
                    let others = gates.clone().sum() - gates.slice(chosen..chosen + 1);
                    if n > 1 { path + scalar(others) } else { path }
                }
            };
            if let Some(b) = self.bound {
                out = out.clamp(-b, b);
            }
            outputs.push(out);
        }
        outputs.pop().expect("a cell has at least one position")
    }

    /// The same cell as one fused kernel (`kernels::fused`, CPU backend only): the program
    /// holds every op in play, each times its mixing weight; the weights of all positions are
    /// one vector.
    pub fn forward_fused(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_fused_on(x, Layout::Channels)
    }

    /// The fused kernel with the parameters on axis 1 (channels) or the last axis.
    pub fn forward_fused_on<const D: usize>(&self, x: Tensor<D>, layout: Layout) -> Tensor<D> {
        let Some(mixes) = self.mixes() else { return self.fixed(x, true) };
        let wiring = self.space.shape.wiring();
        let mut program = Program::default();
        let mut params: Vec<Tensor<1>> = Vec::new();
        let mut weights: Vec<Tensor<1>> = Vec::new();
        let mut outputs: Vec<usize> = Vec::with_capacity(wiring.len());
        let mut weight_base = 0;
        for (i, mix) in mixes.into_iter().enumerate() {
            let args: Vec<usize> = wiring[i]
                .iter()
                .map(|source| match source {
                    Source::Input => 0,
                    Source::Pos(j) => outputs[*j],
                })
                .collect();
            let mut emit_op = |program: &mut Program, k: usize| {
                let rows: Vec<usize> = self.params[i][k]
                    .iter()
                    .map(|p| {
                        params.push(p.val());
                        params.len() - 1
                    })
                    .collect();
                program.emit(&self.space.op_template(i, k).expr, &args, &rows)
            };
            let mut out = match mix {
                PositionMix::Soft { ops, weights: w } => {
                    let values: Vec<usize> = ops.iter().map(|&k| emit_op(&mut program, k)).collect();
                    let mixed = program.push_mix(&values, weight_base);
                    weight_base += ops.len();
                    weights.push(w);
                    mixed
                }
                PositionMix::Hard { ops, chosen, gates } => {
                    let value = emit_op(&mut program, ops[chosen]);
                    let gate = program.push(Inst::Weight(weight_base + chosen));
                    let mut out = program.push(Inst::Bin(BinOp::Mul, value, gate));
                    for j in (0..ops.len()).filter(|&j| j != chosen) {
                        let other = program.push(Inst::Weight(weight_base + j));
                        out = program.push(Inst::Bin(BinOp::Add, out, other));
                    }
                    weight_base += ops.len();
                    weights.push(gates);
                    out
                }
            };
            if let Some(b) = self.bound {
                out = program.push(Inst::Clamp(out, -b as f32, b as f32));
            }
            outputs.push(out);
        }
        program.output = *outputs.last().expect("a cell has at least one position");
        let weights = Some(Tensor::cat(weights, 0));
        let program = match layout {
            Layout::Channels => program,
            Layout::Features => program.on_features(),
        };
        fused::apply(Arc::new(program), x, params, weights)
    }

    /// The installed fixed function (the warm start): ReLU through burn's op, as always; any
    /// other through the fused kernel (`fused`) or the reference path.
    fn fixed<const D: usize>(&self, x: Tensor<D>, fused_path: bool) -> Tensor<D> {
        let Mix::Fixed(formula) = &self.mix else { unreachable!("a mix of positions is not fixed") };
        if formula.expr == Expr::Call(Func::Relu, Box::new(Expr::X)) {
            return burn::tensor::activation::relu(x);
        }
        match fused_path {
            true => fused::apply(Arc::new(Program::from_formula(formula).on_features()), x, Vec::new(), None),
            false => reference::eval(formula, x, &[]),
        }
    }

    /// Candidate op `k` of position `i` on its arguments, its parameters on axis 1 (channels)
    /// or the last axis.
    fn op<const D: usize>(&self, i: usize, k: usize, x: &Tensor<D>, args: &[Tensor<D>], layout: Layout) -> Tensor<D> {
        let axis = match layout {
            Layout::Channels => 1,
            Layout::Features => D - 1,
        };
        let mut shape = [1usize; D];
        shape[axis] = x.dims()[axis];
        let params: Vec<Tensor<D>> = self.params[i][k].iter().map(|p| p.val().reshape(shape)).collect();
        reference::eval_args(self.space.op_template(i, k), x.clone(), args, &params)
    }
}

impl Site for MixedCell {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        MixedCell::forward(self, x)
    }

    fn forward_features<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        MixedCell::forward_features(self, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: &[f32], device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values.to_vec(), [1, values.len(), 1, 1]), device)
    }

    /// The mixed cell equals the plain softmax-weighted sum of its ops, position by position.
    #[test]
    fn mixed_cell_is_the_weighted_sum_of_its_ops() {
        let device = Device::flex();
        let space = CellSpace::parse("small").unwrap();
        let alphas: Vec<Vec<f32>> = space
            .positions()
            .iter()
            .enumerate()
            .map(|(i, p)| (0..p.ops.len()).map(|k| ((i * 7 + k * 3) % 5) as f32 * 0.3).collect())
            .collect();
        let cell = MixedCell::new(&space, 3, alphas.clone(), &device);
        let xs = [-1.3f32, 0.4, 2.2];
        let got = crate::model::state::host_f32(cell.forward(tensor(&xs, &device)));

        let softmax = |a: &[f32]| {
            let m = a.iter().cloned().fold(f32::MIN, f32::max);
            let e: Vec<f64> = a.iter().map(|v| ((v - m) as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect::<Vec<f64>>()
        };
        for (c, &x) in xs.iter().enumerate() {
            let x = x as f64;
            let mix = |pos: usize, args: &[f64]| -> f64 {
                let w = softmax(&alphas[pos]);
                (0..w.len())
                    .map(|k| {
                        let t: &Formula = space.op_template(pos, k);
                        w[k] * t.eval_args(x, args, &space.op(pos, k).init)
                    })
                    .sum()
            };
            let u1 = mix(0, &[x]);
            let u2 = mix(1, &[x]);
            let expected = mix(2, &[u1, u2]);
            assert!(
                (got[c] as f64 - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                "x={x}: {} vs {expected}",
                got[c]
            );
        }
    }

    /// With one op's logit far above the rest, the cell is that op.
    #[test]
    fn a_dominant_alpha_selects_its_op() {
        let device = Device::flex();
        let space = CellSpace::parse("small").unwrap();
        let choice = [7usize, 10, 5]; // beta_mul, tanh, sigmoid_mul
        let alphas = space
            .positions()
            .iter()
            .zip(choice)
            .map(|(p, c)| (0..p.ops.len()).map(|k| if k == c { 30.0 } else { 0.0 }).collect())
            .collect();
        let cell = MixedCell::new(&space, 2, alphas, &device);
        let genotype = space.genotype(&choice).unwrap();
        let formula = genotype.parsed().unwrap();
        let xs = [-0.8f32, 1.7];
        let got = crate::model::state::host_f32(cell.forward(tensor(&xs, &device)));
        for (c, &x) in xs.iter().enumerate() {
            let expected = formula.eval(x as f64, &genotype.init_values());
            assert!((got[c] as f64 - expected).abs() < 1e-4, "{}: {} vs {expected}", genotype.formula, got[c]);
        }
    }
}
