//! What training asks for: a dataset named on the command line ([`DatasetSpec`]) turned into
//! seeded train / validation / test splits ([`Splits`]) plus the per-channel normalization
//! computed from the training split.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::archive::is_archive;
use super::cifar::{CifarKind, find_cifar_folder, load_cifar, read_cifar};
use super::download::fetch;
use super::folder::load_folder;
use super::folder_archive::{extract_once, find_image_root};
use super::image_set::{IMAGE_BYTES, IMAGE_SIDE, ImageSet};
use crate::observer::{Event, Observer};

/// The `--dataset` argument: an official CIFAR or an image folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetSpec {
    Cifar10,
    Cifar100,
    Folder(PathBuf),
    /// An image folder packed as `.tar.xz`/`.tar.gz`/`.tar` (extracted once into the data dir).
    FolderArchive(PathBuf),
}

impl DatasetSpec {
    /// Parses `cifar10`, `cifar100` (any case, `cifar-10` too) or the path of an existing
    /// folder or archive: an image folder, or a CIFAR binary folder (see `cifar::find_cifar_folder`).
    pub fn parse(text: &str) -> Result<DatasetSpec> {
        match text.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "cifar10" => return Ok(DatasetSpec::Cifar10),
            "cifar100" => return Ok(DatasetSpec::Cifar100),
            _ => {}
        }
        let path = PathBuf::from(text);
        if path.is_file() && is_archive(&path) {
            return Ok(DatasetSpec::FolderArchive(path));
        }
        if path.is_file() {
            bail!(
                "dataset '{text}' is a file but not an archive: the image networks (the ResNets, vit-micro, vit-tiny) \
                 read cifar10, cifar100, or a folder or .tar.xz/.tar.gz of images (train/<class>/, test/<class>/); \
                 a text file is a dataset for the character language models: --network gpt-micro or gpt-mini"
            );
        }
        if !path.is_dir() {
            bail!(
                "dataset '{text}' is neither cifar10, cifar100 nor an existing folder or archive; pass \
                 --dataset cifar10, --dataset cifar100 or --dataset PATH to a folder (or a \
                 .tar.xz/.tar.gz of one) holding train/<class>/ and test/<class>/ images, or a \
                 CIFAR binary folder such as cifar-100-binary/ (or its archive)"
            );
        }
        Ok(DatasetSpec::Folder(path))
    }
}

/// The name recorded in results: `cifar10`, `cifar100` or the folder path.
impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Cifar10 => f.write_str("cifar10"),
            DatasetSpec::Cifar100 => f.write_str("cifar100"),
            DatasetSpec::Folder(path) | DatasetSpec::FolderArchive(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How to cut the dataset: `--train-portion`, `--subset`, `--test-subset` and the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitConfig {
    /// Fraction of the (subset of the) training images used for training, in (0, 1]; the rest
    /// is the validation split (none when 1).
    pub train_portion: f64,
    /// Keep only the first N training images after a seeded shuffle.
    pub subset: Option<usize>,
    /// Keep only the first N test images after a seeded shuffle.
    pub test_subset: Option<usize>,
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { train_portion: 1.0, subset: None, test_subset: None, seed: 0 }
    }
}

/// Per-channel mean and standard deviation of pixel/255; inputs become (x - mean) / std.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The statistics of `set` (population standard deviation over all its pixels). A channel
    /// that is constant gets std 1/255 so that normalizing never divides by zero.
    pub fn of(set: &ImageSet) -> Normalization {
        let plane = IMAGE_SIDE * IMAGE_SIDE;
        let zero = || ([0u64; 3], [0u64; 3]);
        let (sum, sum_sq) = set
            .images
            .par_chunks(IMAGE_BYTES)
            .fold(zero, |(mut s, mut q), image| {
                for c in 0..3 {
                    for &v in &image[c * plane..(c + 1) * plane] {
                        s[c] += v as u64;
                        q[c] += (v as u64) * (v as u64);
                    }
                }
                (s, q)
            })
            .reduce(zero, |(a, b), (c, d)| {
                ([a[0] + c[0], a[1] + c[1], a[2] + c[2]], [b[0] + d[0], b[1] + d[1], b[2] + d[2]])
            });
        let count = (set.len() * plane).max(1) as f64;
        let mut norm = Normalization { mean: [0.0; 3], std: [1.0; 3] };
        for c in 0..3 {
            let mean = sum[c] as f64 / count;
            let var = (sum_sq[c] as f64 / count - mean * mean).max(0.0);
            norm.mean[c] = (mean / 255.0) as f32;
            norm.std[c] = ((var.sqrt() / 255.0) as f32).max(1.0 / 255.0);
        }
        norm
    }
}

