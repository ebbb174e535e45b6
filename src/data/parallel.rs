//! Parallel text for the translation task (`--network transformer-*`, `--dataset FOLDER`), as
//! DESIGN.md gives it: a folder of line-aligned files `train.L`, `val.L` and `test_*.L` (each
//! plain or `.gz`) for a source and a target language `L`. `../shared/data/multi30k` is
//! Multi30k task 1 (English and German).
//!
//! - The languages are those with a training file; en→de is the default when both exist,
//!   otherwise `--source` and `--target` name them.
//! - The test split is the first `test_*` in name order, or `--test-set NAME`.
//! - Both sides of a split must have the same number of lines. A pair with an empty side is
//!   skipped, and counted ([`Skipped`]).
//!
//! Every problem is one error naming the file or the flag, what is wrong and what to do: a
//! missing folder or split, an unknown language, mismatched line counts, text that is not
//! UTF-8.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The default direction where the folder has both languages.
pub const DEFAULT_SOURCE: &str = "en";
pub const DEFAULT_TARGET: &str = "de";

/// The sentences of one split, line-aligned: `source[i]` translates to `target[i]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pairs {
    pub source: Vec<String>,
    pub target: Vec<String>,
}

impl Pairs {
    pub fn len(&self) -> usize {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }
}

/// Pairs left out of each split because one side was empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub train: usize,
    pub valid: usize,
    pub test: usize,
}

/// A translation folder read for one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct ParallelCorpus {
    /// The folder, for messages.
    pub name: String,
    pub source: String,
    pub target: String,
    pub train: Pairs,
    pub valid: Pairs,
    pub test: Pairs,
    /// The test split's name (`test_2016_flickr`).
    pub test_name: String,
    pub skipped: Skipped,
}

/// The direction and test split a run asks for (`--source`, `--target`, `--test-set`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Choice<'a> {
    pub source: Option<&'a str>,
    pub target: Option<&'a str>,
    pub test_set: Option<&'a str>,
}

/// One file of the folder: its split (`train`, `val`, `test_...`), language and path.
#[derive(Clone, Debug)]
struct Part {
    split: String,
    lang: String,
    path: PathBuf,
}

const LAYOUT: &str = "a translation folder holds line-aligned train.L, val.L and test_*.L files (plain or .gz) for both languages, e.g. ../shared/data/multi30k";

/// The folder `dataset` names, for the translation model `network`; an image dataset, a file
/// or a missing folder is refused with what `network` reads instead.
pub fn parallel_folder(dataset: &str, network: &str) -> Result<PathBuf> {
    if matches!(dataset.to_ascii_lowercase().replace(['-', '_'], "").as_str(), "cifar10" | "cifar100") {
        bail!(
            "{network} is a translation model and {dataset} is an image dataset: --dataset must be a folder; {LAYOUT}"
        );
    }
    let path = PathBuf::from(dataset);
    if path.is_file() {
        bail!("{network} is a translation model and {dataset} is a file: --dataset must be a folder; {LAYOUT}");
    }
    if !path.is_dir() {
        bail!("the folder {dataset} does not exist: {LAYOUT}");
    }
    Ok(path)
}

impl ParallelCorpus {
    /// Reads the folder `dir` in the direction and with the test split of `choice`.
    pub fn open(dir: &Path, choice: &Choice) -> Result<ParallelCorpus> {
        let name = dir.display().to_string();
        let parts = parts(dir)?;
        let mut langs: Vec<&str> = parts.iter().filter(|p| p.split == "train").map(|p| p.lang.as_str()).collect();
        langs.sort_unstable();
        langs.dedup();
        if langs.len() < 2 {
            bail!("{name} has training files for {} language(s) ({}): {LAYOUT}", langs.len(), langs.join(", "));
        }
        let (source, target) = direction(&name, &langs, choice)?;
        let file = |split: &str, lang: &str| -> Result<PathBuf> {
            match parts.iter().find(|p| p.split == split && p.lang == lang) {
                Some(p) => Ok(p.path.clone()),
                None => bail!("{name} has no {split}.{lang} (or {split}.{lang}.gz) for {source}→{target}: {LAYOUT}"),
            }
        };
        let test_name = test_split(&name, &parts, &source, &target, choice.test_set)?;
        let mut skipped = Skipped::default();
        let read = |split: &str, count: &mut usize| -> Result<Pairs> {
            read_pairs(&file(split, &source)?, &file(split, &target)?, count)
        };
        let train = read("train", &mut skipped.train)?;
        let valid = read("val", &mut skipped.valid)?;
        let test = read(&test_name, &mut skipped.test)?;
        for (split, pairs) in [("train", &train), ("val", &valid), (test_name.as_str(), &test)] {
            if pairs.is_empty() {
                bail!("{name}: {split}.{source} and {split}.{target} hold no pair with text on both sides; {LAYOUT}");
            }
        }
        Ok(ParallelCorpus { name, source, target, train, valid, test, test_name, skipped })
    }
}

