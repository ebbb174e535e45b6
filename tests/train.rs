//! End-to-end behaviour of the training loop on synthetic CIFAR-format data: training lowers
//! the loss, resume equals uninterrupted, weights round-trip through safetensors, and a NaN
//! loss stops the run with the last good checkpoint kept.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use actsearch::expr::resolve;
use actsearch::model::state::{load_state_dict, read_safetensors, state_dict, write_safetensors};
use actsearch::model::{Network, ResNet};
use actsearch::observer::{Event, Observer, Silent};
use actsearch::train::{TrainConfig, train};
use burn::prelude::*;
use common::{synthetic_cifar10, tiny_config};

#[test]
fn a_short_training_run_lowers_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 64);
    let config = TrainConfig {
        batch_size: 16,
        lr: 0.1,
        augment: false,
        ..tiny_config(dir.path(), &dir.path().join("run"), "relu", 6)
    };
    let outcome = train(&config, &resolve("relu").unwrap(), &Device::flex(), false, &Silent).unwrap();
    let h = &outcome.history;
    assert_eq!(h.train_loss.len(), 6);
    assert!(h.train_loss[5] < 0.7 * h.train_loss[0], "train loss did not fall: {:?} {:?}", h.train_loss, h.test_acc);
    assert!(h.test_acc[5] > 30.0, "synthetic classes are easy; test accuracy {:?}", h.test_acc);
    for file in ["config.json", "errors.json", "log.log", "model.safetensors", "checkpoint.safetensors"] {
        assert!(outcome.out.join(file).exists(), "{file} missing");
    }
    let log = std::fs::read_to_string(outcome.out.join("log.log")).unwrap();
    assert!(log.contains("final test accuracy"));
}

/// Stops the run (like a kill) at the given batch of the given epoch.
struct StopAt {
    epoch: usize,
    batch: usize,
    seen: AtomicUsize,
}

impl Observer for StopAt {
    fn event(&self, event: Event) {
        if let Event::Batch(p) = event
            && p.epoch == self.epoch
            && p.batch == self.batch
        {
            self.seen.store(1, Ordering::SeqCst);
        }
    }
    fn should_stop(&self) -> bool {
        self.seen.load(Ordering::SeqCst) == 1
    }
}

#[test]
fn resume_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 32);
    let formula = resolve("x*sigmoid(b*x)").unwrap();
    let device = Device::flex();

    let straight = tiny_config(dir.path(), &dir.path().join("straight"), "x*sigmoid(b*x)", 3);
    let a = train(&straight, &formula, &device, false, &Silent).unwrap();

    let killed = tiny_config(dir.path(), &dir.path().join("killed"), "x*sigmoid(b*x)", 3);
    let stop = StopAt { epoch: 2, batch: 2, seen: AtomicUsize::new(0) };
    let err = train(&killed, &formula, &device, false, &stop).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    // Without --resume an existing run is never overwritten.
    let err = train(&killed, &formula, &device, false, &Silent).unwrap_err();
    assert!(err.to_string().contains("holds an unfinished eval run"), "{err}");
    let b = train(&killed, &formula, &device, true, &Silent).unwrap();

    assert_eq!(a.history.train_loss, b.history.train_loss);
    assert_eq!(a.history.test_acc, b.history.test_acc);
    assert_eq!(a.history.test_loss, b.history.test_loss);
    let (wa, _) = read_safetensors(&a.out.join("model.safetensors")).unwrap();
    let (wb, _) = read_safetensors(&b.out.join("model.safetensors")).unwrap();
    assert_eq!(wa.len(), wb.len());
    for (name, t) in &wa {
        assert_eq!(Some(t), wb.get(name), "tensor {name} differs after resume");
    }
    // Identical runs write byte-identical weights (the header's order is fixed too).
    let bytes = |o: &actsearch::train::RunOutcome| std::fs::read(o.out.join("model.safetensors")).unwrap();
    assert!(bytes(&a) == bytes(&b), "model.safetensors differs between identical runs");
}

#[test]
fn resume_with_different_settings_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 16);
    let formula = resolve("relu").unwrap();
    let config = tiny_config(dir.path(), &dir.path().join("run"), "relu", 1);
    train(&config, &formula, &Device::flex(), false, &Silent).unwrap();
    let changed = TrainConfig { lr: 0.2, ..config };
    let err = train(&changed, &formula, &Device::flex(), true, &Silent).unwrap_err().to_string();
    assert!(err.contains("lr"), "{err}");
}

