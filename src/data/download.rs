//! Downloading the official CIFAR archives: streamed to a temporary file (`.NAME.tmp<PID>`) with
//! progress, checked (size, then MD5) and only then renamed into place. A valid archive already
//! present is kept. Runs fetching at once take the OS lock `<data_dir>/.NAME.lock`: the second
//! waits and then finds the first one's archive; temporaries of killed runs are removed.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::archive::{ArchiveInfo, mismatch, verify_archive};
use super::cifar::CifarKind;
use crate::files::{Lock, remove_stale_temporaries, temporary_path};
use crate::observer::{Event, Observer};

/// Makes sure the official archive of `kind` is in `data_dir` and valid, downloading it when
/// missing or damaged. Returns its path.
pub fn fetch(kind: CifarKind, data_dir: &Path, obs: &dyn Observer) -> Result<PathBuf> {
    fetch_archive(&kind.archive(), data_dir, obs)
}

/// [`fetch`] for any archive description (tests point it at a local server).
fn fetch_archive(info: &ArchiveInfo, data_dir: &Path, obs: &dyn Observer) -> Result<PathBuf> {
    fs::create_dir_all(data_dir).with_context(|| {
        format!("cannot create data directory {}: check the path and permissions", data_dir.display())
    })?;
    let path = data_dir.join(info.file_name);
    let _lock = Lock::wait_exclusive(&data_dir.join(format!(".{}.lock", info.file_name)), || {
        obs.event(Event::Info(format!(
            "waiting for another actsearch process to finish downloading {}",
            path.display()
        )))
    })?;
    remove_leftovers(data_dir, info, obs);
    if path.is_file() {
        match verify_archive(&path, info.size, info.md5) {
            Ok(()) => {
                obs.event(Event::Info(format!("{} is already present and valid", path.display())));
                return Ok(path);
            }
            Err(e) => obs.event(Event::Info(format!("{e}; downloading it again"))),
        }
    }
    let part = temporary_path(&path);
    let downloaded = download(info, &part, obs).and_then(|()| check_download(info, &part, data_dir));
    if let Err(e) = downloaded {
        let _ = fs::remove_file(&part);
        return Err(e);
    }
    fs::rename(&part, &path).with_context(|| format!("cannot rename {} to {}", part.display(), path.display()))?;
    obs.event(Event::Info(format!("downloaded {}", path.display())));
    Ok(path)
}

/// Removes partial downloads of killed runs: temporaries of dead processes, and the `.part`
/// file older versions used (no one else is downloading it: we hold the lock).
fn remove_leftovers(data_dir: &Path, info: &ArchiveInfo, obs: &dyn Observer) {
    let mut removed = remove_stale_temporaries(data_dir);
    let old_part = data_dir.join(format!("{}.part", info.file_name));
    if fs::remove_file(&old_part).is_ok() {
        removed.push(old_part);
    }
    for left in removed {
        obs.event(Event::Info(format!("removed {}, left by an interrupted run", left.display())));
    }
}

/// Checks the size and MD5 of a finished download.
fn check_download(info: &ArchiveInfo, part: &Path, data_dir: &Path) -> Result<()> {
    let problem = mismatch(part, info.size, info.md5)
        .with_context(|| format!("cannot read the downloaded {}", part.display()))?;
    match problem {
        None => Ok(()),
        Some(problem) => bail!(
            "the download of {} {problem} (corrupt download, deleted); run `actsearch data fetch \
             {} --data-dir {}` again",
            info.url,
            info.fetch_arg,
            data_dir.display()
        ),
    }
}

