//! Datasets shipped as an archive (`.tar.xz`, `.tar.gz`, `.tar`), such as the offline
//! `cifar10-images.tar.xz` (an image folder) or `cifar-100-binary.tar.xz` (a CIFAR binary
//! folder): extracted once under `<data_dir>/extracted/<archive name>/`, then loaded like the
//! folder they hold.
//!
//! An extraction is keyed by the archive's contents, not its name: the marker `.complete`
//! (JSON, written last) records the archive's size, mtime and xxh3. Equal size and mtime are
//! trusted; otherwise the archive is hashed, and a different hash means a different archive,
//! which is extracted again (into a staging directory, then swapped in). A folder without a
//! marker is an interrupted extraction and is redone.
//!
//! Concurrent runs: the OS lock `<data_dir>/extracted/.<archive name>.lock` is held while
//! checking and extracting, so a second run waits for the first and then uses its extraction.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::archive::{Staging, remove_stale_staging, unpack_to_staging, xxh3_hex};
use crate::files::{Lock, write_atomic};
use crate::observer::{Event, Observer};

const MARKER: &str = ".complete";

/// The image folder inside `archive` (the directory holding `train/` and `test/`), extracting
/// the archive first if this archive (by contents) has not been extracted before.
pub fn prepare_folder_archive(archive: &Path, data_dir: &Path, obs: &dyn Observer) -> Result<PathBuf> {
    find_image_root(&extract_once(archive, data_dir, obs)?, archive)
}

/// The folder `archive` is extracted to, `<data_dir>/extracted/<archive name>/`, extracting it
/// first unless this archive (by contents) was extracted there before.
pub fn extract_once(archive: &Path, data_dir: &Path, obs: &dyn Observer) -> Result<PathBuf> {
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or("archive");
    let extracted = data_dir.join("extracted");
    let target = extracted.join(name);
    let _lock = Lock::wait_exclusive(&extracted.join(format!(".{name}.lock")), || {
        obs.event(Event::Info(format!(
            "waiting for another actsearch process to finish extracting {}",
            archive.display()
        )))
    })?;
    for left in remove_stale_staging(&extracted) {
        obs.event(Event::Info(format!("removed {}, left by an interrupted extraction", left.display())));
    }
    let stamp = Stamp::of(archive)?;
    let xxh3 = match Marker::read(&target) {
        Some(marker) if marker.stamp == stamp => None,
        Some(marker) => {
            let xxh3 = xxh3_hex(archive)?;
            if marker.xxh3 == xxh3 {
                Marker { stamp, ..marker }.write(&target)?;
                None
            } else {
                obs.event(Event::Info(format!(
                    "archive {} differs from the one extracted in {}; extracting it again",
                    archive.display(),
                    target.display()
                )));
                Some(xxh3)
            }
        }
        None => {
            if fs::symlink_metadata(&target).is_ok() {
                obs.event(Event::Info(format!(
                    "{} holds no finished extraction of this version; extracting {} again",
                    target.display(),
                    archive.display()
                )));
            }
            Some(xxh3_hex(archive)?)
        }
    };
    if let Some(xxh3) = xxh3 {
        extract(archive, &extracted, &target, Marker { archive: archive.display().to_string(), stamp, xxh3 }, obs)?;
    }
    Ok(target)
}

/// Size and modification time of a file: when both are unchanged, so are the contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: u64,
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp> {
        let meta = fs::metadata(path).with_context(|| format!("cannot read archive {}", path.display()))?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Ok(Stamp { size: meta.len(), mtime_ns })
    }
}

/// What `.complete` records: which archive (by contents) the folder was extracted from.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    /// The archive's path at extraction time (for people reading the marker).
    archive: String,
    #[serde(flatten)]
    stamp: Stamp,
    /// xxh3 of the archive's bytes, 16 hex digits.
    xxh3: String,
}