/// The data of one run.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: ImageSet,
    pub valid: Option<ImageSet>,
    pub test: ImageSet,
    pub norm: Normalization,
    pub num_classes: usize,
    pub classes: Vec<String>,
    /// The subsets as used: `--subset` and `--test-subset` clamped to the images there are,
    /// None when every image is used (a subset as large as the set is no subset).
    pub subset: Option<usize>,
    pub test_subset: Option<usize>,
}

/// The subsets a run asked for where they differ from those it used (a config's
/// `requested_subset`, `requested_test_subset`; absent when equal).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requested {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_subset: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_test_subset: Option<usize>,
}

impl Splits {
    /// Records the subsets as used in a run's config: the used ones replace `subset` and
    /// `test_subset`, and what was asked goes to `requested` where it differs
    /// (`--subset 100000` of 400 images: used None, requested 100000). Runs that used the
    /// same images are then one recipe, and the request is kept for the record.
    pub fn settle(&self, subset: &mut Option<usize>, test_subset: &mut Option<usize>, requested: &mut Requested) {
        let one = |asked: &mut Option<usize>, kept: &mut Option<usize>, used: Option<usize>| {
            if *asked != used {
                *kept = kept.or(*asked);
                *asked = used;
            }
        };
        one(subset, &mut requested.requested_subset, self.subset);
        one(test_subset, &mut requested.requested_test_subset, self.test_subset);
    }
}

/// Loads `spec` (from `data_dir`; image-folder caches go to `data_dir/cache`) and cuts it as
/// `cfg` says: subset and train/valid split from one seeded shuffle of the training images,
/// test subset from another.
pub fn load_splits(spec: &DatasetSpec, data_dir: &Path, cfg: &SplitConfig, obs: &dyn Observer) -> Result<Splits> {
    check_config(cfg)?;
    let (train_all, test_all) = match spec {
        DatasetSpec::Cifar10 => load_cifar_or_download(CifarKind::Cifar10, data_dir, obs)?,
        DatasetSpec::Cifar100 => load_cifar_or_download(CifarKind::Cifar100, data_dir, obs)?,
        DatasetSpec::Folder(path) => match find_cifar_folder(path) {
            Some((kind, folder)) => {
                let fix = format!(
                    "{} is not a complete {} binary folder: replace it with a good copy",
                    folder.display(),
                    kind.title()
                );
                read_cifar(kind, &folder, &fix, obs)?
            }
            None => load_folder(path, &data_dir.join("cache"), obs)?,
        },
        DatasetSpec::FolderArchive(archive) => {
            let target = extract_once(archive, data_dir, obs)?;
            match find_cifar_folder(&target) {
                Some((kind, folder)) => {
                    let fix = format!(
                        "{} (extracted from {}) is damaged: delete {} and rerun to extract it again, or check the archive",
                        folder.display(),
                        archive.display(),
                        target.display()
                    );
                    read_cifar(kind, &folder, &fix, obs)?
                }
                None => load_folder(&find_image_root(&target, archive)?, &data_dir.join("cache"), obs)?,
            }
        }
    };
    cut(spec, train_all, test_all, cfg, obs)
}

/// CIFAR from `data_dir`, downloading the official archive first when neither it nor the
/// extracted folder is there.
fn load_cifar_or_download(kind: CifarKind, data_dir: &Path, obs: &dyn Observer) -> Result<(ImageSet, ImageSet)> {
    let info = kind.archive();
    if !data_dir.join(kind.folder()).is_dir() && !data_dir.join(info.file_name).is_file() {
        obs.event(Event::Info(format!(
            "{} is not in {}: downloading {} ({} MB)",
            kind.title(),
            data_dir.display(),
            info.url,
            info.size / 1_000_000
        )));
        fetch(kind, data_dir, obs).map_err(|e| {
            let offline = match kind {
                CifarKind::Cifar10 => " or its .tar.xz (offline: --dataset ../shared/data/cifar10-images.tar.xz)",
                CifarKind::Cifar100 => "",
            };
            anyhow::anyhow!("{e:#}; or pass --dataset PATH to an image folder{offline}")
        })?;
    }
    load_cifar(kind, data_dir, obs)
}

