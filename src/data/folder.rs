//! Image folders: `PATH/train/<class>/*.{png,jpg,jpeg}` and `PATH/test/<class>/*`, decoded in
//! parallel to 32×32 RGB (resized with a triangle filter when needed) and cached decoded, so
//! that a folder of 60,000 JPEGs is decoded only once, even by runs started together.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, bail};
use md5::{Digest, Md5};
use rayon::prelude::*;

use super::folder_cache;
use super::image_set::{IMAGE_BYTES, IMAGE_SIDE, ImageSet};
use crate::files::{Lock, remove_stale_temporaries};
use crate::observer::{Event, Observer};

/// Images decoded per progress step.
const CHUNK: usize = 256;

/// Loads the (train, test) sets of the image folder at `path`, using (and refreshing) the
/// decoded cache in `cache_dir`. Class labels follow the sorted class folder names.
///
/// Concurrent runs on the same folder: the one that misses the cache takes the OS lock
/// `<cache_dir>/.folder-<root hash>.lock` while decoding and writing; the others wait for it
/// and then read its cache instead of decoding too.
pub fn load_folder(path: &Path, cache_dir: &Path, obs: &dyn Observer) -> Result<(ImageSet, ImageSet)> {
    let listing = Listing::scan(path)?;
    let cache_path = cache_dir.join(format!("folder-{}.bin", listing.cache_key()));
    for left in remove_stale_temporaries(cache_dir) {
        obs.event(Event::Info(format!("removed {}, left by an interrupted cache write", left.display())));
    }
    if let Some(sets) = from_cache(&listing, &cache_path, cache_dir, obs, true) {
        return Ok(sets);
    }
    let lock = match Lock::wait_exclusive(&listing.lock_path(cache_dir), || {
        obs.event(Event::Info(format!(
            "waiting for another actsearch process that is decoding {}",
            listing.root.display()
        )))
    }) {
        Ok(lock) => Some(lock),
        Err(e) => {
            obs.event(Event::Info(format!(
                "cannot use the decoded-image cache directory {} ({e:#}); decoding without a cache",
                cache_dir.display()
            )));
            None
        }
    };
    // The process we waited for has written the cache.
    if lock.is_some()
        && let Some(sets) = from_cache(&listing, &cache_path, cache_dir, obs, false)
    {
        return Ok(sets);
    }
    let sets = listing.decode(obs)?;
    if lock.is_some() {
        save_cache(&cache_path, cache_dir, &listing, &sets, obs);
    }
    Ok(sets)
}

/// The cached sets of `listing`, or `None` (after saying why, when `explain`) when they must be
/// decoded.
fn from_cache(
    listing: &Listing,
    cache_path: &Path,
    cache_dir: &Path,
    obs: &dyn Observer,
    explain: bool,
) -> Option<(ImageSet, ImageSet)> {
    let root = listing.root_text();
    match folder_cache::read(cache_path, &root, &listing.classes, listing.train.len(), listing.test.len()) {
        Ok(Some(sets)) => {
            obs.event(Event::Info(format!(
                "loaded {} decoded images of {} from cache {}",
                listing.train.len() + listing.test.len(),
                listing.root.display(),
                cache_path.display()
            )));
            return Some(sets);
        }
        Ok(None) if explain && !folder_cache::stale(cache_dir, &root, cache_path).is_empty() => obs.event(Event::Info(
            format!("image folder {} changed since it was cached; decoding it again", listing.root.display()),
        )),
        Ok(None) => {}
        Err(problem) if explain => obs.event(Event::Info(format!(
            "ignoring decoded-image cache {} ({problem}); decoding {} again",
            cache_path.display(),
            listing.root.display()
        ))),
        Err(_) => {}
    }
    None
}

/// Writes the cache and removes stale ones of the same folder; failures are only reported.
fn save_cache(cache_path: &Path, cache_dir: &Path, listing: &Listing, sets: &(ImageSet, ImageSet), obs: &dyn Observer) {
    match folder_cache::write(cache_path, &listing.root_text(), &sets.0, &sets.1) {
        Ok(()) => obs.event(Event::Info(format!("cached decoded images in {}", cache_path.display()))),
        Err(e) => {
            obs.event(Event::Info(format!("could not write decoded-image cache ({e:#}); continuing without it")));
            return;
        }
    }
    for old in folder_cache::stale(cache_dir, &listing.root_text(), cache_path) {
        if fs::remove_file(&old).is_ok() {
            obs.event(Event::Info(format!("removed stale cache {}", old.display())));
        }
    }
}

