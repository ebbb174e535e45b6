//! Synthetic datasets for tests and examples: CIFAR-format binaries and PNG image folders whose
//! images carry a class-dependent pattern (a bright square whose position and colour encode the
//! class, over noise), so that a small network can learn them in a few epochs.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::image_set::{IMAGE_BYTES, IMAGE_SIDE, hwc_from_chw};

/// The file whose presence in a CIFAR folder marks it as synthetic test data (written by
/// this module), with the line `records per file: N`. Official extractions never
/// have it, so for them the official record counts are checked.
pub const SYNTHETIC_DECLARATION: &str = "actsearch-synthetic.txt";

/// CIFAR-10's class names in label order.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// One synthetic image of `class` (CHW bytes), deterministic in `seed`.
///
/// Class `k` gets an 8×8 square at grid cell `k % 16` of a 4×4 grid, lit in the colour channels
/// of bitmask `k / 16 % 7 + 1`; everything else is dark noise.
pub fn synthetic_image(class: usize, num_classes: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((num_classes as u64) << 48));
    let cell = class % 16;
    let (top, left) = ((cell / 4) * 8, (cell % 4) * 8);
    let colour = class / 16 % 7 + 1;
    let mut image = vec![0u8; IMAGE_BYTES];
    for c in 0..3 {
        for y in 0..IMAGE_SIDE {
            for x in 0..IMAGE_SIDE {
                let lit = colour & (1 << c) != 0 && (top..top + 8).contains(&y) && (left..left + 8).contains(&x);
                image[(c * IMAGE_SIDE + y) * IMAGE_SIDE + x] =
                    if lit { rng.random_range(192..=255) } else { rng.random_range(0..64) };
            }
        }
    }
    image
}

/// Writes a synthetic CIFAR-10 under `data_dir/cifar-10-batches-bin/`: five training files and
/// one test file of `n_per_file` records each, plus `batches.meta.txt` and the
/// [`SYNTHETIC_DECLARATION`] that lets the loader expect `n_per_file` records instead of the
/// official 10,000. Record `i` of file `f` (0-4 training, 5 test) has label `(i + f) % 10` and
/// image `synthetic_image(label, 10, f * 1_000_000 + i)`.
pub fn write_synthetic_cifar10(data_dir: &Path, n_per_file: usize) -> Result<()> {
    let folder = data_dir.join("cifar-10-batches-bin");
    fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let files = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"];
    for (f, name) in files.iter().enumerate() {
        let bytes = records(f, n_per_file, 10, |label, image| {
            let mut rec = vec![label as u8];
            rec.extend_from_slice(image);
            rec
        });
        write(&folder.join(format!("{name}.bin")), &bytes)?;
    }
    write(&folder.join("batches.meta.txt"), format!("{}\n\n", CIFAR10_CLASSES.join("\n")).as_bytes())?;
    declare_synthetic(&folder, n_per_file)
}

/// Writes a synthetic CIFAR-100 under `data_dir/cifar-100-binary/`: `train.bin` (file 0) and
/// `test.bin` (file 1) of `n_per_file` records each, with the same label and image rule as
/// [`write_synthetic_cifar10`] over 100 classes (coarse label = fine / 5), the label names and
/// the [`SYNTHETIC_DECLARATION`].
pub fn write_synthetic_cifar100(data_dir: &Path, n_per_file: usize) -> Result<()> {
    let folder = data_dir.join("cifar-100-binary");
    fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    for (f, name) in ["train.bin", "test.bin"].iter().enumerate() {
        let bytes = records(f, n_per_file, 100, |label, image| {
            let mut rec = vec![(label / 5) as u8, label as u8];
            rec.extend_from_slice(image);
            rec
        });
        write(&folder.join(name), &bytes)?;
    }
    let fine: Vec<String> = (0..100).map(|k| format!("fine_{k:02}")).collect();
    let coarse: Vec<String> = (0..20).map(|k| format!("coarse_{k:02}")).collect();
    write(&folder.join("fine_label_names.txt"), (fine.join("\n") + "\n").as_bytes())?;
    write(&folder.join("coarse_label_names.txt"), (coarse.join("\n") + "\n").as_bytes())?;
    declare_synthetic(&folder, n_per_file)
}

/// Marks a CIFAR folder as synthetic, with `n_per_file` records in each file.
fn declare_synthetic(folder: &Path, n_per_file: usize) -> Result<()> {
    let text = format!(
        "Synthetic test data written by actsearch, not the official dataset.\nrecords per file: {n_per_file}\n"
    );
    write(&folder.join(SYNTHETIC_DECLARATION), text.as_bytes())
}

/// Writes a synthetic image folder: `dir/train/<class>/NNNN.png` and `dir/test/<class>/NNNN.png`
/// with the pattern of class index `k` (its position in `classes`).
pub fn write_synthetic_folder(
    dir: &Path,
    classes: &[&str],
    n_train_per_class: usize,
    n_test_per_class: usize,
) -> Result<()> {
    for (split_index, (split, n)) in [("train", n_train_per_class), ("test", n_test_per_class)].into_iter().enumerate()
    {
        for (k, class) in classes.iter().enumerate() {
            let class_dir = dir.join(split).join(class);
            fs::create_dir_all(&class_dir).with_context(|| format!("cannot create {}", class_dir.display()))?;
            for j in 0..n {
                let seed = (split_index * 1_000_000 + k * 10_000 + j) as u64;
                let image = synthetic_image(k, classes.len(), seed);
                let path = class_dir.join(format!("{j:04}.png"));
                image::save_buffer(&path, &hwc_from_chw(&image), 32, 32, image::ExtendedColorType::Rgb8)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// The bytes of one synthetic file: `n` records built by `record(label, image)`.
fn records(file: usize, n: usize, num_classes: usize, record: impl Fn(usize, &[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in 0..n {
        let label = (i + file) % num_classes;
        bytes.extend(record(label, &synthetic_image(label, num_classes, (file * 1_000_000 + i) as u64)));
    }
    bytes
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_get_distinct_patterns() {
        let mean_square = |img: &[u8], k: usize| {
            let cell = k % 16;
            let (top, left) = ((cell / 4) * 8, (cell % 4) * 8);
            let c = (0..3).find(|c| (k / 16 % 7 + 1) & (1 << c) != 0).unwrap();
            let mut sum = 0u32;
            for y in top..top + 8 {
                for x in left..left + 8 {
                    sum += img[(c * 32 + y) * 32 + x] as u32;
                }
            }
            sum / 64
        };
        for k in 0..100 {
            let img = synthetic_image(k, 100, 3);
            assert!(mean_square(&img, k) >= 192);
            let other = synthetic_image((k + 1) % 100, 100, 3);
            assert!(mean_square(&other, k) < 192, "class {k}");
        }
        assert_eq!(synthetic_image(4, 10, 9), synthetic_image(4, 10, 9));
        assert_ne!(synthetic_image(4, 10, 9), synthetic_image(4, 10, 8));
    }
}
