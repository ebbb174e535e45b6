//! One-shot search end to end on synthetic CIFAR-format data: every space searches without
//! NaN and yields a genotype that `eval` accepts; a killed search resumes to the same result.

mod common;

use std::path::Path;

use actsearch::model::state::read_safetensors;
use actsearch::observer::Silent;
use actsearch::search::oneshot::search;
use actsearch::space::resolve::resolve_activation;
use burn::prelude::*;
use common::StopAtEpoch;

#[test]
fn every_method_searches_every_space_and_eval_accepts_the_result() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(dir.path(), 12);
    for method in ["darts", "darts2", "gdas", "drnas", "grafs"] {
        for space in ["small", "huge", "grafs"] {
            check_one_epoch(dir.path(), method, space);
        }
    }
}

fn check_one_epoch(data: &Path, method: &str, space: &str) {
    {
        let out = data.join(format!("{method}-{space}"));
        let outcome = search(&common::search_config(method, data, &out, space, 1), &Device::flex(), false, &Silent)
            .unwrap_or_else(|e| panic!("{method} on {space}: {e:#}"));
        let h = &outcome.history;
        assert!(h.train_loss.iter().chain(&h.valid_loss).all(|v| v.is_finite()), "{method} {space}: {h:?}");
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

/// During `--warm-start` epochs the weights train with ReLU whatever the method, so the
/// training losses of the first epoch agree between methods (the architecture steps change
/// only the alphas), and differ from a run without the warm start.
#[test]
fn warm_start_trains_the_weights_with_relu_for_every_method() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(dir.path(), 12);
    let run = |method: &str, warm: Option<usize>| {
        let name = format!("warm-{method}-{warm:?}");
        let mut c = common::search_config(method, dir.path(), &dir.path().join(name), "small", 2);
        c.warm_start = warm;
        let outcome = search(&c, &Device::flex(), false, &Silent).unwrap_or_else(|e| panic!("{method}: {e:#}"));
        let log = std::fs::read_to_string(c.out.join("log.log")).unwrap();
        (outcome.history.train_loss, log)
    };
    let (darts, log) = run("darts", Some(1));
    assert!(log.contains("warm start"), "{log}");
    let (gdas, _) = run("gdas", Some(1));
    assert_eq!(darts[0], gdas[0], "epoch 1 trains ReLU weights in both");
    assert_ne!(darts[1], gdas[1], "epoch 2 trains the methods' own mixes");
    let (cold, log) = run("darts", None);
    assert!(!log.contains("warm start"), "{log}");
    assert_ne!(darts[0], cold[0], "without the warm start epoch 1 trains the mixed cell");
}

#[test]
fn search_resume_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(dir.path(), 12);
    // darts: plain; gdas: Gumbel samples and temperature; grafs: warm start, Dirichlet
    // samples, shrinking masks and the best-epoch genotype, with a shared cell.
    for (method, shared, epochs) in [("darts", false, 2), ("gdas", false, 2), ("grafs", true, 3)] {
        let config = |name: &str| {
            let mut c = common::search_config(method, dir.path(), &dir.path().join(name), "small", epochs);
            c.shared_cell = shared;
            c
        };
        let a_name = format!("{method}-a");
        let b_name = format!("{method}-b");
        let device = Device::flex();
        let a = search(&config(&a_name), &device, false, &Silent).unwrap();
        let stop = StopAtEpoch::at(2);
        assert!(search(&config(&b_name), &device, false, &stop).is_err());
        let b = search(&config(&b_name), &device, true, &Silent).unwrap();
        assert_eq!(a.history.train_loss, b.history.train_loss, "{method}");
        assert_eq!(a.history.valid_acc, b.history.valid_acc, "{method}");
        assert_eq!(a.genotype, b.genotype, "{method}");
        let alphas = |d: &str| std::fs::read_to_string(dir.path().join(d).join("alphas.jsonl")).unwrap();
        assert_eq!(alphas(&a_name), alphas(&b_name), "{method}");
        let (wa, _) = read_safetensors(&dir.path().join(&a_name).join("model.safetensors")).unwrap();
        let (wb, _) = read_safetensors(&dir.path().join(&b_name).join("model.safetensors")).unwrap();
        for (name, t) in &wa {
            assert_eq!(Some(t), wb.get(name), "{method}: {name} differs after resume");
        }
    }
}

