//! The translation task for the one training loop: the encoded pairs ([`Encoded`]), their
//! training batches ([`PairBatches`], for the driver), the validation loss
//! ([`TranslationSplits`], for [`WeightSteps`](super::steps::WeightSteps)), and the final
//! decoding of the validation and test splits scored by corpus BLEU ([`score_bleu`]).
//!
//! - A source is its tokens then end; a target is begin, its tokens, end. A side longer than
//!   [`MAX_TOKENS`] tokens is cut to it (and counted).
//! - Training batches hold pairs of similar length (DESIGN.md): each loader epoch shuffles the
//!   pairs from the seed and the epoch, sorts each pool of 100 batches' worth by length, cuts
//!   them into batches, and shuffles the batches. Every epoch yields the same number of full
//!   batches, so a resumed run trains on exactly the batches of an uninterrupted one.
//! - The loss is label-smoothed cross-entropy over the target tokens, padding ignored; the
//!   validation loss is the plain cross-entropy per target token (padding ignored), so it is
//!   the log-perplexity.

use std::sync::Arc;

use anyhow::Result;
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::bleu::{Bleu, corpus_bleu};
use super::driver::Batches;
use super::metrics::Meter;
use super::steps::Supervised;
use crate::data::bpe::{BOS, EOS, PAD, Vocabulary};
use crate::data::parallel::{Choice, Pairs, ParallelCorpus, parallel_folder};
use crate::kernels::cross_entropy::CrossEntropy;
use crate::model::Net;
use crate::model::seq2seq::{Seq2Seq, Seq2SeqInput};
use crate::model::state::host_f32;

/// The longest side, in tokens with begin and end (longer ones are cut).
pub const MAX_TOKENS: usize = 256;
/// Batches whose pairs are sorted by length together.
const POOL_BATCHES: usize = 100;

/// The folder `dataset` names, read in the direction `asked` gives (its empty fields: the
/// defaults), for the translation model `network`.
pub fn open_corpus(
    dataset: &str,
    network: &str,
    asked: Option<&super::config::TranslationConfig>,
) -> Result<ParallelCorpus> {
    let folder = parallel_folder(dataset, network)?;
    fn given(s: Option<&String>) -> Option<&str> {
        s.map(String::as_str).filter(|s| !s.is_empty())
    }
    let choice = Choice {
        source: given(asked.map(|t| &t.source)),
        target: given(asked.map(|t| &t.target)),
        test_set: given(asked.map(|t| &t.test_set)),
    };
    ParallelCorpus::open(&folder, &choice)
}

/// A corpus's vocabulary (learned now or cached) and its three splits as ids.
pub struct Prepared {
    pub vocab: Vocabulary,
    /// Whether the vocabulary was learned now (else read from the cache).
    pub learned: bool,
    pub train: Encoded,
    pub valid: Encoded,
    pub test: Encoded,
}

impl Prepared {
    /// The vocabulary of `vocab_size` tokens for `corpus` (cached under `data_dir`) and the
    /// encoded splits.
    pub fn of(corpus: &ParallelCorpus, vocab_size: usize, data_dir: &std::path::Path) -> Result<Prepared> {
        let (vocab, learned) = Vocabulary::learn_or_load(corpus, vocab_size, data_dir)?;
        let (train, valid, test) = (
            Encoded::of(&corpus.train, &vocab)?,
            Encoded::of(&corpus.valid, &vocab)?,
            Encoded::of(&corpus.test, &vocab)?,
        );
        Ok(Prepared { vocab, learned, train, valid, test })
    }

    /// Sides cut to [`MAX_TOKENS`], over the three splits.
    pub fn cut(&self) -> usize {
        self.train.cut + self.valid.cut + self.test.cut
    }
}

/// One split as token ids: each source (its tokens then end) and target (begin, tokens, end).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Encoded {
    pub source: Vec<Vec<u32>>,
    pub target: Vec<Vec<u32>>,
    /// Sides cut to [`MAX_TOKENS`].
    pub cut: usize,
}

