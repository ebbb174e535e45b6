//! Adam with L2 weight decay (PyTorch's `torch.optim.Adam` rule, as DARTS uses for the
//! architecture parameters):
//!
//! ```text
//! g = grad + wd * p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
//! p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//! ```
//!
//! and AdamW (`torch.optim.AdamW`, the transformers' recipes): the decay is decoupled,
//! `p *= 1 - lr * wd` before the step with `g = grad`, and applies only to the parameters not
//! in the no-decay set (biases, norms and activation parameters). Either may clip the global
//! gradient norm first (`torch.nn.utils.clip_grad_norm_`).

use std::collections::{HashMap, HashSet};

use burn::module::Module;
use burn::prelude::*;

use super::sgd::{load_named_state, named_state};
use super::update::{self, Grads, Group};
use crate::model::state::NamedTensor;

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub group: Group,
}

pub struct Adam {
    config: AdamConfig,
    /// AdamW: the parameters (by name) that get no decay; None for Adam's L2 decay.
    decoupled: Option<HashSet<String>>,
    grad_clip: Option<f64>,
    /// Steps taken (for bias correction); the same for every parameter of the group.
    pub steps: u64,
    m: HashMap<String, Tensor<1>>,
    v: HashMap<String, Tensor<1>>,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Adam {
        Adam { config, decoupled: None, grad_clip: None, steps: 0, m: HashMap::new(), v: HashMap::new() }
    }

    /// AdamW, decaying every parameter but those named in `no_decay`, clipping the global
    /// gradient norm to `grad_clip` where given.
    pub fn adamw(config: AdamConfig, no_decay: HashSet<String>, grad_clip: Option<f64>) -> Adam {
        Adam { decoupled: Some(no_decay), grad_clip, ..Adam::new(config) }
    }

    pub fn step<M: Module>(&mut self, module: M, grads: &Grads, lr: f64) -> M {
        let c = self.config;
        self.steps += 1;
        let (b1, b2) = c.betas;
        let correction1 = 1.0 - b1.powi(self.steps as i32);
        let correction2 = 1.0 - b2.powi(self.steps as i32);
        let scale = update::clip_scale(grads, self.grad_clip);
        let (ms, vs, decoupled) = (&mut self.m, &mut self.v, &self.decoupled);
        update::apply(module, grads, c.group, &mut |name, p, grad| {
            let grad = if scale != 1.0 { grad.mul_scalar(scale) } else { grad };
            let (p, g) = match decoupled {
                Some(no_decay) if c.weight_decay != 0.0 && !no_decay.contains(name) => {
                    (p.mul_scalar(1.0 - lr * c.weight_decay), grad)
                }
                Some(_) => (p, grad),
                None if c.weight_decay != 0.0 => (p.clone(), grad + p.mul_scalar(c.weight_decay)),
                None => (p, grad),
            };
            let m = match ms.remove(name) {
                Some(m) => m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                None => g.clone().mul_scalar(1.0 - b1),
            };
            let v = match vs.remove(name) {
                Some(v) => v.mul_scalar(b2) + g.clone().square().mul_scalar(1.0 - b2),
                None => g.square().mul_scalar(1.0 - b2),
            };
            let denom = v.clone().div_scalar(correction2).sqrt().add_scalar(c.eps);
            let step = m.clone().div_scalar(correction1) / denom;
            ms.insert(name.to_string(), m);
            vs.insert(name.to_string(), v);
            p - step.mul_scalar(lr)
        })
    }

    pub fn state(&self) -> Vec<NamedTensor> {
        named_state(&[("exp_avg", &self.m), ("exp_avg_sq", &self.v)])
    }

