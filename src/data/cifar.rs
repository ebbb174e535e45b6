//! CIFAR-10 and CIFAR-100 in the official binary layout: locating (and if needed extracting)
//! the files under the data directory, or reading a binary folder the user points at
//! (`--dataset PATH`, such as the offline `cifar-100-binary.tar.xz` extracted), and parsing
//! their fixed-size records.
//!
//! CIFAR-10 records are 1 label byte + 3072 CHW bytes; CIFAR-100 records are 1 coarse label
//! byte + 1 fine label byte + 3072 CHW bytes (the fine label is used).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::archive::{ArchiveInfo, CIFAR10_ARCHIVE, CIFAR100_ARCHIVE, extract_archive, verify_archive};
use super::image_set::{IMAGE_BYTES, ImageSet};
use super::synthetic::SYNTHETIC_DECLARATION;
use crate::files::Lock;
use crate::observer::{Event, Observer};

/// Which CIFAR dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    Cifar100,
}

impl CifarKind {
    /// The human name, e.g. `CIFAR-10`.
    pub fn title(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 => "CIFAR-100",
        }
    }

    /// The command-line name, e.g. `cifar10`.
    pub fn cli_name(self) -> &'static str {
        self.archive().fetch_arg
    }

    /// The official archive holding this dataset.
    pub fn archive(self) -> ArchiveInfo {
        match self {
            CifarKind::Cifar10 => CIFAR10_ARCHIVE,
            CifarKind::Cifar100 => CIFAR100_ARCHIVE,
        }
    }

    /// The folder the archive extracts to, relative to the data directory.
    pub fn folder(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "cifar-10-batches-bin",
            CifarKind::Cifar100 => "cifar-100-binary",
        }
    }

    /// Number of (fine) classes.
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }

    fn train_files(self) -> &'static [&'static str] {
        match self {
            CifarKind::Cifar10 => {
                &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"]
            }
            CifarKind::Cifar100 => &["train.bin"],
        }
    }

    fn test_files(self) -> &'static [&'static str] {
        match self {
            CifarKind::Cifar10 => &["test_batch.bin"],
            CifarKind::Cifar100 => &["test.bin"],
        }
    }

    /// Records in the official file `name` (one of the train and test files).
    fn official_records(self, name: &str) -> usize {
        match (self, name) {
            (CifarKind::Cifar100, "train.bin") => 50_000,
            _ => 10_000,
        }
    }

    fn class_names_file(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "batches.meta.txt",
            CifarKind::Cifar100 => "fine_label_names.txt",
        }
    }

    /// Label bytes before the image in each record.
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    /// Bytes in one record.
    pub fn record_bytes(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }

    /// The command that fixes a missing or damaged file under `data_dir`.
    fn fetch_command(self, data_dir: &Path) -> String {
        format!("actsearch data fetch {} --data-dir {}", self.cli_name(), data_dir.display())
    }
}

/// Loads the (train, test) sets of `kind` from `data_dir`, extracting the official archive
/// first when only the archive is there. Every file must hold its official number of records
/// (or, in a synthetic dataset, the number its [`SYNTHETIC_DECLARATION`] declares).
pub fn load_cifar(kind: CifarKind, data_dir: &Path, obs: &dyn Observer) -> Result<(ImageSet, ImageSet)> {
    let folder = prepare_cifar(kind, data_dir, obs)?;
    let fix = format!("delete {} and run `{}`", folder.display(), kind.fetch_command(data_dir));
    read_cifar(kind, &folder, &fix, obs)
}

/// The CIFAR binary folder at `dir`, or the one such folder directly inside it (what an
/// archive of one extracts to), and which CIFAR it holds: CIFAR-100's `train.bin`, `test.bin`
/// and `fine_label_names.txt`, or CIFAR-10's `data_batch_1.bin` ... `test_batch.bin` and
/// `batches.meta.txt`. None when it is neither.
pub fn find_cifar_folder(dir: &Path) -> Option<(CifarKind, PathBuf)> {
    let kind_of = |d: &Path| {
        [CifarKind::Cifar100, CifarKind::Cifar10].into_iter().find(|k| {
            let data = k.train_files().iter().chain(k.test_files());
            d.join(k.class_names_file()).is_file() && data.into_iter().all(|f| d.join(f).is_file())
        })
    };
    if let Some(kind) = kind_of(dir) {
        return Some((kind, dir.to_path_buf()));
    }
    let mut inside = fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir());
    let (first, second) = (inside.next()?, inside.next());
    match second {
        None => kind_of(&first).map(|kind| (kind, first)),
        Some(_) => None,
    }
}

