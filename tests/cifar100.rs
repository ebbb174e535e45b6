//! CIFAR-100 offline: the shared `cifar-100-binary.tar.xz` (the official binary layout, not
//! the official archive) read through `--dataset PATH`, on a few hundred of its real records.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use actsearch::data::{DatasetSpec, SplitConfig, load_splits};
use actsearch::observer::Silent;
use common::{actsearch, assert_clean_error};

const RECORD: usize = 2 + 3072;

fn shared_archive() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar-100-binary.tar.xz");
    assert!(path.is_file(), "{} is missing: these tests read the shared offline data", path.display());
    path
}

/// The members of the shared archive, by file name: the first `records` records of
/// `train.bin` and `test.bin`, and the names files whole. (Decompressed once per process.)
fn real_members(records: usize) -> Vec<(String, Vec<u8>)> {
    static WHOLE: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    let whole = WHOLE.get_or_init(|| {
        let mut tar = Vec::new();
        let file = std::fs::File::open(shared_archive()).unwrap();
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut tar).unwrap();
        let mut archive = tar::Archive::new(std::io::Cursor::new(tar));
        let mut members = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let Some(name) = path.strip_prefix("cifar-100-binary/").filter(|n| !n.is_empty()) else { continue };
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            members.push((name.to_string(), bytes));
        }
        members.sort();
        members
    });
    let part = |(name, bytes): &(String, Vec<u8>)| {
        if !name.ends_with(".bin") {
            return (name.clone(), bytes.clone());
        }
        assert_eq!(bytes.len() % RECORD, 0, "{name} is not whole records");
        (name.clone(), bytes[..(records * RECORD).min(bytes.len())].to_vec())
    };
    whole.iter().map(part).collect()
}

/// `dir/cifar-100-binary/` with the real members, declared as holding `records` records per
/// file (a subset of the official counts).
fn write_folder(dir: &Path, members: &[(String, Vec<u8>)], records: usize) -> PathBuf {
    let folder = dir.join("cifar-100-binary");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, bytes) in members {
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    let declaration = format!("A subset of the shared CIFAR-100 for tests.\nrecords per file: {records}\n");
    std::fs::write(folder.join(actsearch::data::synthetic::SYNTHETIC_DECLARATION), declaration).unwrap();
    folder
}

#[test]
fn real_records_read_from_the_shared_archive_keep_their_labels_and_pixels() {
    let members = real_members(300);
    let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["coarse_label_names.txt", "fine_label_names.txt", "test.bin", "train.bin"]);
    let tmp = tempfile::tempdir().unwrap();
    let folder = write_folder(tmp.path(), &members, 300);
    let split = SplitConfig { train_portion: 1.0, subset: None, test_subset: None, seed: 0 };
    // The folder itself, and the folder holding it, are both taken for CIFAR-100.
    for given in [folder.clone(), tmp.path().to_path_buf()] {
        let spec = DatasetSpec::parse(given.to_str().unwrap()).unwrap();
        let splits = load_splits(&spec, &tmp.path().join("data"), &split, &Silent).unwrap();
        assert_eq!(splits.num_classes, 100);
        assert_eq!(splits.classes.len(), 100);
        assert_eq!((splits.classes[0].as_str(), splits.classes[99].as_str()), ("apple", "worm"));
        assert_eq!((splits.train.len(), splits.test.len()), (300, 300));
        // Every record (coarse label byte, fine label byte, CHW pixels) is one image of the set
        // (in a seeded order), with its fine label.
        for (set, file) in [(&splits.train, "train.bin"), (&splits.test, "test.bin")] {
            let bytes = &members.iter().find(|m| m.0 == file).unwrap().1;
            let mut labels = std::collections::BTreeSet::new();
            let mut by_pixels = std::collections::HashMap::new();
            for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
                assert!(record[0] < 20 && record[1] < 100, "{file} record {i}: labels {} {}", record[0], record[1]);
                by_pixels.insert(&record[2..], record[1] as u32);
                labels.insert(record[1]);
            }
            assert_eq!(by_pixels.len(), 300, "{file}: repeated images");
            for i in 0..set.len() {
                assert_eq!(by_pixels.get(set.image(i)), Some(&set.labels[i]), "{file}: image {i} of the set");
            }
            // The archive is shuffled, so a few hundred records cover most classes.
            assert!(labels.len() > 80, "{file}: only {} distinct labels in 300 records", labels.len());
        }
    }
}

#[test]
fn a_damaged_cifar100_folder_is_one_clear_error() {
    let members = real_members(20);
    let tmp = tempfile::tempdir().unwrap();
    let folder = write_folder(tmp.path(), &members, 20);
    let eval = |out: &str| {
        let args = ["eval", "--network", "resnet8", "--activation", "relu", "--epochs", "1", "--out", out];
        actsearch(&[&args[..], &["--dataset", folder.to_str().unwrap()]].concat(), tmp.path())
    };
    // A label out of range.
    let mut train = std::fs::read(folder.join("train.bin")).unwrap();
    train[RECORD + 1] = 100;
    std::fs::write(folder.join("train.bin"), &train).unwrap();
    assert_clean_error(&eval("label"), "record 1 has label 100 but CIFAR-100 has 100 classes");
    // A coarse names file that lists 19 superclasses.
    std::fs::write(folder.join("train.bin"), &members.iter().find(|m| m.0 == "train.bin").unwrap().1).unwrap();
    let coarse = std::fs::read_to_string(folder.join("coarse_label_names.txt")).unwrap();
    let shorter: Vec<&str> = coarse.lines().filter(|l| !l.trim().is_empty()).skip(1).collect();
    std::fs::write(folder.join("coarse_label_names.txt"), shorter.join("\n")).unwrap();
    assert_clean_error(&eval("coarse"), "lists 19 class names but CIFAR-100 has 20");
}

#[test]
fn eval_trains_a_100_way_resnet_on_an_archive_of_real_records() {
    let members = real_members(200);
    let tmp = tempfile::tempdir().unwrap();
    let folder = write_folder(tmp.path(), &members, 200);
    // Packed as the shared archive is: cifar-100-binary/ inside a .tar.gz.
    let archive = tmp.path().join("cifar100-part.tar.gz");
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(&archive).unwrap(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.append_dir_all("cifar-100-binary", &folder).unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    std::fs::remove_dir_all(&folder).unwrap();
    let out = actsearch(
        &[
            "eval",
            "--network",
            "resnet8",
            "--activation",
            "silu",
            "--epochs",
            "1",
            "--batch-size",
            "50",
            "--dataset",
            archive.to_str().unwrap(),
            "--data-dir",
            "data",
            "--out",
            "run",
            "--threads",
            "2",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = std::fs::read(tmp.path().join("run/model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&model).unwrap();
    assert_eq!(tensors.tensor("fc.weight").unwrap().shape(), [100, 64]);
    assert_eq!(tensors.tensor("fc.bias").unwrap().shape(), [100]);
    let errors: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("run/errors.json")).unwrap()).unwrap();
    assert_eq!(errors["dataset"], archive.to_str().unwrap());
    assert_eq!(errors["test_acc"].as_array().unwrap().len(), 1);
}
