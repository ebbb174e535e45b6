//! The training batches of the image tasks for the driver: the seeded loader of `data` over a
//! training split, one loader epoch at a time.

use std::sync::Arc;

use super::driver::Batches;
use crate::data::{self, Batch, ImageSet, LoaderConfig, Normalization};

/// Shuffled (and optionally augmented) batches of `set`, normalized with `norm`; the order and
/// the augmentation of every epoch follow from `seed` and the epoch's number.
pub struct ImageBatches {
    pub set: Arc<ImageSet>,
    pub norm: Normalization,
    pub batch_size: usize,
    pub augment: bool,
    pub seed: u64,
}

impl ImageBatches {
    fn config(&self, epoch: u64, drop_last: bool) -> LoaderConfig {
        LoaderConfig {
            batch_size: self.batch_size,
            shuffle: true,
            augment: self.augment,
            drop_last,
            seed: self.seed,
            epoch,
        }
    }
}

impl Batches for ImageBatches {
    type Batch = Batch;

    fn epoch(&self, epoch: u64, drop_last: bool) -> impl ExactSizeIterator<Item = Batch> {
        data::batches(self.set.clone(), self.norm, self.config(epoch, drop_last))
    }

    fn len(&self, drop_last: bool) -> usize {
        self.config(0, drop_last).num_batches(self.set.len())
    }

    fn examples(&self) -> usize {
        self.set.len()
    }
}
