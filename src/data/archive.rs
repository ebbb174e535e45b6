//! The official CIFAR archives (where they live, how big they are, their MD5), checking a
//! downloaded archive, and extracting a `.tar.gz` without letting any entry escape the target.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use md5::{Digest, Md5};

/// One official archive: its file name, download address, size in bytes and MD5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveInfo {
    pub file_name: &'static str,
    pub url: &'static str,
    pub size: u64,
    pub md5: &'static str,
    /// The `actsearch data fetch` argument that downloads it.
    pub fetch_arg: &'static str,
}

/// `cifar-10-binary.tar.gz` from the dataset's home page.
pub const CIFAR10_ARCHIVE: ArchiveInfo = ArchiveInfo {
    file_name: "cifar-10-binary.tar.gz",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    size: 170_052_171,
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    fetch_arg: "cifar10",
};

/// `cifar-100-binary.tar.gz` from the dataset's home page.
pub const CIFAR100_ARCHIVE: ArchiveInfo = ArchiveInfo {
    file_name: "cifar-100-binary.tar.gz",
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    size: 168_513_733,
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    fetch_arg: "cifar100",
};

/// Checks that `path` has `expected_size` bytes (cheap, first) and then the MD5 `expected_md5`
/// (lowercase hex). A mismatch names the file, both values and the fix.
pub fn verify_archive(path: &Path, expected_size: u64, expected_md5: &str) -> Result<()> {
    let fix = refetch_hint(path);
    match mismatch(path, expected_size, expected_md5) {
        Ok(None) => Ok(()),
        Ok(Some(problem)) => bail!("archive {} {problem} (corrupt or incomplete download); {fix}", path.display()),
        Err(e) => bail!("cannot read archive {} ({e}); {fix}", path.display()),
    }
}

/// `None` when `path` has the expected size and MD5, else what differs, e.g.
/// `has MD5 abc… but c32a… was expected`.
pub fn mismatch(path: &Path, expected_size: u64, expected_md5: &str) -> Result<Option<String>> {
    let size = fs::metadata(path)?.len();
    if size != expected_size {
        return Ok(Some(format!("has {size} bytes but {expected_size} were expected")));
    }
    let actual = md5_hex(path)?;
    if !actual.eq_ignore_ascii_case(expected_md5) {
        return Ok(Some(format!("has MD5 {actual} but {expected_md5} was expected")));
    }
    Ok(None)
}

/// The fix for a bad archive: the exact fetch command when it is an official archive.
fn refetch_hint(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match [CIFAR10_ARCHIVE, CIFAR100_ARCHIVE].iter().find(|a| a.file_name == name) {
        Some(a) => format!("delete it and run `actsearch data fetch {} --data-dir {}`", a.fetch_arg, dir.display()),
        None => "delete it and download it again".to_string(),
    }
}

/// The MD5 of a file's contents, as lowercase hex.
pub fn md5_hex(path: &Path) -> Result<String> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Extracts the tar archive `archive` (.tar.gz, .tar.xz or .tar) into `target_dir` (created if
/// missing).
///
/// Every entry is checked first: absolute paths, `..` components and links that point outside
/// the target are refused with an error naming the entry. The archive is unpacked into a
/// temporary directory inside `target_dir`; only when all entries succeeded are its top-level
/// entries renamed into place, so a failure leaves nothing half-written. A top-level entry that
/// already exists in `target_dir` is an error (nothing is overwritten).
pub fn extract_archive(archive: &Path, target_dir: &Path) -> Result<()> {
    fs::create_dir_all(target_dir).with_context(|| format!("cannot create directory {}", target_dir.display()))?;
    let staging = Staging::create(target_dir)?;
    unpack_checked(archive, &staging.path)?;
    move_into_place(archive, &staging.path, target_dir)?;
    Ok(())
}

/// A temporary extraction directory that is removed when dropped.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn create(target_dir: &Path) -> Result<Staging> {
        for attempt in 0..1000u32 {
            let path = target_dir.join(format!(".extract-{}-{attempt}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Staging { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => bail!(
                    "cannot create a temporary directory in {}: {e}; check that it is writable",
                    target_dir.display()
                ),
            }
        }
        bail!(
            "cannot create a temporary directory in {}: too many leftover .extract-* \
             directories; delete them",
            target_dir.display()
        )
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Unpacks every entry of `archive` into `dest` after checking that it stays inside.
fn unpack_checked(archive: &Path, dest: &Path) -> Result<()> {
    let bad_archive = |e: &dyn std::fmt::Display| {
        format!("archive {} cannot be read as a tar archive ({e}); {}", archive.display(), refetch_hint(archive))
    };
    let file = File::open(archive)
        .with_context(|| format!("cannot open archive {}: {}", archive.display(), refetch_hint(archive)))?;
    let mut tar = tar::Archive::new(decompressed(archive, file)?);
    tar.set_preserve_permissions(false);
    tar.set_overwrite(false);
    let entries = tar.entries().map_err(|e| anyhow::anyhow!(bad_archive(&e)))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| anyhow::anyhow!(bad_archive(&e)))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let path = entry.path().map_err(|e| anyhow::anyhow!(bad_archive(&e)))?.into_owned();
        check_entry_path(archive, &name, &path)?;
        if kind.is_symlink() || kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(|e| anyhow::anyhow!(bad_archive(&e)))?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            // A symlink is resolved from its own directory, a hard link from the archive root.
            let base = if kind.is_symlink() { path.parent().unwrap_or(Path::new("")) } else { Path::new("") };
            check_link(archive, &name, base, &link)?;
        }
        let unpacked = entry.unpack_in(dest).map_err(|e| {
            anyhow::anyhow!(
                "cannot extract entry {name} of archive {} into {} ({e}); check free disk space, \
                 or {}",
                archive.display(),
                dest.display(),
                refetch_hint(archive)
            )
        })?;
        if !unpacked {
            bail!(
                "archive {} has entry {name} that would be written outside {}; refusing to \
                 extract it: {}",
                archive.display(),
                dest.display(),
                refetch_hint(archive)
            );
        }
    }
    Ok(())
}

