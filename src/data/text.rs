//! Character text for the language models (`--network gpt-*`, `--dataset PATH.txt`), as
//! DESIGN.md and nanoGPT's `shakespeare_char` prepare it:
//!
//! - the vocabulary is the file's sorted distinct characters (Unicode scalar values, not bytes);
//! - the first 90% of the characters train and the last 10% validate;
//! - a training batch is `batch` random windows of `window + 1` characters (inputs, and the
//!   targets one character later), drawn by a generator seeded from the run's seed and the step
//!   ([`CharCorpus::train_batch`]), so a resumed run draws exactly the batches it would have;
//! - validation is every non-overlapping window of the validation text
//!   ([`CharCorpus::valid_windows`]), so the validation loss is deterministic.
//!
//! A file that is not UTF-8 text (a binary, an image), an empty one, or one whose training or
//! validation part is shorter than one window is refused with its path, what is wrong, and
//! what to do.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The share of the characters that trains (the rest validates).
pub const TRAIN_SHARE: f64 = 0.9;

/// A text file as token ids: its vocabulary and its two splits.
#[derive(Clone, Debug, PartialEq)]
pub struct CharCorpus {
    /// Where it came from, for messages.
    pub name: String,
    /// The sorted distinct characters; a character's id is its index here.
    pub vocab: Vec<char>,
    pub train: Vec<u32>,
    pub valid: Vec<u32>,
}

/// One batch of windows, each `len` ids long, row after row: `inputs[i]` predicts `targets[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TextBatch {
    pub rows: usize,
    pub len: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
}

/// The text file `--dataset` names for the language model `network`; an image dataset, a
/// folder or a missing file is refused with what `network` reads instead.
pub fn text_file(dataset: &str, network: &str) -> Result<PathBuf> {
    let wanted = "--dataset must be a UTF-8 text file, e.g. ../shared/data/tinyshakespeare/input.txt";
    if matches!(dataset.to_ascii_lowercase().replace(['-', '_'], "").as_str(), "cifar10" | "cifar100") {
        bail!("{network} is a character language model and {dataset} is an image dataset: {wanted}");
    }
    let path = PathBuf::from(dataset);
    if path.is_dir() {
        bail!("{network} is a character language model and {dataset} is a folder: {wanted}");
    }
    if !path.is_file() {
        bail!("the text file {dataset} does not exist: {wanted}");
    }
    if super::archive::is_archive(&path) {
        bail!(
            "{network} is a character language model and {dataset} is an archive (image datasets come as archives): {wanted}"
        );
    }
    Ok(path)
}

impl CharCorpus {
    /// The corpus of the text file `dataset` names, for windows of the context of the GPT
    /// `size` ([`text_file`] refuses data of another kind).
    pub fn open(dataset: &str, size: crate::model::GptSize) -> Result<CharCorpus> {
        CharCorpus::load(&text_file(dataset, size.name())?, size.shape().block)
    }