/// Every `SPLIT.LANG[.gz]` file of `dir` whose split is train, val or test_*.
fn parts(dir: &Path) -> Result<Vec<Part>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read the folder {}", dir.display()))?;
    let mut parts = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let stem = file.strip_suffix(".gz").unwrap_or(file);
        let Some((split, lang)) = stem.split_once('.') else { continue };
        let known = split == "train" || split == "val" || split.starts_with("test_");
        if known && !lang.is_empty() && !lang.contains('.') && path.is_file() {
            parts.push(Part { split: split.to_string(), lang: lang.to_string(), path });
        }
    }
    parts.sort_by(|a, b| (&a.split, &a.lang, &a.path).cmp(&(&b.split, &b.lang, &b.path)));
    Ok(parts)
}

/// The source and target languages `choice` asks for among `langs`.
fn direction(name: &str, langs: &[&str], choice: &Choice) -> Result<(String, String)> {
    let known = |flag: &str, lang: &str| -> Result<String> {
        match langs.contains(&lang) {
            true => Ok(lang.to_string()),
            false => bail!("{flag} {lang}: {name} has training files for {} only", langs.join(", ")),
        }
    };
    let other = |lang: &str| langs.iter().find(|l| **l != lang).map(|l| l.to_string());
    let (source, target) = match (choice.source, choice.target) {
        (Some(s), Some(t)) => (known("--source", s)?, known("--target", t)?),
        (Some(s), None) if langs.len() == 2 => (known("--source", s)?, other(s).unwrap_or_default()),
        (None, Some(t)) if langs.len() == 2 => (other(t).unwrap_or_default(), known("--target", t)?),
        (None, None) if langs.contains(&DEFAULT_SOURCE) && langs.contains(&DEFAULT_TARGET) => {
            (DEFAULT_SOURCE.to_string(), DEFAULT_TARGET.to_string())
        }
        _ => bail!("{name} has training files for {}: name the direction with --source and --target", langs.join(", ")),
    };
    if source == target {
        bail!("--source and --target are both {source}: translate between two languages of {}", langs.join(", "));
    }
    Ok((source, target))
}

/// The test split: `--test-set NAME` (with or without its `test_` prefix), or the first
/// `test_*` with both languages, in name order.
fn test_split(name: &str, parts: &[Part], source: &str, target: &str, asked: Option<&str>) -> Result<String> {
    let mut both: Vec<&str> = parts
        .iter()
        .filter(|p| p.split.starts_with("test_") && p.lang == source)
        .filter(|p| parts.iter().any(|q| q.split == p.split && q.lang == target))
        .map(|p| p.split.as_str())
        .collect();
    both.dedup();
    match asked {
        Some(asked) => {
            let wanted = match asked.starts_with("test_") {
                true => asked.to_string(),
                false => format!("test_{asked}"),
            };
            match both.contains(&wanted.as_str()) {
                true => Ok(wanted),
                false if both.is_empty() => {
                    bail!("--test-set {asked}: {name} has no test_*.{source} with its test_*.{target}; {LAYOUT}")
                }
                false => bail!(
                    "--test-set {asked}: {name} has no {wanted}.{source} and {wanted}.{target}; its test sets are {}",
                    both.join(", ")
                ),
            }
        }
        None => match both.first() {
            Some(first) => Ok(first.to_string()),
            None => bail!("{name} has no test split: no test_*.{source} with its test_*.{target}; {LAYOUT}"),
        },
    }
}