/// The tar stream of `archive`, by extension: `.tar.gz`/`.tgz` (streamed), `.tar.xz`
/// (decompressed into memory with the pure-Rust lzma-rs, which has no streaming reader) or
/// plain `.tar`.
fn decompressed(archive: &Path, file: File) -> Result<Box<dyn std::io::Read>> {
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    if name.ends_with(".tar.xz") || name.ends_with(".txz") {
        let mut tar = Vec::new();
        lzma_rs::xz_decompress(&mut BufReader::new(file), &mut tar).map_err(|e| {
            anyhow::anyhow!(
                "archive {} is not a valid .tar.xz file ({e}); {}",
                archive.display(),
                refetch_hint(archive)
            )
        })?;
        Ok(Box::new(std::io::Cursor::new(tar)))
    } else if name.ends_with(".tar") {
        Ok(Box::new(BufReader::new(file)))
    } else {
        Ok(Box::new(flate2::read::GzDecoder::new(BufReader::new(file))))
    }
}

/// Whether `path` names an archive that [`extract_archive`] can unpack.
pub fn is_archive(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    [".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar"].iter().any(|ext| name.ends_with(ext))
}

/// Refuses entry paths that are absolute or climb with `..`.
fn check_entry_path(archive: &Path, name: &str, path: &Path) -> Result<()> {
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => bail!(
                "archive {} has entry {name} that would leave the target directory (absolute path \
                 or `..`); refusing to extract it: {}",
                archive.display(),
                refetch_hint(archive)
            ),
        }
    }
    Ok(())
}

/// Refuses links whose target, resolved from `base` inside the target directory, leaves it.
fn check_link(archive: &Path, name: &str, base: &Path, link: &Path) -> Result<()> {
    let mut depth = base.components().filter(|c| matches!(c, Component::Normal(_))).count() as i64;
    let mut escapes = link.as_os_str().is_empty();
    for component in link.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => escapes = true,
        }
        escapes |= depth < 0;
    }
    if escapes {
        bail!(
            "archive {} has link entry {name} pointing to {}, outside the target directory; \
             refusing to extract it: {}",
            archive.display(),
            link.display(),
            refetch_hint(archive)
        );
    }
    Ok(())
}

