//! One-shot search end to end on synthetic CIFAR-format data: every space searches without
//! NaN and yields a genotype that `eval` accepts; a killed search resumes to the same result.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use actsearch::model::Network;
use actsearch::model::state::read_safetensors;
use actsearch::observer::{Event, Observer, Silent};
use actsearch::search::oneshot::{SearchConfig, search};
use actsearch::space::genotype::resolve_activation;
use burn::prelude::*;

fn config(data: &Path, out: &Path, space: &str, epochs: usize) -> SearchConfig {
    SearchConfig {
        method: "darts".to_string(),
        space: space.to_string(),
        network: Network::Resnet8,
        dataset: "cifar10".to_string(),
        data_dir: data.to_path_buf(),
        epochs,
        batch_size: 16,
        lr: 0.025,
        lr_min: 0.001,
        momentum: 0.9,
        weight_decay: 3e-4,
        grad_clip: 5.0,
        arch_lr: 3e-3,
        arch_betas: (0.5, 0.999),
        arch_weight_decay: 1e-3,
        train_portion: 0.5,
        subset: None,
        augment: true,
        seed: 1,
        backend: "flex".to_string(),
        threads: 2,
        out: out.to_path_buf(),
    }
}

#[test]
fn darts_searches_every_space_and_eval_accepts_the_result() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(dir.path(), 12);
    for space in ["small", "huge", "grafs"] {
        let out = dir.path().join(space);
        let outcome = search(&config(dir.path(), &out, space, 1), &Device::flex(), false, &Silent).unwrap();
        let h = &outcome.history;
        assert!(h.train_loss.iter().chain(&h.valid_loss).all(|v| v.is_finite()), "{space}: {h:?}");
        for file in [
            "config.json",
            "errors.json",
            "log.log",
            "alphas.jsonl",
            "genotype.json",
            "checkpoint.safetensors",
            "model.safetensors",
        ] {
            assert!(out.join(file).exists(), "{space}: {file} missing");
        }
        let log = std::fs::read_to_string(out.join("log.log")).unwrap();
        assert!(log.trim_end().ends_with(&format!("final formula: {}", outcome.genotype.formula)), "{log}");
        let formula = resolve_activation(out.join("genotype.json").to_str().unwrap()).unwrap();
        assert_eq!(formula.to_string(), outcome.genotype.formula);
        // Every alphas.jsonl line has one weight table per site (7 sites in ResNet-8), rows summing to 1.
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(out.join("alphas.jsonl")).unwrap().lines().next().unwrap())
                .unwrap();
        let sites = line["weights"].as_array().unwrap();
        assert_eq!(sites.len(), 7);
        for row in sites[0].as_array().unwrap() {
            let sum: f64 = row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-4);
        }
    }
}

struct StopAtEpoch(usize, AtomicBool);

impl Observer for StopAtEpoch {
    fn event(&self, event: Event) {
        if let Event::Batch(p) = event
            && p.epoch == self.0
            && p.batch == 1
        {
            self.1.store(true, Ordering::SeqCst);
        }
    }
    fn should_stop(&self) -> bool {
        self.1.load(Ordering::SeqCst)
    }
}

#[test]
fn search_resume_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(dir.path(), 12);
    let device = Device::flex();
    let a = search(&config(dir.path(), &dir.path().join("a"), "small", 2), &device, false, &Silent).unwrap();
    let b_config = config(dir.path(), &dir.path().join("b"), "small", 2);
    let stop = StopAtEpoch(2, AtomicBool::new(false));
    assert!(search(&b_config, &device, false, &stop).is_err());
    let b = search(&b_config, &device, true, &Silent).unwrap();
    assert_eq!(a.history.train_loss, b.history.train_loss);
    assert_eq!(a.history.valid_acc, b.history.valid_acc);
    assert_eq!(a.genotype, b.genotype);
    let alphas = |d: &str| std::fs::read_to_string(dir.path().join(d).join("alphas.jsonl")).unwrap();
    assert_eq!(alphas("a"), alphas("b"));
    let (wa, _) = read_safetensors(&dir.path().join("a/model.safetensors")).unwrap();
    let (wb, _) = read_safetensors(&dir.path().join("b/model.safetensors")).unwrap();
    for (name, t) in &wa {
        assert_eq!(Some(t), wb.get(name), "{name} differs after resume");
    }
}
