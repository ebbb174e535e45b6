//! Shared helpers for the integration tests: tiny synthetic datasets and configs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use actsearch::model::Network;
use actsearch::observer::{Event, Observer};
use actsearch::search::oneshot::SearchConfig;
use actsearch::search::sample::store::{Row, Store};
use actsearch::train::TrainConfig;
use actsearch::train::schedule::Schedule;

/// Write a synthetic CIFAR-10 in the official binary layout (`n` images per batch file).
pub fn synthetic_cifar10(dir: &Path, n: usize) {
    actsearch::data::synthetic::write_synthetic_cifar10(dir, n).expect("write synthetic CIFAR-10");
}

/// A small, fast training config on synthetic CIFAR-10 in `data_dir`.
pub fn tiny_config(data_dir: &Path, out: &Path, activation: &str, epochs: usize) -> TrainConfig {
    let formula = actsearch::space::resolve::resolve_activation(activation).expect("formula");
    TrainConfig {
        network: Network::Resnet8,
        activation_spec: activation.to_string(),
        activation: formula.to_string(),
        init_params: Default::default(),
        dataset: "cifar10".to_string(),
        data_dir: data_dir.to_path_buf(),
        epochs,
        steps: None,
        eval_interval: None,
        batch_size: 32,
        eval_batch_size: 100,
        lr: 0.05,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
        schedule: Schedule::Cosine,
        grad_clip: None,
        optimizer: Default::default(),
        warmup: 0.0,
        mlp: Default::default(),
        augment: true,
        train_portion: 0.8,
        subset: None,
        test_subset: None,
        requested: Default::default(),
        seed: 3,
        backend: "flex".to_string(),
        threads: 2,
        out: out.to_path_buf(),
        dropout: 0.0,
        translation: None,
        write_plan: false,
    }
}

/// Asserts a clean failure: exit code 1 or 2, one `error:` line mentioning `needle`, no panic.
pub fn assert_clean_error(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    assert!(errors[0].contains(needle), "error line {:?} does not mention {needle:?}", errors[0]);
}

/// The actsearch binary run with `args` in `cwd`, its output kept.
pub fn actsearch(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_actsearch")).args(args).current_dir(cwd).output().expect("run actsearch")
}

/// The rows of a sample-based search's store in `out`.
pub fn rows(out: &Path) -> Vec<Row> {
    Store::open(&out.join("search.db")).unwrap().rows().unwrap()
}

/// Rows without what differs between two runs of the same search (time, job ids).
pub fn comparable(rows: Vec<Row>) -> Vec<Row> {
    rows.into_iter().map(|r| Row { seconds: 0.0, job_id: None, ..r }).collect()
}

/// A one-shot search of ResNet-8 on synthetic CIFAR-10 in `data`, small enough for tests.
pub fn search_config(method: &str, data: &Path, out: &Path, space: &str, epochs: usize) -> SearchConfig {
    SearchConfig {
        method: method.to_string(),
        space: space.to_string(),
        network: Network::Resnet8,
        dataset: "cifar10".to_string(),
        data_dir: data.to_path_buf(),
        epochs,
        steps: None,
        eval_interval: None,
        dropout: 0.0,
        translation: None,
        batch_size: 16,
        lr: 0.025,
        lr_min: 0.001,
        momentum: 0.9,
        weight_decay: 3e-4,
        grad_clip: 5.0,
        arch_lr: 3e-3,
        arch_betas: (0.5, 0.999),
        arch_weight_decay: 1e-3,
        kl_scale: 1e-3,
        optimizer: Default::default(),
        warmup: 0.0,
        mlp: Default::default(),
        shared_cell: false,
        warm_start: None,
        warm_start_with: None,
        accumulate: 1,
        train_portion: 0.5,
        subset: None,
        test_subset: None,
        requested: Default::default(),
        augment: true,
        seed: 1,
        backend: "flex".to_string(),
        threads: 2,
        out: out.to_path_buf(),
    }
}

/// [`search_config`] on a vit-micro with the ViT recipe for the weights (AdamW, warm-up,
/// clipping at 1).
pub fn search_vit_config(method: &str, data: &Path, out: &Path, space: &str, epochs: usize) -> SearchConfig {
    SearchConfig {
        network: Network::VitMicro,
        optimizer: actsearch::train::config::Optimizer::Adamw,
        lr: 1e-3,
        lr_min: 0.0,
        momentum: 0.0,
        weight_decay: 0.05,
        grad_clip: 1.0,
        warmup: 0.3,
        ..search_config(method, data, out, space, epochs)
    }
}

/// Stops a run or search (as a kill would) at batch 1 of the given epoch.
pub struct StopAtEpoch(usize, AtomicBool);

impl StopAtEpoch {
    pub fn at(epoch: usize) -> StopAtEpoch {
        StopAtEpoch(epoch, AtomicBool::new(false))
    }
}

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

