//! PPO and REINFORCE as methods: the LSTM [`Controller`] samples a batch of sequences; their
//! rewards minus an exponential moving average of past rewards are the advantages; an
//! entropy bonus keeps the policy from collapsing early; Adam updates the controller (PPO:
//! several epochs of the clipped objective per batch; REINFORCE: one policy-gradient step).

use std::collections::HashMap;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::controller::{Controller, ControllerConfig};
use super::method::{Learned, Method, rng, rng_from_state, rng_state};
use super::ppo::clipped_loss;
use super::reinforce::{advantages, policy_gradient_loss, update_baseline};
use super::space::TokenSpace;
use crate::model::state::{NamedTensor, Values, load_state_dict, state_dict};
use crate::train::adam::{Adam, AdamConfig};
use crate::train::update::{Grads, Group};

/// How the controller learns from a batch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    /// PPO's clipped objective, `epochs` passes per batch, clip range `clip`.
    Ppo { epochs: usize, clip: f64 },
    /// The plain policy gradient, one step per batch.
    Reinforce,
}

/// The controller's training settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    pub rule: Rule,
    pub controller: ControllerConfig,
    /// Adam's learning rate for the controller.
    pub lr: f64,
    /// Weight of the mean per-step entropy subtracted from the loss.
    pub entropy_weight: f64,
    /// Decay of the reward baseline's moving average.
    pub baseline_decay: f64,
}

pub struct PolicySearch {
    space: TokenSpace,
    config: PolicyConfig,
    controller: Controller,
    adam: Adam,
    baseline: Option<f64>,
    rng: ChaCha8Rng,
    /// Log-probabilities of the last proposals under the policy that drew them.
    drawn: Vec<f64>,
    device: Device,
}

fn adam() -> Adam {
    Adam::new(AdamConfig { betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, group: Group::All })
}

impl PolicySearch {
    /// A fresh controller for `space` (`device` is the plain CPU device).
    pub fn new(space: TokenSpace, config: PolicyConfig, seed: u64, device: &Device) -> PolicySearch {
        let mut rng = rng(seed);
        let controller = Controller::new(&space, config.controller, &mut rng, &device.clone().autodiff());
        PolicySearch {
            space,
            config,
            controller,
            adam: adam(),
            baseline: None,
            rng,
            drawn: Vec::new(),
            device: device.clone(),
        }
    }
}

impl Method for PolicySearch {
    fn propose(&mut self, n: usize) -> Result<Vec<Vec<usize>>> {
        let sampled = self.controller.valid().sample(&self.space, n, &mut self.rng, &self.device);
        self.drawn = sampled.log_probs;
        Ok(sampled.sequences)
    }