impl Marker {
    /// The marker of the extraction in `dir`; `None` when missing or unreadable (an
    /// interrupted extraction, or one by an older version that recorded nothing).
    fn read(dir: &Path) -> Option<Marker> {
        serde_json::from_slice(&fs::read(dir.join(MARKER)).ok()?).ok()
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("cannot encode the extraction marker")?;
        write_atomic(&dir.join(MARKER), &json)
    }
}

/// Extracts `archive` into a staging directory in `extracted`, marks it complete and swaps it
/// in for `target` (whose old contents, if any, are then removed). The caller holds the lock.
fn extract(archive: &Path, extracted: &Path, target: &Path, marker: Marker, obs: &dyn Observer) -> Result<()> {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    obs.event(Event::TaskStart { id: "extract", label: format!("extracting {name}"), total: 1 });
    let staging = unpack_to_staging(archive, extracted);
    obs.event(Event::TaskEnd { id: "extract" });
    let staging = staging?;
    if Stamp::of(archive)? != marker.stamp {
        bail!("archive {} changed while it was being extracted; run again once it is complete", archive.display());
    }
    marker.write(staging.path())?;
    let old = match fs::symlink_metadata(target) {
        Ok(_) => Some(Staging::set_aside(target, extracted)?),
        Err(_) => None,
    };
    if let Err(e) = staging.persist(target) {
        if let Some(old) = old {
            let _ = old.persist(target);
        }
        return Err(e);
    }
    drop(old);
    obs.event(Event::Info(format!("extracted {} into {}", archive.display(), target.display())));
    Ok(())
}