/// Reads the CIFAR binary folder `folder` of `kind`, checking the record counts (the official
/// ones, or a synthetic folder's declared ones), every label and the class-name files; its
/// MD5 is not checked, so a lossless repack of the official files (such as the offline
/// `cifar-100-binary.tar.xz`) is read too. `fix` says how to repair a damaged folder.
pub fn read_cifar(kind: CifarKind, folder: &Path, fix: &str, obs: &dyn Observer) -> Result<(ImageSet, ImageSet)> {
    let source = Source::of(folder, fix)?;
    let classes = read_class_names(kind, folder, kind.class_names_file(), kind.num_classes(), fix)?;
    if kind == CifarKind::Cifar100 {
        read_class_names(kind, folder, "coarse_label_names.txt", 20, fix)?;
    }
    let train = read_records(kind, folder, &source, kind.train_files(), &classes, fix)?;
    let test = read_records(kind, folder, &source, kind.test_files(), &classes, fix)?;
    obs.event(Event::Info(format!(
        "{}: {} training and {} test images from {}{}",
        kind.title(),
        train.len(),
        test.len(),
        folder.display(),
        if source == Source::Official { "" } else { " (synthetic test data)" }
    )));
    Ok((train, test))
}

/// Where a CIFAR folder came from, which says how many records each file must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Official,
    Synthetic { records_per_file: usize },
}

impl Source {
    fn of(folder: &Path, fix: &str) -> Result<Source> {
        let path = folder.join(SYNTHETIC_DECLARATION);
        let Ok(text) = fs::read_to_string(&path) else { return Ok(Source::Official) };
        let declared =
            text.lines().find_map(|l| l.strip_prefix("records per file:")).and_then(|n| n.trim().parse().ok());
        match declared {
            Some(records_per_file) => Ok(Source::Synthetic { records_per_file }),
            None => bail!("{} has no line `records per file: N`; {fix}", path.display()),
        }
    }

    fn expected_records(self, kind: CifarKind, name: &str) -> usize {
        match self {
            Source::Official => kind.official_records(name),
            Source::Synthetic { records_per_file } => records_per_file,
        }
    }
}

/// Makes sure the extracted folder of `kind` exists under `data_dir` and returns it: if only
/// the archive is present, it is verified and extracted; if neither is, the error says how to
/// get the data.
pub fn prepare_cifar(kind: CifarKind, data_dir: &Path, obs: &dyn Observer) -> Result<PathBuf> {
    prepare_from(kind, data_dir, &kind.archive(), obs)
}

/// [`prepare_cifar`] with the archive described by `info` (tests use small fake archives).
///
/// The folder appears whole (one rename) once extracted. Runs extracting at once take the OS
/// lock `<data_dir>/.<folder>.lock`: the second waits and then finds the folder.
fn prepare_from(kind: CifarKind, data_dir: &Path, info: &ArchiveInfo, obs: &dyn Observer) -> Result<PathBuf> {
    let folder = data_dir.join(kind.folder());
    if folder.is_dir() {
        return Ok(folder);
    }
    let archive = data_dir.join(info.file_name);
    if !archive.is_file() {
        let offline = match kind {
            CifarKind::Cifar10 => " (offline: tar -xJf ../shared/data/cifar10-images.tar.xz)",
            CifarKind::Cifar100 => "",
        };
        bail!(
            "{} not found in {}: run `{}`, or pass --dataset PATH to an image folder{offline}",
            kind.title(),
            data_dir.display(),
            kind.fetch_command(data_dir)
        );
    }
    let _lock = Lock::wait_exclusive(&data_dir.join(format!(".{}.lock", kind.folder())), || {
        obs.event(Event::Info(format!(
            "waiting for another actsearch process to finish extracting {}",
            archive.display()
        )))
    })?;
    if folder.is_dir() {
        return Ok(folder);
    }
    obs.event(Event::Info(format!("verifying {}", archive.display())));
    verify_archive(&archive, info.size, info.md5)?;
    obs.event(Event::TaskStart { id: "extract", label: format!("extracting {}", info.file_name), total: 1 });
    let extracted = extract_archive(&archive, data_dir);
    obs.event(Event::TaskAdvance { id: "extract", n: 1 });
    obs.event(Event::TaskEnd { id: "extract" });
    extracted?;
    if !folder.is_dir() {
        bail!(
            "archive {} did not contain {}/; delete it and run `{}`",
            archive.display(),
            kind.folder(),
            kind.fetch_command(data_dir)
        );
    }
    Ok(folder)
}