fn check_config(cfg: &SplitConfig) -> Result<()> {
    if !(cfg.train_portion > 0.0 && cfg.train_portion <= 1.0) {
        bail!("--train-portion {} is outside (0, 1]; pass a fraction such as 0.5 or 1", cfg.train_portion);
    }
    if cfg.subset == Some(0) {
        bail!("--subset 0 leaves no training images; pass a positive number or leave it out");
    }
    if cfg.test_subset == Some(0) {
        bail!("--test-subset 0 leaves no test images; pass a positive number or leave it out");
    }
    Ok(())
}

/// Applies the subsets and the train/valid split to loaded sets.
fn cut(
    spec: &DatasetSpec,
    train_all: ImageSet,
    test_all: ImageSet,
    cfg: &SplitConfig,
    obs: &dyn Observer,
) -> Result<Splits> {
    if train_all.is_empty() || test_all.is_empty() {
        bail!(
            "dataset {spec} has {} training and {} test images; both must be non-empty",
            train_all.len(),
            test_all.len()
        );
    }
    let order = shuffled(train_all.len(), cfg.seed, 0);
    let n = clamp_subset("--subset", cfg.subset, train_all.len(), spec, obs);
    let n_train = (cfg.train_portion * n as f64).round() as usize;
    if n_train == 0 {
        bail!(
            "--train-portion {} of {n} images leaves no training images; use a larger portion or subset",
            cfg.train_portion
        );
    }
    let valid = if cfg.train_portion < 1.0 {
        if n_train >= n {
            bail!(
                "--train-portion {} of {n} images leaves no validation images; use a smaller \
                 portion, a larger subset, or --train-portion 1",
                cfg.train_portion
            );
        }
        Some(train_all.select(&order[n_train..n]))
    } else {
        None
    };
    let train = train_all.select(&order[..n_train]);
    let subset = (n < train_all.len()).then_some(n);
    let (test, test_subset) = match cfg.test_subset {
        Some(_) => {
            let m = clamp_subset("--test-subset", cfg.test_subset, test_all.len(), spec, obs);
            let all = test_all.len();
            (test_all.select(&shuffled(all, cfg.seed, 1)[..m]), (m < all).then_some(m))
        }
        None => (test_all, None),
    };
    let classes = train.classes.clone();
    let norm = Normalization::of(&train);
    Ok(Splits { norm, num_classes: classes.len(), classes, train, valid, test, subset, test_subset })
}