/// Renames the top-level entries of `staging` into `target_dir`, refusing to overwrite.
fn move_into_place(archive: &Path, staging: &Path, target_dir: &Path) -> Result<()> {
    let read = |e: std::io::Error| anyhow::anyhow!("cannot list {}: {e}", staging.display());
    let mut names = Vec::new();
    for entry in fs::read_dir(staging).map_err(read)? {
        names.push(entry.map_err(read)?.file_name());
    }
    names.sort();
    for name in &names {
        let dest = target_dir.join(name);
        if fs::symlink_metadata(&dest).is_ok() {
            bail!("cannot extract archive {}: {} already exists; delete it first", archive.display(), dest.display());
        }
    }
    for name in &names {
        let dest = target_dir.join(name);
        fs::rename(staging.join(name), &dest)
            .with_context(|| format!("cannot move extracted {} into place: check permissions", dest.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a .tar.gz from (raw name, kind, link target, contents), bypassing the tar crate's
    /// own path checks so that hostile names can be written.
    fn write_tar_gz(path: &Path, entries: &[(&str, tar::EntryType, &str, &[u8])]) {
        let gz = flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (name, kind, link, data) in entries {
            let mut header = tar::Header::new_gnu();
            let raw = &mut header.as_old_mut().name;
            raw.fill(0);
            raw[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            if !link.is_empty() {
                let raw = &mut header.as_old_mut().linkname;
                raw[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap().flush().unwrap();
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn good_archive_extracts_into_place() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("good.tar.gz");
        write_tar_gz(
            &archive,
            &[
                ("top/", tar::EntryType::Directory, "", b""),
                ("top/a.txt", tar::EntryType::Regular, "", b"hello"),
                ("top/sub/b.txt", tar::EntryType::Regular, "", b"world"),
                ("top/sub/link", tar::EntryType::Symlink, "../a.txt", b""),
            ],
        );
        let target = tmp.path().join("out");
        extract_archive(&archive, &target).unwrap();
        assert_eq!(listing(&target), vec!["top"]);
        assert_eq!(fs::read(target.join("top/a.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(target.join("top/sub/b.txt")).unwrap(), b"world");
        assert_eq!(fs::read(target.join("top/sub/link")).unwrap(), b"hello");
        // A second extraction must not overwrite what is there.
        let err = extract_archive(&archive, &target).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(listing(&target), vec!["top"]);
    }

    #[test]
    fn parent_dir_entry_is_refused_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("evil.tar.gz");
        write_tar_gz(
            &archive,
            &[("fine.txt", tar::EntryType::Regular, "", b"ok"), ("../evil.txt", tar::EntryType::Regular, "", b"pwned")],
        );
        let target = tmp.path().join("out");
        let err = extract_archive(&archive, &target).unwrap_err().to_string();
        assert!(err.contains("../evil.txt"), "{err}");
        assert!(err.contains("evil.tar.gz"), "{err}");
        assert!(!tmp.path().join("evil.txt").exists());
        assert!(listing(&target).is_empty(), "{:?}", listing(&target));
    }

    #[test]
    fn absolute_entry_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("abs.tar.gz");
        let victim = tmp.path().join("victim.txt");
        let name = victim.to_str().unwrap().to_string();
        write_tar_gz(&archive, &[(&name, tar::EntryType::Regular, "", b"pwned")]);
        let err = extract_archive(&archive, &tmp.path().join("out")).unwrap_err().to_string();
        assert!(err.contains(&name), "{err}");
        assert!(!victim.exists());
    }

    #[test]
    fn escaping_links_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for (i, (kind, link)) in [
            (tar::EntryType::Symlink, "../../etc/passwd"),
            (tar::EntryType::Symlink, "/etc/passwd"),
            (tar::EntryType::Link, "../outside.txt"),
        ]
        .into_iter()
        .enumerate()
        {
            let archive = tmp.path().join(format!("link{i}.tar.gz"));
            write_tar_gz(&archive, &[("dir/link", kind, link, b"")]);
            let target = tmp.path().join(format!("out{i}"));
            let err = extract_archive(&archive, &target).unwrap_err().to_string();
            assert!(err.contains("dir/link") && err.contains(link), "{err}");
            assert!(listing(&target).is_empty());
        }
    }

    #[test]
    fn wrong_size_and_wrong_md5_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(CIFAR10_ARCHIVE.file_name);
        fs::write(&path, b"not really an archive").unwrap();
        let err = verify_archive(&path, 5, CIFAR10_ARCHIVE.md5).unwrap_err().to_string();
        assert!(err.contains("21 bytes") && err.contains("5 were expected"), "{err}");
        let err = verify_archive(&path, 21, CIFAR10_ARCHIVE.md5).unwrap_err().to_string();
        let actual = md5_hex(&path).unwrap();
        assert!(err.contains(&actual) && err.contains(CIFAR10_ARCHIVE.md5), "{err}");
        assert!(err.contains("cifar-10-binary.tar.gz"), "{err}");
        assert!(err.contains("actsearch data fetch cifar10"), "{err}");
        verify_archive(&path, 21, &actual).unwrap();
    }

    #[test]
    fn md5_matches_a_known_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("abc");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(md5_hex(&path).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
    }
}
