//! Files that can be trusted: the one place that knows how actsearch writes, locks and checks
//! what it keeps on disk. Every run folder, cache and extraction goes through it.
//!
//! - [`write_atomic`]: a file is written to a temporary name beside it (`.NAME.tmp<PID>`),
//!   synced, then renamed into place, so a reader sees the old file or the new one, never half.
//! - [`remove_stale_temporaries`]: the temporaries of processes that are no longer alive
//!   (kill -9 during a write) are removed.
//! - [`Lock`]: an OS file lock (`std::fs::File::lock`, flock on Linux). It is released when the
//!   process dies, so kill -9 never leaves a stale lock. [`Lock::try_exclusive`] fails at once
//!   (a run folder: a second run into it is an error), or in a task after a bounded wait
//!   ([`wait_for_busy_locks`]: the orphan of a killed run may still hold it for a moment);
//!   [`Lock::wait_exclusive`] waits (a cache or an extraction: the second process waits for
//!   the first and then uses its result).
//! - [`Checksum`]: xxh3-64 of file contents, written as 16 hex digits, verified on load.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The temporary name of `path` for this process: `.NAME.tmp<PID>` in the same directory.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically: a synced temporary beside it, renamed into place.
/// On failure the temporary is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes).map_err(Into::into))
}

/// [`write_atomic`] with the contents written by `fill` into the temporary file.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = File::create(&tmp).with_context(|| {
            format!("cannot create {} (check that the directory exists and is writable)", tmp.display())
        })?;
        fill(&mut file).with_context(|| format!("cannot write {} (check free disk space)", tmp.display()))?;
        file.sync_all().with_context(|| format!("cannot write {} (check free disk space)", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", tmp.display()))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Removes `.NAME.tmp<PID>` (and the older `NAME.tmp<PID>` / `NAME.tmp`) files in `dir` whose
/// process is no longer alive. Returns the removed paths. Never fails: what cannot be removed
/// is left.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    remove_stale(dir, temporary_owner)
}

/// Removes the entries of `dir` (files or whole directories) that `owner` recognizes as
/// leftovers of a process (`Some(Some(pid))`) that is no longer alive, or of no known process
/// (`Some(None)`). Returns the removed paths, sorted; never fails.
pub fn remove_stale(dir: &Path, owner: impl Fn(&str) -> Option<Option<u32>>) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner(&name) else { continue };
        if pid.is_some_and(process_alive) {
            continue;
        }
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

/// `Some(Some(pid))` for a temporary of process `pid`, `Some(None)` for a temporary without a
/// pid (`NAME.tmp`, from older versions), `None` for other names.
fn temporary_owner(name: &str) -> Option<Option<u32>> {
    let at = name.rfind(".tmp")?;
    let tail = &name[at + 4..];
    if tail.is_empty() {
        return Some(None);
    }
    tail.parse::<u32>().ok().map(Some)
}

/// Whether process `pid` exists (on Linux, `/proc/PID`; elsewhere assumed alive).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() { Path::new(&format!("/proc/{pid}")).exists() } else { true }
}

/// How long [`Lock::try_exclusive`] waits for a lock another process holds, in ms (0: not at
/// all).
static LOCK_PATIENCE_MS: AtomicU64 = AtomicU64::new(0);

/// Makes [`Lock::try_exclusive`] wait up to `patience` for a lock that another process holds,
/// before it fails. A task started by an executor sets it: when a run is killed and resumed at
/// once, the killed run's task may still hold its folder's lock while it exits.
pub fn wait_for_busy_locks(patience: Duration) {
    LOCK_PATIENCE_MS.store(patience.as_millis() as u64, Ordering::Relaxed);
}

/// The error of a lock that another process holds: a failure of the moment, not of the input
/// (the binary exits with [`Busy::EXIT_CODE`], and executors retry such a task).
#[derive(Debug)]
pub struct Busy(pub String);