/// One image file of the folder.
struct FileEntry {
    path: PathBuf,
    /// Path relative to the folder root, e.g. `train/cat/0001.jpg`.
    rel: String,
    label: u32,
    size: u64,
    mtime_ns: u128,
}

/// Everything found in an image folder, in a deterministic order (class, then file name).
struct Listing {
    root: PathBuf,
    classes: Vec<String>,
    train: Vec<FileEntry>,
    test: Vec<FileEntry>,
}

impl Listing {
    fn scan(path: &Path) -> Result<Listing> {
        let root = fs::canonicalize(path).with_context(|| {
            format!(
                "image folder {} does not exist; pass --dataset cifar10, cifar100 or a folder with \
                 train/<class>/ and test/<class>/ images",
                path.display()
            )
        })?;
        let train_dir = split_dir(path, &root, "train")?;
        let test_dir = split_dir(path, &root, "test")?;
        let classes = class_names(&train_dir)?;
        if classes.is_empty() {
            bail!(
                "image folder {} has no class folders in train/; expected {}/train/<class>/*.png|jpg",
                path.display(),
                path.display()
            );
        }
        let test_classes = class_names(&test_dir)?;
        if test_classes != classes {
            let missing: Vec<&String> = classes.iter().filter(|c| !test_classes.contains(c)).collect();
            let extra: Vec<&String> = test_classes.iter().filter(|c| !classes.contains(c)).collect();
            bail!(
                "image folder {}: test/ and train/ must hold the same class folders, but test/ \
                 lacks {missing:?} and has extra {extra:?}; add or remove class folders to match",
                path.display()
            );
        }
        let train = list_files(&root, "train", &classes)?;
        let test = list_files(&root, "test", &classes)?;
        Ok(Listing { root, classes, train, test })
    }

    fn root_text(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    /// The lock of this folder's cache: one per folder (not per cache key), so that lock files
    /// do not pile up as the folder changes.
    fn lock_path(&self, cache_dir: &Path) -> PathBuf {
        let hash = format!("{:x}", Md5::digest(self.root_text().as_bytes()));
        cache_dir.join(format!(".folder-{}.lock", &hash[..16]))
    }

    /// An MD5 over the folder's canonical path and every file's relative path, size and mtime.
    fn cache_key(&self) -> String {
        let mut hasher = Md5::new();
        hasher.update(format!("actsearch folder cache v{}\n", folder_cache::VERSION));
        hasher.update(self.root_text());
        hasher.update(b"\n");
        for e in self.train.iter().chain(&self.test) {
            hasher.update(format!("{}\t{}\t{}\n", e.rel, e.size, e.mtime_ns));
        }
        format!("{:x}", hasher.finalize())
    }

    fn decode(&self, obs: &dyn Observer) -> Result<(ImageSet, ImageSet)> {
        let total = self.train.len() + self.test.len();
        obs.event(Event::TaskStart {
            id: "decode",
            label: format!("decoding {total} images in {}", self.root.display()),
            total: total as u64,
        });
        let sets = decode_set(&self.train, &self.classes, obs)
            .and_then(|train| Ok((train, decode_set(&self.test, &self.classes, obs)?)));
        obs.event(Event::TaskEnd { id: "decode" });
        sets
    }
}

/// `root/name`, which must be a directory.
fn split_dir(path: &Path, root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(name);
    if dir.is_dir() {
        return Ok(dir);
    }
    let hint = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("train").is_dir() && p.join("test").is_dir())
        .map(|p| format!(" (did you mean {}?)", p.display()))
        .unwrap_or_default();
    bail!(
        "image folder {} has no {name}/ directory; expected {}/train/<class>/*.png|jpg and \
         {}/test/<class>/*.png|jpg{hint}",
        path.display(),
        path.display(),
        path.display()
    )
}

/// Sorted names of the (non-hidden) subdirectories of `dir`.
fn class_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}: check permissions", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}: check permissions", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// True for file names ending in .png, .jpg or .jpeg (any case).
fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg"].iter().any(|ext| lower.ends_with(ext))
}

/// The image files of every class under `root/split/`, sorted by class then file name.
fn list_files(root: &Path, split: &str, classes: &[String]) -> Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(split).join(class);
        let unreadable = |e: std::io::Error| anyhow::anyhow!("cannot list {}: {e}; check permissions", dir.display());
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(unreadable)? {
            let name = entry.map_err(unreadable)?.file_name().to_string_lossy().into_owned();
            if is_image_name(&name) && dir.join(&name).is_file() {
                names.push(name);
            }
        }
        if names.is_empty() {
            bail!(
                "image folder {}: class folder {split}/{class} holds no .png or .jpg images; add \
                 images or remove the folder",
                root.display()
            );
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let meta = fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let mtime_ns =
                meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            files.push(FileEntry {
                rel: format!("{split}/{class}/{name}"),
                path,
                label: label as u32,
                size: meta.len(),
                mtime_ns,
            });
        }
    }
    Ok(files)
}

