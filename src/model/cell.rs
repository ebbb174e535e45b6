//! A searchable activation site: every position of a cell is a DARTS mixed op, the
//! softmax(alpha)-weighted sum of all its candidate ops (`u1`, `u2`, `b`, ...), evaluated on
//! tensors through the reference path. Each site owns its mixing logits (`alphas`) and the
//! per-channel parameters of every candidate op.
//!
//! Parameters whose path contains `alphas` are architecture parameters; everything else is a
//! network weight (see `train::groups`).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::kernels::reference;
use crate::space::cell::{CellSpace, Source};

#[derive(Module, Debug)]
pub struct MixedCell {
    /// Mixing logits per position, one per candidate op (DARTS' alpha, initialised 1e-3*N(0,1)).
    pub alphas: Vec<Param<Tensor<1>>>,
    /// `params[position][op][slot]`: per-channel values of each candidate op's parameters.
    pub params: Vec<Vec<Vec<Param<Tensor<1>>>>>,
    #[module(skip)]
    pub space: CellSpace,
}

impl MixedCell {
    /// A cell over `space` for `channels` channels; `alpha_init` gives the initial logits of
    /// each position (their lengths must match the positions' op counts).
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
        MixedCell { alphas, params, space: space.clone() }
    }

    /// The softmaxed mixing weights of each position.
    pub fn weights(&self) -> Vec<Tensor<1>> {
        self.alphas.iter().map(|a| softmax(a.val(), 0)).collect()
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = x.dims()[1];
        let wiring = self.space.shape.wiring();
        let mut outputs: Vec<Tensor<4>> = Vec::with_capacity(wiring.len());
        for (i, (position, weights)) in self.space.positions().iter().zip(self.weights()).enumerate() {
            let args: Vec<Tensor<4>> = wiring[i]
                .iter()
                .map(|source| match source {
                    Source::Input => x.clone(),
                    Source::Pos(j) => outputs[*j].clone(),
                })
                .collect();
            let mut mixed: Option<Tensor<4>> = None;
            for k in 0..position.ops.len() {
                let params: Vec<Tensor<4>> =
                    self.params[i][k].iter().map(|p| p.val().reshape([1, channels, 1, 1])).collect();
                let out = reference::eval_args(self.space.op_template(i, k), x.clone(), &args, &params);
                let term = out * weights.clone().slice(k..k + 1).reshape([1, 1, 1, 1]);
                mixed = Some(match mixed {
                    Some(m) => m + term,
                    None => term,
                });
            }
            outputs.push(mixed.expect("a position has at least one op"));
        }
        outputs.pop().expect("a cell has at least one position")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Formula;

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
