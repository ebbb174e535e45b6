//! The translation task's joint BPE vocabulary (DESIGN.md): learned on both sides of the
//! training pairs with HuggingFace's `tokenizers`, with a Metaspace pre-tokenizer and decoder so
//! that decoding gives back the text. Ids 0 padding, 1 unknown, 2 begin, 3 end.
//!
//! Learning it takes seconds on Multi30k, so it is cached under the data dir by a hash of the
//! training text, the languages and the size, as the decoded images are: every run and seed on
//! the same data reads the same `tokenizer.json`, which the PyTorch twin loads too.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::metaspace::Metaspace;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper};
use tokenizers::{Tokenizer, TokenizerBuilder};

use super::parallel::ParallelCorpus;

pub const PAD: u32 = 0;
pub const UNK: u32 = 1;
pub const BOS: u32 = 2;
pub const EOS: u32 = 3;
/// The special tokens, in id order.
pub const SPECIALS: [&str; 4] = ["<pad>", "<unk>", "<s>", "</s>"];
/// `--vocab-size`'s default.
pub const DEFAULT_VOCAB: usize = 8000;
/// Bumped when the way the vocabulary is learned changes, so old caches are not reused.
const VERSION: &str = "bpe-metaspace-v1";

/// A learned vocabulary and where it is cached.
pub struct Vocabulary {
    tokenizer: Tokenizer,
    pub path: PathBuf,
}

impl Vocabulary {
    /// The vocabulary of `size` tokens for `corpus`: read from the cache under `data_dir`, or
    /// learned on the training pairs (both sides) and cached. Returns it and whether it was
    /// learned now.
    pub fn learn_or_load(corpus: &ParallelCorpus, size: usize, data_dir: &Path) -> Result<(Vocabulary, bool)> {
        if size <= SPECIALS.len() {
            bail!(
                "--vocab-size {size} leaves no room for text beside the {} special tokens; use e.g. 8000",
                SPECIALS.len()
            );
        }
        let path = cache_path(corpus, size, data_dir);
        if path.is_file() {
            match Vocabulary::load(&path) {
                Ok(v) => return Ok((v, false)),
                // A damaged cache is learned again (it is a cache, not a result).
                Err(_) => std::fs::remove_file(&path).with_context(|| format!("cannot replace {}", path.display()))?,
            }
        }
        let tokenizer = learn(corpus, size)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let json = tokenizer.to_string(false).map_err(|e| anyhow!("cannot write the vocabulary: {e}"))?;
        crate::files::write_atomic(&path, json.as_bytes())?;
        Ok((Vocabulary::load(&path)?, true))
    }

    /// A `tokenizer.json` written by [`Vocabulary::learn_or_load`] (a run's copy, or the cache).
    pub fn load(path: &Path) -> Result<Vocabulary> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| {
            anyhow!("{} is not a tokenizer file ({e}); delete it and it is learned again", path.display())
        })?;
        for (id, token) in SPECIALS.iter().enumerate() {
            if tokenizer.token_to_id(token) != Some(id as u32) {
                bail!("{} does not give {token} the id {id}; delete it and it is learned again", path.display());
            }
        }
        Ok(Vocabulary { tokenizer, path: path.to_path_buf() })
    }

    /// Tokens in the vocabulary, the special ones included.
    pub fn size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The ids of `text`, without begin or end.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, false).map_err(|e| anyhow!("cannot tokenize {text:?}: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }

    /// The token of `id`, for messages and tests.
    pub fn token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }
}

