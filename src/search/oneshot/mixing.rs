//! How each one-shot method turns the alphas into the cells' mixing weights for the next
//! forward pass, and what the run records as "the weights" of an epoch.
//!
//! | method          | training forward                           | evaluation, records     |
//! |-----------------|--------------------------------------------|-------------------------|
//! | darts, darts2   | softmax(alpha)                             | softmax(alpha)          |
//! | gdas            | hard Gumbel-softmax, straight-through; only the sampled op is computed | argmax path; softmax |
//! | drnas, grafs    | Dirichlet(ELU(alpha)+1) sample, implicit reparameterization | its mean     |
//!
//! Samples are drawn from a ChaCha stream seeded by (run seed, epoch, batch, purpose), so a
//! resumed run draws exactly what an uninterrupted one would. With a shared cell, DrNAS and
//! GDAS draw one sample for all sites; GRAFS draws an independent sample per site.

use anyhow::{Result, bail};
use burn::prelude::*;
use burn::tensor::activation::{elu, log_softmax, softmax};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gumbel};
use serde::{Deserialize, Serialize};

use super::dirichlet;
use crate::expr::Formula;
use crate::model::MixedCell;
use crate::model::cell::{Mix, PositionMix};
use crate::model::net::Net;
use crate::model::state::host_f32;

/// The one-shot methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Darts,
    Darts2,
    Gdas,
    Drnas,
    Grafs,
}

impl Method {
    pub const ALL: [Method; 5] = [Method::Darts, Method::Darts2, Method::Gdas, Method::Drnas, Method::Grafs];

    pub fn parse(name: &str) -> Result<Method> {
        match Method::ALL.into_iter().find(|m| m.name() == name) {
            Some(m) => Ok(m),
            None => bail!("unknown one-shot method '{name}': use one of darts, darts2, gdas, drnas, grafs"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Darts => "darts",
            Method::Darts2 => "darts2",
            Method::Gdas => "gdas",
            Method::Drnas => "drnas",
            Method::Grafs => "grafs",
        }
    }

    /// Mixing weights are Dirichlet samples.
    pub fn dirichlet(self) -> bool {
        matches!(self, Method::Drnas | Method::Grafs)
    }
}

/// Which forward pass the mix is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// A training step (architecture or weights): sampled where the method samples.
    Train,
    /// Evaluation and records: deterministic.
    Eval,
}

/// The mixing state of a search: the method, whether the cell is shared, GDAS' temperature
/// and which ops are still in play.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mixer {
    pub method: Method,
    pub shared: bool,
    /// Gumbel-softmax temperature (GDAS).
    pub tau: f64,
    /// `active[set][position][op]`: one set per site, or a single set for a shared cell.
    pub active: Vec<Vec<Vec<bool>>>,
}

impl Mixer {
    /// Every op in play; `op_counts` per position, `sites` activation sites.
    pub fn new(method: Method, shared: bool, op_counts: &[usize], sites: usize) -> Mixer {
        let set: Vec<Vec<bool>> = op_counts.iter().map(|&n| vec![true; n]).collect();
        Mixer { method, shared, tau: 10.0, active: vec![set; if shared { 1 } else { sites }] }
    }

    /// The alpha set a site reads.
    pub fn set_of(&self, site: usize) -> usize {
        if self.shared { 0 } else { site }
    }

    /// The alpha tensors of each set, per position.
    pub fn alpha_sets<N: Net<Site = MixedCell>>(&self, model: &N) -> Vec<Vec<Tensor<1>>> {
        let sites = model.sites();
        (0..self.active.len()).map(|s| sites[s].alphas.iter().map(|a| a.val()).collect()).collect()
    }

    /// Install in every site the mix for the next forward pass. `seed` picks the samples.
    pub fn install<N: Net<Site = MixedCell>>(&self, model: N, pass: Pass, seed: u64) -> N {
        let sets = self.alpha_sets(&model);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sites = model.sites().len();
        let independent = !self.shared || self.method == Method::Grafs;
        let mut mixes: Vec<Mix> = Vec::with_capacity(sites);
        for site in 0..sites {
            if !independent && site > 0 {
                mixes.push(mixes[0].clone());
                continue;
            }
            let set = self.set_of(site);
            let positions = sets[set]
                .iter()
                .zip(&self.active[set])
                .map(|(alpha, active)| self.position_mix(alpha.clone(), active, pass, &mut rng))
                .collect();
            mixes.push(Mix::Positions(positions));
        }
        model.map_sites(|i, cell| cell.with_mix(mixes[i].clone()))
    }

