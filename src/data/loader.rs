//! Batching: an iterator of normalized (and optionally augmented) batches, prepared on a
//! background thread so the model never waits, with per-image work spread over rayon.
//!
//! Everything random (the order and each image's augmentation) derives from (seed, epoch,
//! image index) only: the same seed and epoch always give the same batches, whatever happened
//! in earlier epochs and however threads are scheduled.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::{CropFlip, NormTable, crop_flip};
use super::image_set::{IMAGE_BYTES, ImageSet};
use super::split::Normalization;

/// Batches prepared ahead of the consumer.
const PREFETCH: usize = 3;
/// Separates the shuffling random stream from the augmentation one for the same seed.
const ORDER_SALT: u64 = 0x6f72_6465_7221_2121;

/// One batch: `size` images as `size`×3×32×32 normalized floats (CHW per image) and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
    pub size: usize,
}

/// How to batch one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch (0 is treated as 1).
    pub batch_size: usize,
    /// Shuffle the order. A shuffling loader is a *training* loader: it never yields a final
    /// batch of a single image, which BatchNorm cannot train on.
    pub shuffle: bool,
    /// Apply the standard pad-crop-flip augmentation.
    pub augment: bool,
    /// Drop a final incomplete batch.
    pub drop_last: bool,
    pub seed: u64,
    pub epoch: u64,
}

impl LoaderConfig {
    /// The number of batches an epoch over `n` images yields.
    pub fn num_batches(&self, n: usize) -> usize {
        let size = self.batch_size.max(1);
        let rest = n % size;
        let keep_rest = rest > 0 && !self.drop_last && !(self.shuffle && rest == 1);
        n / size + keep_rest as usize
    }
}

/// Iterator over the batches of one epoch; dropping it early stops its thread.
pub struct Loader {
    job: Arc<Job>,
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    next: usize,
}

/// The order in which an epoch visits `n` images: shuffled from (seed, epoch), or as they are.
pub fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ORDER_SALT);
        rng.set_stream(epoch);
        order.shuffle(&mut rng);
    }
    order
}

/// Batches of `set` for one epoch as `cfg` says, normalized with `norm`.
pub fn batches(set: Arc<ImageSet>, norm: Normalization, cfg: LoaderConfig) -> Loader {
    let order = epoch_order(set.len(), cfg.shuffle, cfg.seed, cfg.epoch);
    let count = cfg.num_batches(set.len());
    let job = Arc::new(Job { set, order, count, table: NormTable::new(&norm), cfg });
    let (tx, rx) = sync_channel(PREFETCH);
    let worker_job = Arc::clone(&job);
    let worker = std::thread::Builder::new().name("actsearch-loader".into()).spawn(move || worker_job.produce(tx)).ok();
    // Without a thread (spawn failed), batches are built on demand in `next`.
    let rx = worker.as_ref().map(|_| rx);
    Loader { job, rx, worker, next: 0 }
}

impl Iterator for Loader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.job.count {
            return None;
        }
        let batch = match &self.rx {
            Some(rx) => rx.recv().ok()?,
            None => self.job.batch(self.next),
        };
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.job.count - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Loader {}