/// A Python that can import every module of `modules`: `ACTSEARCH_PYTHON`, else `python3`.
/// None when there is none: the caller skips its check, and says so on the terminal (written
/// past the test harness's capture, so that `cargo test` shows it). Under
/// `ACTSEARCH_REQUIRE_TORCH` (CI sets it, with its reference venv) a missing module fails the
/// test instead, so the parity checks cannot be skipped there.
pub fn python_with(test: &str, modules: &[&str]) -> Option<String> {
    let python = std::env::var("ACTSEARCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let import = format!("import {}", modules.join(", "));
    let out = Command::new(&python).args(["-c", &import]).output();
    if out.as_ref().is_ok_and(|o| o.status.success()) {
        return Some(python);
    }
    let why = match out {
        Ok(o) => String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string(),
        Err(e) => e.to_string(),
    };
    if std::env::var_os("ACTSEARCH_REQUIRE_TORCH").is_some() {
        panic!(
            "{test}: ACTSEARCH_REQUIRE_TORCH is set but `{python} -c '{import}'` fails ({why}): set ACTSEARCH_PYTHON to the reference venv (python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch==2.13.0 safetensors jax sacrebleu==2.6.0 tokenizers==0.22.2)"
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped: {python} cannot `{import}` (set ACTSEARCH_PYTHON to a Python that can, e.g. /tmp/torchref/bin/python)"
    );
    None
}

/// [`tiny_config`] for a vit-micro with the ViT recipe (AdamW, warm-up, clipping at 1).
pub fn tiny_vit_config(data_dir: &Path, out: &Path, activation: &str, epochs: usize) -> TrainConfig {
    let d = actsearch::train::config::Preset::Standard.defaults_for(Network::VitMicro).unwrap();
    TrainConfig {
        network: Network::VitMicro,
        lr: d.lr,
        momentum: d.momentum,
        weight_decay: d.weight_decay,
        grad_clip: d.grad_clip,
        optimizer: d.optimizer,
        warmup: 0.3,
        ..tiny_config(data_dir, out, activation, epochs)
    }
}

/// Runs the PyTorch twin `python/SCRIPT` on the `--write-plan` run in `run` and asserts that
/// every evaluation's `keys` in its `torch_errors.json` match our `errors.json` within 1e-3
/// (relative, or absolute below 1), and that both hold `evaluations` of them.
pub fn assert_twin_agrees(python: &str, script: &str, run: &Path, keys: &[&str], evaluations: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let twin = Command::new(python)
        .arg(root.join("python").join(script))
        .arg(run)
        .arg("--reference")
        .arg(root.join("../shared/reference"))
        .output()
        .unwrap();
    assert!(twin.status.success(), "the twin failed: {}", String::from_utf8_lossy(&twin.stderr));
    let json = |file: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join(file)).unwrap()).unwrap()
    };
    let (ours, theirs) = (json("errors.json"), json("torch_errors.json"));
    for key in keys {
        let values = |v: &serde_json::Value| -> Vec<f64> {
            v[key].as_array().unwrap_or_else(|| panic!("no {key}")).iter().map(|x| x.as_f64().unwrap()).collect()
        };
        let (a, b) = (values(&ours), values(&theirs));
        assert_eq!((a.len(), b.len()), (evaluations, evaluations), "{key}");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-3 * x.abs().max(1.0), "{key}: ours {a:?}, the twin's {b:?}");
        }
    }
}

/// The first `lines` lines of Tiny Shakespeare, written into `dir`.
pub fn shakespeare(dir: &Path, lines: usize) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("../shared/data/tinyshakespeare/input.txt")).unwrap();
    let head: String = text.split_inclusive('\n').take(lines).collect();
    let path = dir.join("shakespeare.txt");
    std::fs::write(&path, head).unwrap();
    path
}

/// A small translation folder in `dir/pairs`: the first `n` training pairs of Multi30k, and 24
/// validation and 24 test pairs, plain text (the test split named test_2016_flickr).
pub fn multi30k(dir: &Path, n: usize) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/multi30k");
    let folder = dir.join("pairs");
    std::fs::create_dir_all(&folder).unwrap();
    for (split, take) in [("train", n), ("val", 24), ("test_2016_flickr", 24)] {
        for lang in ["en", "de"] {
            let lines = actsearch::data::parallel::read_lines(&root.join(format!("{split}.{lang}.gz"))).unwrap();
            let text: String = lines.iter().take(take).map(|l| format!("{l}\n")).collect();
            std::fs::write(folder.join(format!("{split}.{lang}")), text).unwrap();
        }
    }
    folder
}

/// The lines of a search's `children.jsonl` without the children's seconds, which differ
/// between equal runs.
#[allow(dead_code)]
pub fn children_lines(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("children.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// Each of the first `rungs` rungs' results in a halving search's store, without their
/// seconds (which differ between equal runs).
#[allow(dead_code)]
pub fn rung_rows(out: &Path, rungs: usize) -> Vec<Vec<actsearch::search::sample::store::RungRow>> {
    let store = actsearch::search::sample::store::Store::open(&out.join("search.db")).unwrap();
    (0..rungs)
        .map(|k| {
            let mut v = store.rung_rows(k).unwrap();
            v.iter_mut().for_each(|r| r.seconds = 0.0);
            v
        })
        .collect()
}

/// A tracked leaf tensor of `values` in `shape`.
pub fn leaf<const D: usize>(
    values: &[f32],
    shape: [usize; D],
    device: &burn::prelude::Device,
) -> burn::prelude::Tensor<D> {
    burn::prelude::Tensor::<D>::from_data(burn::prelude::TensorData::new(values.to_vec(), shape), device).require_grad()
}

/// Asserts `got` is `want` within `tol`, relative with an absolute floor of 1.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs() / (w as f64).abs().max(1.0);
        assert!(err < tol, "{what}[{i}]: got {g}, expected {w} (error {err:.2e})");
    }
}
