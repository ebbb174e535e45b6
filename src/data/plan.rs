//! The exact data of a training run, for a twin in another framework to train on the same
//! images in the same order (`eval --write-plan`; `python/vit_torch.py` reads it): the
//! training and test splits as bytes, the normalization, and for every epoch the shuffled
//! order and each image's crop and flip. A language model's plan ([`write_text_plan`];
//! `python/gpt_torch.py`) holds the corpus as ids and every step's window starts. Written with
//! the `safetensors` crate, which takes the byte and integer types these need.

use std::path::Path;

use anyhow::{Result, anyhow};
use safetensors::{Dtype, tensor::TensorView};

use super::augment::CropFlip;
use super::image_set::{IMAGE_BYTES, IMAGE_SIDE, ImageSet};
use super::loader::epoch_order;
use super::split::Normalization;
use super::text::CharCorpus;

/// What a run trains and tests on, and how it walks the training split.
pub struct Plan<'a> {
    pub train: &'a ImageSet,
    pub test: &'a ImageSet,
    pub norm: Normalization,
    pub seed: u64,
    pub epochs: usize,
    pub augment: bool,
}

/// Writes `plan` to `path` (atomically) as tensors:
/// - `train_images`, `test_images`: `[N, 3, 32, 32]` bytes; `train_labels`, `test_labels`: `[N]`;
/// - `mean`, `std`: `[3]` (inputs are `(byte / 255 - mean) / std`, in f32);
/// - `order`: `[epochs, N]`, the training images of each epoch in batch order;
/// - `crop`: `[epochs, N, 3]`, per image (by index, not by position) the crop's x and y in the
///   4-pixel zero-padded image and whether it is then mirrored (all `[4, 4, 0]` without
///   augmentation).
pub fn write_plan(path: &Path, plan: &Plan) -> Result<()> {
    let n = plan.train.len();
    let side = IMAGE_SIDE;
    let labels = |set: &ImageSet| set.labels.iter().flat_map(|&l| (l as i64).to_le_bytes()).collect::<Vec<u8>>();
    let floats = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut order = Vec::with_capacity(plan.epochs * n * 8);
    let mut crop = Vec::with_capacity(plan.epochs * n * 3);
    for epoch in 0..plan.epochs as u64 {
        order.extend(epoch_order(n, true, plan.seed, epoch).into_iter().flat_map(|i| (i as i64).to_le_bytes()));
        for i in 0..n {
            let p = if plan.augment { CropFlip::draw(plan.seed, epoch, i) } else { CropFlip::IDENTITY };
            crop.extend([p.x as u8, p.y as u8, p.flip as u8]);
        }
    }
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("train_images", Dtype::U8, vec![n, 3, side, side], plan.train.images[..n * IMAGE_BYTES].to_vec()),
        ("train_labels", Dtype::I64, vec![n], labels(plan.train)),
        ("test_images", Dtype::U8, vec![plan.test.len(), 3, side, side], plan.test.images.clone()),
        ("test_labels", Dtype::I64, vec![plan.test.len()], labels(plan.test)),
        ("mean", Dtype::F32, vec![3], floats(&plan.norm.mean)),
        ("std", Dtype::F32, vec![3], floats(&plan.norm.std)),
        ("order", Dtype::I64, vec![plan.epochs, n], order),
        ("crop", Dtype::U8, vec![plan.epochs, n, 3], crop),
    ];
    write_tensors(path, &tensors)
}

/// Writes the plan of a language model trained for `steps` on batches of `rows` windows of
/// `len` characters from `corpus`, seeded by `seed` (`CharCorpus::train_batch`), as tensors:
/// - `train_ids`, `valid_ids`: `[N]` the two splits as ids (int64);
/// - `starts`: `[steps, rows]`, where each window of each step's batch starts in `train_ids`;
/// - `len`: `[1]`, the window length.
pub fn write_text_plan(
    path: &Path,
    corpus: &CharCorpus,
    rows: usize,
    len: usize,
    seed: u64,
    steps: usize,
) -> Result<()> {
    let ids = |v: &[u32]| v.iter().flat_map(|&i| (i as i64).to_le_bytes()).collect::<Vec<u8>>();
    let mut starts = Vec::with_capacity(steps * rows * 8);
    for step in 0..steps {
        starts.extend(corpus.train_starts(rows, len, seed, step).into_iter().flat_map(|s| (s as i64).to_le_bytes()));
    }
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("train_ids", Dtype::I64, vec![corpus.train.len()], ids(&corpus.train)),
        ("valid_ids", Dtype::I64, vec![corpus.valid.len()], ids(&corpus.valid)),
        ("starts", Dtype::I64, vec![steps, rows], starts),
        ("len", Dtype::I64, vec![1], (len as i64).to_le_bytes().to_vec()),
    ];
    write_tensors(path, &tensors)
}

/// A translation run's training data for a twin: every encoded pair (`source` and `target`
/// ids, concatenated, with each sequence's start in `*_offsets` and one end offset after the
/// last) and the pairs of each step's batch (`rows[step]`, all `batch` long).
pub fn write_pairs_plan(path: &Path, source: &[Vec<u32>], target: &[Vec<u32>], rows: &[Vec<usize>]) -> Result<()> {
    let flat = |seqs: &[Vec<u32>]| -> (Vec<u8>, Vec<u8>, usize) {
        let ids: Vec<u8> = seqs.iter().flatten().flat_map(|&i| (i as i64).to_le_bytes()).collect();
        let mut offsets = Vec::with_capacity((seqs.len() + 1) * 8);
        let mut at = 0i64;
        for s in seqs {
            offsets.extend(at.to_le_bytes());
            at += s.len() as i64;
        }
        offsets.extend(at.to_le_bytes());
        (ids, offsets, at as usize)
    };
    let (src, src_offsets, src_n) = flat(source);
    let (tgt, tgt_offsets, tgt_n) = flat(target);
    let batch = rows.first().map_or(0, Vec::len);
    let steps: Vec<u8> = rows.iter().flatten().flat_map(|&r| (r as i64).to_le_bytes()).collect();
    let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("source_ids", Dtype::I64, vec![src_n], src),
        ("source_offsets", Dtype::I64, vec![source.len() + 1], src_offsets),
        ("target_ids", Dtype::I64, vec![tgt_n], tgt),
        ("target_offsets", Dtype::I64, vec![target.len() + 1], tgt_offsets),
        ("rows", Dtype::I64, vec![rows.len(), batch], steps),
    ];
    write_tensors(path, &tensors)
}

/// Writes named tensors of raw little-endian bytes to `path`, atomically.
fn write_tensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| Ok((name.to_string(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow!("cannot encode the plan {}: {e}", path.display()))?;
    let bytes =
        safetensors::serialize(views, None).map_err(|e| anyhow!("cannot encode the plan {}: {e}", path.display()))?;
    crate::files::write_atomic(path, &bytes)
}