    pub fn load_state(&mut self, tensors: &HashMap<String, NamedTensor>, steps: u64, device: &Device) {
        // Only this optimizer's group: a search's AdamW (weights) and Adam (alphas) share the
        // checkpoint's `exp_avg` names.
        let group = self.config.group;
        let mine = |mut map: HashMap<String, Tensor<1>>| {
            map.retain(|name, _| group.contains(name));
            map
        };
        self.m = mine(load_named_state(tensors, "exp_avg", device));
        self.v = mine(load_named_state(tensors, "exp_avg_sq", device));
        self.steps = steps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;

    #[derive(Module, Debug)]
    struct Arch {
        alphas: Param<Tensor<1>>,
        other: Param<Tensor<1>>,
    }

    /// Three Adam steps on loss = sum(c * alphas) against the rule computed by hand; parameters
    /// outside the group are not touched.
    #[test]
    fn matches_pytorch_adam_and_respects_the_group() {
        let device = Device::flex().autodiff();
        let mut model = Arch {
            alphas: Param::from_data(TensorData::new(vec![0.5f32, -1.0], [2]), &device),
            other: Param::from_data(TensorData::new(vec![2.0f32], [1]), &device),
        };
        let c = [0.3f64, -2.0];
        let cfg = AdamConfig { betas: (0.5, 0.999), eps: 1e-8, weight_decay: 1e-3, group: Group::Arch };
        let mut adam = Adam::new(cfg);
        let (mut p, mut m, mut v) = ([0.5f64, -1.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=3 {
            let coef = Tensor::<1>::from_data(TensorData::new(vec![c[0] as f32, c[1] as f32], [2]), &device);
            let loss = (model.alphas.val() * coef).sum() + model.other.val().sum();
            let grads = Grads::of(&model, &loss.backward(), Group::Arch);
            model = adam.step(model, &grads, 0.01);
            for i in 0..2 {
                let g = c[i] + 1e-3 * p[i];
                m[i] = 0.5 * m[i] + 0.5 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.5f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                p[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = crate::model::state::host_f32(model.alphas.val());
        for i in 0..2 {
            assert!((got[i] as f64 - p[i]).abs() < 1e-5, "{got:?} vs {p:?}");
        }
        assert_eq!(crate::model::state::host_f32(model.other.val()), vec![2.0]);
    }

    /// AdamW: decoupled decay on every parameter but the no-decay ones, after clipping the
    /// global gradient norm, as torch.optim.AdamW after clip_grad_norm_ computes it.
    #[test]
    fn adamw_decays_only_outside_the_no_decay_set_and_clips() {
        let device = Device::flex().autodiff();
        let mut model = Arch {
            alphas: Param::from_data(TensorData::new(vec![0.5f32, -1.0], [2]), &device),
            other: Param::from_data(TensorData::new(vec![2.0f32], [1]), &device),
        };
        let c = [3.0f64, -4.0, 0.0];
        let cfg = AdamConfig { betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.1, group: Group::All };
        let mut adam = Adam::adamw(cfg, ["other".to_string()].into(), Some(1.0));
        let (mut p, mut m, mut v) = ([0.5f64, -1.0, 2.0], [0.0f64; 3], [0.0f64; 3]);
        let lr = 0.01;
        for t in 1..=3 {
            let coef = Tensor::<1>::from_data(TensorData::new(vec![c[0] as f32, c[1] as f32], [2]), &device);
            let loss = (model.alphas.val() * coef).sum() + model.other.val().sum().mul_scalar(0.0);
            let grads = Grads::of(&model, &loss.backward(), Group::All);
            model = adam.step(model, &grads, lr);
            // The gradient (3, -4, 0) has norm 5: clipped to norm 1.
            let scale = 1.0 / (5.0 + 1e-6);
            for i in 0..3 {
                let g = c[i] * scale;
                if i < 2 {
                    p[i] *= 1.0 - lr * 0.1;
                }
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                p[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = crate::model::state::host_f32(model.alphas.val());
        for i in 0..2 {
            assert!((got[i] as f64 - p[i]).abs() < 1e-6, "{got:?} vs {p:?}");
        }
        // No decay: a zero gradient leaves it where it was.
        assert_eq!(crate::model::state::host_f32(model.other.val()), vec![2.0]);
    }
}
