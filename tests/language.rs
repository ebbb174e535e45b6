//! The character language model as a user runs it: `eval --network gpt-micro` on a text file
//! (errors.json judged by the validation loss, samples.txt, the printed summary), a killed run
//! resumed to the uninterrupted result, the errors for data of the wrong task, and the PyTorch
//! twin (`python/gpt_torch.py`) trained on the same windows to the same losses.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use actsearch::model::Network;
use actsearch::observer::{Event, Observer, Silent};
use actsearch::space::resolve::resolve_activation as resolve;
use actsearch::train::config::Preset;
use actsearch::train::{TrainConfig, train};
use burn::prelude::*;
use common::{actsearch, assert_clean_error, shakespeare};

/// A gpt-micro run of `steps` steps with nanoGPT's recipe on `text`, in batches of 4 windows.
fn gpt_config(text: &Path, out: &Path, steps: usize, interval: usize) -> TrainConfig {
    let d = Preset::Standard.defaults_for(Network::GptMicro).unwrap();
    let activation = "gelu";
    TrainConfig {
        network: Network::GptMicro,
        activation_spec: activation.into(),
        activation: resolve(activation).unwrap().to_string(),
        dataset: text.to_string_lossy().into_owned(),
        epochs: 0,
        steps: Some(steps),
        eval_interval: Some(interval),
        batch_size: 4,
        lr: d.lr,
        momentum: d.momentum,
        weight_decay: d.weight_decay,
        grad_clip: d.grad_clip,
        optimizer: d.optimizer,
        warmup: 0.1,
        augment: false,
        train_portion: 1.0,
        ..common::tiny_config(text.parent().unwrap(), out, activation, 1)
    }
}

/// `actsearch eval` of gelu on a gpt-micro on `text`, into `dir/run`, with `extra` flags.
fn eval_gpt(dir: &Path, text: &Path, extra: &[&str]) -> std::process::Output {
    let text = text.to_str().unwrap();
    let mut args = vec!["eval", "--network", "gpt-micro", "--activation", "gelu", "--dataset", text, "--out", "run"];
    args.extend_from_slice(extra);
    actsearch(&args, dir)
}

/// Stops a run (as a kill would) after its `at`-th training batch.
struct StopAfter(usize, AtomicUsize);