/// Reads the class names in `file`: its non-empty lines, exactly `count` of them.
fn read_class_names(kind: CifarKind, folder: &Path, file: &str, count: usize, fix: &str) -> Result<Vec<String>> {
    let path = folder.join(file);
    let text = fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} class names from {}: {fix}", kind.title(), path.display()))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != count {
        bail!("{} lists {} class names but {} has {count}; {fix}", path.display(), names.len(), kind.title());
    }
    Ok(names)
}

/// Reads and concatenates the records of `files`, each of which must hold the number of
/// records `source` expects.
fn read_records(
    kind: CifarKind,
    folder: &Path,
    source: &Source,
    files: &[&str],
    classes: &[String],
    fix: &str,
) -> Result<ImageSet> {
    let mut set = ImageSet { classes: classes.to_vec(), ..ImageSet::default() };
    for name in files {
        let path = folder.join(name);
        let bytes = fs::read(&path).with_context(|| format!("cannot read CIFAR file {}: {fix}", path.display()))?;
        let before = set.len();
        parse_records(kind, &path, &bytes, &mut set).map_err(|e| anyhow::anyhow!("{e}; {fix}"))?;
        let (found, expected) = (set.len() - before, source.expected_records(kind, name));
        if found != expected {
            let whose = match source {
                Source::Official => format!("the official {} file holds", kind.title()),
                Source::Synthetic { .. } => format!("its {SYNTHETIC_DECLARATION} declares"),
            };
            bail!(
                "CIFAR file {} holds {found} images but {whose} {expected} (incomplete or damaged); {fix}",
                path.display()
            );
        }
    }
    Ok(set)
}