#[test]
fn weights_round_trip_through_safetensors_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let formula = resolve("b1*x*sigmoid(b2*x)").unwrap();
    let a = ResNet::new(Network::Resnet20, &formula, 10, 1, &device).unwrap();
    let b = ResNet::new(Network::Resnet20, &formula, 10, 2, &device).unwrap();
    let path = dir.path().join("w.safetensors");
    write_safetensors(&path, &state_dict(&a, 7), Default::default()).unwrap();
    let (tensors, _) = read_safetensors(&path).unwrap();

    // PyTorch state_dict names and shapes.
    let shape = |n: &str| tensors.get(n).map(|t| t.shape.clone());
    assert_eq!(shape("stem.0.weight"), Some(vec![16, 3, 3, 3]));
    assert_eq!(shape("stem.1.weight"), Some(vec![16]));
    assert_eq!(shape("stem.1.num_batches_tracked"), Some(vec![]));
    assert_eq!(shape("blocks.3.short.0.weight"), Some(vec![32, 16, 1, 1]));
    assert_eq!(shape("blocks.3.short.1.running_var"), Some(vec![32]));
    assert_eq!(shape("blocks.8.act2.params.1"), Some(vec![64]));
    assert_eq!(shape("fc.weight"), Some(vec![10, 64]));
    assert_eq!(shape("fc.bias"), Some(vec![10]));

    let b = load_state_dict(b, &tensors).unwrap();
    let x = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let ya = a.forward(x.clone()).into_data();
    let yb = b.forward(x).into_data();
    ya.assert_eq(&yb, true);
}

#[test]
fn loading_weights_of_another_network_names_the_tensor() {
    let device = Device::flex();
    let relu = resolve("relu").unwrap();
    let small = ResNet::new(Network::Resnet8, &relu, 10, 1, &device).unwrap();
    let big = ResNet::new(Network::Resnet20, &relu, 10, 1, &device).unwrap();
    let tensors = state_dict(&small, 0).into_iter().map(|t| (t.name.clone(), t)).collect();
    let err = load_state_dict(big, &tensors).unwrap_err().to_string();
    assert!(err.contains("blocks.1."), "{err}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 32);
    // exp(exp(x)) overflows to inf at once.
    let formula = resolve("exp(exp(exp(x)))").unwrap();
    let config = TrainConfig { lr: 10.0, ..tiny_config(dir.path(), &dir.path().join("run"), "exp(exp(exp(x)))", 2) };
    let err = train(&config, &formula, &Device::flex(), false, &Silent).unwrap_err().to_string();
    assert!(err.contains("diverged"), "{err}");
    assert!(!dir.path().join("run/model.safetensors").exists());
}

#[test]
fn a_short_vit_run_lowers_the_loss_and_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 32);
    let formula = resolve("x*sigmoid(b*x)").unwrap();
    let device = Device::flex();
    let config = |out: &str| TrainConfig {
        lr: 3e-3,
        augment: false,
        ..common::tiny_vit_config(dir.path(), &dir.path().join(out), "x*sigmoid(b*x)", 4)
    };
    let a = train(&config("straight"), &formula, &device, false, &Silent).unwrap();
    let losses = &a.history.train_loss;
    // Measured: 2.41, 2.37, 2.28, 2.14 (a ViT learns the synthetic classes slower than a ResNet).
    let falling = losses.windows(2).all(|w| w[1] < w[0]);
    assert!(falling && losses[3] < losses[0] * 0.92, "the ViT's training loss did not fall: {losses:?}");

    // Killed in epoch 2, then resumed: AdamW's moments and step count come back from the
    // checkpoint, so every number and every weight is the uninterrupted run's.
    let stop = StopAt { epoch: 2, batch: 2, seen: AtomicUsize::new(0) };
    train(&config("killed"), &formula, &device, false, &stop).unwrap_err();
    let b = train(&config("killed"), &formula, &device, true, &Silent).unwrap();
    assert_eq!(a.history.train_loss, b.history.train_loss);
    assert_eq!(a.history.test_loss, b.history.test_loss);
    assert_eq!(a.history.lr, b.history.lr);
    let bytes = |o: &actsearch::train::RunOutcome| std::fs::read(o.out.join("model.safetensors")).unwrap();
    assert!(bytes(&a) == bytes(&b), "model.safetensors differs after resume");
    // The parameters the reference names: a site's slot is pK, LayerNorm's are weight/bias.
    let (weights, _) = read_safetensors(&a.out.join("model.safetensors")).unwrap();
    for name in ["blocks.3.mlp.act.p0", "blocks.0.ln1.weight", "blocks.0.attn.qkv.weight", "cls", "pos"] {
        assert!(weights.contains_key(name), "model.safetensors has no {name}");
    }
}

/// `--steps` on an image network: a step budget instead of epochs, evaluated every
/// `--eval-interval` steps, the loader's epochs following one another.
#[test]
fn an_image_run_can_count_steps() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 32);
    let config = TrainConfig {
        epochs: 0,
        steps: Some(9),
        eval_interval: Some(3),
        batch_size: 16,
        ..tiny_config(dir.path(), &dir.path().join("run"), "relu", 1)
    };
    let outcome = train(&config, &resolve("relu").unwrap(), &Device::flex(), false, &Silent).unwrap();
    let h = &outcome.history;
    assert_eq!(h.step, vec![3, 6, 9]);
    assert_eq!((h.test_acc.len(), h.metric.as_str(), h.higher_is_better), (3, "test_acc", true));
    assert!(outcome.out.join("model.safetensors").exists());
}