    /// Reads the UTF-8 text file at `path` for windows of `window` characters.
    pub fn load(path: &Path, window: usize) -> Result<CharCorpus> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read the text file {}", path.display()))?;
        let name = path.display().to_string();
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(e) => bail!(
                "{name} is not UTF-8 text (byte {} is not valid UTF-8): a language model reads a plain text file; give one, or an image dataset to an image network",
                e.valid_up_to()
            ),
        };
        CharCorpus::from_text(text, &name, window)
    }

    /// The corpus of `text` (named `name` in messages) for windows of `window` characters.
    pub fn from_text(text: &str, name: &str, window: usize) -> Result<CharCorpus> {
        if text.is_empty() {
            bail!("{name} is empty: a language model needs a text to learn from");
        }
        if let Some(at) = text.find(['\0']) {
            bail!(
                "{name} holds a NUL character (at byte {at}), so it is not a text file: give a plain text file, or an image dataset to an image network"
            );
        }
        let chars: Vec<char> = text.chars().collect();
        let mut vocab = chars.clone();
        vocab.sort_unstable();
        vocab.dedup();
        let id = |c: &char| vocab.binary_search(c).expect("every character is in the vocabulary") as u32;
        let ids: Vec<u32> = chars.iter().map(id).collect();
        // nanoGPT: train = data[:int(n * 0.9)].
        let cut = (ids.len() as f64 * TRAIN_SHARE) as usize;
        let (train, valid) = (ids[..cut].to_vec(), ids[cut..].to_vec());
        for (part, n) in [("training", train.len()), ("validation", valid.len())] {
            if n < window + 1 {
                bail!(
                    "{name} has {} characters, so its {part} part ({n} characters) is shorter than one window of {} (the network's block of {window} and the next character); give a longer text",
                    ids.len(),
                    window + 1
                );
            }
        }
        Ok(CharCorpus { name: name.to_string(), vocab, train, valid })
    }

    /// A one-shot search's two parts of the training text: the first `portion` of it trains the
    /// weights and the rest trains the mixing weights, each as the `train` of a corpus with
    /// this one's vocabulary and validation text. A part shorter than one window of `window`
    /// characters is refused, with the fix.
    pub fn split_training(&self, portion: f64, window: usize) -> Result<(CharCorpus, CharCorpus)> {
        let cut = (self.train.len() as f64 * portion) as usize;
        let (weights, alphas) = self.train.split_at(cut.min(self.train.len()));
        for (part, n) in [("weights", weights.len()), ("mixing weights", alphas.len())] {
            if n < window + 1 {
                bail!(
                    "--train-portion {portion} leaves {n} training characters of {} for the {part}, fewer than one window of {}; move --train-portion towards 0.5, or give a longer text",
                    self.name,
                    window + 1
                );
            }
        }
        let part = |train: &[u32]| CharCorpus { train: train.to_vec(), ..self.clone() };
        Ok((part(weights), part(alphas)))
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The text of `ids` (an id outside the vocabulary becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.vocab.get(i as usize).copied().unwrap_or('\u{fffd}')).collect()
    }

    /// The ids of `text`; an error names the first character the vocabulary lacks.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|c| match self.vocab.binary_search(&c) {
                Ok(i) => Ok(i as u32),
                Err(_) => bail!("the character {c:?} is not in the vocabulary of {}", self.name),
            })
            .collect()
    }

    /// The training batch of step `step`: `rows` windows of `len` characters at uniformly
    /// drawn starts, from a generator seeded by `seed` on its own stream per step.
    pub fn train_batch(&self, rows: usize, len: usize, seed: u64, step: usize) -> TextBatch {
        windows(&self.train, &self.train_starts(rows, len, seed, step), len)
    }

    /// Where the windows of [`CharCorpus::train_batch`] start in the training ids.
    pub fn train_starts(&self, rows: usize, len: usize, seed: u64, step: usize) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(step as u64);
        (0..rows).map(|_| rng.random_range(0..self.train.len() - len)).collect()
    }

    /// Every non-overlapping window of `len` characters of the validation text (the last
    /// window ends where a whole one still fits with its next character), in batches of at
    /// most `rows` windows.
    pub fn valid_windows(&self, rows: usize, len: usize) -> Vec<TextBatch> {
        let count = (self.valid.len() - 1) / len;
        let starts: Vec<usize> = (0..count).map(|w| w * len).collect();
        starts.chunks(rows.max(1)).map(|chunk| windows(&self.valid, chunk, len)).collect()
    }
}