/// Decodes `files` in parallel into one set, reporting progress per chunk.
fn decode_set(files: &[FileEntry], classes: &[String], obs: &dyn Observer) -> Result<ImageSet> {
    let mut images = vec![0u8; files.len() * IMAGE_BYTES];
    images.par_chunks_mut(CHUNK * IMAGE_BYTES).zip(files.par_chunks(CHUNK)).try_for_each(|(out, chunk)| {
        for (entry, slot) in chunk.iter().zip(out.chunks_exact_mut(IMAGE_BYTES)) {
            decode_file(&entry.path, slot)?;
        }
        obs.event(Event::TaskAdvance { id: "decode", n: chunk.len() as u64 });
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(ImageSet { images, labels: files.iter().map(|e| e.label).collect(), classes: classes.to_vec() })
}

/// Decodes one PNG/JPEG into `out` as 32×32 CHW RGB.
fn decode_file(path: &Path, out: &mut [u8]) -> Result<()> {
    let bytes = fs::read(path).with_context(|| format!("cannot read image file {}", path.display()))?;
    let decoded = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(anyhow::Error::from)
        .and_then(|r| Ok(r.decode()?))
        .map_err(|e| anyhow::anyhow!("image file {} cannot be decoded ({e}); delete or replace it", path.display()))?;
    let mut rgb = decoded.to_rgb8();
    let side = IMAGE_SIDE as u32;
    if rgb.dimensions() != (side, side) {
        rgb = image::imageops::resize(&rgb, side, side, image::imageops::FilterType::Triangle);
    }
    let plane = IMAGE_SIDE * IMAGE_SIDE;
    for (p, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + p] = px.0[c];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::image_set::hwc_from_chw;
    use crate::data::synthetic::{synthetic_image, write_synthetic_folder};
    use crate::data::test_observer::Recorder;
    use crate::observer::Silent;

    fn infos(rec: &Recorder) -> Vec<String> {
        rec.infos()
    }

    /// A folder with PNGs, one JPEG, one 40×24 RGBA PNG, one grayscale PNG and a stray file.
    fn mixed_folder(dir: &Path) {
        write_synthetic_folder(dir, &["zebra", "ant", "moth"], 3, 2).unwrap();
        let jpeg = hwc_from_chw(&synthetic_image(1, 3, 77));
        image::save_buffer(dir.join("train/ant/x.JPG"), &jpeg, 32, 32, image::ExtendedColorType::Rgb8).unwrap();
        let big = image::RgbaImage::from_pixel(40, 24, image::Rgba([200, 100, 50, 255]));
        big.save(dir.join("train/moth/big.png")).unwrap();
        let gray = image::GrayImage::from_pixel(32, 32, image::Luma([77]));
        gray.save(dir.join("test/zebra/gray.png")).unwrap();
        fs::write(dir.join("train/ant/notes.txt"), b"ignored").unwrap();
    }

    #[test]
    fn mixed_folder_loads_with_sorted_classes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("imgs");
        mixed_folder(&dir);
        let (train, test) = load_folder(&dir, &tmp.path().join("cache"), &Silent).unwrap();
        assert_eq!(train.classes, vec!["ant", "moth", "zebra"]);
        assert_eq!(train.len(), 3 * 3 + 2);
        assert_eq!(test.len(), 3 * 2 + 1);
        // ant: 0000..0002.png then x.JPG; moth: 0000..0002.png then big.png; zebra: 3 pngs.
        assert_eq!(train.labels, vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]);
        // PNGs are lossless: "ant" is index 1 in the writer's list.
        assert_eq!(train.image(0), &synthetic_image(1, 3, 10_000)[..]);
        assert_eq!(train.image(8), &synthetic_image(0, 3, 0)[..]);
        // The JPEG is close to its source.
        let src = synthetic_image(1, 3, 77);
        let err: f64 = train.image(3).iter().zip(&src).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum::<f64>()
            / IMAGE_BYTES as f64;
        assert!(err < 20.0, "mean JPEG error {err}");
        // The resized uniform image stays uniform; RGBA and gray become RGB.
        let big = train.image(7);
        assert!(big[..1024].iter().all(|&v| v == 200) && big[1024..2048].iter().all(|&v| v == 100));
        assert!(big[2048..].iter().all(|&v| v == 50));
        assert!(test.image(6).iter().all(|&v| v == 77));
    }

    #[test]
    fn second_load_hits_the_cache_and_corrupt_cache_is_rebuilt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("imgs");
        let cache = tmp.path().join("cache");
        mixed_folder(&dir);
        let rec = Recorder::default();
        let first = load_folder(&dir, &cache, &rec).unwrap();
        assert!(infos(&rec).iter().any(|m| m.starts_with("cached decoded images")), "{:?}", infos(&rec));
        assert_eq!(rec.advanced("decode"), 18);
        let files = cache_files(&cache);
        assert_eq!(files.len(), 1);
        assert!(files[0].file_name().unwrap().to_str().unwrap().starts_with("folder-"));

        let rec = Recorder::default();
        let second = load_folder(&dir, &cache, &rec).unwrap();
        assert_eq!(first, second);
        assert!(infos(&rec).iter().any(|m| m.contains("from cache")), "{:?}", infos(&rec));
        assert_eq!(rec.advanced("decode"), 0);

        // Corrupt: truncate the cache; it must be ignored (with a message) and rebuilt.
        let bytes = fs::read(&files[0]).unwrap();
        fs::write(&files[0], &bytes[..bytes.len() - 10]).unwrap();
        let rec = Recorder::default();
        let third = load_folder(&dir, &cache, &rec).unwrap();
        assert_eq!(first, third);
        assert!(infos(&rec).iter().any(|m| m.starts_with("ignoring decoded-image cache")), "{:?}", infos(&rec));
        assert_eq!(fs::read(&files[0]).unwrap(), bytes);

        // Garbage of the right length with a bad magic is also ignored.
        fs::write(&files[0], vec![7u8; bytes.len()]).unwrap();
        assert_eq!(first, load_folder(&dir, &cache, &Silent).unwrap());

        // A changed folder gets a new cache and the stale one is removed.
        fs::remove_file(dir.join("train/ant/x.JPG")).unwrap();
        let rec = Recorder::default();
        let fourth = load_folder(&dir, &cache, &rec).unwrap();
        assert_eq!(fourth.0.len(), first.0.len() - 1);
        assert!(infos(&rec).iter().any(|m| m.contains("changed since it was cached")), "{:?}", infos(&rec));
        assert_eq!(cache_files(&cache).len(), 1);
    }

    /// The cache files in `cache` (not its lock).
    fn cache_files(cache: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn flipped_bytes_in_images_or_labels_are_noticed_and_rebuilt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("imgs");
        let cache = tmp.path().join("cache");
        mixed_folder(&dir);
        let first = load_folder(&dir, &cache, &Silent).unwrap();
        let path = cache_files(&cache).remove(0);
        let good = fs::read(&path).unwrap();
        // The first label follows the header: magic, root, classes, counts.
        let root = fs::canonicalize(&dir).unwrap().to_string_lossy().len();
        let first_label = 16 + 8 + root + 4 + ["ant", "moth", "zebra"].iter().map(|c| 4 + c.len()).sum::<usize>() + 16;
        assert_eq!(good[first_label..first_label + 4], [0, 0, 0, 0]);
        for at in [first_label, good.len() / 2] {
            let mut bad = good.clone();
            bad[at] ^= 1; // label 0 -> 1 (still a valid class), or one pixel
            fs::write(&path, &bad).unwrap();
            let rec = Recorder::default();
            assert_eq!(load_folder(&dir, &cache, &rec).unwrap(), first);
            let notes: Vec<String> =
                infos(&rec).into_iter().filter(|m| m.contains("checksum does not match")).collect();
            assert_eq!(notes.len(), 1, "{:?}", infos(&rec));
            assert!(notes[0].starts_with("ignoring decoded-image cache") && !notes[0].contains('\n'));
            assert_eq!(fs::read(&path).unwrap(), good);
        }
    }

    #[test]
    fn leftovers_of_an_interrupted_cache_write_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("imgs");
        let cache = tmp.path().join("cache");
        write_synthetic_folder(&dir, &["a", "b"], 2, 1).unwrap();
        fs::create_dir_all(&cache).unwrap();
        // A pid far above pid_max is never alive: this and the older naming of the temporary.
        let dead = cache.join(".folder-0123.bin.tmp4294967295");
        let old_style = cache.join("folder-0123.bin.tmp4294967295");
        for p in [&dead, &old_style] {
            fs::write(p, b"half a cache").unwrap();
        }
        let rec = Recorder::default();
        load_folder(&dir, &cache, &rec).unwrap();
        assert!(!dead.exists() && !old_style.exists());
        assert_eq!(infos(&rec).iter().filter(|m| m.contains("interrupted cache write")).count(), 2);
        assert_eq!(cache_files(&cache).len(), 1);
    }

    #[test]
    fn runs_loading_at_once_decode_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("imgs");
        let cache = tmp.path().join("cache");
        mixed_folder(&dir);
        let barrier = std::sync::Barrier::new(2);
        let recs = [Recorder::default(), Recorder::default()];
        let sets: Vec<(ImageSet, ImageSet)> = std::thread::scope(|s| {
            let runs: Vec<_> = recs
                .iter()
                .map(|rec| {
                    s.spawn(|| {
                        barrier.wait();
                        load_folder(&dir, &cache, rec).unwrap()
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(sets[0], sets[1]);
        assert_eq!(recs[0].advanced("decode") + recs[1].advanced("decode"), 18);
        assert_eq!(cache_files(&cache).len(), 1);
    }

    #[test]
    fn a_cache_directory_that_is_a_file_only_costs_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("imgs");
        write_synthetic_folder(&dir, &["a", "b"], 2, 1).unwrap();
        let cache = tmp.path().join("cache");
        fs::write(&cache, b"not a directory").unwrap();
        let rec = Recorder::default();
        let (train, _) = load_folder(&dir, &cache, &rec).unwrap();
        assert_eq!(train.len(), 4);
        assert!(infos(&rec).iter().any(|m| m.contains("decoding without a cache")), "{:?}", infos(&rec));
        assert_eq!(fs::read(&cache).unwrap(), b"not a directory");
    }

    #[test]
    fn undecodable_image_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("imgs");
        write_synthetic_folder(&dir, &["a", "b"], 2, 1).unwrap();
        fs::write(dir.join("train/b/broken.png"), b"\x89PNG but not really").unwrap();
        let err = load_folder(&dir, &tmp.path().join("cache"), &Silent).unwrap_err().to_string();
        assert!(err.contains("broken.png") && err.contains("cannot be decoded"), "{err}");
    }

    #[test]
    fn layout_problems_explain_the_expected_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        let dir = tmp.path().join("outer/inner");
        write_synthetic_folder(&dir, &["a", "b"], 1, 1).unwrap();
        let err = load_folder(&tmp.path().join("outer"), &cache, &Silent).unwrap_err().to_string();
        assert!(err.contains("has no train/ directory") && err.contains("did you mean"), "{err}");

        fs::remove_dir_all(dir.join("test/b")).unwrap();
        let err = load_folder(&dir, &cache, &Silent).unwrap_err().to_string();
        assert!(err.contains("same class folders") && err.contains("\"b\""), "{err}");

        let empty = tmp.path().join("empty");
        fs::create_dir_all(empty.join("train")).unwrap();
        fs::create_dir_all(empty.join("test")).unwrap();
        let err = load_folder(&empty, &cache, &Silent).unwrap_err().to_string();
        assert!(err.contains("no class folders"), "{err}");

        let err = load_folder(&tmp.path().join("nope"), &cache, &Silent).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    /// The offline CIFAR-10 JPEG folders (`tar -xJf cifar10-images.tar.xz -C /tmp/cifar`), or
    /// the folder named by `ACTSEARCH_CIFAR_FOLDER`: decode, then load again from the cache.
    #[test]
    #[ignore = "needs the extracted CIFAR-10 image folders"]
    fn real_cifar10_folder_loads_and_caches() {
        let dir = std::env::var("ACTSEARCH_CIFAR_FOLDER").unwrap_or_else(|_| "/tmp/cifar/cifar10".into());
        let cache = tempfile::tempdir().unwrap();
        let rec = Recorder::default();
        let first = load_folder(Path::new(&dir), cache.path(), &rec).unwrap();
        assert_eq!(rec.advanced("decode"), 60_000);
        let second = load_folder(Path::new(&dir), cache.path(), &Silent).unwrap();
        assert_eq!((first.0.len(), first.1.len()), (50_000, 10_000));
        assert_eq!(first.0.classes[0], "airplane");
        assert_eq!(first.0.classes[9], "truck");
        assert!(first.0.labels[..5000].iter().all(|&l| l == 0));
        assert!(first == second);
        // The well-known CIFAR-10 training statistics (JPEG changes them only slightly).
        let norm = crate::data::Normalization::of(&first.0);
        for (got, want) in norm.mean.iter().chain(&norm.std).zip([0.4914, 0.4822, 0.4465, 0.2470, 0.2435, 0.2616]) {
            assert!((got - want).abs() < 0.01, "{norm:?}");
        }
    }
}