impl Encoded {
    /// The ids of `pairs` in `vocab`.
    pub fn of(pairs: &Pairs, vocab: &Vocabulary) -> Result<Encoded> {
        let mut out = Encoded::default();
        for (s, t) in pairs.source.iter().zip(&pairs.target) {
            let mut source = vocab.encode(s)?;
            source.push(EOS);
            let mut target = vec![BOS];
            target.extend(vocab.encode(t)?);
            target.push(EOS);
            for side in [&mut source, &mut target] {
                if side.len() > MAX_TOKENS {
                    side.truncate(MAX_TOKENS - 1);
                    side.push(EOS);
                    out.cut += 1;
                }
            }
            out.source.push(source);
            out.target.push(target);
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// The first `portion` of the pairs and the rest (a one-shot search's weights and alphas);
    /// a part without a whole batch of `rows` pairs is refused, with the fix.
    pub fn split(&self, portion: f64, rows: usize) -> Result<(Encoded, Encoded)> {
        let cut = ((self.len() as f64 * portion) as usize).min(self.len());
        let part = |r: std::ops::Range<usize>| Encoded {
            source: self.source[r.clone()].to_vec(),
            target: self.target[r].to_vec(),
            cut: 0,
        };
        let (weights, alphas) = (part(0..cut), part(cut..self.len()));
        for (what, n) in [("weights", weights.len()), ("alphas", alphas.len())] {
            if n < rows.max(1) {
                anyhow::bail!(
                    "--train-portion {portion} leaves {n} training pairs for the {what}, fewer than one batch of {rows}; move --train-portion towards 0.5 or lower --batch-size"
                );
            }
        }
        Ok((weights, alphas))
    }

    /// The pairs at `rows`, padded into one batch: the model's input (decoder input = target
    /// without its last token) and the target of each decoder position (padding where none).
    pub fn batch(&self, rows: &[usize]) -> PairBatch {
        let src_len = rows.iter().map(|&r| self.source[r].len()).max().unwrap_or(1);
        let tgt_len = rows.iter().map(|&r| self.target[r].len() - 1).max().unwrap_or(1);
        let mut src = vec![PAD; rows.len() * src_len];
        let mut tgt = vec![PAD; rows.len() * tgt_len];
        let mut targets = vec![PAD; rows.len() * tgt_len];
        for (i, &r) in rows.iter().enumerate() {
            let (s, t) = (&self.source[r], &self.target[r]);
            src[i * src_len..i * src_len + s.len()].copy_from_slice(s);
            tgt[i * tgt_len..i * tgt_len + t.len() - 1].copy_from_slice(&t[..t.len() - 1]);
            targets[i * tgt_len..i * tgt_len + t.len() - 1].copy_from_slice(&t[1..]);
        }
        PairBatch { input: Seq2SeqInput { batch: rows.len(), src_len, tgt_len, src, tgt }, targets }
    }
}

/// One batch of pairs: the model's input and the target id of each decoder position (row
/// after row, padding 0 where a target is shorter than the batch's longest).
#[derive(Clone, Debug, PartialEq)]
pub struct PairBatch {
    pub input: Seq2SeqInput,
    pub targets: Vec<u32>,
}

fn targets(batch: &PairBatch) -> Vec<i64> {
    batch.targets.iter().map(|&t| t as i64).collect()
}

/// The training pairs in batches of `rows` pairs of similar length.
pub struct PairBatches {
    pub pairs: Arc<Encoded>,
    pub rows: usize,
    pub seed: u64,
}

impl PairBatches {
    /// The batches of loader epoch `epoch`: pairs shuffled, sorted by length within pools of
    /// [`POOL_BATCHES`] batches, cut into batches, the batches shuffled; with `drop_last`,
    /// only full batches.
    pub fn order(&self, epoch: u64, drop_last: bool) -> Vec<Vec<usize>> {
        let n = self.pairs.len();
        let rows = self.rows.max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x7a15_1a7e);
        rng.set_stream(epoch);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let used = if drop_last { n / rows * rows } else { n };
        let mut batches = Vec::new();
        for pool in order[..used].chunks(rows * POOL_BATCHES) {
            let mut pool = pool.to_vec();
            let len = |r: &usize| (self.pairs.source[*r].len(), self.pairs.target[*r].len());
            pool.sort_by_key(len);
            batches.extend(pool.chunks(rows).map(<[usize]>::to_vec));
        }
        batches.shuffle(&mut rng);
        batches
    }
}

impl PairBatches {
    /// The pairs of the batch of each of the first `steps` steps of a run counted in steps
    /// (full batches, the loader's epochs one after another), for a twin's plan.
    pub fn plan(&self, steps: usize) -> Vec<Vec<usize>> {
        let per_epoch = self.len(true).max(1);
        let mut rows = Vec::with_capacity(steps);
        for epoch in 0..steps.div_ceil(per_epoch) {
            let left = steps - rows.len();
            rows.extend(self.order(epoch as u64, true).into_iter().take(left));
        }
        rows
    }
}

impl Batches for PairBatches {
    type Batch = PairBatch;

    fn epoch(&self, epoch: u64, drop_last: bool) -> impl ExactSizeIterator<Item = PairBatch> {
        self.order(epoch, drop_last).into_iter().map(|rows| self.pairs.batch(&rows))
    }

    fn len(&self, drop_last: bool) -> usize {
        match drop_last {
            true => self.pairs.len() / self.rows.max(1),
            false => self.pairs.len().div_ceil(self.rows.max(1)),
        }
    }

    fn examples(&self) -> usize {
        self.pairs.len()
    }
}

/// The validation pairs, scored by their cross-entropy per target token, in batches of
/// `eval_rows` pairs in length order.
pub struct TranslationSplits {
    pub valid: Arc<Encoded>,
    pub eval_rows: usize,
    pub label_smoothing: f64,
    /// The plain (non-autodiff) device evaluation runs on.
    pub device: Device,
}

impl<N: Net<Input = Seq2SeqInput>> Supervised<N> for TranslationSplits {
    type Batch = PairBatch;