/// Appends the records in `bytes` (the contents of `path`) to `set`, checking the file size
/// and every label. Errors name the file and the problem (the caller appends the fix).
fn parse_records(kind: CifarKind, path: &Path, bytes: &[u8], set: &mut ImageSet) -> Result<()> {
    let record = kind.record_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        bail!(
            "CIFAR file {} is truncated: {} bytes is not a multiple of the {record}-byte record",
            path.display(),
            bytes.len()
        );
    }
    let n = bytes.len() / record;
    set.images.reserve(n * IMAGE_BYTES);
    set.labels.reserve(n);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let (labels, image) = rec.split_at(kind.label_bytes());
        let label = labels[labels.len() - 1] as usize;
        if label >= kind.num_classes() {
            bail!(
                "CIFAR file {} is corrupt: record {i} has label {label} but {} has {} classes",
                path.display(),
                kind.title(),
                kind.num_classes()
            );
        }
        if kind == CifarKind::Cifar100 && labels[0] >= 20 {
            bail!(
                "CIFAR file {} is corrupt: record {i} has coarse label {} but CIFAR-100 has 20 \
                 superclasses",
                path.display(),
                labels[0]
            );
        }
        set.labels.push(label as u32);
        set.images.extend_from_slice(image);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{synthetic_image, write_synthetic_cifar10, write_synthetic_cifar100};
    use crate::observer::Silent;

    #[test]
    fn synthetic_cifar10_parses_with_labels_and_pixels() {
        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar10(tmp.path(), 23).unwrap();
        let (train, test) = load_cifar(CifarKind::Cifar10, tmp.path(), &Silent).unwrap();
        assert_eq!(train.len(), 5 * 23);
        assert_eq!(test.len(), 23);
        assert_eq!(train.classes.len(), 10);
        assert_eq!(train.classes[0], "airplane");
        assert_eq!(train.classes[9], "truck");
        assert_eq!(train.images.len(), train.len() * IMAGE_BYTES);
        // The writer's contract: record i of file f has label (i + f) % classes and the
        // pixels of synthetic_image(label, classes, seed f * 1_000_000 + i).
        for (i, &label) in train.labels.iter().enumerate() {
            let (f, r) = (i / 23, i % 23);
            assert_eq!(label as usize, (r + f) % 10);
            assert_eq!(train.image(i), &synthetic_image(label as usize, 10, (f * 1_000_000 + r) as u64)[..]);
        }
        assert_eq!(test.image(5), &synthetic_image(test.labels[5] as usize, 10, 5_000_005)[..]);
    }

    #[test]
    fn synthetic_cifar100_parses_fine_labels() {
        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar100(tmp.path(), 250).unwrap();
        let (train, test) = load_cifar(CifarKind::Cifar100, tmp.path(), &Silent).unwrap();
        assert_eq!((train.len(), test.len()), (250, 250));
        assert_eq!(train.classes.len(), 100);
        assert_eq!(train.labels[0..3], [0, 1, 2]);
        assert_eq!(train.labels[199], 99);
        assert_eq!(train.image(7), &synthetic_image(7, 100, 7)[..]);
    }

    #[test]
    fn truncated_file_error_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar10(tmp.path(), 4).unwrap();
        let path = tmp.path().join("cifar-10-batches-bin/data_batch_3.bin");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = load_cifar(CifarKind::Cifar10, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.contains("data_batch_3.bin is truncated"), "{err}");
        assert!(err.contains(&format!("{} bytes", bytes.len() - 1)), "{err}");
        assert!(err.contains("actsearch data fetch cifar10"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn label_out_of_range_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar10(tmp.path(), 4).unwrap();
        let path = tmp.path().join("cifar-10-batches-bin/test_batch.bin");
        let mut bytes = fs::read(&path).unwrap();
        bytes[2 * 3073] = 10;
        fs::write(&path, &bytes).unwrap();
        let err = load_cifar(CifarKind::Cifar10, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.contains("test_batch.bin") && err.contains("record 2 has label 10"), "{err}");

        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar100(tmp.path(), 4).unwrap();
        let path = tmp.path().join("cifar-100-binary/train.bin");
        let mut bytes = fs::read(&path).unwrap();
        bytes[3074 + 1] = 100;
        fs::write(&path, &bytes).unwrap();
        let err = load_cifar(CifarKind::Cifar100, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.contains("train.bin") && err.contains("record 1 has label 100"), "{err}");
    }

    #[test]
    fn missing_data_says_how_to_get_it() {
        let tmp = tempfile::tempdir().unwrap();
        let err = load_cifar(CifarKind::Cifar10, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.starts_with("CIFAR-10 not found in"), "{err}");
        assert!(err.contains("actsearch data fetch cifar10 --data-dir"), "{err}");
        assert!(err.contains("cifar10-images.tar.xz"), "{err}");
    }

    /// Packs `src/cifar-10-batches-bin` as `data/fake.tar.gz` and describes it.
    fn fake_archive(src: &Path, data: &Path) -> ArchiveInfo {
        let archive = data.join("fake.tar.gz");
        let gz = flate2::write::GzEncoder::new(fs::File::create(&archive).unwrap(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        builder.append_dir_all("cifar-10-batches-bin", src.join("cifar-10-batches-bin")).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        let md5 = crate::data::archive::md5_hex(&archive).unwrap();
        ArchiveInfo {
            file_name: "fake.tar.gz",
            size: fs::metadata(&archive).unwrap().len(),
            md5: Box::leak(md5.into_boxed_str()),
            ..CIFAR10_ARCHIVE
        }
    }

    /// A synthetic CIFAR-10 (3 images per file) in `tmp/src`, packed into `tmp/data` by
    /// [`fake_archive`]: (src, data, its description).
    fn synthetic_archive(tmp: &Path) -> (PathBuf, PathBuf, ArchiveInfo) {
        let src = tmp.join("src");
        write_synthetic_cifar10(&src, 3).unwrap();
        let data = tmp.join("data");
        fs::create_dir_all(&data).unwrap();
        let info = fake_archive(&src, &data);
        (src, data, info)
    }

    #[test]
    fn archive_alone_is_verified_and_extracted() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, data, info) = synthetic_archive(tmp.path());
        let folder = prepare_from(CifarKind::Cifar10, &data, &info, &Silent).unwrap();
        assert_eq!(folder, data.join("cifar-10-batches-bin"));
        let (train, _) = load_cifar(CifarKind::Cifar10, &data, &Silent).unwrap();
        let (expected, _) = load_cifar(CifarKind::Cifar10, &src, &Silent).unwrap();
        assert_eq!(train, expected);
    }

    #[test]
    fn bad_archive_is_verified_before_extraction() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(CIFAR100_ARCHIVE.file_name), b"junk").unwrap();
        let err = load_cifar(CifarKind::Cifar100, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.contains("cifar-100-binary.tar.gz has 4 bytes"), "{err}");
        assert!(!tmp.path().join("cifar-100-binary").exists());
    }

    #[test]
    fn files_with_fewer_records_than_official_are_named() {
        // Without the synthetic declaration the official counts apply: 3 whole records in
        // data_batch_1.bin are not CIFAR-10.
        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar10(tmp.path(), 3).unwrap();
        let folder = tmp.path().join("cifar-10-batches-bin");
        fs::remove_file(folder.join(SYNTHETIC_DECLARATION)).unwrap();
        let err = load_cifar(CifarKind::Cifar10, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.contains("data_batch_1.bin holds 3 images but the official CIFAR-10 file holds 10000"), "{err}");
        assert!(err.contains(&format!("delete {}", folder.display())), "{err}");
        assert!(err.contains("actsearch data fetch cifar10") && !err.contains('\n'), "{err}");

        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar100(tmp.path(), 3).unwrap();
        fs::remove_file(tmp.path().join("cifar-100-binary").join(SYNTHETIC_DECLARATION)).unwrap();
        let err = load_cifar(CifarKind::Cifar100, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.contains("train.bin holds 3 images but the official CIFAR-100 file holds 50000"), "{err}");

        // A synthetic set is held to its declared count.
        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar10(tmp.path(), 4).unwrap();
        let path = tmp.path().join("cifar-10-batches-bin/test_batch.bin");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..3 * 3073]).unwrap();
        let err = load_cifar(CifarKind::Cifar10, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.contains("test_batch.bin holds 3 images but its actsearch-synthetic.txt declares 4"), "{err}");
    }

    #[test]
    fn official_counts_are_the_published_ones() {
        for name in CifarKind::Cifar10.train_files().iter().chain(CifarKind::Cifar10.test_files()) {
            assert_eq!(CifarKind::Cifar10.official_records(name), 10_000);
        }
        assert_eq!(CifarKind::Cifar100.official_records("train.bin"), 50_000);
        assert_eq!(CifarKind::Cifar100.official_records("test.bin"), 10_000);
    }

    #[test]
    fn class_name_files_must_list_exactly_the_classes() {
        let tmp = tempfile::tempdir().unwrap();
        write_synthetic_cifar100(tmp.path(), 2).unwrap();
        let path = tmp.path().join("cifar-100-binary/fine_label_names.txt");
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("extra\n");
        fs::write(&path, &text).unwrap();
        let err = load_cifar(CifarKind::Cifar100, tmp.path(), &Silent).unwrap_err().to_string();
        assert!(err.contains("lists 101 class names but CIFAR-100 has 100"), "{err}");
    }

    #[test]
    fn two_runs_extracting_the_archive_at_once_both_succeed() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, data, info) = synthetic_archive(tmp.path());
        let barrier = std::sync::Barrier::new(2);
        let folders: Vec<PathBuf> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        prepare_from(CifarKind::Cifar10, &data, &info, &Silent).unwrap()
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(folders[0], folders[1]);
        assert_eq!(load_cifar(CifarKind::Cifar10, &data, &Silent).unwrap().0.len(), 15);
    }
}