/// GRAFS over 3 epochs with a shared cell: one set of alphas (at the stem site), every site
/// recording the same weights, and progressive shrinking down to one op per position in the
/// last epoch (the other ops' weights are exactly 0).
#[test]
fn grafs_shares_one_cell_and_shrinks_to_one_op_per_position() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(dir.path(), 12);
    let out = dir.path().join("grafs");
    let mut config = common::search_config("grafs", dir.path(), &out, "small", 3);
    config.shared_cell = true;
    config.accumulate = 2;
    search(&config, &Device::flex(), false, &Silent).unwrap();
    let (tensors, _) = read_safetensors(&out.join("model.safetensors")).unwrap();
    let alpha_names: Vec<&String> = tensors.keys().filter(|n| n.contains("alphas")).collect();
    assert!(!alpha_names.is_empty() && alpha_names.iter().all(|n| n.starts_with("act.")), "{alpha_names:?}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("alphas.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let sites = lines[2]["weights"].as_array().unwrap();
    assert!(sites.iter().all(|s| s == &sites[0]), "a shared cell records the same weights at every site");
    for row in sites[0].as_array().unwrap() {
        let nonzero = row.as_array().unwrap().iter().filter(|v| v.as_f64().unwrap() > 0.0).count();
        assert_eq!(nonzero, 1, "the last epoch keeps one op per position: {row}");
    }
    let first = lines[0]["weights"][0].as_array().unwrap();
    assert!(first.iter().all(|row| row.as_array().unwrap().iter().all(|v| v.as_f64().unwrap() > 0.0)));
    let log = std::fs::read_to_string(out.join("log.log")).unwrap();
    assert!(log.contains("warm start") && log.contains("progressive shrinking"), "{log}");
}

/// The one-shot methods on a vit-micro: the cell replaces each of the 4 MLP activations (its
/// per-feature parameters on the last axis, 256 wide), the weights train with AdamW, and the
/// genotype trains again in `eval` on the ViT with the learned per-feature values.
#[test]
fn every_method_searches_a_vit_and_eval_trains_the_genotype_on_it() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(dir.path(), 12);
    for method in ["darts", "darts2", "gdas", "drnas", "grafs"] {
        let out = dir.path().join(format!("vit-{method}"));
        let config = common::search_vit_config(method, dir.path(), &out, "small", 1);
        let outcome = search(&config, &Device::flex(), false, &Silent).unwrap_or_else(|e| panic!("{method}: {e:#}"));
        let h = &outcome.history;
        assert!(h.train_loss.iter().chain(&h.valid_loss).all(|v| v.is_finite()), "{method}: {h:?}");
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(out.join("alphas.jsonl")).unwrap().lines().next().unwrap())
                .unwrap();
        assert_eq!(line["weights"].as_array().unwrap().len(), 4, "{method}: one weight table per block");
        let (weights, _) = read_safetensors(&out.join("model.safetensors")).unwrap();
        assert!(weights.contains_key("blocks.3.mlp.fc.weight"), "{method}: the ViT's state_dict names");
        assert_eq!(outcome.genotype.layout, actsearch::space::genotype::SiteLayout::Features, "{method}");
        for info in &outcome.genotype.params {
            let learned = info.learned.as_ref().unwrap();
            assert_eq!(learned.len(), 4, "{method}: one vector per site");
            assert!(learned.iter().all(|v| v.len() == 256), "{method}: one value per feature");
        }
    }
    let genotype = dir.path().join("vit-grafs/genotype.json");
    let mut eval = common::tiny_vit_config(dir.path(), &dir.path().join("eval"), genotype.to_str().unwrap(), 1);
    eval.init_params = actsearch::space::resolve::InitParams::Learned;
    let formula = resolve_activation(genotype.to_str().unwrap()).unwrap();
    let run = actsearch::train::run::train(&eval, &formula, &Device::flex(), false, &Silent).unwrap();
    assert!(run.history.test_acc.iter().all(|v| v.is_finite()));
}

/// The warm start follows the network: GELU on a ViT (the log says so), and
/// `warm_start_with` overrides it (another function gives other epoch-1 losses). A killed ViT
/// search (AdamW for the weights beside Adam for the alphas in one checkpoint) resumes to the
/// uninterrupted result.
#[test]
fn a_vit_search_warms_up_with_gelu_and_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(dir.path(), 12);
    let config = |name: &str, with: Option<&str>| {
        let mut c = common::search_vit_config("grafs", dir.path(), &dir.path().join(name), "small", 3);
        c.shared_cell = true;
        c.warm_start_with = with.map(str::to_string);
        c
    };
    let device = Device::flex();
    let a = search(&config("a", None), &device, false, &Silent).unwrap();
    let log = std::fs::read_to_string(dir.path().join("a/log.log")).unwrap();
    assert!(log.contains("the weights train with gelu"), "{log}");
    let named = search(&config("gelu", Some("gelu")), &device, false, &Silent).unwrap();
    assert_eq!(a.history.train_loss, named.history.train_loss, "gelu is the ViT's default");
    let silu = search(&config("silu", Some("silu")), &device, false, &Silent).unwrap();
    assert_ne!(a.history.train_loss[0], silu.history.train_loss[0]);

    assert!(search(&config("b", None), &device, false, &StopAtEpoch::at(2)).is_err());
    let b = search(&config("b", None), &device, true, &Silent).unwrap();
    assert_eq!(a.history.train_loss, b.history.train_loss);
    assert_eq!(a.history.valid_acc, b.history.valid_acc);
    assert_eq!(a.genotype, b.genotype);
    let (wa, _) = read_safetensors(&dir.path().join("a/model.safetensors")).unwrap();
    let (wb, _) = read_safetensors(&dir.path().join("b/model.safetensors")).unwrap();
    assert_eq!(wa, wb);
}