impl Drop for Loader {
    fn drop(&mut self) {
        // Disconnecting the channel makes the worker's next send fail, so it returns.
        drop(self.rx.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Everything needed to build any batch of the epoch.
struct Job {
    set: Arc<ImageSet>,
    order: Vec<usize>,
    count: usize,
    table: NormTable,
    cfg: LoaderConfig,
}

impl Job {
    fn produce(&self, tx: SyncSender<Batch>) {
        for k in 0..self.count {
            if tx.send(self.batch(k)).is_err() {
                return;
            }
        }
    }

    /// Batch `k` of the epoch.
    fn batch(&self, k: usize) -> Batch {
        let size = self.cfg.batch_size.max(1);
        let start = k * size;
        let idx = &self.order[start..(start + size).min(self.order.len())];
        let mut images = vec![0.0f32; idx.len() * IMAGE_BYTES];
        images.par_chunks_mut(IMAGE_BYTES).zip(idx.par_iter()).for_each(|(out, &i)| {
            let src = self.set.image(i);
            if self.cfg.augment {
                let mut moved = [0u8; IMAGE_BYTES];
                crop_flip(src, CropFlip::draw(self.cfg.seed, self.cfg.epoch, i), &mut moved);
                self.table.apply(&moved, out);
            } else {
                self.table.apply(src, out);
            }
        });
        Batch { images, labels: idx.iter().map(|&i| self.set.labels[i] as i64).collect(), size: idx.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn set(n: usize) -> Arc<ImageSet> {
        let images = (0..n * IMAGE_BYTES).map(|i| ((i / IMAGE_BYTES) * 7 + i % 13) as u8).collect();
        Arc::new(ImageSet { images, labels: (0..n as u32).collect(), classes: (0..n).map(|k| k.to_string()).collect() })
    }

    const NORM: Normalization = Normalization { mean: [0.5; 3], std: [0.25; 3] };

    fn cfg(batch_size: usize, shuffle: bool, augment: bool, drop_last: bool, epoch: u64) -> LoaderConfig {
        LoaderConfig { batch_size, shuffle, augment, drop_last, seed: 11, epoch }
    }

    fn all(set: &Arc<ImageSet>, c: LoaderConfig) -> Vec<Batch> {
        batches(Arc::clone(set), NORM, c).collect()
    }

    #[test]
    fn batch_counts_follow_the_drop_rules() {
        let s = set(10);
        let sizes = |c| all(&s, c).iter().map(|b| b.size).collect::<Vec<_>>();
        assert_eq!(sizes(cfg(4, false, false, false, 0)), vec![4, 4, 2]);
        assert_eq!(sizes(cfg(4, false, false, true, 0)), vec![4, 4]);
        assert_eq!(sizes(cfg(3, false, false, false, 0)), vec![3, 3, 3, 1]); // evaluation keeps 1
        assert_eq!(sizes(cfg(3, true, false, false, 0)), vec![3, 3, 3]); // training drops 1
        assert_eq!(sizes(cfg(0, false, false, false, 0)).len(), 10);
        let loader = batches(Arc::clone(&s), NORM, cfg(3, true, true, false, 0));
        assert_eq!(loader.len(), 3);
        assert_eq!(cfg(3, true, true, false, 0).num_batches(10), 3);
        assert_eq!(all(&set(0), cfg(4, true, true, false, 0)).len(), 0);
    }

    #[test]
    fn unshuffled_unaugmented_batches_are_the_normalized_images_in_order() {
        let s = set(5);
        let b = all(&s, cfg(2, false, false, false, 0));
        assert_eq!(b[0].labels, vec![0, 1]);
        assert_eq!(b[2].labels, vec![4]);
        assert_eq!(b[1].images.len(), 2 * IMAGE_BYTES);
        let expected = (s.image(3)[5] as f32 / 255.0 - 0.5) / 0.25;
        assert!((b[1].images[IMAGE_BYTES + 5] - expected).abs() < 1e-6);
    }

    #[test]
    fn same_seed_and_epoch_give_identical_batches() {
        let s = set(50);
        let a = all(&s, cfg(8, true, true, false, 3));
        let b = all(&s, cfg(8, true, true, false, 3));
        assert_eq!(a, b);
        let c = all(&s, cfg(8, true, true, false, 4));
        let labels = |v: &[Batch]| v.iter().flat_map(|b| b.labels.clone()).collect::<Vec<_>>();
        assert_ne!(labels(&a), labels(&c));
        // Every image appears exactly once per epoch (6 full batches + a batch of 2).
        let mut sorted = labels(&c);
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<i64>>());
        let other_seed = all(&s, LoaderConfig { seed: 12, ..cfg(8, true, true, false, 3) });
        assert_ne!(labels(&a), labels(&other_seed));
    }

    #[test]
    fn augmentation_keeps_shapes_and_changes_pixels() {
        let s = set(16);
        let plain = all(&s, cfg(16, false, false, false, 0));
        let aug = all(&s, cfg(16, false, true, false, 0));
        assert_eq!(plain[0].images.len(), aug[0].images.len());
        assert_eq!(plain[0].labels, aug[0].labels);
        assert_ne!(plain[0].images, aug[0].images);
        // Image 5 of the augmented batch is exactly its own crop/flip, normalized.
        let mut moved = [0u8; IMAGE_BYTES];
        crop_flip(s.image(5), CropFlip::draw(11, 0, 5), &mut moved);
        let mut expected = vec![0.0; IMAGE_BYTES];
        NormTable::new(&NORM).apply(&moved, &mut expected);
        assert_eq!(&aug[0].images[5 * IMAGE_BYTES..6 * IMAGE_BYTES], &expected[..]);
    }

    #[test]
    fn dropping_the_loader_early_does_not_hang() {
        let s = set(2000);
        let start = Instant::now();
        for _ in 0..5 {
            let mut loader = batches(Arc::clone(&s), NORM, cfg(16, true, true, false, 0));
            assert!(loader.next().is_some());
            drop(loader);
            drop(batches(Arc::clone(&s), NORM, cfg(16, true, true, false, 1)));
        }
        assert!(start.elapsed() < Duration::from_secs(30));
    }
}
