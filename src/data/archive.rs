//! The official CIFAR archives (where they live, how big they are, their MD5), checking a
//! downloaded archive, and extracting a `.tar.gz`, `.tar.xz` or `.tar` without letting any
//! entry escape the target and without accepting a truncated archive as complete.

use std::cell::{Cell, RefCell};
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use md5::{Digest, Md5};

use crate::files::Checksum;

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
    let mut hasher = Md5::new();
    read_chunks(path, |chunk| hasher.update(chunk))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The xxh3 of a file's contents, as 16 lowercase hex digits (what extraction markers record).
pub fn xxh3_hex(path: &Path) -> Result<String> {
    let mut sum = Checksum::new();
    read_chunks(path, |chunk| sum.update(chunk))?;
    Ok(sum.hex())
}

/// Feeds the contents of `path` to `eat` in 1 MiB chunks.
fn read_chunks(path: &Path, mut eat: impl FnMut(&[u8])) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        eat(&buf[..n]);
    }
}

/// Extracts the tar archive `archive` (.tar.gz, .tar.xz or .tar) into `target_dir` (created if
/// missing).
///
/// The archive is unpacked into a staging directory inside `target_dir` (see
/// [`unpack_to_staging`]); only when every entry succeeded and every check passed are its
/// top-level entries renamed into place, so a failure leaves nothing half-written. A top-level
/// entry that already exists in `target_dir` is an error (nothing is overwritten).
pub fn extract_archive(archive: &Path, target_dir: &Path) -> Result<()> {
    fs::create_dir_all(target_dir).with_context(|| format!("cannot create directory {}", target_dir.display()))?;
    let staging = unpack_to_staging(archive, target_dir)?;
    move_into_place(archive, staging.path(), target_dir)
}

/// Unpacks `archive` into a fresh staging directory `.extract-<PID>-<N>` in `parent` (removed
/// when the returned [`Staging`] is dropped), first removing the staging directories of dead
/// processes there.
///
/// Refused with an error naming the entry: absolute paths and `..` components, links that
/// point outside lexically, and (checked after unpacking, so that chains of links are followed
/// as the OS follows them) links that resolve outside the staging directory or to nothing.
/// Refused as truncated or corrupt: a stream the decompressor rejects (gzip and xz check their
/// end and checksum) and a tar that ends without its end-of-archive block. Extracted files get
/// the extraction time as mtime (not the archive's), so any re-extraction changes the image
/// folder's cache key.
pub fn unpack_to_staging(archive: &Path, parent: &Path) -> Result<Staging> {
    remove_stale_staging(parent);
    let staging = Staging::create(parent)?;
    unpack_checked(archive, staging.path())?;
    check_links_resolve_inside(archive, staging.path())?;
    Ok(staging)
}

/// A directory being built (`.extract-<PID>-<N>`, named with its owner's pid so that the
/// leftovers of a killed process are recognized), removed when dropped unless
/// [`persist`](Staging::persist)ed.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
}

const STAGING_PREFIX: &str = ".extract-";

impl Staging {
    fn create(parent: &Path) -> Result<Staging> {
        Self::claim(parent, |path| fs::create_dir(path))
    }