    fn learn(&mut self, batch: &[(Vec<usize>, f64)]) -> Result<Learned> {
        if batch.is_empty() {
            return Ok(Learned::default());
        }
        let rewards: Vec<f64> = batch.iter().map(|(_, r)| *r).collect();
        let baseline = self.baseline.unwrap_or(rewards.iter().sum::<f64>() / rewards.len() as f64);
        let adv = advantages(&rewards, baseline);
        self.baseline = update_baseline(self.baseline, &rewards, self.config.baseline_decay);

        let device = self.device.clone().autodiff();
        let sequences: Vec<Vec<usize>> = batch.iter().map(|(s, _)| s.clone()).collect();
        let n = batch.len();
        let vector = |v: &[f64]| {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [n]), &device)
        };
        let adv_t = vector(&adv);
        let old = vector(&self.drawn[..n.min(self.drawn.len())]);
        let passes = match self.config.rule {
            Rule::Ppo { epochs, .. } => epochs.max(1),
            Rule::Reinforce => 1,
        };
        let mut entropy = 0.0;
        for _ in 0..passes {
            let (log_p, h) = self.controller.log_probs(&self.space, &sequences, &device);
            let policy = match self.config.rule {
                Rule::Ppo { clip, .. } => clipped_loss(log_p, old.clone(), adv_t.clone(), clip),
                Rule::Reinforce => policy_gradient_loss(log_p, adv_t.clone()),
            };
            let mean_h = h.mean();
            entropy = mean_h.clone().into_scalar::<f32>() as f64;
            let loss = policy - mean_h.mul_scalar(self.config.entropy_weight);
            let grads = Grads::of(&self.controller, &loss.backward(), Group::All);
            let controller = std::mem::replace(&mut self.controller, placeholder(&self.space, &device));
            self.controller = self.adam.step(controller, &grads, self.config.lr);
        }
        Ok(Learned { entropy: Some(entropy) })
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "controller": tensors_json(&state_dict(&self.controller, 0)),
            "adam": tensors_json(&self.adam.state()),
            "adam_steps": self.adam.steps,
            "baseline": self.baseline,
            "rng": rng_state(&self.rng),
        }))
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let device = self.device.clone().autodiff();
        let weights = tensors_from_json(&state["controller"]).context("the controller's weights")?;
        let controller = std::mem::replace(&mut self.controller, placeholder(&self.space, &device));
        self.controller = load_state_dict(controller, &weights)?;
        let mut adam = adam();
        let steps = state["adam_steps"].as_u64().context("the controller's optimizer lacks its step count")?;
        adam.load_state(&tensors_from_json(&state["adam"]).context("the controller's optimizer")?, steps, &device);
        self.adam = adam;
        self.baseline = state["baseline"].as_f64();
        self.rng = rng_from_state(&state["rng"])?;
        Ok(())
    }
}

/// A throwaway controller to hold `self.controller`'s place while it is moved.
fn placeholder(space: &TokenSpace, device: &Device) -> Controller {
    let tiny = ControllerConfig { embedding: 1, hidden: 1, init: 0.0 };
    Controller::new(space, tiny, &mut rng(0), device)
}

fn tensors_json(tensors: &[NamedTensor]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = tensors
        .iter()
        .filter_map(|t| match &t.values {
            Values::F32(v) => Some(serde_json::json!({ "name": t.name, "shape": t.shape, "values": v })),
            Values::I64(_) => None,
        })
        .collect();
    serde_json::Value::Array(list)
}

fn tensors_from_json(v: &serde_json::Value) -> Result<HashMap<String, NamedTensor>> {
    let list = v.as_array().context("not a list of tensors")?;
    let mut out = HashMap::new();
    for t in list {
        let name = t["name"].as_str().context("a tensor lacks its name")?.to_string();
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).context("a tensor's shape")?;
        let values: Vec<f32> = serde_json::from_value(t["values"].clone()).context("a tensor's values")?;
        out.insert(name.clone(), NamedTensor { name, shape, values: Values::F32(values) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rule: Rule) -> PolicyConfig {
        PolicyConfig {
            rule,
            controller: ControllerConfig::default(),
            lr: 0.01,
            entropy_weight: 0.0,
            baseline_decay: 0.9,
        }
    }

    /// A state saved after learning and loaded into a fresh controller gives the same
    /// proposals and the same updates.
    #[test]
    fn state_round_trips() {
        let device = Device::flex();
        let space = TokenSpace::parse("core1").unwrap();
        let rule = Rule::Ppo { epochs: 2, clip: 0.2 };
        let mut a = PolicySearch::new(space.clone(), config(rule), 5, &device);
        let batch: Vec<(Vec<usize>, f64)> =
            a.propose(6).unwrap().into_iter().enumerate().map(|(i, s)| (s, i as f64 / 6.0)).collect();
        a.learn(&batch).unwrap();
        let mut b = PolicySearch::new(space, config(rule), 99, &device);
        b.load_state(&a.state().unwrap()).unwrap();
        let (pa, pb) = (a.propose(6).unwrap(), b.propose(6).unwrap());
        assert_eq!(pa, pb);
        let batch: Vec<(Vec<usize>, f64)> = pa.into_iter().map(|s| (s, 0.5)).collect();
        a.learn(&batch).unwrap();
        b.learn(&batch).unwrap();
        assert_eq!(a.state().unwrap(), b.state().unwrap());
    }
}