/// Streams `info.url` into `part`, reporting bytes as progress.
fn download(info: &ArchiveInfo, part: &Path, obs: &dyn Observer) -> Result<()> {
    let manual = format!(
        "check the network connection, or download {} by hand into {}",
        info.url,
        part.parent().unwrap_or(Path::new(".")).display()
    );
    // A connection that never answers must not hang a run forever.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .timeout_recv_response(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let response =
        agent.get(info.url).call().map_err(|e| anyhow::anyhow!("cannot download {}: {e}; {manual}", info.url))?;
    let total = response.body().content_length().unwrap_or(info.size);
    let mut body = response.into_body().into_reader();
    let file = File::create(part).with_context(|| format!("cannot create {}: check permissions", part.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    obs.event(Event::TaskStart { id: "download", label: format!("downloading {}", info.file_name), total });
    let copied = copy_with_progress(&mut body, &mut out, obs);
    obs.event(Event::TaskEnd { id: "download" });
    let copied = copied.map_err(|e| anyhow::anyhow!("download of {} was interrupted ({e}); {manual}", info.url))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}: check free disk space", part.display()))?;
    if copied == 0 {
        bail!("download of {} returned no data; {manual}", info.url);
    }
    Ok(())
}

fn copy_with_progress(from: &mut impl Read, to: &mut impl Write, obs: &dyn Observer) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut copied = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(copied);
        }
        to.write_all(&buf[..n])?;
        copied += n as u64;
        obs.event(Event::TaskAdvance { id: "download", n: n as u64 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_observer::Recorder;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// Serves `body` to each of `requests` HTTP requests on a local port; returns the URL.
    fn serve(body: Vec<u8>, requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    line.clear();
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
        });
        format!("http://{addr}/archive.tar.gz")
    }

    fn info(url: &str, size: u64, md5: &str) -> ArchiveInfo {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        ArchiveInfo {
            file_name: "cifar-10-binary.tar.gz",
            url: leak(url.into()),
            size,
            md5: leak(md5.into()),
            fetch_arg: "cifar10",
        }
    }

    /// A small body served once: (the body, its address, its MD5).
    fn served_body() -> (Vec<u8>, String, String) {
        let body = b"pretend archive bytes".to_vec();
        let url = serve(body.clone(), 1);
        let md5 = format!("{:x}", <md5::Md5 as md5::Digest>::digest(&body));
        (body, url, md5)
    }

    #[test]
    fn downloads_verifies_and_keeps_a_valid_archive() {
        let (body, url, md5) = served_body();
        let tmp = tempfile::tempdir().unwrap();
        let rec = Recorder::default();
        let a = info(&url, body.len() as u64, &md5);
        let path = fetch_archive(&a, &tmp.path().join("data"), &rec).unwrap();
        assert_eq!(fs::read(&path).unwrap(), body);
        assert_eq!(rec.advanced("download"), body.len() as u64);
        assert_eq!(entries(&tmp.path().join("data")), vec![".cifar-10-binary.tar.gz.lock", "cifar-10-binary.tar.gz"]);
        // The server is gone now (it served one request): a second fetch must not download.
        let rec = Recorder::default();
        fetch_archive(&a, &tmp.path().join("data"), &rec).unwrap();
        assert!(rec.infos()[0].contains("already present"), "{:?}", rec.infos());
    }

    #[test]
    fn checksum_mismatch_is_an_error_and_leaves_nothing() {
        let body = b"tampered bytes".to_vec();
        let url = serve(body.clone(), 1);
        let tmp = tempfile::tempdir().unwrap();
        let a = info(&url, body.len() as u64, "00000000000000000000000000000000");
        let err = fetch_archive(&a, tmp.path(), &Recorder::default()).unwrap_err().to_string();
        assert!(err.contains("00000000000000000000000000000000") && err.contains("has MD5"), "{err}");
        assert!(err.contains(&url) && err.contains("actsearch data fetch cifar10"), "{err}");
        assert_eq!(entries(tmp.path()), vec![".cifar-10-binary.tar.gz.lock"]);
    }

    /// The sorted names in `dir`.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn partial_downloads_of_killed_runs_are_removed() {
        let (body, url, md5) = served_body();
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir_all(&data).unwrap();
        // A pid far above pid_max is never alive; `.part` is the older naming.
        for name in [".cifar-10-binary.tar.gz.tmp4294967295", "cifar-10-binary.tar.gz.part"] {
            fs::write(data.join(name), b"half").unwrap();
        }
        let rec = Recorder::default();
        fetch_archive(&info(&url, body.len() as u64, &md5), &data, &rec).unwrap();
        assert_eq!(entries(&data), vec![".cifar-10-binary.tar.gz.lock", "cifar-10-binary.tar.gz"]);
        assert_eq!(rec.infos().iter().filter(|m| m.contains("left by an interrupted run")).count(), 2);
    }

    #[test]
    fn unreachable_server_is_a_clear_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x.tar.gz", listener.local_addr().unwrap());
        drop(listener);
        let tmp = tempfile::tempdir().unwrap();
        let err = fetch_archive(&info(&url, 10, "x"), tmp.path(), &Recorder::default()).unwrap_err().to_string();
        assert!(err.starts_with("cannot download") && err.contains("check the network"), "{err}");
    }
}