    /// Install the fixed function `warm` at every site (the warm start: GRAFS' ReLU for the
    /// ResNets, GELU for the transformers).
    pub fn install_fixed<N: Net<Site = MixedCell>>(model: N, warm: &Formula) -> N {
        model.map_sites(|_, cell| cell.with_mix(Mix::Fixed(warm.clone())))
    }

    fn position_mix(&self, alpha: Tensor<1>, active: &[bool], pass: Pass, rng: &mut ChaCha8Rng) -> PositionMix {
        let ops: Vec<usize> = (0..active.len()).filter(|&k| active[k]).collect();
        let alpha = select(alpha, &ops);
        match (self.method, pass) {
            (Method::Darts | Method::Darts2, _) => PositionMix::Soft { ops, weights: softmax(alpha, 0) },
            (Method::Gdas, Pass::Train) => gumbel_hard(alpha, ops, self.tau, rng),
            (Method::Gdas, Pass::Eval) => argmax_path(alpha, ops),
            (Method::Drnas | Method::Grafs, Pass::Train) => {
                PositionMix::Soft { ops, weights: dirichlet_sample(concentration(alpha), rng) }
            }
            (Method::Drnas | Method::Grafs, Pass::Eval) => {
                let conc = concentration(alpha);
                PositionMix::Soft { ops, weights: conc.clone() / conc.sum() }
            }
        }
    }

    /// The deterministic mixing weights `[site][position][op]` (0 for ops out of play): what
    /// `alphas.jsonl` records and the genotype is discretized from.
    pub fn weights<N: Net<Site = MixedCell>>(&self, model: &N) -> Vec<Vec<Vec<f64>>> {
        let sets: Vec<Vec<Vec<f64>>> = self
            .alpha_sets(model)
            .into_iter()
            .zip(&self.active)
            .map(|(alphas, active)| {
                alphas
                    .into_iter()
                    .zip(active)
                    .map(|(alpha, active)| {
                        let ops: Vec<usize> = (0..active.len()).filter(|&k| active[k]).collect();
                        let alpha = select(alpha.inner(), &ops);
                        let w = if self.method.dirichlet() {
                            let conc = concentration(alpha);
                            conc.clone() / conc.sum()
                        } else {
                            softmax(alpha, 0)
                        };
                        let mut full = vec![0.0; active.len()];
                        for (k, v) in ops.iter().zip(host_f32(w)) {
                            full[*k] = v as f64;
                        }
                        full
                    })
                    .collect()
            })
            .collect();
        (0..model.sites().len()).map(|site| sets[self.set_of(site)].clone()).collect()
    }

    /// DrNAS' KL anchor: the sum over alpha sets and positions of KL(Dir(ELU(alpha)+1) ||
    /// Dir(1)), as a scalar whose gradient is exact (the value is carried as a constant).
    /// `None` for methods without Dirichlet weights.
    pub fn kl<N: Net<Site = MixedCell>>(&self, model: &N) -> Option<Tensor<1>> {
        if !self.method.dirichlet() {
            return None;
        }
        let mut total: Option<Tensor<1>> = None;
        for (alphas, active) in self.alpha_sets(model).into_iter().zip(&self.active) {
            for (alpha, active) in alphas.into_iter().zip(active) {
                let ops: Vec<usize> = (0..active.len()).filter(|&k| active[k]).collect();
                if ops.len() < 2 {
                    continue;
                }
                let conc = concentration(select(alpha, &ops));
                let host: Vec<f64> = host_f32(conc.clone().inner()).into_iter().map(f64::from).collect();
                let (value, grad) = dirichlet::kl_to_uniform(&host);
                let term = with_gradient(conc, value, &grad);
                total = Some(match total {
                    Some(t) => t + term,
                    None => term,
                });
            }
        }
        total
    }
}

/// `alpha[ops]` (the whole tensor when every op is in play).
fn select(alpha: Tensor<1>, ops: &[usize]) -> Tensor<1> {
    if ops.len() == alpha.dims()[0] {
        return alpha;
    }
    let device = alpha.device();
    let index: Vec<i64> = ops.iter().map(|&k| k as i64).collect();
    alpha.select(0, Tensor::<1, Int>::from_data(TensorData::new(index, [ops.len()]), &device))
}

/// DrNAS' concentration ELU(alpha) + 1.
fn concentration(alpha: Tensor<1>) -> Tensor<1> {
    elu(alpha, 1.0).add_scalar(1.0)
}