/// `dir` itself if it holds `train/` and `test/`, else its only subdirectory that does.
pub fn find_image_root(dir: &Path, archive: &Path) -> Result<PathBuf> {
    let is_root = |d: &Path| d.join("train").is_dir() && d.join("test").is_dir();
    if is_root(dir) {
        return Ok(dir.to_path_buf());
    }
    let mut roots = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() && is_root(&path) {
            roots.push(path);
        }
    }
    match roots.len() {
        1 => Ok(roots.remove(0)),
        0 => bail!(
            "archive {} holds no folder with train/<class>/ and test/<class>/ images; pack the image folder itself",
            archive.display()
        ),
        _ => bail!(
            "archive {} holds several image folders ({}); extract it and pass --dataset with the one you mean",
            archive.display(),
            roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::write_synthetic_folder;
    use crate::data::test_observer::Recorder;
    use crate::observer::Silent;
    use std::time::{Duration, SystemTime};

    /// Writes a plain tar holding `set/train/a/f.txt` and `set/test/a/f.txt` with `text`, with
    /// the file's mtime set to `mtime_s` seconds after the epoch.
    fn text_archive(path: &Path, text: &[u8], mtime_s: u64) {
        let mut builder = tar::Builder::new(Vec::new());
        for name in ["set/train/a/f.txt", "set/test/a/f.txt"] {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, text).unwrap();
        }
        fs::write(path, builder.into_inner().unwrap()).unwrap();
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_s)).unwrap();
    }

    fn extractions(rec: &Recorder) -> usize {
        rec.infos().iter().filter(|m| m.starts_with("extracted ")).count()
    }

    fn tar_dir(src: &Path, name: &str, out: &Path) {
        let file = fs::File::create(out).unwrap();
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        builder.append_dir_all(name, src).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn extracts_once_and_finds_the_image_root() {
        let tmp = tempfile::tempdir().unwrap();
        let images = tmp.path().join("imgs");
        write_synthetic_folder(&images, &["a", "b"], 2, 1).unwrap();
        let archive = tmp.path().join("imgs.tar.gz");
        tar_dir(&images, "myset", &archive);
        let data = tmp.path().join("data");
        let root = prepare_folder_archive(&archive, &data, &Silent).unwrap();
        assert!(root.ends_with("myset") && root.join("train/a").is_dir());
        // The second call reuses the extraction.
        fs::write(root.join("train/a/sentinel.txt"), b"kept").unwrap();
        let again = prepare_folder_archive(&archive, &data, &Silent).unwrap();
        assert_eq!(root, again);
        assert!(again.join("train/a/sentinel.txt").exists());
    }

    #[test]
    fn an_archive_without_an_image_folder_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("nothing")).unwrap();
        let archive = tmp.path().join("x.tar.gz");
        tar_dir(&src, "top", &archive);
        let err = prepare_folder_archive(&archive, &tmp.path().join("data"), &Silent).unwrap_err().to_string();
        assert!(err.contains("train/<class>/"), "{err}");
    }

    #[test]
    fn two_runs_extracting_at_once_both_succeed_and_extract_once() {
        let tmp = tempfile::tempdir().unwrap();
        let images = tmp.path().join("imgs");
        write_synthetic_folder(&images, &["a", "b"], 3, 1).unwrap();
        let archive = tmp.path().join("imgs.tar.gz");
        tar_dir(&images, "myset", &archive);
        let data = tmp.path().join("data");
        let barrier = std::sync::Barrier::new(2);
        let recs = [Recorder::default(), Recorder::default()];
        let roots: Vec<PathBuf> = std::thread::scope(|s| {
            let runs: Vec<_> = recs
                .iter()
                .map(|rec| {
                    s.spawn(|| {
                        barrier.wait();
                        prepare_folder_archive(&archive, &data, rec).unwrap()
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(roots[0], roots[1]);
        assert_eq!(extractions(&recs[0]) + extractions(&recs[1]), 1);
        assert!(roots[0].join("train/b/0002.png").is_file());
    }

    #[test]
    fn extractions_follow_the_archive_contents_not_its_name() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("set.tar");
        let data = tmp.path().join("data");
        let read = |root: &Path| fs::read(root.join("train/a/f.txt")).unwrap();

        text_archive(&archive, b"one", 1000);
        let root = prepare_folder_archive(&archive, &data, &Silent).unwrap();
        assert_eq!(read(&root), b"one");

        // Same size and mtime: trusted without hashing (the documented fast path).
        text_archive(&archive, b"two", 1000);
        assert_eq!(read(&prepare_folder_archive(&archive, &data, &Silent).unwrap()), b"one");

        // Replaced in place (same size, new mtime, new contents): extracted again.
        text_archive(&archive, b"two", 2000);
        let rec = Recorder::default();
        assert_eq!(read(&prepare_folder_archive(&archive, &data, &rec).unwrap()), b"two");
        assert!(rec.infos().iter().any(|m| m.contains("differs from the one extracted")), "{:?}", rec.infos());
        assert_eq!(extractions(&rec), 1);

        // Touched (new mtime, same contents): reused.
        text_archive(&archive, b"two", 3000);
        let rec = Recorder::default();
        prepare_folder_archive(&archive, &data, &rec).unwrap();
        assert_eq!(extractions(&rec), 0, "{:?}", rec.infos());
        // Nothing but the extraction and its lock is left in extracted/.
        let mut names: Vec<String> = fs::read_dir(data.join("extracted"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec![".set.tar.lock", "set.tar"]);
    }

    #[test]
    fn unmarked_extractions_and_dead_staging_are_redone_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("set.tar");
        text_archive(&archive, b"new", 1000);
        let data = tmp.path().join("data");
        let target = data.join("extracted/set.tar");
        // An older version's empty marker over other files, and a dead process's staging.
        fs::create_dir_all(target.join("set/train/a")).unwrap();
        fs::write(target.join("set/train/a/f.txt"), b"old").unwrap();
        fs::write(target.join(MARKER), b"").unwrap();
        let dead = data.join("extracted/.extract-4294967295-0");
        fs::create_dir_all(&dead).unwrap();
        let rec = Recorder::default();
        let root = prepare_folder_archive(&archive, &data, &rec).unwrap();
        assert_eq!(fs::read(root.join("train/a/f.txt")).unwrap(), b"new");
        assert!(!dead.exists());
        assert!(rec.infos().iter().any(|m| m.contains("interrupted extraction")), "{:?}", rec.infos());
        let marker = Marker::read(&target).unwrap();
        assert_eq!(marker.xxh3, xxh3_hex(&archive).unwrap());
    }
}
