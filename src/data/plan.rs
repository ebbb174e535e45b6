//! The exact data of a training run, for a twin in another framework to train on the same
//! images in the same order (`eval --write-plan`; `python/vit_torch.py` reads it): the
//! training and test splits as bytes, the normalization, and for every epoch the shuffled
//! order and each image's crop and flip. Written with the `safetensors` crate, which takes
//! the byte and integer types these need.

use std::path::Path;

use anyhow::{Result, anyhow};
use safetensors::{Dtype, tensor::TensorView};

use super::augment::CropFlip;
use super::image_set::{IMAGE_BYTES, IMAGE_SIDE, ImageSet};
use super::loader::epoch_order;
use super::split::Normalization;

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
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| Ok((name.to_string(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow!("cannot encode the plan {}: {e}", path.display()))?;
    let bytes =
        safetensors::serialize(views, None).map_err(|e| anyhow!("cannot encode the plan {}: {e}", path.display()))?;
    crate::files::write_atomic(path, &bytes)
}
