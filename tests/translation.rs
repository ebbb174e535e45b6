//! The translation task as a user runs it: `eval --network transformer-micro` on a folder of
//! parallel files (errors.json judged by test BLEU with the validation loss per evaluation,
//! translations.txt, tokenizer.json, the printed summary), a stopped run resumed to the
//! uninterrupted result with dropout on and a beam of 2, and one clear error for each kind of
//! bad input.

mod common;

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicUsize, Ordering};

use actsearch::model::Network;
use actsearch::observer::{Event, Observer, Silent};
use actsearch::space::resolve::resolve_activation as resolve;
use actsearch::train::config::{Preset, TranslationConfig};
use actsearch::train::{TrainConfig, train};
use burn::prelude::*;
use common::{actsearch, assert_clean_error, multi30k};

/// `actsearch eval` of gelu on a transformer-micro on `folder`, into `dir/NAME`, with `extra`.
fn eval_translation(dir: &Path, folder: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    let folder = folder.to_str().unwrap();
    let mut args = vec![
        "eval",
        "--network",
        "transformer-micro",
        "--activation",
        "gelu",
        "--dataset",
        folder,
        "--data-dir",
        "data",
        "--vocab-size",
        "400",
        "--batch-size",
        "16",
        "--steps",
        "8",
        "--eval-interval",
        "4",
        "--out",
        name,
    ];
    args.extend_from_slice(extra);
    actsearch(&args, dir)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A short run: errors.json has the validation loss at every evaluation, falling, and one
/// validation and test BLEU at the end, judged by test BLEU (higher is better);
/// translations.txt holds every test sentence with its reference and hypothesis; the run's
/// tokenizer.json is the cached vocabulary; the log ends with three examples.
#[test]
fn a_translation_eval_is_judged_by_test_bleu_and_writes_its_translations() {
    let dir = tempfile::tempdir().unwrap();
    let folder = multi30k(dir.path(), 400);
    let out = eval_translation(dir.path(), &folder, "straight", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("test BLEU"), "{stdout}");
    let run = dir.path().join("straight");
    let errors = json(&run.join("errors.json"));
    assert_eq!((errors["metric"].as_str(), errors["higher_is_better"].as_bool()), (Some("test_bleu"), Some(true)));
    assert_eq!(errors["step"], serde_json::json!([4, 8]));
    let curve = |key: &str| -> Vec<f64> {
        errors[key].as_array().unwrap_or_else(|| panic!("{key}")).iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let loss = curve("valid_loss");
    assert!(loss[1] < loss[0] && loss[1] < 400f64.ln(), "validation losses {loss:?}");
    for key in ["valid_bleu", "test_bleu"] {
        let bleu = curve(key);
        assert!(bleu.len() == 1 && (0.0..=100.0).contains(&bleu[0]), "{key} {bleu:?}");
    }
    let config = json(&run.join("config.json"));
    let t = &config["translation"];
    assert_eq!((t["source"].as_str(), t["target"].as_str()), (Some("en"), Some("de")));
    assert_eq!((t["test_set"].as_str(), t["beam"].as_u64()), (Some("test_2016_flickr"), Some(1)));
    let translations = std::fs::read_to_string(run.join("translations.txt")).unwrap();
    assert_eq!(translations.matches("\nhypothesis: ").count() + translations.starts_with("hypothesis: ") as usize, 24);
    assert!(
        translations.starts_with("source: A man in an orange hat starring at something.\nreference: "),
        "{translations}"
    );
    let cached: Vec<PathBuf> =
        std::fs::read_dir(dir.path().join("data/bpe")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(std::fs::read(&cached[0]).unwrap(), std::fs::read(run.join("tokenizer.json")).unwrap());
    let log = std::fs::read_to_string(run.join("log.log")).unwrap();
    assert!(log.contains("example 3: ") && log.contains("test BLEU"), "{log}");
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

/// A run stopped after its first evaluation and resumed gives the same losses, BLEU,
/// translations and weights as an uninterrupted one, with dropout on and a beam of 2 (the
/// only test of this binary that trains in its own process, so no other run draws from the
/// backend's generator).
#[test]
fn a_resumed_translation_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let folder = multi30k(dir.path(), 300);
    let d = Preset::Standard.defaults_for(Network::TransformerMicro).unwrap();
    let config = |name: &str| TrainConfig {
        network: Network::TransformerMicro,
        activation_spec: "gelu".into(),
        activation: resolve("gelu").unwrap().to_string(),
        dataset: folder.to_string_lossy().into_owned(),
        epochs: 0,
        steps: Some(8),
        eval_interval: Some(4),
        batch_size: 16,
        lr: d.lr,
        momentum: d.momentum,
        weight_decay: d.weight_decay,
        grad_clip: d.grad_clip,
        optimizer: d.optimizer,
        warmup: d.warmup,
        augment: false,
        train_portion: 1.0,
        translation: Some(TranslationConfig {
            source: String::new(),
            target: String::new(),
            test_set: String::new(),
            vocab_size: 400,
            beam: 2,
            label_smoothing: TranslationConfig::LABEL_SMOOTHING,
        }),
        dropout: 0.1,
        ..common::tiny_config(&dir.path().join("data"), &dir.path().join(name), "gelu", 1)
    };
    let formula = resolve("gelu").unwrap();
    let device = Device::flex();
    let a = train(&config("a"), &formula, &device, false, &Silent).unwrap();
    let stop = StopAfter(6, AtomicUsize::new(0));
    assert!(train(&config("b"), &formula, &device, false, &stop).is_err());
    let b = train(&config("b"), &formula, &device, true, &Silent).unwrap();
    assert_eq!(a.history.step, vec![4, 8]);
    assert_eq!(a.history.train_loss, b.history.train_loss);
    assert_eq!(a.history.valid_loss, b.history.valid_loss);
    assert_eq!((a.history.valid_bleu.len(), a.history.test_bleu.len()), (1, 1));
    assert_eq!((&a.history.valid_bleu, &a.history.test_bleu), (&b.history.valid_bleu, &b.history.test_bleu));
    for file in ["translations.txt", "tokenizer.json", "model.safetensors"] {
        assert!(std::fs::read(a.out.join(file)).unwrap() == std::fs::read(b.out.join(file)).unwrap(), "{file} differs");
    }
    // Dropout is on: another seed of the masks gives other losses.
    let c = train(&TrainConfig { seed: 4, ..config("c") }, &formula, &device, false, &Silent).unwrap();
    assert_ne!(a.history.train_loss, c.history.train_loss);
}

/// `eval --write-plan --dropout 0` on a transformer-micro, then `python/translate_torch.py` on
/// its folder: from the same initial weights, on the same batches (the Python tokenizer's ids
/// checked against ours), with the same Adam, warm-up, cosine and label smoothing, the twin's
/// losses at each evaluation are ours, and its greedy translations score our BLEU.
#[test]
fn translate_torch_trains_on_the_plan_to_our_numbers() {
    let Some(python) = common::python_with("translation twin", &["torch", "safetensors", "tokenizers", "sacrebleu"])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = multi30k(dir.path(), 200);
    let out = eval_translation(dir.path(), &folder, "run", &["--write-plan", "--dropout", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = dir.path().join("run");
    common::assert_twin_agrees(&python, "translate_torch.py", &run, &["train_loss", "valid_loss"], 2);
    let (ours, theirs) = (json(&run.join("errors.json")), json(&run.join("torch_errors.json")));
    assert_eq!(ours["step"], theirs["step"]);
    for key in ["valid_bleu", "test_bleu"] {
        let (a, b) = (ours[key][0].as_f64().unwrap(), theirs[key][0].as_f64().unwrap());
        assert!((a - b).abs() < 1e-6, "{key}: ours {a}, the twin's {b}");
    }
}

/// A one-shot GRAFS search on a transformer-micro, the cell in every MLP of the encoder and
/// the decoder: it counts steps, keeps the genotype of the lowest validation loss, records the
/// direction it read, and eval trains what it found.
#[test]
fn a_one_shot_search_on_a_translation_model_finds_a_genotype_eval_trains() {
    let dir = tempfile::tempdir().unwrap();
    let folder = multi30k(dir.path(), 300);
    let f = folder.to_str().unwrap();
    let args = [
        "search",
        "--method",
        "grafs",
        "--space",
        "small",
        "--network",
        "transformer-micro",
        "--dataset",
        f,
        "--data-dir",
        "data",
        "--vocab-size",
        "400",
        "--batch-size",
        "8",
        "--steps",
        "6",
        "--eval-interval",
        "3",
        "--out",
        "search",
    ];
    let out = actsearch(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let search = dir.path().join("search");
    let errors = json(&search.join("errors.json"));
    assert_eq!((errors["metric"].as_str(), errors["higher_is_better"].as_bool()), (Some("valid_loss"), Some(false)));
    assert_eq!(errors["step"], serde_json::json!([3, 6]));
    let log = std::fs::read_to_string(search.join("log.log")).unwrap();
    assert!(log.contains("pairs train the weights") && log.contains("lowest validation loss"), "{log}");
    let config = json(&search.join("config.json"));
    assert_eq!(
        (config["translation"]["source"].as_str(), config["translation"]["target"].as_str()),
        (Some("en"), Some("de"))
    );
    let genotype = search.join("genotype.json");
    let eval = actsearch(
        &[
            "eval",
            "--network",
            "transformer-micro",
            "--activation",
            genotype.to_str().unwrap(),
            "--dataset",
            f,
            "--data-dir",
            "data",
            "--vocab-size",
            "400",
            "--batch-size",
            "8",
            "--steps",
            "2",
            "--out",
            "found",
        ],
        dir.path(),
    );
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
}

/// A sample-based search whose children are transformer-micros: each child trains with the
/// translation recipe and is rewarded with its validation BLEU as a fraction (floor 0).
#[test]
fn translation_children_are_rewarded_with_their_validation_bleu() {
    let dir = tempfile::tempdir().unwrap();
    let folder = multi30k(dir.path(), 200);
    let f = folder.to_str().unwrap();
    let args = [
        "search",
        "--method",
        "random",
        "--space",
        "core1",
        "--budget",
        "2",
        "--batch-children",
        "2",
        "--child-network",
        "transformer-micro",
        "--child-steps",
        "4",
        "--batch-size",
        "8",
        "--vocab-size",
        "300",
        "--dataset",
        f,
        "--data-dir",
        "data",
        "--out",
        "search",
    ];
    let out = actsearch(&args, dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("by validation BLEU (as a fraction) of the child"), "{stdout}");
    let rows = common::rows(&dir.path().join("search"));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!((0.0..=1.0).contains(&row.reward), "{row:?}");
    }
    let log = std::fs::read_to_string(dir.path().join("search/children/0/log.log")).unwrap();
    assert!(log.contains("validation BLEU") && log.contains("pairs"), "{log}");
    let spec = std::fs::read_to_string(dir.path().join("search/children/0/spec.json")).unwrap();
    assert!(spec.contains("\"translation\"") && spec.contains("\"vocab_size\": 300"), "{spec}");
}

/// Each kind of bad input is one clear error, and nothing is written.
#[test]
fn bad_translation_input_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let folder = multi30k(dir.path(), 30);
    let d = dir.path();
    // A folder whose val sides differ in length, and one without a test split.
    let uneven = d.join("uneven");
    let bare = d.join("bare");
    for (target, drop) in [(&uneven, "val.de"), (&bare, "test_2016_flickr.de")] {
        std::fs::create_dir_all(target).unwrap();
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if name == drop && target == &bare {
                continue;
            }
            let mut text = std::fs::read_to_string(&path).unwrap();
            if name == drop {
                text += "Noch ein Satz.\n";
            }
            std::fs::write(target.join(name), text).unwrap();
        }
    }
    let text_file = d.join("story.txt");
    std::fs::write(&text_file, "Once upon a time.\n".repeat(50)).unwrap();
    let f = folder.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--dataset", uneven.to_str().unwrap()], "must be parallel"),
        (vec!["--dataset", bare.to_str().unwrap()], "has no test split"),
        (vec!["--dataset", f, "--source", "fr"], "--source fr"),
        (vec!["--dataset", f, "--beam", "0"], "--beam"),
        (vec!["--dataset", "cifar10"], "is an image dataset"),
        (vec!["--dataset", text_file.to_str().unwrap()], "is a file"),
        (vec!["--dataset", f, "--epochs", "2"], "use --steps"),
        (vec!["--dataset", f, "--subset", "10"], "--subset applies to image datasets"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["eval", "--network", "transformer-micro", "--activation", "gelu", "--out", "run"];
        args.extend_from_slice(&extra);
        assert_clean_error(&actsearch(&args, d), needle);
        assert!(!d.join("run").exists(), "{extra:?} wrote its folder");
    }
    // The reverse: a translation flag for another network, and a folder for a GPT.
    let out = actsearch(&["eval", "--activation", "relu", "--beam", "4"], d);
    assert_clean_error(&out, "--beam is for the translation models");
    let out = actsearch(&["search", "--method", "darts", "--space", "small", "--source", "en"], d);
    assert_clean_error(&out, "--source is for the translation models");

    let out = actsearch(&["eval", "--network", "gpt-micro", "--activation", "gelu", "--dataset", f], d);
    assert_clean_error(&out, "is a folder");
}