impl Busy {
    /// `EX_TEMPFAIL` of sysexits.h.
    pub const EXIT_CODE: i32 = 75;
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Busy {}

/// An exclusive OS lock on a lock file, held until dropped (or until the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock on `path` (created if missing) or fails when another process holds it:
    /// at once, or after the patience [`wait_for_busy_locks`] set. `what` names the locked
    /// thing for the error, e.g. "run folder runs/x".
    pub fn try_exclusive(path: &Path, what: &str) -> Result<Lock> {
        Lock::try_exclusive_telling(path, what, || {})
    }

    /// [`Lock::try_exclusive`], calling `waiting` once if it waits.
    pub fn try_exclusive_telling(path: &Path, what: &str, waiting: impl FnOnce()) -> Result<Lock> {
        let file = open_lock_file(path)?;
        let deadline = Instant::now() + Duration::from_millis(LOCK_PATIENCE_MS.load(Ordering::Relaxed));
        let mut waiting = Some(waiting);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock { _file: file, path: path.to_path_buf() }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    if let Some(tell) = waiting.take() {
                        tell();
                    }
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Busy(format!(
                        "{what} is in use by another actsearch process (it holds the lock {}); wait for it to finish or choose another --out",
                        path.display()
                    ))
                    .into());
                }
                Err(fs::TryLockError::Error(e)) => bail!("cannot lock {}: {e}", path.display()),
            }
        }
    }

    /// Takes the lock on `path` (created if missing), waiting while another process holds it.
    /// `waiting` is called once before waiting (to tell the user).
    pub fn wait_exclusive(path: &Path, waiting: impl FnOnce()) -> Result<Lock> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(fs::TryLockError::Error(e)) => bail!("cannot lock {}: {e}", path.display()),
        }
        Ok(Lock { _file: file, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the lock file {} (check that it is writable)", path.display()))
}

/// xxh3-64 of a byte stream, fed in pieces.
#[derive(Clone)]
pub struct Checksum(xxhash_rust::xxh3::Xxh3);

impl Default for Checksum {
    fn default() -> Self {
        Checksum::new()
    }
}

impl Checksum {
    pub fn new() -> Checksum {
        Checksum(xxhash_rust::xxh3::Xxh3::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest as 16 lowercase hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0.digest())
    }

    /// The checksum of `bytes`, as 16 lowercase hex digits.
    pub fn of(bytes: &[u8]) -> String {
        let mut c = Checksum::new();
        c.update(bytes);
        c.hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A failing fill leaves the old file.
        let err = write_atomic_with(&path, |_| bail!("boom")).unwrap_err();
        assert!(format!("{err:#}").contains("boom"));
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A pid far above pid_max is never alive; our own pid always is.
        let dead = dir.path().join(".cache.bin.tmp4294967295");
        let old_style = dir.path().join("folder-x.bin.tmp4294967294");
        let ours = temporary_path(&dir.path().join("cache.bin"));
        let keep = dir.path().join("notes.tmpfile");
        for p in [&dead, &old_style, &ours, &keep] {
            fs::write(p, b"x").unwrap();
        }
        let removed = remove_stale_temporaries(dir.path());
        assert_eq!(removed, vec![dead.clone(), old_style.clone()]);
        assert!(ours.exists() && keep.exists());
    }

    #[test]
    fn a_held_lock_refuses_a_second_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let first = Lock::try_exclusive(&path, "run folder x").unwrap();
        let err = Lock::try_exclusive(&path, "run folder x").unwrap_err().to_string();
        assert!(err.contains("run folder x is in use by another actsearch process"), "{err}");
        drop(first);
        let _again = Lock::try_exclusive(&path, "run folder x").unwrap();
    }

    #[test]
    fn checksum_is_stable_and_sensitive() {
        assert_eq!(Checksum::of(b"abc"), Checksum::of(b"abc"));
        assert_ne!(Checksum::of(b"abc"), Checksum::of(b"abd"));
        let mut c = Checksum::new();
        c.update(b"ab");
        c.update(b"c");
        assert_eq!(c.hex(), Checksum::of(b"abc"));
        assert_eq!(Checksum::of(b"abc").len(), 16);
    }
}