impl Observer for StopAfter {
    fn event(&self, event: Event) {
        if let Event::Batch(_) = event {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn should_stop(&self) -> bool {
        self.1.load(Ordering::SeqCst) >= self.0
    }
}

/// `eval --network gpt-micro` on a text file: errors.json is judged by the validation loss
/// (lower is better) with bits per character and the step of each evaluation beside it, the
/// loss falls, samples.txt holds 500 generated characters of the text's vocabulary, and the
/// printed line says what was measured.
#[test]
fn a_gpt_eval_is_judged_by_its_validation_loss_and_writes_samples() {
    let dir = tempfile::tempdir().unwrap();
    let text = shakespeare(dir.path(), 600);
    let out =
        eval_gpt(dir.path(), &text, &["--steps", "40", "--eval-interval", "20", "--batch-size", "8", "--lr", "3e-3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("validation loss") && stdout.contains("lower is better"), "{stdout}");
    let run = dir.path().join("run");
    let errors: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("errors.json")).unwrap()).unwrap();
    assert_eq!(errors["metric"], "valid_loss");
    assert_eq!(errors["higher_is_better"], false);
    assert_eq!(errors["step"], serde_json::json!([20, 40]));
    let curve = |key: &str| -> Vec<f64> {
        errors[key].as_array().unwrap_or_else(|| panic!("{key}")).iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let (loss, bpc) = (curve("valid_loss"), curve("valid_bpc"));
    assert!(loss[1] < loss[0] && loss[1] < 0.85 * 65f64.ln(), "validation losses {loss:?}");
    assert!((bpc[1] - loss[1] / std::f64::consts::LN_2).abs() < 1e-12);
    assert!(curve("test_acc").is_empty(), "a language model has no test split");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["steps"].as_u64(), config["eval_interval"].as_u64()), (Some(40), Some(20)));
    let samples = std::fs::read_to_string(run.join("samples.txt")).unwrap();
    let source = std::fs::read_to_string(&text).unwrap();
    assert_eq!(samples.chars().count(), 501, "the first character, then 500 generated");
    assert!(samples.chars().all(|c| source.contains(c)), "{samples}");
    let log = std::fs::read_to_string(run.join("log.log")).unwrap();
    assert!(log.contains("bits per character") && log.contains("samples.txt"), "{log}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["metric"], "valid_loss");
    assert_eq!(summary["valid_loss"][0].as_f64(), Some(loss[1]));
}

/// A GPT run stopped between evaluations and resumed trains on the same windows to the same
/// losses and weights as an uninterrupted one, without dropout and with it.
#[test]
fn a_resumed_gpt_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let text = shakespeare(dir.path(), 300);
    let formula = resolve("gelu").unwrap();
    let device = Device::flex();
    let a = train(&gpt_config(&text, &dir.path().join("straight"), 12, 4), &formula, &device, false, &Silent).unwrap();
    let killed = gpt_config(&text, &dir.path().join("killed"), 12, 4);
    let stop = StopAfter(6, AtomicUsize::new(0));
    assert!(train(&killed, &formula, &device, false, &stop).is_err());
    let b = train(&killed, &formula, &device, true, &Silent).unwrap();
    assert_eq!(a.history.step, vec![4, 8, 12]);
    assert_eq!(a.history.valid_loss, b.history.valid_loss);
    assert_eq!(a.history.train_loss, b.history.train_loss);
    let bytes = |o: &actsearch::train::RunOutcome, f: &str| std::fs::read(o.out.join(f)).unwrap();
    assert!(bytes(&a, "model.safetensors") == bytes(&b, "model.safetensors"), "the weights differ after resume");
    assert_eq!(bytes(&a, "samples.txt"), bytes(&b, "samples.txt"));

    // With gpt-mini's dropout of 0.2 (the composed attention path, whose masks are seeded by
    // the step), a resumed run still equals an uninterrupted one, and dropout changes the run.
    let dropped = |name: &str| TrainConfig { dropout: 0.2, ..gpt_config(&text, &dir.path().join(name), 12, 4) };
    let c = train(&dropped("dropped"), &formula, &device, false, &Silent).unwrap();
    let stop = StopAfter(6, AtomicUsize::new(0));
    assert!(train(&dropped("dropped-killed"), &formula, &device, false, &stop).is_err());
    let d = train(&dropped("dropped-killed"), &formula, &device, true, &Silent).unwrap();
    assert_eq!(c.history.train_loss, d.history.train_loss);
    assert_eq!(c.history.valid_loss, d.history.valid_loss);
    assert!(bytes(&c, "model.safetensors") == bytes(&d, "model.safetensors"), "the weights differ after resume");
    assert_ne!(a.history.train_loss, c.history.train_loss, "dropout 0.2 trained as dropout 0");
}

/// Data of the wrong task, and flags that do not apply to a language model, are one clear
/// error each, and nothing is written.
#[test]
fn wrong_data_and_flags_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let text = shakespeare(dir.path(), 50);
    let text = text.to_str().unwrap();
    std::fs::write(dir.path().join("binary.txt"), [0u8, 159, 146, 150, 1, 2]).unwrap();
    std::fs::write(dir.path().join("empty.txt"), "").unwrap();
    std::fs::write(dir.path().join("short.txt"), "To be, or not to be").unwrap();
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    let gpt = |extra: &[&str]| {
        let mut args = vec!["eval", "--network", "gpt-micro", "--activation", "gelu", "--out", "run"];
        args.extend_from_slice(extra);
        actsearch(&args, dir.path())
    };
    let cases: [(Vec<&str>, &str); 9] = [
        (vec!["--dataset", "cifar10"], "is an image dataset"),
        (vec!["--dataset", "folder"], "is a folder"),
        (vec!["--dataset", "missing.txt"], "does not exist"),
        (vec!["--dataset", "binary.txt"], "is not UTF-8 text"),
        (vec!["--dataset", "empty.txt"], "is empty"),
        (vec!["--dataset", "short.txt"], "shorter than one window"),
        (vec!["--dataset", text, "--epochs", "3"], "use --steps"),
        (vec!["--dataset", text, "--subset", "100"], "--subset applies to image datasets"),
        (vec!["--dataset", text, "--momentum", "0.9"], "betas 0.9, 0.99"),
    ];
    for (extra, needle) in cases {
        assert_clean_error(&gpt(&extra), needle);
        assert!(!dir.path().join("run").exists(), "{extra:?} wrote its folder");
    }
    // The reverse: an image network given a text file.
    let out = actsearch(&["eval", "--network", "resnet8", "--activation", "relu", "--dataset", text], dir.path());
    assert_clean_error(&out, "--network gpt-micro or gpt-mini");
    let out = actsearch(&["eval", "--activation", "relu", "--eval-interval", "5"], dir.path());
    assert_clean_error(&out, "give --steps N too");
}