    /// Moves the existing `path` aside under a staging name in `parent`, to be removed when the
    /// returned value is dropped.
    pub fn set_aside(path: &Path, parent: &Path) -> Result<Staging> {
        Self::claim(parent, |name| {
            if fs::symlink_metadata(name).is_ok() {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            fs::rename(path, name)
        })
        .with_context(|| format!("cannot move {} aside", path.display()))
    }

    /// The first free name `.extract-<PID>-<N>` in `parent` that `take` succeeds on.
    fn claim(parent: &Path, take: impl Fn(&Path) -> std::io::Result<()>) -> Result<Staging> {
        for attempt in 0..1000u32 {
            let path = parent.join(format!("{STAGING_PREFIX}{}-{attempt}", std::process::id()));
            match take(&path) {
                Ok(()) => return Ok(Staging { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    bail!("cannot create a temporary directory in {}: {e}; check that it is writable", parent.display())
                }
            }
        }
        bail!(
            "cannot create a temporary directory in {}: too many leftover .extract-* \
             directories; delete them",
            parent.display()
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staging directory to `dest` (which must not exist), keeping it.
    pub fn persist(self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest)
            .with_context(|| format!("cannot move {} to {}: check permissions", self.path.display(), dest.display()))?;
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if fs::remove_dir_all(&self.path).is_err() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Removes the staging directories (`.extract-<PID>-<N>`) in `dir` whose process is no longer
/// alive (a kill during extraction). Returns the removed paths; never fails.
pub fn remove_stale_staging(dir: &Path) -> Vec<PathBuf> {
    crate::files::remove_stale(dir, |name| staging_owner(name).map(Some))
}

/// The pid in a staging name `.extract-<PID>-<N>`.
fn staging_owner(name: &str) -> Option<u32> {
    let (pid, attempt) = name.strip_prefix(STAGING_PREFIX)?.split_once('-')?;
    attempt.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// What the tar reader saw of the decompressed stream: whether it hit its end (before the
/// end-of-archive block, that means truncation) and the first read error (a decompressor
/// rejecting the stream).
#[derive(Default)]
struct StreamState {
    ended: Cell<bool>,
    error: RefCell<Option<String>>,
}

impl StreamState {
    fn damage(&self) -> Option<String> {
        self.error.borrow().clone().or_else(|| self.ended.get().then(|| "it ends too early".to_string()))
    }
}

/// A reader that records into a [`StreamState`] what happened at its end.
struct Watched {
    inner: Box<dyn Read>,
    state: Rc<StreamState>,
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.state.ended.set(true);
                Ok(0)
            }
            Err(e) => {
                self.state.error.borrow_mut().get_or_insert_with(|| e.to_string());
                Err(e)
            }
            other => other,
        }
    }
}

/// The error for an archive whose stream is damaged.
fn truncated(archive: &Path, detail: &str) -> anyhow::Error {
    anyhow::anyhow!("archive {} is truncated or corrupt ({detail}): {}", archive.display(), refetch_hint(archive))
}

/// Unpacks every entry of `archive` into `dest` after checking that it stays inside, then
/// checks that the stream ended properly.
fn unpack_checked(archive: &Path, dest: &Path) -> Result<()> {
    let file = File::open(archive)
        .with_context(|| format!("cannot open archive {}: {}", archive.display(), refetch_hint(archive)))?;
    let state = Rc::new(StreamState::default());
    let mut tar = tar::Archive::new(Watched { inner: decompressed(archive, file)?, state: state.clone() });
    tar.set_preserve_permissions(false);
    tar.set_preserve_mtime(false);
    tar.set_overwrite(false);
    if let Err(e) = unpack_entries(archive, &mut tar, dest) {
        return Err(match state.damage() {
            Some(detail) => truncated(archive, &detail),
            None => e,
        });
    }
    // The tar reader stops at the first zero block; reaching the end of the stream instead
    // means the archive was cut (at an entry boundary, which it does not notice).
    if state.ended.get() {
        return Err(truncated(archive, "it ends without the end-of-archive marker"));
    }
    // Read the rest (the second zero block, padding) so that gzip and xz check their end and
    // checksum.
    std::io::copy(&mut tar.into_inner(), &mut std::io::sink()).map_err(|e| truncated(archive, &e.to_string()))?;
    Ok(())
}

fn unpack_entries(archive: &Path, tar: &mut tar::Archive<Watched>, dest: &Path) -> Result<()> {
    let bad_archive = |e: &dyn std::fmt::Display| {
        format!("archive {} cannot be read as a tar archive ({e}); {}", archive.display(), refetch_hint(archive))
    };
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
        let mut link = None;
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| anyhow::anyhow!(bad_archive(&e)))?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            // A symlink is resolved from its own directory, a hard link from the archive root.
            let base = if kind.is_symlink() { path.parent().unwrap_or(Path::new("")) } else { Path::new("") };
            check_link(archive, &name, base, &target)?;
            link = Some(target);
        }
        // Something missing while unpacking is the archive's fault, not the disk's: a hard
        // link to an entry it does not hold (or holds later), or an entry under a link that
        // leads nowhere.
        let unpacked = entry.unpack_in(dest).map_err(|e| match &link {
            Some(target) if e.kind() == std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "archive {} has a broken link: entry {name} links to {}, which the archive does not hold \
                 before it; refusing to extract it: {}",
                archive.display(),
                target.display(),
                refetch_hint(archive)
            ),
            None if e.kind() == std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "archive {} has a broken link: entry {name} lies under a link that leads nowhere; refusing \
                 to extract it: {}",
                archive.display(),
                refetch_hint(archive)
            ),
            _ => anyhow::anyhow!(
                "cannot extract entry {name} of archive {} into {} ({e}); check free disk space, \
                 or {}",
                archive.display(),
                dest.display(),
                refetch_hint(archive)
            ),
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
        lzma_rs::xz_decompress(&mut BufReader::new(file), &mut tar)
            .map_err(|e| truncated(archive, &format!("not a valid .xz stream: {e}")))?;
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

/// Refuses links in `dir` (the unpacked archive) that resolve, as the OS resolves them
/// through earlier links, outside `dir` or to nothing.
fn check_links_resolve_inside(archive: &Path, dir: &Path) -> Result<()> {
    let list = |d: &Path| fs::read_dir(d).with_context(|| format!("cannot list {}", d.display()));
    let root = fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in list(&current)? {
            let entry = entry.with_context(|| format!("cannot list {}", current.display()))?;
            let path = entry.path();
            let kind = entry.file_type().with_context(|| format!("cannot read {}", path.display()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() && !fs::canonicalize(&path).is_ok_and(|p| p.starts_with(&root)) {
                let name = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
                let link = fs::read_link(&path).map(|l| l.display().to_string()).unwrap_or_default();
                bail!(
                    "archive {} has link entry {name} pointing to {link}, which resolves outside the \
                     target directory or to nothing; refusing to extract it: {}",
                    archive.display(),
                    refetch_hint(archive)
                );
            }
        }
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

    type Entry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

    /// The bytes of a tar of (raw name, kind, link target, contents), bypassing the tar crate's
    /// own path checks so that hostile names can be written; ends with two zero blocks.
    fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
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
        builder.into_inner().unwrap()
    }

    /// Writes [`tar_bytes`] gzipped to `path`.
    fn write_tar_gz(path: &Path, entries: &[Entry]) {
        fs::write(path, gzip(&tar_bytes(entries))).unwrap();
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// Two small files, as a plain tar.
    fn two_files() -> Vec<u8> {
        tar_bytes(&[
            ("top/", tar::EntryType::Directory, "", b""),
            ("top/a.txt", tar::EntryType::Regular, "", b"hello"),
            ("top/b.txt", tar::EntryType::Regular, "", b"world"),
        ])
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

    #[test]
    fn links_are_resolved_through_earlier_links_and_must_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        // Lexically `test/c` stays at depth 0, but `a` is `test/` itself, so it climbs out.
        let chained: &[Entry] = &[
            ("test/", tar::EntryType::Directory, "", b""),
            ("test/a", tar::EntryType::Symlink, ".", b""),
            ("test/c", tar::EntryType::Symlink, "a/a/a/../../../..", b""),
        ];
        let dangling: &[Entry] = &[("d/link", tar::EntryType::Symlink, "missing.txt", b"")];
        for (i, (entries, name)) in [(chained, "test/c"), (dangling, "d/link")].into_iter().enumerate() {
            let archive = tmp.path().join(format!("chain{i}.tar.gz"));
            write_tar_gz(&archive, entries);
            let target = tmp.path().join(format!("out{i}"));
            let err = extract_archive(&archive, &target).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("resolves outside the target directory"), "{err}");
            assert!(listing(&target).is_empty(), "{:?}", listing(&target));
        }
    }

    /// A hard link to nothing, a chain of hard links ending in nothing, and a file under a
    /// symlink to nothing: each is named a broken link (not a disk problem).
    #[test]
    fn broken_links_are_named_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let hard: &[Entry] = &[("d/h", tar::EntryType::Link, "d/missing.txt", b"")];
        let chain: &[Entry] = &[
            ("d/", tar::EntryType::Directory, "", b""),
            ("d/h1", tar::EntryType::Link, "d/h2", b""),
            ("d/h2", tar::EntryType::Link, "d/missing.txt", b""),
        ];
        let under: &[Entry] = &[
            ("d/", tar::EntryType::Directory, "", b""),
            ("d/s", tar::EntryType::Symlink, "nowhere", b""),
            ("d/s/f.txt", tar::EntryType::Regular, "", b"data"),
        ];
        for (i, entries) in [hard, chain, under].into_iter().enumerate() {
            let archive = tmp.path().join(format!("broken{i}.tar.gz"));
            write_tar_gz(&archive, entries);
            let target = tmp.path().join(format!("out{i}"));
            let err = extract_archive(&archive, &target).unwrap_err().to_string();
            assert!(err.contains("has a broken link") || err.contains("resolves outside"), "{i}: {err}");
            assert!(!err.contains("disk space"), "{i}: {err}");
            assert!(listing(&target).is_empty(), "{:?}", listing(&target));
        }
    }

    #[test]
    fn a_plain_tar_cut_at_an_entry_boundary_is_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        let full = two_files();
        // Header blocks: top/ (512), a.txt (512 + 512 data), b.txt (512 + 512), then 2 zero blocks.
        let end = full.len() - 1024;
        for (i, cut) in [512 + 1024, end].into_iter().enumerate() {
            let archive = tmp.path().join(format!("cut{i}.tar"));
            fs::write(&archive, &full[..cut]).unwrap();
            let target = tmp.path().join(format!("out{i}"));
            let err = extract_archive(&archive, &target).unwrap_err().to_string();
            assert!(err.contains("is truncated or corrupt") && err.contains("end-of-archive"), "{err}");
            assert!(err.contains(&format!("cut{i}.tar")) && err.contains("download it again"), "{err}");
            assert!(listing(&target).is_empty());
        }
        // One zero block is enough; the full archive (two) and a padded one are fine.
        let mut padded = full.clone();
        padded.resize(10240, 0);
        for (i, bytes) in [&full[..end + 512], &full[..], &padded[..]].into_iter().enumerate() {
            let archive = tmp.path().join(format!("whole{i}.tar"));
            fs::write(&archive, bytes).unwrap();
            let target = tmp.path().join(format!("whole{i}"));
            extract_archive(&archive, &target).unwrap();
            assert_eq!(fs::read(target.join("top/b.txt")).unwrap(), b"world");
        }
    }

    #[test]
    fn truncated_gzip_and_xz_are_named_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let gz = gzip(&two_files());
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &two_files()[..], &mut xz).unwrap();
        let cases = [
            ("x.tar.gz", &gz[..gz.len() - 4]),
            ("y.tar.gz", &gz[..gz.len() / 2]),
            ("z.tar.xz", &xz[..xz.len() - 4]),
            (CIFAR10_ARCHIVE.file_name, &gz[..gz.len() - 4]),
        ];
        for (i, (name, bytes)) in cases.into_iter().enumerate() {
            let dir = tmp.path().join(format!("case{i}"));
            fs::create_dir_all(&dir).unwrap();
            let archive = dir.join(name);
            fs::write(&archive, bytes).unwrap();
            let target = dir.join("out");
            let err = extract_archive(&archive, &target).unwrap_err().to_string();
            assert!(err.contains(&format!("{name} is truncated or corrupt")), "{err}");
            assert!(!err.contains("disk space"), "{err}");
            assert!(listing(&target).is_empty());
        }
        let err = extract_archive(&tmp.path().join("case3").join(CIFAR10_ARCHIVE.file_name), &tmp.path().join("o"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("actsearch data fetch cifar10"), "{err}");
        // The whole streams extract.
        for (name, bytes) in [("ok.tar.gz", &gz), ("ok.tar.xz", &xz)] {
            let archive = tmp.path().join(name);
            fs::write(&archive, bytes).unwrap();
            extract_archive(&archive, &tmp.path().join(format!("out-{name}"))).unwrap();
        }
    }

    #[test]
    fn staging_left_by_a_dead_process_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");
        // A pid far above pid_max is never alive; our own pid always is.
        let dead = target.join(".extract-4294967295-0");
        let ours = target.join(format!(".extract-{}-7", std::process::id()));
        let other = target.join(".extract-notes");
        for dir in [&dead, &ours, &other] {
            fs::create_dir_all(dir.join("sub")).unwrap();
            fs::write(dir.join("sub/f"), b"x").unwrap();
        }
        let archive = tmp.path().join("t.tar");
        fs::write(&archive, two_files()).unwrap();
        extract_archive(&archive, &target).unwrap();
        assert!(!dead.exists() && ours.exists() && other.exists());
        assert_eq!(listing(&target).len(), 3, "{:?}", listing(&target));
    }
}
