//! The language-model task for the one training loop: the training batches of a character
//! corpus ([`TextBatches`], for the driver) and its held-out split ([`TextSplits`], for
//! [`WeightSteps`](super::steps::WeightSteps)).
//!
//! A training batch is `rows` random windows of `len` characters; the batch of optimizer step
//! `s` is drawn from the run's seed and `s` alone (`CharCorpus::train_batch`), so a resumed run
//! trains on exactly the batches of an uninterrupted one. The driver's loader epochs are
//! passes of `train characters / (rows x len)` batches. The validation score is the mean
//! cross-entropy over every non-overlapping window of the validation text, and the accuracy of
//! the next character; there is no test split.

use std::sync::Arc;

use burn::prelude::*;

use super::driver::Batches;
use super::metrics::Meter;
use super::steps::Supervised;
use crate::data::text::{CharCorpus, TextBatch};
use crate::kernels::cross_entropy::CrossEntropy;
use crate::model::Net;
use crate::model::state::host_f32;

/// The training windows of a corpus.
pub struct TextBatches {
    pub corpus: Arc<CharCorpus>,
    /// Windows per batch.
    pub rows: usize,
    /// Characters per window (the network's context).
    pub len: usize,
    pub seed: u64,
}

impl Batches for TextBatches {
    type Batch = TextBatch;

    fn epoch(&self, epoch: u64, _drop_last: bool) -> impl ExactSizeIterator<Item = TextBatch> {
        let per_epoch = self.len(true);
        let first = epoch as usize * per_epoch;
        (first..first + per_epoch).map(move |step| self.corpus.train_batch(self.rows, self.len, self.seed, step))
    }

    /// Every batch is full: a pass over the training characters, at least one batch.
    fn len(&self, _drop_last: bool) -> usize {
        (self.corpus.train.len() / (self.rows * self.len).max(1)).max(1)
    }

    fn examples(&self) -> usize {
        self.corpus.train.len()
    }
}

/// The validation text, in batches of `eval_rows` windows of `len` characters.
pub struct TextSplits {
    pub corpus: Arc<CharCorpus>,
    pub len: usize,
    pub eval_rows: usize,
    /// The plain (non-autodiff) device evaluation runs on.
    pub device: Device,
}

/// The ids `[rows, len]` of `batch` on `device`.
fn ids(batch: &TextBatch, device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = batch.inputs.iter().map(|&i| i as i64).collect();
    Tensor::<2, Int>::from_data(TensorData::new(ids, [batch.rows, batch.len]), device)
}

fn targets(batch: &TextBatch) -> Vec<i64> {
    batch.targets.iter().map(|&i| i as i64).collect()
}

impl<N: Net<Input = Tensor<2, Int>>> Supervised<N> for TextSplits {
    type Batch = TextBatch;

    fn tensors(&self, batch: &TextBatch, device: &Device) -> (Tensor<2, Int>, Vec<i64>) {
        (ids(batch, device), targets(batch))
    }

    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>) {
        let mut meter = Meter::default();
        for batch in self.corpus.valid_windows(self.eval_rows, self.len) {
            let targets = targets(&batch);
            let logits = model.forward(ids(&batch, &self.device));
            let loss = CrossEntropy::PLAIN.forward(logits.clone(), &targets).into_scalar::<f32>() as f64;
            meter.add(&host_f32(logits), &targets, loss);
        }
        (Some(meter), None)
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use super::*;
    use crate::expr::Formula;
    use crate::model::gpt::{Gpt, GptSize};
    use crate::model::{Activation, Mlp};
    use crate::observer::Silent;
    use crate::train::driver::{self, Job, Span};
    use crate::train::history::History;
    use crate::train::optimizer::AdamW;
    use crate::train::run_dir::RunLog;
    use crate::train::schedule::{LrRule, Schedule};
    use crate::train::steps::WeightSteps;
    use crate::train::update::Group;

    /// A gpt-micro trained for 30 steps of AdamW on a short repeated text, through the one
    /// training loop: the validation loss falls well below a uniform guess's, and the batches
    /// of a step do not depend on the loader epoch it falls in.
    #[test]
    fn a_short_gpt_run_lowers_the_validation_loss() {
        let text = "the quick brown fox jumps over the lazy dog. ".repeat(60);
        let corpus = Arc::new(CharCorpus::from_text(&text, "fox.txt", 16).unwrap());
        let vocab = corpus.vocab_size();
        let device = Device::flex();
        let train_device = device.clone().autodiff();
        let gelu = Formula::parse("gelu(x)").unwrap();
        let model = Gpt::with_sites(GptSize::GptMicro, Mlp::Standard, vocab, 0, &train_device, |width| {
            Activation::new(&gelu, width, &train_device)
        });
        let batches = TextBatches { corpus: corpus.clone(), rows: 8, len: 16, seed: 0 };
        let per_epoch = batches.len(true);
        assert_eq!(batches.epoch(1, true).next(), Some(corpus.train_batch(8, 16, 0, per_epoch)));
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"network": "gpt-micro"});
        let steps = 30;
        let job = Job {
            out: dir.path(),
            config: &config,
            span: Span::Steps { steps, eval_interval: 15 },
            train: &batches,
            write_config: false,
            intro: "a test".into(),
        };
        let optim =
            AdamW { betas: AdamW::GPT_BETAS, weight_decay: 0.1, grad_clip: Some(1.0), group: Group::All }.build(&model);
        let splits = TextSplits { corpus: corpus.clone(), len: 16, eval_rows: 64, device: device.clone() };
        let mut strategy = WeightSteps::<_, serde_json::Value, TextSplits> {
            optim,
            lr: LrRule::warmed(Schedule::Cosine, 3e-3, steps, 0.1),
            data: splits,
            seed: 0,
            device: device.clone(),
            hint: "lower --lr",
            types: PhantomData,
        };
        let history = History::new(0, "gpt-micro", "fox.txt", "gelu(x)", 0, "valid_loss");
        let mut log = RunLog::open(&dir.path().join("log.log"), &Silent).unwrap();
        let trained = driver::run(&job, model, history, &mut strategy, false, &mut log, &Silent).unwrap();
        let losses = &trained.history.valid_loss;
        let uniform = (vocab as f64).ln();
        assert_eq!(losses.len(), 2, "{losses:?}");
        assert!(losses[1] < losses[0] && losses[1] < 0.6 * uniform, "valid losses {losses:?}, uniform {uniform:.3}");
        // Judged by the validation loss, lower is better, with bits per character beside it.
        let h = &trained.history;
        assert!(!h.higher_is_better);
        assert_eq!(h.valid_bpc, losses.iter().map(|l| l / std::f64::consts::LN_2).collect::<Vec<_>>());
        assert_eq!(h.step, vec![15, 30]);
    }
}