/// A constant `[1]` tensor of value `value` whose gradient with respect to `x` is `grad`:
/// `value + sum((x - detach(x)) * grad)`.
fn with_gradient(x: Tensor<1>, value: f64, grad: &[f64]) -> Tensor<1> {
    let device = x.device();
    let g = Tensor::<1>::from_data(TensorData::new(grad.iter().map(|&v| v as f32).collect(), [grad.len()]), &device);
    ((x.clone() - x.detach()) * g).sum().add_scalar(value)
}

/// A Dirichlet(conc) sample whose gradient with respect to `conc` is the implicit
/// reparameterization gradient: each Gamma sample is `z + (conc - detach(conc)) * dz/dconc`,
/// and the sample is their normalized vector.
pub fn dirichlet_sample(conc: Tensor<1>, rng: &mut ChaCha8Rng) -> Tensor<1> {
    let device = conc.device();
    let n = conc.dims()[0];
    let host: Vec<f64> = host_f32(conc.clone().inner()).into_iter().map(f64::from).collect();
    let (z, dz) = dirichlet::dirichlet_gammas(rng, &host);
    let constant =
        |v: Vec<f64>| Tensor::<1>::from_data(TensorData::new(v.into_iter().map(|x| x as f32).collect(), [n]), &device);
    let gammas = constant(z) + (conc.clone() - conc.detach()) * constant(dz);
    gammas.clone() / gammas.sum()
}

/// The single path of the largest alpha, with constant one-hot gates (GDAS' evaluation).
fn argmax_path(alpha: Tensor<1>, ops: Vec<usize>) -> PositionMix {
    let host = host_f32(alpha.clone().inner());
    let n = host.len();
    let chosen = (0..n).fold(0, |best, k| if host[k] > host[best] { k } else { best });
    PositionMix::Hard { ops, chosen, gates: one_hot(n, chosen, &alpha.device()) }
}

fn one_hot(n: usize, k: usize, device: &Device) -> Tensor<1> {
    let mut v = vec![0.0f32; n];
    v[k] = 1.0;
    Tensor::<1>::from_data(TensorData::new(v, [n]), device)
}

