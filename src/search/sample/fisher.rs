//! The Fisher features of a child network at initialization, AQuaSurF's second feature set:
//! the network of the search's recipe is built with the function at every site, exactly as a
//! child starts (`child::with_child_net`, the search's seed), the gradients of its loss on
//! [`MICRO_BATCHES`] fixed micro-batches of [`MICRO_BATCH`] training examples are taken, and
//! `predict::fisher` turns them into a histogram of the log eigenvalues of the block-diagonal
//! (per parameter tensor) empirical Fisher.
//!
//! They cost a forward and backward pass per micro-batch, so they are cached: in a file
//! shared by every search of the same network, data and seed (under the data folder,
//! `fisher/`), keyed by the function's fingerprint. A translation child has none (its
//! vocabulary and pairs are not worth preparing per function): the surrogate then ranks by
//! the output features alone.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;

use super::child::{ChildData, ChildRecipe, ChildSpec, ChildUse, Scorer, load_data, with_child_net};
use crate::expr::Formula;
use crate::model::Net;
use crate::observer::Silent;
use crate::search::predict::fisher;
use crate::train::driver::Batches;
use crate::train::steps::{Supervised, scored};
use crate::train::update::{Grads, Group};

/// Micro-batches whose gradients make the spectrum (its rank is at most this).
pub const MICRO_BATCHES: usize = 16;
/// Examples (images, or windows of text) per micro-batch.
pub const MICRO_BATCH: usize = 8;

/// Computes and caches the Fisher features of one search's child network.
pub struct FisherProbe {
    /// A child spec of the search's recipe, data and seed: each function replaces its formula.
    template: ChildSpec,
    /// The training examples the micro-batches come from.
    data: ChildData,
    /// The shared cache file, and what it holds.
    file: PathBuf,
    cache: HashMap<String, Vec<f64>>,
}

impl FisherProbe {
    /// The probe of the children of a search that trains `recipe` on `dataset` (cached under
    /// `data_dir`) with `seed`, or None for a task without Fisher features (translation). It
    /// reads the shared cache.
    pub fn open(recipe: &ChildRecipe, dataset: &str, data_dir: &Path, seed: u64) -> Result<Option<FisherProbe>> {
        if recipe.translation.is_some() {
            return Ok(None);
        }
        let data = match load_data(recipe, dataset, data_dir, seed, &Silent)? {
            // Only the first micro-batches' examples are read: keep those (the normalization is
            // the whole training split's).
            ChildData::Images(mut splits) => {
                let keep: Vec<usize> = (0..splits.train.len().min(MICRO_BATCHES * MICRO_BATCH * 4)).collect();
                splits.train = splits.train.select(&keep);
                splits.valid = Some(splits.train.select(&keep[..keep.len().min(1)]));
                splits.test = splits.train.select(&[]);
                ChildData::Images(splits)
            }
            data => data,
        };
        let template = ChildSpec {
            id: 0,
            tokens: String::new(),
            formula: "x".into(),
            init: Vec::new(),
            recipe: recipe.clone(),
            dataset: dataset.into(),
            data_dir: data_dir.into(),
            seed,
            threads: 1,
            backend: "flex".into(),
            rung: None,
        };
        // Everything that changes a network's gradients at initialization names the file.
        let key = format!(
            "{} on {} subset {:?} portion {} seed {} mlp {:?} dropout {} {}x{} v2",
            recipe.network.name(),
            dataset,
            recipe.subset,
            recipe.train_portion,
            seed,
            recipe.mlp,
            recipe.dropout,
            MICRO_BATCHES,
            MICRO_BATCH
        );
        let name = format!("{}-{}.jsonl", recipe.network.name(), &crate::files::Checksum::of(key.as_bytes())[..16]);
        let file = data_dir.join("fisher").join(name);
        let cache = read_cache(&file)?;
        Ok(Some(FisherProbe { template, data, file, cache }))
    }

    /// The Fisher features of `formula` with its parameters at `init` (from the cache, or
    /// computed and added to it), under `key` (its fingerprint).
    pub fn features(&mut self, key: &str, formula: &Formula, init: &[f64]) -> Result<Vec<f64>> {
        if let Some(f) = self.cache.get(key) {
            return Ok(f.clone());
        }
        let spec = ChildSpec { formula: formula.to_string(), init: init.to_vec(), ..self.template.clone() };
        let data = match &self.data {
            ChildData::Images(s) => ChildData::Images(s.clone()),
            ChildData::Text(c) => ChildData::Text(c.clone()),
            ChildData::Parallel(_) => bail!("a translation child has no Fisher features"),
        };
        let device = Device::flex();
        let grads = with_child_net(&spec, data, MICRO_BATCH, &device, Gradients { seed: spec.seed })?;
        let features = spectrum_features(&grads);
        append_cache(&self.file, key, &features)?;
        self.cache.insert(key.to_string(), features.clone());
        Ok(features)
    }
}

