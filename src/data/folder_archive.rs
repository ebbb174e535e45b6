//! Image folders shipped as an archive (`.tar.xz`, `.tar.gz`, `.tar`), such as the offline
//! `cifar10-images.tar.xz`: extracted once under `<data_dir>/extracted/<archive name>/`, then
//! loaded like any image folder. A `.complete` marker records a finished extraction, so an
//! interrupted one is redone rather than trusted.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::archive::extract_archive;
use crate::observer::{Event, Observer};

const MARKER: &str = ".complete";

/// The image folder inside `archive` (the directory holding `train/` and `test/`), extracting
/// the archive first if that has not been done before.
pub fn prepare_folder_archive(archive: &Path, data_dir: &Path, obs: &dyn Observer) -> Result<PathBuf> {
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or("archive");
    let target = data_dir.join("extracted").join(name);
    if !target.join(MARKER).exists() {
        if target.exists() {
            fs::remove_dir_all(&target)
                .with_context(|| format!("cannot remove the incomplete extraction {}", target.display()))?;
        }
        obs.event(Event::TaskStart { id: "extract", label: format!("extracting {name}"), total: 1 });
        let extracted = extract_archive(archive, &target);
        obs.event(Event::TaskEnd { id: "extract" });
        extracted?;
        fs::write(target.join(MARKER), b"")
            .with_context(|| format!("cannot write {}", target.join(MARKER).display()))?;
        obs.event(Event::Info(format!("extracted {} into {}", archive.display(), target.display())));
    }
    find_image_root(&target, archive)
}

/// `dir` itself if it holds `train/` and `test/`, else its only subdirectory that does.
fn find_image_root(dir: &Path, archive: &Path) -> Result<PathBuf> {
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
    use crate::observer::Silent;

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
}
