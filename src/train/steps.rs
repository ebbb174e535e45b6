//! The strategy of eval and of a search's children ([`WeightSteps`]): one optimizer step of
//! every weight per batch, then the held-out splits at each evaluation point; what it needs
//! of a task ([`Supervised`]: its batches as tensors, the scoring of its held-out splits) and
//! the image tasks' side of it ([`ImageSplits`]); plus the helpers every run uses (image
//! batches as tensors, evaluation of an image split, the parameter count). The text side is
//! `train::text`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use anyhow::Result;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::driver::{At, StepReport, Strategy};
use super::history::History;
use super::metrics::Meter;
use super::optimizer::Optim;
use super::schedule::LrRule;
use super::update::{Grads, Group};
use crate::data::{self, Batch, ImageSet, LoaderConfig, Normalization};
use crate::kernels::cross_entropy::CrossEntropy;
use crate::model::Net;
use crate::model::state::{NamedTensor, host_f32};

/// What [`WeightSteps`] trains on, for one kind of task (images, text): how a training batch
/// becomes the network's input and the target class of each row of logits, and how the
/// held-out splits are scored.
pub trait Supervised<N: Net> {
    type Batch;
    /// The network's input for `batch` on `device`, and the target of each row of logits.
    fn tensors(&self, batch: &Self::Batch, device: &Device) -> (N::Input, Vec<i64>);
    /// The validation and test metrics of `model` (its inference copy), where the run has them.
    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>);

    /// The training loss: cross-entropy, for translation label-smoothed with padding (whose
    /// rows count for nothing) ignored.
    fn loss(&self) -> CrossEntropy {
        CrossEntropy::PLAIN
    }
}

/// The training loss of `model` on `batch` of `data`'s task: the loss tensor (to take the
/// gradient of), its value, and the batch's metrics (padding rows not counted).
pub fn scored<N: Net, D: Supervised<N> + ?Sized>(data: &D, model: &N, batch: &D::Batch) -> (Tensor<1>, f64, Meter) {
    let device = model.devices()[0].clone();
    let (input, targets) = data.tensors(batch, &device);
    let logits = model.forward(input);
    let loss_fn = data.loss();
    let loss = loss_fn.forward(logits.clone(), &targets);
    let value = loss.clone().into_scalar::<f32>() as f64;
    let mut meter = Meter::default();
    meter.add_ignoring(&host_f32(logits.inner()), &targets, value, loss_fn.ignore);
    (loss, value, meter)
}

/// The image tasks' splits: the validation split (where there is one) and the test split
/// (where given), normalized with the training split's statistics.
pub struct ImageSplits {
    pub valid: Option<Arc<ImageSet>>,
    pub test: Option<Arc<ImageSet>>,
    pub norm: Normalization,
    /// Images per evaluation batch.
    pub eval_batch: usize,
    /// The plain (non-autodiff) device evaluation runs on.
    pub device: Device,
}

impl<N: Net<Input = Tensor<4>>> Supervised<N> for ImageSplits {
    type Batch = Batch;

    fn tensors(&self, batch: &Batch, device: &Device) -> (Tensor<4>, Vec<i64>) {
        (to_tensors(batch, device).0, batch.labels.clone())
    }

    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>) {
        let score = |set: &Arc<ImageSet>| evaluate(model, set, self.norm, self.eval_batch, &self.device);
        (self.valid.as_ref().map(score), self.test.as_ref().map(score))
    }
}

/// The strategy of eval and of a search's children: one optimizer step of every weight per
/// batch, then the held-out splits of `D` at each evaluation point. `C` is the run's
/// configuration type.
pub struct WeightSteps<N, C, D> {
    pub optim: Optim,
    pub lr: LrRule,
    pub data: D,
    /// The run's seed: with the step, it seeds the backend's generator before each step, so
    /// dropout draws the same masks in a resumed run.
    pub seed: u64,
    /// The plain (non-autodiff) device the optimizer state is restored to.
    pub device: Device,
    /// Advice for a run that diverged.
    pub hint: &'static str,
    pub types: PhantomData<(N, C)>,
}

impl<N, C, D> Strategy for WeightSteps<N, C, D>
where
    N: Net,
    C: Serialize + DeserializeOwned + Clone,
    D: Supervised<N>,
{
    type Net = N;
    type Batch = D::Batch;
    type Config = C;

    fn lr(&self, at: &At) -> f64 {
        self.lr.at(at)
    }

    fn step(&mut self, model: N, batch: &D::Batch, at: At) -> Result<(N, StepReport)> {
        let device = model.devices()[0].clone();
        device.seed(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ at.step as u64);
        let (loss, value, meter) = scored(&self.data, &model, batch);
        let report = StepReport { loss: value, meter };
        if !report.loss.is_finite() {
            return Ok((model, report));
        }
        let grads = Grads::of(&model, &loss.backward(), Group::All);
        Ok((self.optim.step(model, &grads, at.lr), report))
    }

    fn evaluate(&mut self, model: &N) -> Result<(Option<Meter>, Option<Meter>)> {
        Ok(self.data.evaluate(&model.valid()))
    }

    fn end_epoch(&mut self, _model: &N, _epoch: usize, _history: &mut History) -> Result<String> {
        Ok(String::new())
    }

    fn state(&self) -> (Vec<NamedTensor>, serde_json::Value) {
        self.optim.state()
    }

    fn load_state(&mut self, tensors: &HashMap<String, NamedTensor>, state: &serde_json::Value) -> Result<()> {
        self.optim.load_state(tensors, state, &self.device)
    }

    fn divergence_hint(&self) -> &'static str {
        self.hint
    }
}

pub(crate) fn to_tensors(batch: &Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let n = batch.size;
    let images = Tensor::<4>::from_data(TensorData::new(batch.images.clone(), [n, 3, 32, 32]), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(batch.labels.clone(), [n]), device);
    (images, labels)
}

/// Loss and accuracy of `model` (in inference mode) over a whole split.
pub fn evaluate<N: Net<Input = Tensor<4>>>(
    model: &N,
    set: &Arc<ImageSet>,
    norm: Normalization,
    batch_size: usize,
    device: &Device,
) -> Meter {
    let mut meter = Meter::default();
    let loader = data::batches(
        set.clone(),
        norm,
        LoaderConfig { batch_size, shuffle: false, augment: false, drop_last: false, seed: 0, epoch: 0 },
    );
    for batch in loader {
        let (images, _) = to_tensors(&batch, device);
        let logits = model.forward(images);
        let loss = CrossEntropy::PLAIN.forward(logits.clone(), &batch.labels).into_scalar::<f32>() as f64;
        let host = host_f32(logits);
        meter.add(&host, &batch.labels, loss);
    }
    meter
}

/// Number of trainable parameters (BatchNorm running statistics excluded).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0 += param.lazy_shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}