/// The windows of `tokens` at `starts`, `len` long, with their targets one id later.
fn windows(tokens: &[u32], starts: &[usize], len: usize) -> TextBatch {
    let mut inputs = Vec::with_capacity(starts.len() * len);
    let mut targets = Vec::with_capacity(starts.len() * len);
    for &s in starts {
        inputs.extend_from_slice(&tokens[s..s + len]);
        targets.extend_from_slice(&tokens[s + 1..s + len + 1]);
    }
    TextBatch { rows: starts.len(), len, inputs, targets }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_is_the_sorted_characters_and_the_split_is_by_characters() {
        let text = "héllo wörld, 日本 héllo wörld, 日本 héllo wörld!";
        let c = CharCorpus::from_text(text, "t.txt", 3).unwrap();
        let mut want: Vec<char> = text.chars().collect();
        want.sort();
        want.dedup();
        assert_eq!(c.vocab, want);
        let n = text.chars().count();
        assert_eq!(c.train.len(), (n as f64 * 0.9) as usize);
        assert_eq!(c.train.len() + c.valid.len(), n);
        let all: Vec<u32> = c.train.iter().chain(&c.valid).copied().collect();
        assert_eq!(c.decode(&all), text);
        assert_eq!(c.encode("日本").unwrap(), all[13..15].to_vec());
        assert!(c.encode("x").unwrap_err().to_string().contains("'x' is not in the vocabulary of t.txt"));
    }

    /// nanoGPT's `shakespeare_char/prepare.py` prints: vocab size 65, train has 1,003,854
    /// tokens, val has 111,540 tokens.
    #[test]
    fn tiny_shakespeare_splits_as_nanogpt_does() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tinyshakespeare/input.txt");
        let c = CharCorpus::load(&path, 64).unwrap();
        assert_eq!((c.vocab_size(), c.train.len(), c.valid.len()), (65, 1_003_854, 111_540));
        assert_eq!(c.vocab[0], '\n');
        assert_eq!(c.decode(&c.train[..14]), "First Citizen:");
    }

    #[test]
    fn batches_are_seeded_windows_and_their_targets_follow_them() {
        let text: String = (0..5000).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
        let c = CharCorpus::from_text(&text, "t.txt", 16).unwrap();
        let b = c.train_batch(12, 16, 3, 41);
        assert_eq!((b.rows, b.len, b.inputs.len(), b.targets.len()), (12, 16, 192, 192));
        for r in 0..12 {
            let (x, y) = (&b.inputs[r * 16..(r + 1) * 16], &b.targets[r * 16..(r + 1) * 16]);
            assert_eq!(&x[1..], &y[..15], "row {r}: the targets are the inputs one later");
        }
        assert_eq!(b, c.train_batch(12, 16, 3, 41), "the same seed and step, the same batch");
        assert_ne!(b, c.train_batch(12, 16, 3, 42));
        assert_ne!(b, c.train_batch(12, 16, 4, 41));
        // Every non-overlapping validation window, once, in order.
        let v = c.valid_windows(5, 16);
        let count = (c.valid.len() - 1) / 16;
        assert_eq!(v.iter().map(|b| b.rows).sum::<usize>(), count);
        assert!(v.iter().all(|b| b.rows <= 5));
        let inputs: Vec<u32> = v.iter().flat_map(|b| b.inputs.clone()).collect();
        assert_eq!(inputs, c.valid[..count * 16].to_vec());
        assert_eq!(v.last().unwrap().targets.last(), Some(&c.valid[count * 16]));
    }

    #[test]
    fn what_is_not_a_text_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = |bytes: &[u8], window: usize| {
            let path = dir.path().join("x.txt");
            std::fs::write(&path, bytes).unwrap();
            CharCorpus::load(&path, window).unwrap_err().to_string()
        };
        let png = err(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13], 4);
        assert!(png.contains("x.txt is not UTF-8 text (byte 0"), "{png}");
        assert!(err(b"abc\0def", 2).contains("holds a NUL character (at byte 3)"));
        assert!(err(b"", 2).contains("x.txt is empty"));
        let short = err("ab".repeat(30).as_bytes(), 64);
        assert!(
            short.contains("has 60 characters, so its training part (54 characters) is shorter than one window of 65"),
            "{short}"
        );
        let valid = err("ab".repeat(200).as_bytes(), 64);
        assert!(valid.contains("its validation part (40 characters)"), "{valid}");
        let missing = CharCorpus::load(&dir.path().join("nothing.txt"), 4).unwrap_err();
        assert!(format!("{missing:#}").contains("cannot read the text file"), "{missing:#}");
    }
}
