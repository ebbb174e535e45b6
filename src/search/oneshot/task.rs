//! What a one-shot search trains on, for each kind of task ([`SearchTask`]): the batches that
//! train the mixing weights, held out from the weights' training data, beside the task's
//! scoring of its held-out splits ([`Supervised`]).
//!
//! - Images ([`ImageSearch`]): the validation split that `--train-portion` leaves, in shuffled
//!   passes that restart when they run out; it is also the split the supernet is scored on.
//! - Text ([`TextSearch`]): random windows of the last part of the training text (the part
//!   `--train-portion` leaves), drawn per step from the seed as the weights' windows are, so a
//!   resumed search draws exactly the batches it would have. The supernet is scored on the
//!   corpus's validation text, which neither part trains on.
//! - Translation ([`PairSearch`]): batches of the last part of the training pairs, in the
//!   weights' order of batches of similar length (epochs of their own), the batch of step `s`
//!   depending on the seed and `s` only. The supernet is scored on the validation pairs.

use std::sync::Arc;

use burn::prelude::*;

use crate::data::text::{CharCorpus, TextBatch};
use crate::data::{self, Batch, ImageSet, Loader, LoaderConfig};
use crate::kernels::cross_entropy::CrossEntropy;
use crate::model::Net;
use crate::model::seq2seq::Seq2SeqInput;
use crate::train::driver::At;
use crate::train::metrics::Meter;
use crate::train::steps::{ImageSplits, Supervised};
use crate::train::text::TextSplits;
use crate::train::translate::{PairBatch, PairBatches, TranslationSplits};

/// A task a one-shot search runs on.
pub trait SearchTask<N: Net>: Supervised<N> {
    /// The batch that trains the mixing weights at step `at`.
    fn alpha_batch(&mut self, at: At) -> Self::Batch;
}

/// The image tasks: the alphas train on the validation split.
pub struct ImageSearch {
    /// Scores the validation split (and the test split, with `--test-subset`).
    pub splits: ImageSplits,
    /// The validation split: it trains the alphas.
    pub valid: Arc<ImageSet>,
    pub batch_size: usize,
    pub augment: bool,
    pub seed: u64,
    /// The loader epoch whose validation batches are being read, the loader, and how many
    /// times it ran out in that epoch.
    pub current: Option<(usize, Loader, usize)>,
}

impl ImageSearch {
    fn loader(&self, epoch: u64) -> Loader {
        data::batches(
            self.valid.clone(),
            self.splits.norm,
            LoaderConfig {
                batch_size: self.batch_size,
                shuffle: true,
                augment: self.augment,
                drop_last: false,
                seed: self.seed ^ 0x5a1d,
                epoch,
            },
        )
    }
}

impl<N: Net<Input = Tensor<4>>> Supervised<N> for ImageSearch {
    type Batch = Batch;

    fn tensors(&self, batch: &Batch, device: &Device) -> (Tensor<4>, Vec<i64>) {
        Supervised::<N>::tensors(&self.splits, batch, device)
    }

    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>) {
        self.splits.evaluate(model)
    }
}

impl<N: Net<Input = Tensor<4>>> SearchTask<N> for ImageSearch {
    /// The next validation batch of the loader epoch `at.epoch`: each epoch starts a shuffled
    /// pass of its own, restarted (on another order) when it runs out.
    fn alpha_batch(&mut self, at: At) -> Batch {
        let (mut batches, mut restarts) = match self.current.take() {
            Some((epoch, loader, restarts)) if epoch == at.epoch => (loader, restarts),
            _ => (self.loader(at.epoch as u64), 0),
        };
        let batch = match batches.next() {
            Some(b) => b,
            None => {
                restarts += 1;
                batches = self.loader((at.epoch + 1000 * restarts) as u64);
                batches.next().expect("the validation split is not empty")
            }
        };
        self.current = Some((at.epoch, batches, restarts));
        batch
    }
}

/// The language models: the alphas train on the last part of the training text.
pub struct TextSearch {
    /// Scores the corpus's validation text.
    pub splits: TextSplits,
    /// The corpus whose `train` is the alphas' part of the training text.
    pub alphas: Arc<CharCorpus>,
    /// Windows per batch.
    pub rows: usize,
    pub seed: u64,
}

impl<N: Net<Input = Tensor<2, Int>>> Supervised<N> for TextSearch {
    type Batch = TextBatch;

    fn tensors(&self, batch: &TextBatch, device: &Device) -> (Tensor<2, Int>, Vec<i64>) {
        Supervised::<N>::tensors(&self.splits, batch, device)
    }

    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>) {
        self.splits.evaluate(model)
    }
}

impl<N: Net<Input = Tensor<2, Int>>> SearchTask<N> for TextSearch {
    fn alpha_batch(&mut self, at: At) -> TextBatch {
        self.alphas.train_batch(self.rows, self.splits.len, self.seed ^ 0x5a1d, at.step)
    }
}

/// The translation models: the alphas train on the last part of the training pairs.
pub struct PairSearch {
    /// Scores the validation pairs.
    pub splits: TranslationSplits,
    /// The alphas' pairs, in batches of similar length.
    pub alphas: PairBatches,
    /// The alphas' epoch whose order of batches is cached, and that order.
    pub current: Option<(usize, Vec<Vec<usize>>)>,
}

impl<N: Net<Input = Seq2SeqInput>> Supervised<N> for PairSearch {
    type Batch = PairBatch;

    fn tensors(&self, batch: &PairBatch, device: &Device) -> (Seq2SeqInput, Vec<i64>) {
        Supervised::<N>::tensors(&self.splits, batch, device)
    }

    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>) {
        Supervised::<N>::evaluate(&self.splits, model)
    }

    fn loss(&self) -> CrossEntropy {
        Supervised::<N>::loss(&self.splits)
    }
}

impl<N: Net<Input = Seq2SeqInput>> SearchTask<N> for PairSearch {
    /// Step `s`'s batch: batch `s mod n` of the alphas' epoch `s / n`, `n` full batches an epoch.
    fn alpha_batch(&mut self, at: At) -> PairBatch {
        let per_epoch = crate::train::driver::Batches::len(&self.alphas, true).max(1);
        let (epoch, index) = (at.step / per_epoch, at.step % per_epoch);
        if self.current.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.current = Some((epoch, self.alphas.order(epoch as u64, true)));
        }
        let rows = &self.current.as_ref().expect("the epoch's order was just cached").1[index];
        self.alphas.pairs.batch(rows)
    }
}
