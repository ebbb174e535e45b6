//! Fuzz-style tests: random and mutated inputs to every reader of user-given or on-disk text
//! (the formula parser, genotype.json, config.json, errors.json, safetensors files, run
//! folders for `report`). Each must answer with a value or an error, never a panic; a
//! formula that parses must print back to itself and evaluate without panicking.

use std::path::Path;

use actsearch::expr::Formula;
use actsearch::model::state::{NamedTensor, Values, read_safetensors, write_safetensors};
use actsearch::space::cell::CellSpace;
use actsearch::space::resolve::{InitParams, resolve_activation, site_values};
use actsearch::train::history::History;
use actsearch::train::run_dir::RunDir;
use proptest::prelude::*;

/// Pieces formulas are made of, so that random strings often get deep into the parser.
const TOKENS: &[&str] = &[
    "x",
    "b",
    "b1",
    "b2",
    "beta",
    "x1",
    "1",
    "0",
    "2.5",
    "1e-3",
    "1e309",
    "-",
    "+",
    "*",
    "/",
    "^",
    "^2",
    "^-3",
    "(",
    ")",
    ",",
    "|",
    " ",
    "max(",
    "min(",
    "sin(",
    "exp(",
    "log(",
    "sqrt(",
    "sigmoid(",
    "relu(",
    "silu",
    "mish",
    "abs(",
    "sinc(",
    "erf(",
    "leaky_relu(",
    "gelu(",
    "nan",
    "inf",
    "é",
    "\u{0}",
    "\n",
    "99999999999999999999",
    ".",
    "e",
];

fn token_string() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat())
}

/// A valid text with a few bytes inserted, deleted or replaced.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len().max(1);
    prop::collection::vec((0..len, any::<u8>(), 0..3u8), 1..6).prop_map(move |edits| {
        let mut bytes = valid.clone();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len());
            match kind {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => bytes.push(byte),
            }
        }
        bytes
    })
}

fn check_formula(text: &str) {
    let Ok(f) = Formula::parse(text) else { return };
    let printed = f.to_string();
    let again = Formula::parse(&printed).unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}: {e}"));
    assert_eq!(again, f, "{text:?} -> {printed:?}");
    let canonical = f.canonical();
    let _ = Formula::parse(&canonical.to_string()).expect("canonical form parses");
    let params = vec![1.0f64; f.num_params()];
    for x in [-3.0, -0.0, 0.0, 1e-30, 2.0, f64::NAN] {
        let _ = f.eval(x, &params);
    }
    let _ = f.fingerprint();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn formulas_from_tokens_never_panic(text in token_string()) {
        check_formula(&text);
        let _ = actsearch::expr::resolve(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,60}") {
        check_formula(&text);
    }

    #[test]
    fn mutated_formulas_never_panic(bytes in mutated(b"max(x*sigmoid(b*x), min(|x|^3, b1 - sinc(x)/2))".to_vec())) {
        check_formula(&String::from_utf8_lossy(&bytes));
    }
}

/// A valid genotype.json of the grafs space with learned values, as bytes.
fn genotype_bytes() -> Vec<u8> {
    let space = CellSpace::parse("grafs").unwrap();
    let mut g = space.genotype(&[7, 6, 6, 0, 8, 1]).unwrap();
    for p in &mut g.params {
        p.learned = Some(vec![vec![0.5, 1.5], vec![2.0, 2.0, 2.0]]);
    }
    serde_json::to_vec_pretty(&g).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_genotypes_never_panic(bytes in mutated(genotype_bytes())) {
        let dir = tempfile::tempdir().unwrap();
        let spec = write(dir.path(), "genotype.json", &bytes);
        if let Ok(formula) = resolve_activation(&spec) {
            for mode in [InitParams::Init, InitParams::Learned, InitParams::LearnedMean] {
                let _ = site_values(&spec, &formula, mode, &[2, 3]);
                let _ = site_values(&spec, &formula, mode, &[]);
            }
        }
    }

    #[test]
    fn mutated_errors_and_configs_never_panic(
        errors in mutated(br#"{"seed": 0, "network": "resnet8", "dataset": "cifar10", "activation": "relu(x)", "params": 10,
            "train_acc": [10.0, 20.0], "train_loss": [2.3, 2.0], "train_acc_top5": [50, 60], "valid_acc": [], "valid_loss": [],
            "valid_acc_top5": [], "test_acc": [11.5, 21.5], "test_loss": [2.2, 1.9], "test_acc_top5": [51, 61],
            "runtime": [1, 2], "train_time": [1, 1], "lr": [0.1, 0.05]}"#.to_vec()),
        config in mutated(br#"{"network": "resnet8", "activation": "relu(x)", "epochs": 2, "seed": 0, "threads": 2}"#.to_vec()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        write(&run, "errors.json", &errors);
        write(&run, "config.json", &config);
        let _ = History::read(&run.join("errors.json"));
        let now = serde_json::json!({"network": "resnet8", "activation": "relu(x)", "epochs": 2, "seed": 0, "threads": 4});
        let _ = RunDir::open(&run, &now, true);
        let _ = RunDir::open(&run, &now, false);
        let _ = actsearch::report::runs::load(&[dir.path().to_path_buf()]);
        // Nothing a reader did changed the files.
        prop_assert_eq!(std::fs::read(run.join("errors.json")).unwrap(), errors);
        prop_assert_eq!(std::fs::read(run.join("config.json")).unwrap(), config);
    }
}

fn safetensors_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let tensors = vec![
        NamedTensor { name: "fc.weight".into(), shape: vec![2, 3], values: Values::F32(vec![0.5; 6]) },
        NamedTensor { name: "bn.num_batches_tracked".into(), shape: vec![], values: Values::I64(vec![3]) },
    ];
    let metadata = [("epoch".to_string(), "2".to_string())].into_iter().collect();
    write_safetensors(&path, &tensors, metadata).unwrap();
    std::fs::read(&path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_safetensors_never_panic_and_never_load_changed(bytes in mutated(safetensors_bytes())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok((tensors, _)) = read_safetensors(&path) {
            // Whatever loads is what was written: the checksum lets nothing else through.
            prop_assert_eq!(&tensors["fc.weight"].values, &Values::F32(vec![0.5; 6]));
        }
    }
}