/// `0..n` shuffled by ChaCha8 seeded with `seed`, on its own `stream`.
fn shuffled(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// The requested subset size, clamped (with a message) to what is available.
fn clamp_subset(flag: &str, wanted: Option<usize>, available: usize, spec: &DatasetSpec, obs: &dyn Observer) -> usize {
    match wanted {
        Some(n) if n > available => {
            obs.event(Event::Info(format!(
                "{flag} {n} is larger than the {available} images of {spec}; using all {available}"
            )));
            available
        }
        Some(n) => n,
        None => available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::write_synthetic_cifar10;
    use crate::data::test_observer::Recorder;
    use crate::observer::Silent;

    fn data() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar10(tmp.path(), 40).unwrap(); // 200 train, 40 test
        tmp
    }

    fn cfg(portion: f64, subset: Option<usize>, test_subset: Option<usize>, seed: u64) -> SplitConfig {
        SplitConfig { train_portion: portion, subset, test_subset, seed }
    }

    #[test]
    fn parse_names_and_paths() {
        assert_eq!(DatasetSpec::parse("cifar10").unwrap(), DatasetSpec::Cifar10);
        assert_eq!(DatasetSpec::parse("CIFAR-100").unwrap(), DatasetSpec::Cifar100);
        let tmp = tempfile::tempdir().unwrap();
        let spec = DatasetSpec::parse(tmp.path().to_str().unwrap()).unwrap();
        assert_eq!(spec, DatasetSpec::Folder(tmp.path().to_path_buf()));
        let err = DatasetSpec::parse("cifar1O").unwrap_err().to_string();
        assert!(err.contains("'cifar1O'") && err.contains("--dataset cifar10"), "{err}");
        assert_eq!(DatasetSpec::Cifar100.to_string(), "cifar100");
    }

    #[test]
    fn sizes_follow_subset_and_portion() {
        let tmp = data();
        let s = load_splits(&DatasetSpec::Cifar10, tmp.path(), &cfg(0.7, Some(101), Some(17), 3), &Silent).unwrap();
        assert_eq!(s.train.len(), 71);
        assert_eq!(s.valid.as_ref().unwrap().len(), 30);
        assert_eq!(s.test.len(), 17);
        assert_eq!(s.num_classes, 10);
        assert_eq!(s.classes[3], "cat");

        let s = load_splits(&DatasetSpec::Cifar10, tmp.path(), &cfg(1.0, None, None, 3), &Silent).unwrap();
        assert_eq!((s.train.len(), s.valid.is_none(), s.test.len()), (200, true, 40));
        // Without a test subset the test set keeps its file order.
        assert_eq!(s.test.labels[..3], [5, 6, 7]);
    }

    #[test]
    fn splits_are_disjoint_and_seeded() {
        let tmp = data();
        let load = |seed| {
            load_splits(&DatasetSpec::Cifar10, tmp.path(), &cfg(0.5, Some(120), Some(10), seed), &Silent).unwrap()
        };
        let (a, b, c) = (load(1), load(1), load(2));
        assert_eq!(a.train, b.train);
        assert_eq!(a.valid, b.valid);
        assert_eq!(a.test, b.test);
        assert_ne!(a.train, c.train);
        assert_ne!(a.test, c.test);
        // Train and valid images are distinct records (synthetic images are all different).
        let valid = a.valid.unwrap();
        for i in 0..a.train.len() {
            for j in 0..valid.len() {
                assert_ne!(a.train.image(i), valid.image(j));
            }
        }
    }

    #[test]
    fn bad_configs_are_errors_and_large_subsets_are_clamped() {
        let tmp = data();
        let run = |c: SplitConfig| load_splits(&DatasetSpec::Cifar10, tmp.path(), &c, &Silent);
        for bad in [0.0, 1.5, -0.2, f64::NAN] {
            let err = run(cfg(bad, None, None, 0)).unwrap_err().to_string();
            assert!(err.contains("--train-portion"), "{err}");
        }
        assert!(run(cfg(1.0, Some(0), None, 0)).unwrap_err().to_string().contains("--subset 0"));
        assert!(run(cfg(1.0, None, Some(0), 0)).unwrap_err().to_string().contains("--test-subset 0"));
        assert!(run(cfg(0.99, Some(10), None, 0)).unwrap_err().to_string().contains("no validation images"));
        assert!(run(cfg(0.01, Some(10), None, 0)).unwrap_err().to_string().contains("no training images"));

        let rec = Recorder::default();
        let s = load_splits(&DatasetSpec::Cifar10, tmp.path(), &cfg(1.0, Some(5000), Some(99), 0), &rec).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (200, 40));
        let infos = rec.infos();
        assert!(infos.iter().any(|m| m.starts_with("--subset 5000 is larger than the 200")), "{infos:?}");
        assert!(infos.iter().any(|m| m.starts_with("--test-subset 99")), "{infos:?}");
    }

    #[test]
    fn normalization_matches_a_direct_computation() {
        let mut images = vec![0u8; 2 * IMAGE_BYTES];
        images[..1024].fill(255); // image 0: R = 255
        images[IMAGE_BYTES + 1024..IMAGE_BYTES + 2048].fill(51); // image 1: G = 51
        let set = ImageSet { images, labels: vec![0, 0], classes: vec!["x".into()] };
        let n = Normalization::of(&set);
        assert!((n.mean[0] - 0.5).abs() < 1e-6 && (n.std[0] - 0.5).abs() < 1e-6, "{n:?}");
        assert!((n.mean[1] - 0.1).abs() < 1e-6 && (n.std[1] - 0.1).abs() < 1e-6, "{n:?}");
        assert_eq!(n.mean[2], 0.0);
        assert!((n.std[2] - 1.0 / 255.0).abs() < 1e-9);

        let tmp = data();
        let s = load_splits(&DatasetSpec::Cifar10, tmp.path(), &cfg(0.5, None, None, 4), &Silent).unwrap();
        let direct: f64 =
            (0..s.train.len()).map(|i| s.train.image(i)[2048..].iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>()
                / (s.train.len() * 1024) as f64
                / 255.0;
        assert!((s.norm.mean[2] as f64 - direct).abs() < 1e-6);
    }
}