/// `eval --write-plan` on a gpt-micro, then `python/gpt_torch.py` on its folder: from the same
/// initial weights, on the same windows, with the same AdamW betas, warm-up, cosine to a tenth
/// and clipping, the twin's training and validation losses at each evaluation are ours.
#[test]
fn gpt_torch_trains_on_the_plan_to_our_losses() {
    let Some(python) = common::python_with("gpt twin", &["torch", "safetensors"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let text = shakespeare(dir.path(), 400);
    let run =
        eval_gpt(dir.path(), &text, &["--steps", "20", "--eval-interval", "10", "--batch-size", "6", "--write-plan"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    common::assert_twin_agrees(&python, "gpt_torch.py", &dir.path().join("run"), &["train_loss", "valid_loss"], 2);
    let json = |file: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run").join(file)).unwrap()).unwrap()
    };
    assert_eq!(json("errors.json")["step"], json("torch_errors.json")["step"]);
}

/// A sample-based search whose children are gpt-micros: each child trains with the GPT recipe
/// on the text, its reward is its negated validation loss (between -ln(vocabulary), the
/// floor of a child that did not train, and 0), and the search names what it ranks by.
#[test]
fn gpt_children_are_rewarded_with_their_negated_validation_loss() {
    let dir = tempfile::tempdir().unwrap();
    let text = shakespeare(dir.path(), 300);
    let out = actsearch(
        &[
            "search",
            "--method",
            "random",
            "--space",
            "core1",
            "--budget",
            "3",
            "--batch-children",
            "3",
            "--child-network",
            "gpt-micro",
            "--child-steps",
            "6",
            "--batch-size",
            "4",
            "--dataset",
            text.to_str().unwrap(),
            "--out",
            "search",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("by the negated validation loss of the child"), "{stdout}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("search/config.json")).unwrap()).unwrap();
    let floor = config["child"]["reward_floor"].as_f64().unwrap();
    let vocab = std::fs::read_to_string(&text).unwrap().chars().collect::<std::collections::BTreeSet<_>>().len();
    assert!((floor + (vocab as f64).ln()).abs() < 1e-12, "floor {floor}, vocabulary {vocab}");
    let rows = common::rows(&dir.path().join("search"));
    assert!(!rows.is_empty());
    for row in &rows {
        match row.status {
            actsearch::search::sample::child::Status::Ok => {
                assert!(row.reward < 0.0 && row.reward >= floor, "{row:?}")
            }
            _ => assert_eq!(row.reward, floor, "{row:?}"),
        }
    }
    // The children trained a GPT: its checkpoint holds the reference's names.
    let spec = std::fs::read_to_string(dir.path().join("search/children/0/spec.json")).unwrap();
    assert!(spec.contains("\"network\": \"gpt-micro\"") && spec.contains("reward_floor"), "{spec}");
}

/// A one-shot GRAFS search on a gpt-micro, the cell in every MLP: it counts steps (the warm
/// start, the shrinking and the alphas' records in evaluation intervals), warms up with GELU,
/// keeps the genotype of the lowest validation loss, writes a genotype that eval trains on the
/// GPT, and a killed search resumes to the uninterrupted result.
#[test]
fn a_gpt_one_shot_search_keeps_its_lowest_loss_genotype_and_resumes_to_the_same_result() {
    use actsearch::search::oneshot::search;
    let dir = tempfile::tempdir().unwrap();
    let text = shakespeare(dir.path(), 300);
    let config = |name: &str| actsearch::search::oneshot::SearchConfig {
        network: Network::GptMicro,
        dataset: text.to_string_lossy().into_owned(),
        epochs: 0,
        steps: Some(9),
        eval_interval: Some(3),
        batch_size: 4,
        optimizer: actsearch::train::config::Optimizer::Adamw,
        lr: 1e-3,
        lr_min: 0.0,
        momentum: 0.0,
        weight_decay: 0.1,
        grad_clip: 1.0,
        warmup: 0.1,
        augment: false,
        shared_cell: true,
        ..common::search_config("grafs", dir.path(), &dir.path().join(name), "small", 0)
    };
    let device = Device::flex();
    let a = search(&config("a"), &device, false, &Silent).unwrap();
    let h = &a.history;
    assert_eq!((h.metric.as_str(), h.higher_is_better), ("valid_loss", false));
    assert_eq!(h.step, vec![3, 6, 9]);
    assert!(h.valid_loss.iter().all(|l| l.is_finite() && *l < 65f64.ln() + 1.0), "{h:?}");
    let best = (0..3).min_by(|&i, &j| h.valid_loss[i].total_cmp(&h.valid_loss[j])).unwrap();
    assert_eq!(a.genotype.formula, h.formula[best], "GRAFS keeps the lowest validation loss's genotype");
    let log = std::fs::read_to_string(dir.path().join("a/log.log")).unwrap();
    assert!(log.contains("steps 1-3 (evaluation interval 1 of 1) of warm start"), "{log}");
    assert!(log.contains("the weights train with gelu") && log.contains("lowest validation loss"), "{log}");
    let alphas = std::fs::read_to_string(dir.path().join("a/alphas.jsonl")).unwrap();
    let steps: Vec<u64> = alphas
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![3, 6, 9]);

    // eval trains the found genotype on the GPT.
    let genotype = dir.path().join("a/genotype.json");
    let formula = resolve(genotype.to_str().unwrap()).unwrap();
    let mut eval = gpt_config(&text, &dir.path().join("eval"), 2, 2);
    eval.activation_spec = genotype.to_string_lossy().into_owned();
    eval.activation = formula.to_string();
    let trained = train(&eval, &formula, &device, false, &Silent).unwrap();
    assert!(trained.history.valid_loss[0].is_finite());

    let stop = StopAfter(5, AtomicUsize::new(0));
    assert!(search(&config("b"), &device, false, &stop).is_err());
    let b = search(&config("b"), &device, true, &Silent).unwrap();
    assert_eq!(a.history.train_loss, b.history.train_loss);
    assert_eq!(a.history.valid_loss, b.history.valid_loss);
    assert_eq!(a.genotype, b.genotype);
    let (wa, _) = actsearch::model::state::read_safetensors(&dir.path().join("a/model.safetensors")).unwrap();
    let (wb, _) = actsearch::model::state::read_safetensors(&dir.path().join("b/model.safetensors")).unwrap();
    assert_eq!(wa, wb);
    assert_eq!(alphas, std::fs::read_to_string(dir.path().join("b/alphas.jsonl")).unwrap());
}

/// The flags of the other task's searches are refused with what the network counts in.
#[test]
fn a_search_refuses_the_other_tasks_flags() {
    let dir = tempfile::tempdir().unwrap();
    let text = shakespeare(dir.path(), 50);
    let text = text.to_str().unwrap();
    let search = |extra: &[&str]| {
        let mut args = vec!["search", "--method", "grafs", "--space", "small", "--out", "run"];
        args.extend_from_slice(extra);
        actsearch(&args, dir.path())
    };
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--network", "gpt-micro", "--dataset", text, "--epochs", "3"], "use --steps N"),
        (vec!["--network", "gpt-micro", "--dataset", text, "--subset", "10"], "--subset applies to image datasets"),
        (vec!["--network", "gpt-micro", "--dataset", "cifar10"], "is an image dataset"),
        (vec!["--network", "resnet8", "--steps", "10"], "counts --epochs"),
        (
            vec!["--network", "gpt-micro", "--dataset", text, "--then-eval", "--eval-network", "resnet8"],
            "read different data",
        ),
    ];
    for (extra, needle) in cases {
        assert_clean_error(&search(&extra), needle);
        assert!(!dir.path().join("run").exists(), "{extra:?} wrote its folder");
    }
    let warm = search(&[
        "--network",
        "gpt-micro",
        "--dataset",
        text,
        "--steps",
        "20",
        "--eval-interval",
        "10",
        "--warm-start",
        "2",
    ]);
    assert_clean_error(&warm, "leaves no evaluation interval for the mixed cell");
}