/// The lines of a plain or gzipped UTF-8 file, without their line ends.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let read = match gz {
        true => flate2::read::GzDecoder::new(file).read_to_end(&mut bytes),
        false => std::io::BufReader::new(file).read_to_end(&mut bytes),
    };
    read.with_context(|| match gz {
        true => format!("cannot read {}: it is not a complete gzip file; replace it", path.display()),
        false => format!("cannot read {}", path.display()),
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => bail!(
            "{} is not UTF-8 text (byte {} is not valid UTF-8): a translation folder holds plain text, one sentence per line",
            path.display(),
            e.utf8_error().valid_up_to()
        ),
    };
    Ok(text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
}

/// The pairs of two line-aligned files; pairs with an empty side are left out and counted.
fn read_pairs(source: &Path, target: &Path, skipped: &mut usize) -> Result<Pairs> {
    let (s, t) = (read_lines(source)?, read_lines(target)?);
    if s.len() != t.len() {
        bail!(
            "{} has {} lines and {} has {}: the two sides of a split must be parallel, one sentence per line",
            source.display(),
            s.len(),
            target.display(),
            t.len()
        );
    }
    let mut pairs = Pairs::default();
    for (a, b) in s.into_iter().zip(t) {
        if a.trim().is_empty() || b.trim().is_empty() {
            *skipped += 1;
            continue;
        }
        pairs.source.push(a);
        pairs.target.push(b);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(dir: &Path, name: &str, lines: &[&str]) {
        let text = lines.join("\n") + "\n";
        if name.ends_with(".gz") {
            let file = std::fs::File::create(dir.join(name)).unwrap();
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            gz.write_all(text.as_bytes()).unwrap();
            gz.finish().unwrap();
        } else {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    /// A folder with en and de (train gzipped, val plain), two test sets and one empty line.
    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "train.en.gz", &["A dog runs.", "", "Two men talk."]);
        write(d, "train.de.gz", &["Ein Hund rennt.", "Leer", "Zwei Männer reden."]);
        write(d, "val.en", &["A cat."]);
        write(d, "val.de", &["Eine Katze."]);
        write(d, "test_b.en", &["B"]);
        write(d, "test_b.de", &["B"]);
        write(d, "test_a.en", &["A"]);
        write(d, "test_a.de", &["A"]);
        dir
    }

    #[test]
    fn a_folder_reads_en_to_de_with_its_first_test_set_and_counts_empty_pairs() {
        let dir = folder();
        let c = ParallelCorpus::open(dir.path(), &Choice::default()).unwrap();
        assert_eq!((c.source.as_str(), c.target.as_str(), c.test_name.as_str()), ("en", "de", "test_a"));
        assert_eq!(c.train.source, vec!["A dog runs.", "Two men talk."]);
        assert_eq!(c.train.target, vec!["Ein Hund rennt.", "Zwei Männer reden."]);
        assert_eq!(c.skipped, Skipped { train: 1, valid: 0, test: 0 });
        let back = ParallelCorpus::open(dir.path(), &Choice { source: Some("de"), target: None, test_set: Some("b") })
            .unwrap();
        assert_eq!((back.source.as_str(), back.target.as_str(), back.test_name.as_str()), ("de", "en", "test_b"));
        assert_eq!(back.valid.source, vec!["Eine Katze."]);
    }

    #[test]
    fn bad_folders_and_flags_are_one_clear_error() {
        let dir = folder();
        let err = |choice: Choice| format!("{:#}", ParallelCorpus::open(dir.path(), &choice).unwrap_err());
        assert!(err(Choice { source: Some("fr"), ..Default::default() }).contains("--source fr"));
        assert!(err(Choice { source: Some("en"), target: Some("en"), ..Default::default() }).contains("both en"));
        assert!(err(Choice { test_set: Some("c"), ..Default::default() }).contains("test_a, test_b"));
        write(dir.path(), "val.de", &["Eine Katze.", "Noch eine."]);
        let e = err(Choice::default());
        assert!(e.contains("val.en has 1 lines") && e.contains("must be parallel"), "{e}");
        std::fs::remove_file(dir.path().join("val.de")).unwrap();
        assert!(err(Choice::default()).contains("has no val.de"));
        std::fs::write(dir.path().join("val.de"), [0xff, 0xfe, b'\n']).unwrap();
        assert!(err(Choice::default()).contains("is not UTF-8"));
        let e = format!("{:#}", parallel_folder("cifar10", "transformer-micro").unwrap_err());
        assert!(e.contains("is an image dataset"), "{e}");
        let e = format!("{:#}", parallel_folder("missing-folder", "transformer-micro").unwrap_err());
        assert!(e.contains("does not exist"), "{e}");
    }
}