    fn tensors(&self, batch: &PairBatch, _device: &Device) -> (Seq2SeqInput, Vec<i64>) {
        (batch.input.clone(), targets(batch))
    }

    fn evaluate(&self, model: &N) -> (Option<Meter>, Option<Meter>) {
        let loss_fn = CrossEntropy { smoothing: 0.0, ignore: Some(PAD as i64) };
        let mut meter = Meter::default();
        for rows in by_length(&self.valid.source, self.eval_rows) {
            let batch = self.valid.batch(&rows);
            let targets = targets(&batch);
            let logits = model.forward(batch.input);
            let loss = loss_fn.forward(logits.clone(), &targets).into_scalar::<f32>() as f64;
            meter.add_ignoring(&host_f32(logits), &targets, loss, Some(PAD as i64));
        }
        (Some(meter), None)
    }

    fn loss(&self) -> CrossEntropy {
        CrossEntropy { smoothing: self.label_smoothing as f32, ignore: Some(PAD as i64) }
    }
}

/// The indices of `sequences` in batches of at most `rows`, shortest first (ties in order), so
/// that little of a batch is padding.
fn by_length(sequences: &[Vec<u32>], rows: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.sort_by_key(|&i| sequences[i].len());
    order.chunks(rows.max(1)).map(<[usize]>::to_vec).collect()
}

/// One split translated: each hypothesis (detokenized) and the corpus BLEU against the
/// references.
pub struct Translated {
    pub hypotheses: Vec<String>,
    pub bleu: Bleu,
}

/// Translates the sources of `encoded` with `model` (its inference copy) in batches of
/// `rows`, greedy or with a beam of `beam`, and scores the detokenized hypotheses against
/// `references` (the raw target lines) with sacreBLEU's corpus BLEU. `progress(done, total)`
/// is told after each batch.
pub fn score_bleu<A: crate::model::Site>(
    model: &Seq2Seq<A>,
    encoded: &Encoded,
    references: &[String],
    vocab: &Vocabulary,
    rows: usize,
    beam: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Translated> {
    let mut hypotheses = vec![String::new(); encoded.len()];
    let mut done = 0;
    for batch in by_length(&encoded.source, rows) {
        let sources: Vec<Vec<u32>> = batch.iter().map(|&i| encoded.source[i].clone()).collect();
        for (&i, ids) in batch.iter().zip(model.translate(&sources, beam)) {
            hypotheses[i] = vocab.decode(&ids);
        }
        done += batch.len();
        progress(done, encoded.len());
    }
    let bleu = corpus_bleu(&hypotheses, references)?;
    Ok(Translated { hypotheses, bleu })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded() -> Encoded {
        let source = (0..10).map(|i| vec![4 + i as u32; 1 + i % 4]).map(|mut s| {
            s.push(EOS);
            s
        });
        let target = (0..10).map(|i| {
            let mut t = vec![BOS];
            t.extend(vec![20 + i as u32; 1 + (i * 7) % 5]);
            t.push(EOS);
            t
        });
        Encoded { source: source.collect(), target: target.collect(), cut: 0 }
    }

    /// A batch pads sources and targets with 0, feeds the target without its last token and
    /// predicts it shifted by one.
    #[test]
    fn a_batch_shifts_the_target_and_pads() {
        let e = encoded();
        let b = e.batch(&[0, 3]);
        // Pair 0: one source token and one target token; pair 3: four and two.
        assert_eq!((b.input.batch, b.input.src_len, b.input.tgt_len), (2, 5, 3));
        assert_eq!(&b.input.src[..5], &[4, EOS, PAD, PAD, PAD]);
        assert_eq!(&b.input.src[5..], &[7, 7, 7, 7, EOS]);
        assert_eq!(&b.input.tgt[..3], &[BOS, 20, PAD]);
        assert_eq!(&b.targets[..3], &[20, EOS, PAD]);
        assert_eq!(&b.input.tgt[3..], &[BOS, 23, 23]);
        assert_eq!(&b.targets[3..], &[23, 23, EOS]);
    }

    /// Every epoch's full batches cover distinct pairs, depend on the seed and the epoch only,
    /// and differ between epochs.
    #[test]
    fn epochs_are_seeded_full_batches_of_distinct_pairs() {
        let batches = PairBatches { pairs: Arc::new(encoded()), rows: 3, seed: 5 };
        let a = batches.order(0, true);
        assert_eq!(a.len(), 3);
        assert_eq!(batches.len(true), 3);
        let mut seen: Vec<usize> = a.iter().flatten().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 9);
        assert_eq!(a, batches.order(0, true));
        assert_ne!(a, batches.order(1, true));
        assert_eq!(batches.order(0, false).iter().map(Vec::len).sum::<usize>(), 10);
    }
}