/// The histogram of a spectrum, or, where a gradient is not finite, every share in the last
/// bin (the largest eigenvalues there are): such a network starts by blowing up.
fn spectrum_features(blocks: &[Vec<Vec<f32>>]) -> Vec<f64> {
    if blocks.iter().flatten().flatten().any(|g| !g.is_finite()) {
        let mut h = vec![0.0; fisher::BINS];
        h[fisher::BINS - 1] = 1.0;
        return h;
    }
    fisher::histogram(&fisher::block_eigenvalues(blocks))
}

/// The gradient of the training loss on each of the first [`MICRO_BATCHES`] training batches
/// (the loader's epochs following one another), by parameter tensor in name order: `[t][i]`
/// is tensor t's gradient on micro-batch i, flattened.
struct Gradients {
    seed: u64,
}

impl ChildUse for Gradients {
    type Out = Vec<Vec<Vec<f32>>>;

    fn apply<N, B, D>(self, model: N, task: (B, D, String), _score: Option<Scorer<'_, N>>) -> Result<Self::Out>
    where
        N: Net,
        D: Supervised<N>,
        B: Batches<Batch = D::Batch>,
    {
        let (batches, data, _) = task;
        let device = model.devices()[0].clone();
        let mut out: Vec<Vec<Vec<f32>>> = Vec::new();
        for (i, batch) in (0..).flat_map(|e| batches.epoch(e, true)).take(MICRO_BATCHES).enumerate() {
            // Dropout draws, where the network has it, are seeded per micro-batch.
            device.seed(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64);
            let (loss, _, _) = scored(&data, &model, &batch);
            let grads = Grads::of(&model, &loss.backward(), Group::All);
            let mut names: Vec<&String> = grads.0.keys().collect();
            names.sort();
            out.resize(names.len(), Vec::new());
            for (t, name) in names.into_iter().enumerate() {
                let g = grads.0[name].clone().into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
                out[t].push(g);
            }
        }
        Ok(out)
    }
}

/// The cached features in `file` (none when it does not exist). A line that does not parse
/// (a write cut short) is skipped: its function is computed again.
fn read_cache(file: &std::path::Path) -> Result<HashMap<String, Vec<f64>>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read the Fisher features' cache {}", file.display())),
    };
    let mut cache = HashMap::new();
    for line in text.lines() {
        let Ok((key, features)) = serde_json::from_str::<(String, Vec<f64>)>(line) else { continue };
        if features.len() == fisher::BINS {
            cache.insert(key, features);
        }
    }
    Ok(cache)
}

/// Appends one function's features to `file`, in one write (searches sharing the file append
/// whole lines).
fn append_cache(file: &std::path::Path, key: &str, features: &[f64]) -> Result<()> {
    let why = || format!("cannot write the Fisher features' cache {}", file.display());
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(why)?;
    }
    let line = format!("{}\n", serde_json::to_string(&(key, features))?);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file).with_context(why)?;
    f.write_all(line.as_bytes()).with_context(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Functions that start a network differently get different spectra; the same function
    /// gets the same features computed again (in a fresh probe with no cache) and from the
    /// cache file, which a second probe reads.
    #[test]
    fn the_fisher_features_of_a_resnet_are_cached_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        crate::data::synthetic::write_synthetic_cifar10(&dir.path().join("data"), 40).unwrap();
        let data_dir = dir.path().join("data");
        let open = || FisherProbe::open(&ChildRecipe::test_resnet8(), "cifar10", &data_dir, 0).unwrap().unwrap();
        let mut probe = open();
        let relu = Formula::parse("max(x, 0)").unwrap();
        let tanh = Formula::parse("tanh(x)").unwrap();
        let a = probe.features("relu", &relu, &[]).unwrap();
        let b = probe.features("tanh", &tanh, &[]).unwrap();
        assert_eq!(a.len(), fisher::BINS);
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_ne!(a, b, "relu and tanh start a ResNet alike");
        let cached = open();
        assert_eq!(cached.cache.get("relu"), Some(&a));
        std::fs::remove_file(&probe.file).unwrap();
        let mut fresh = open();
        assert!(fresh.cache.is_empty());
        assert_eq!(fresh.features("relu", &relu, &[]).unwrap(), a);
    }
}