/// Where the vocabulary of `corpus` with `size` tokens is cached.
fn cache_path(corpus: &ParallelCorpus, size: usize, data_dir: &Path) -> PathBuf {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(VERSION.as_bytes());
    hasher.update(format!("{}\0{}\0{size}\0", corpus.source, corpus.target).as_bytes());
    for line in corpus.train.source.iter().chain(&corpus.train.target) {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    let folder = Path::new(&corpus.name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let slug: String = folder.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    data_dir.join("bpe").join(format!(
        "{slug}-{}-{}-{size}-{:016x}.json",
        corpus.source,
        corpus.target,
        hasher.digest()
    ))
}

/// A BPE vocabulary of `size` tokens learned on both sides of the training pairs.
fn learn(corpus: &ParallelCorpus, size: usize) -> Result<Tokenizer> {
    let specials = SPECIALS.iter().map(|t| AddedToken::from(t.to_string(), true)).collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(size)
        .min_frequency(0)
        .show_progress(false)
        .special_tokens(specials)
        .build();
    let model = BPE::builder().unk_token(SPECIALS[UNK as usize].to_string()).build().map_err(|e| anyhow!("{e}"))?;
    let mut tokenizer =
        TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(model)
            .with_pre_tokenizer(Some(Metaspace::default().into()))
            .with_decoder(Some(Metaspace::default().into()))
            .build()
            .map_err(|e| anyhow!("cannot build the tokenizer: {e}"))?;
    let lines = corpus.train.source.iter().chain(&corpus.train.target);
    tokenizer.train(&mut trainer, lines).map_err(|e| anyhow!("cannot learn the BPE vocabulary: {e}"))?;
    let json = tokenizer.to_string(false).map_err(|e| anyhow!("cannot write the vocabulary: {e}"))?;
    Tokenizer::from_bytes(json.as_bytes()).map_err(|e| anyhow!("cannot read the learned vocabulary back: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::parallel::{Pairs, Skipped};

    fn corpus() -> ParallelCorpus {
        let en = ["A dog runs in the park.", "Two men talk near a car.", "A girl with a red hat."];
        let de = ["Ein Hund rennt im Park.", "Zwei Männer reden neben einem Auto.", "Ein Mädchen mit rotem Hut."];
        let pairs = Pairs {
            source: en.iter().map(|s| s.to_string()).collect(),
            target: de.iter().map(|s| s.to_string()).collect(),
        };
        ParallelCorpus {
            name: "tiny".into(),
            source: "en".into(),
            target: "de".into(),
            train: pairs.clone(),
            valid: pairs.clone(),
            test: pairs,
            test_name: "test_x".into(),
            skipped: Skipped::default(),
        }
    }

    /// The specials keep their ids, decoding gives back the text (unseen characters become the
    /// unknown token), and the cache returns the very same vocabulary.
    #[test]
    fn a_learned_vocabulary_round_trips_text_and_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let (v, learned) = Vocabulary::learn_or_load(&corpus(), 120, dir.path()).unwrap();
        assert!(learned);
        assert_eq!(v.size(), 120);
        assert_eq!(v.token(PAD).as_deref(), Some("<pad>"));
        assert_eq!(v.token(EOS).as_deref(), Some("</s>"));
        for text in ["Zwei Männer reden im Park.", "A dog with a hat."] {
            let ids = v.encode(text).unwrap();
            assert!(ids.iter().all(|&i| i > EOS), "{ids:?}");
            assert_eq!(v.decode(&ids), text);
        }
        assert!(v.encode("Ω").unwrap().contains(&UNK));
        let (again, learned) = Vocabulary::learn_or_load(&corpus(), 120, dir.path()).unwrap();
        assert!(!learned);
        assert_eq!(again.path, v.path);
        assert_eq!(again.encode("Ein Hund rennt.").unwrap(), v.encode("Ein Hund rennt.").unwrap());
        // Another size is another vocabulary; a damaged cache is learned again.
        let (other, _) = Vocabulary::learn_or_load(&corpus(), 100, dir.path()).unwrap();
        assert_ne!(other.path, v.path);
        std::fs::write(&v.path, "{").unwrap();
        let (relearned, learned) = Vocabulary::learn_or_load(&corpus(), 120, dir.path()).unwrap();
        assert!(learned);
        assert_eq!(relearned.encode("Ein Hund rennt.").unwrap(), v.encode("Ein Hund rennt.").unwrap());
        assert!(Vocabulary::learn_or_load(&corpus(), 4, dir.path()).is_err());
    }
}