/// GDAS' hard Gumbel-softmax: `probs = softmax((log_softmax(alpha) + g) / tau)` with Gumbel
/// noise g; the forward uses the one-hot of argmax(probs), the backward the gradient of probs
/// (straight-through: `one_hot - detach(probs) + probs`).
pub fn gumbel_hard(alpha: Tensor<1>, ops: Vec<usize>, tau: f64, rng: &mut ChaCha8Rng) -> PositionMix {
    let device = alpha.device();
    let n = alpha.dims()[0];
    let gumbel = Gumbel::new(0.0f64, 1.0).expect("a valid Gumbel distribution");
    let noise: Vec<f32> = (0..n).map(|_| gumbel.sample(rng) as f32).collect();
    let noise = Tensor::<1>::from_data(TensorData::new(noise, [n]), &device);
    let probs = softmax((log_softmax(alpha, 0) + noise).div_scalar(tau), 0);
    let host = host_f32(probs.clone().inner());
    let chosen = (0..n).fold(0, |best, k| if host[k] > host[best] { k } else { best });
    let gates = one_hot(n, chosen, &device) - probs.clone().detach() + probs;
    PositionMix::Hard { ops, chosen, gates }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MixedCell;
    use crate::space::cell::CellSpace;

    fn leaf(values: &[f32], device: &Device) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(values.to_vec(), [values.len()]), device).require_grad()
    }

    /// The straight-through gates are exactly one-hot in the forward pass, and their
    /// gradient is the soft one: d/d alpha of sum(c * probs), probs = softmax((alpha + g) / tau).
    #[test]
    fn gumbel_straight_through_is_one_hot_forward_with_soft_gradients() {
        let device = Device::flex().autodiff();
        let values = [0.3f32, -0.2, 0.9, 0.1];
        let c = [1.0f64, -2.0, 0.5, 3.0];
        for (seed, tau) in [(1u64, 10.0), (2, 1.0), (3, 0.1)] {
            let alpha = leaf(&values, &device);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let PositionMix::Hard { chosen, gates, .. } = gumbel_hard(alpha.clone(), vec![0, 1, 2, 3], tau, &mut rng)
            else {
                panic!("gdas gives a single path");
            };
            let forward = host_f32(gates.clone().inner());
            for (k, v) in forward.iter().enumerate() {
                assert_eq!(*v, if k == chosen { 1.0 } else { 0.0 }, "tau {tau}: {forward:?}");
            }
            let coef = Tensor::<1>::from_data(TensorData::new(c.map(|v| v as f32).to_vec(), [4]), &device);
            let grads = (gates * coef).sum().backward();
            let got = host_f32(alpha.grad(&grads).unwrap());

            // Replay the noise and differentiate the soft weights by hand.
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let gumbel = Gumbel::new(0.0f64, 1.0).unwrap();
            let logits: Vec<f64> = values.iter().map(|&a| (a as f64 + gumbel.sample(&mut rng)) / tau).collect();
            let m = logits.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
            let p: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
            let mean: f64 = (0..4).map(|k| c[k] * p[k]).sum();
            let argmax = (0..4).fold(0, |b, k| if p[k] > p[b] { k } else { b });
            assert_eq!(chosen, argmax);
            for j in 0..4 {
                let expected = p[j] * (c[j] - mean) / tau;
                assert!((got[j] as f64 - expected).abs() < 1e-4 * expected.abs().max(1.0), "tau {tau}: {got:?}");
            }
        }
    }

    /// A cell given a single path computes that op only: its output is the op's value.
    #[test]
    fn a_hard_path_is_the_chosen_op() {
        let device = Device::flex();
        let space = CellSpace::parse("small").unwrap();
        let alphas: Vec<Vec<f32>> = space.positions().iter().map(|p| vec![0.0; p.ops.len()]).collect();
        let choice = [10usize, 5, 2]; // tanh, abs, mul
        let mixes = space
            .positions()
            .iter()
            .zip(choice)
            .map(|(p, k)| PositionMix::Hard {
                ops: (0..p.ops.len()).collect(),
                chosen: k,
                gates: one_hot(p.ops.len(), k, &device),
            })
            .collect();
        let cell = MixedCell::new(&space, 2, alphas, &device).with_mix(Mix::Positions(mixes));
        let genotype = space.genotype(&choice).unwrap();
        let formula = genotype.parsed().unwrap();
        let xs = [-0.8f32, 1.7];
        let x = Tensor::<4>::from_data(TensorData::new(xs.to_vec(), [1, 2, 1, 1]), &device);
        let got = host_f32(cell.forward(x));
        for (c, &x) in xs.iter().enumerate() {
            let expected = formula.eval(x as f64, &genotype.init_values());
            assert!((got[c] as f64 - expected).abs() < 1e-5, "{}: {} vs {expected}", genotype.formula, got[c]);
        }
    }

    /// Dirichlet samples have the right mean and variance, and the reparameterized gradient
    /// of the sample averages to the gradient of the mean: E[w_0] = c_0 / C, so
    /// dE[w_0]/dc_0 = (C - c_0) / C^2 and dE[w_0]/dc_j = -c_0 / C^2.
    #[test]
    fn dirichlet_samples_have_the_right_moments_and_gradient() {
        let device = Device::flex().autodiff();
        let conc = [0.6f64, 1.5, 3.0];
        let total: f64 = conc.iter().sum();
        let n = 4000;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (mut sum, mut sum_sq, mut grad) = ([0.0f64; 3], [0.0f64; 3], [0.0f64; 3]);
        for _ in 0..n {
            let c = leaf(&conc.map(|v| v as f32), &device);
            let w = dirichlet_sample(c.clone(), &mut rng);
            let host = host_f32(w.clone().inner());
            let g = host_f32(c.grad(&w.slice(0..1).sum().backward()).unwrap());
            for k in 0..3 {
                sum[k] += host[k] as f64;
                sum_sq[k] += (host[k] as f64).powi(2);
                grad[k] += g[k] as f64;
            }
        }
        for k in 0..3 {
            let mean = sum[k] / n as f64;
            let var = sum_sq[k] / n as f64 - mean * mean;
            let (em, ev) = (conc[k] / total, conc[k] * (total - conc[k]) / (total * total * (total + 1.0)));
            assert!((mean - em).abs() < 0.01, "mean {k}: {mean} vs {em}");
            assert!((var - ev).abs() < 0.1 * ev, "var {k}: {var} vs {ev}");
            let expected = if k == 0 { (total - conc[0]) / total.powi(2) } else { -conc[0] / total.powi(2) };
            let got = grad[k] / n as f64;
            assert!((got - expected).abs() < 0.1 * expected.abs(), "grad {k}: {got} vs {expected}");
        }
    }
}
