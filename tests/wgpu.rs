//! The GPU path (burn's ops through cubecl, the reference activations) on the `wgpu` backend:
//! built only with `--features wgpu`, and run by CI on Mesa's software Vulkan driver
//! (lavapipe, Debian's `mesa-vulkan-drivers`), so no GPU is needed. It checks what a user of a
//! GPU relies on: a formula activation trains to the same losses as on the CPU (within a
//! tolerance: the CPU runs its own fused kernels and convolutions, the GPU burn's, so float
//! sums differ in order), a one-shot search runs without NaN, a killed run and a killed search
//! resume to what an uninterrupted run gives, and the command line takes `--backend wgpu`.
#![cfg(feature = "wgpu")]

mod common;

use actsearch::expr::resolve;
use actsearch::observer::Silent;
use actsearch::search::oneshot::{SearchConfig, search};
use actsearch::space::resolve::resolve_activation;
use actsearch::train::{TrainConfig, train};
use burn::prelude::*;
use common::{StopAtEpoch, actsearch, synthetic_cifar10, tiny_config};

fn gpu() -> Device {
    Device::wgpu(Default::default())
}

/// `a` and `b` equal within a relative tolerance, element by element, and finite.
fn close(what: &str, a: &[f64], b: &[f64], tolerance: f64) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(x.is_finite() && y.is_finite(), "{what}: {a:?} vs {b:?}");
        assert!((x - y).abs() <= tolerance * (1.0 + y.abs()), "{what}: {a:?} vs {b:?} (tolerance {tolerance})");
    }
}

fn config(data: &std::path::Path, out: &str, activation: &str, epochs: usize) -> TrainConfig {
    TrainConfig {
        augment: false,
        backend: "wgpu".to_string(),
        ..tiny_config(data, &data.join(out), activation, epochs)
    }
}

#[test]
fn a_formula_activation_trains_to_the_losses_of_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 32);
    // A parameter per channel (b), a bounded and an unbounded op: the reference path's
    // parameters, broadcasting and backward all take part.
    let activation = "x*sigmoid(b*x) + 0.1*tanh(x)";
    let formula = resolve(activation).unwrap();
    let on_gpu = train(&config(dir.path(), "gpu", activation, 2), &formula, &gpu(), false, &Silent).unwrap();
    let cpu_config = TrainConfig { backend: "flex".to_string(), ..config(dir.path(), "cpu", activation, 2) };
    let on_cpu = train(&cpu_config, &formula, &Device::flex(), false, &Silent).unwrap();
    let (g, c) = (&on_gpu.history, &on_cpu.history);
    close("train loss", &g.train_loss, &c.train_loss, 2e-3);
    close("valid loss", &g.valid_loss, &c.valid_loss, 1e-2);
    close("test loss", &g.test_loss, &c.test_loss, 1e-2);
    assert!(g.train_loss[1] < g.train_loss[0], "the loss did not fall on wgpu: {:?}", g.train_loss);
}

#[test]
fn a_killed_run_resumes_to_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 32);
    let activation = "x*sigmoid(b*x)";
    let formula = resolve(activation).unwrap();
    let a = train(&config(dir.path(), "straight", activation, 3), &formula, &gpu(), false, &Silent).unwrap();
    let killed = config(dir.path(), "killed", activation, 3);
    let stop = StopAtEpoch::at(2);
    let err = train(&killed, &formula, &gpu(), false, &stop).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    let b = train(&killed, &formula, &gpu(), true, &Silent).unwrap();
    close("train loss", &b.history.train_loss, &a.history.train_loss, 1e-5);
    close("test loss", &b.history.test_loss, &a.history.test_loss, 1e-5);
    assert_eq!(a.history.test_acc, b.history.test_acc);
}

fn search_config(data: &std::path::Path, method: &str, out: &str) -> SearchConfig {
    SearchConfig { backend: "wgpu".to_string(), ..common::search_config(method, data, &data.join(out), "small", 2) }
}

#[test]
fn one_shot_searches_run_and_resume_on_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 12);
    // darts: the mixture of every op; gdas: one sampled op per position (Gumbel samples on
    // the GPU's tensors, the temperature schedule).
    // Searches on wgpu are not always bit-identical: three identical darts searches in one
    // process ended their first epoch at 2.28592, 2.28677 and 2.28592 (cubecl picks among
    // kernels that round differently, by timing them), so the resumed search is compared
    // with the uninterrupted one within a tolerance.
    for method in ["darts", "gdas"] {
        let a = search(&search_config(dir.path(), method, &format!("{method}-a")), &gpu(), false, &Silent)
            .unwrap_or_else(|e| panic!("{method}: {e:#}"));
        assert!(a.history.train_loss.iter().all(|l| l.is_finite()), "{method}: {:?}", a.history.train_loss);
        let b_config = search_config(dir.path(), method, &format!("{method}-b"));
        let stop = StopAtEpoch::at(2);
        assert!(search(&b_config, &gpu(), false, &stop).is_err(), "{method}: the stop was not seen");
        let b = search(&b_config, &gpu(), true, &Silent).unwrap_or_else(|e| panic!("{method}: {e:#}"));
        close(method, &b.history.train_loss, &a.history.train_loss, 2e-2);
        assert_eq!(b.history.train_loss.len(), 2, "{method}");
        // The genotype is something eval accepts.
        let genotype = dir.path().join(format!("{method}-a")).join("genotype.json");
        let formula = resolve_activation(genotype.to_str().unwrap()).unwrap();
        assert_eq!(formula.to_string(), a.genotype.formula, "{method}");
    }
}

#[test]
fn the_command_line_evaluates_on_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(&dir.path().join("data"), 16);
    let args = [
        "eval",
        "--backend",
        "wgpu",
        "--network",
        "resnet8",
        "--activation",
        "max(x, 0) + 0.1*sin(x)",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--train-portion",
        "0.75",
        "--out",
        "runs/gpu",
    ];
    let out = actsearch(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let errors: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/gpu/errors.json")).unwrap()).unwrap();
    assert!(errors["test_acc"][0].as_f64().is_some_and(f64::is_finite), "{errors}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("runs/gpu/config.json")).unwrap()).unwrap();
    assert_eq!(config["backend"], "wgpu");
}
