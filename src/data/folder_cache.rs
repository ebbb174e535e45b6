//! The decoded-image cache of an image folder: one binary file holding both splits, so a folder
//! of JPEGs is decoded once. A file that is missing, corrupt or stale is never an error: the
//! caller decodes again and rewrites it.
//!
//! Layout (little-endian): magic, root path (u64 length + UTF-8), class count (u32) and names
//! (u32 length + UTF-8 each), train count and test count (u64), the labels (u32 each, train
//! then test), the images ([`IMAGE_BYTES`] each, train then test), then the xxh3 of everything
//! before it as 16 hex digits, so that flipped bytes anywhere are noticed on load.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::image_set::{IMAGE_BYTES, ImageSet};
use crate::files::{Checksum, write_atomic_with};

/// Bumped whenever the layout or the decoding changes (it is part of the cache key too).
pub const VERSION: u32 = 2;
const MAGIC: &[u8; 16] = b"actsearch-imgs2\n";
/// Magics of earlier versions: still recognized as caches of a folder, so they are removed as
/// stale once the folder is cached in the current version.
const OLD_MAGICS: [&[u8; 16]; 1] = [b"actsearch-imgs1\n"];
/// Bytes of the trailing checksum.
const CHECKSUM_LEN: usize = 16;
/// Longest root path or class name accepted when reading (guards allocations).
const MAX_NAME: u64 = 1 << 16;

/// Reads the cache at `path`. `Ok(None)` when there is none; `Err` (a reason for the user)
/// when it exists but is corrupt or does not match the folder described by the arguments.
pub fn read(
    path: &Path,
    root: &str,
    classes: &[String],
    n_train: usize,
    n_test: usize,
) -> Result<Option<(ImageSet, ImageSet)>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot open it: {e}"),
    };
    let file_len = file.metadata()?.len();
    let mut r = Summed { inner: BufReader::with_capacity(1 << 20, file), sum: Checksum::new() };
    if read_header_root(&mut r, &[MAGIC])? != root {
        bail!("it belongs to another folder");
    }
    let n_classes = read_u32(&mut r)? as usize;
    if n_classes != classes.len() {
        bail!("it has {n_classes} classes, the folder has {}", classes.len());
    }
    for class in classes {
        if &read_string(&mut r)? != class {
            bail!("its class names differ from the folder's");
        }
    }
    let (train_len, test_len) = (read_u64(&mut r)?, read_u64(&mut r)?);
    if (train_len, test_len) != (n_train as u64, n_test as u64) {
        bail!("it holds {train_len}+{test_len} images, the folder has {n_train}+{n_test}");
    }
    let header_len = 16 + 8 + root.len() + 4 + classes.iter().map(|c| 4 + c.len()).sum::<usize>() + 16;
    let expected = (header_len + (n_train + n_test) * (4 + IMAGE_BYTES) + CHECKSUM_LEN) as u64;
    if file_len != expected {
        bail!("it has {file_len} bytes instead of {expected} (truncated or corrupt)");
    }
    let train_labels = read_labels(&mut r, n_train)?;
    let test_labels = read_labels(&mut r, n_test)?;
    let mut train_images = vec![0u8; n_train * IMAGE_BYTES];
    let mut test_images = vec![0u8; n_test * IMAGE_BYTES];
    r.read_exact(&mut train_images)?;
    r.read_exact(&mut test_images)?;
    let mut stored = [0u8; CHECKSUM_LEN];
    r.inner.read_exact(&mut stored)?;
    if stored != r.sum.hex().as_bytes() {
        bail!("its checksum does not match its contents (corrupt)");
    }
    if train_labels.iter().chain(&test_labels).any(|&l| l as usize >= classes.len()) {
        bail!("it holds a label outside the class range");
    }
    let set = |images, labels| ImageSet { images, labels, classes: classes.to_vec() };
    Ok(Some((set(train_images, train_labels), set(test_images, test_labels))))
}

/// Writes both sets to `path` atomically (a temporary file renamed into place).
pub fn write(path: &Path, root: &str, train: &ImageSet, test: &ImageSet) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic_with(path, |file| {
        let mut w = Summed { inner: BufWriter::with_capacity(1 << 20, file), sum: Checksum::new() };
        write_payload(&mut w, root, train, test)?;
        let sum = w.sum.hex();
        w.inner.write_all(sum.as_bytes())?;
        w.inner.flush()?;
        Ok(())
    })
}

fn write_payload(w: &mut impl Write, root: &str, train: &ImageSet, test: &ImageSet) -> Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&(root.len() as u64).to_le_bytes())?;
    w.write_all(root.as_bytes())?;
    w.write_all(&(train.classes.len() as u32).to_le_bytes())?;
    for class in &train.classes {
        w.write_all(&(class.len() as u32).to_le_bytes())?;
        w.write_all(class.as_bytes())?;
    }
    w.write_all(&(train.len() as u64).to_le_bytes())?;
    w.write_all(&(test.len() as u64).to_le_bytes())?;
    for label in train.labels.iter().chain(&test.labels) {
        w.write_all(&label.to_le_bytes())?;
    }
    w.write_all(&train.images)?;
    w.write_all(&test.images)?;
    Ok(())
}

/// A reader or writer that checksums every byte passing through it.
struct Summed<T> {
    inner: T,
    sum: Checksum,
}

impl<R: Read> Read for Summed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Other cache files in `cache_dir` (of this or an earlier version) that were written for the
/// same folder `root`.
pub fn stale(cache_dir: &Path, root: &str, except: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != except)
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("folder-") && name.ends_with(".bin")
        })
        .filter(|p| {
            let mut magics = vec![MAGIC];
            magics.extend(OLD_MAGICS);
            File::open(p)
                .ok()
                .and_then(|f| read_header_root(&mut BufReader::new(f), &magics).ok())
                .is_some_and(|r| r == root)
        })
        .collect();
    found.sort();
    found
}

/// Checks the magic (one of `magics`) and returns the folder path the cache was written for.
fn read_header_root(r: &mut impl Read, magics: &[&[u8; 16]]) -> Result<String> {
    let mut magic = [0u8; 16];
    r.read_exact(&mut magic).context("it is too short")?;
    if !magics.contains(&&magic) {
        bail!("it is not an actsearch image cache of this version");
    }
    read_string_u64(r)
}

fn read_labels(r: &mut impl Read, n: usize) -> Result<Vec<u32>> {
    let mut bytes = vec![0u8; n * 4];
    r.read_exact(&mut bytes)?;
    Ok(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

fn read_u32(r: &mut impl Read) -> Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).context("it is truncated")?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).context("it is truncated")?;
    Ok(u64::from_le_bytes(b))
}

fn read_string(r: &mut impl Read) -> Result<String> {
    let len = read_u32(r)? as u64;
    read_bytes_as_string(r, len)
}

fn read_string_u64(r: &mut impl Read) -> Result<String> {
    let len = read_u64(r)?;
    read_bytes_as_string(r, len)
}

fn read_bytes_as_string(r: &mut impl Read, len: u64) -> Result<String> {
    if len > MAX_NAME {
        bail!("it has an implausible name length");
    }
    let mut bytes = vec![0u8; len as usize];
    r.read_exact(&mut bytes).context("it is truncated")?;
    String::from_utf8(bytes).context("it holds a name that is not UTF-8")
}
