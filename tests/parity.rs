//! Our networks against their PyTorch twins on the same weights: a trained `model.safetensors`
//! loads into the twin with `strict=True`, and both give the same logits on the same inputs;
//! and `python/vit_torch.py` trains on an `eval --write-plan` run's data to the same numbers.
//! Skipped with a note where torch is not installed, except under `ACTSEARCH_REQUIRE_TORCH`
//! (CI), where that fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use actsearch::model::state::{NamedTensor, Values, host_f32, read_safetensors, write_safetensors};
use actsearch::model::{Net, Network, ResNet};
use actsearch::observer::Silent;
use burn::prelude::*;
use rand::{Rng, SeedableRng};

/// Runs `python/resnet_torch.py`'s `ResNet` on `inputs.safetensors` with the weights of
/// `model`, strictly loaded and in eval mode, and writes its logits to `logits.safetensors`.
const TWIN_LOGITS: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import torch
from safetensors.torch import load_file, save_file
from resnet_torch import ResNet, DEPTHS
state = load_file(sys.argv[2])
model = ResNet(DEPTHS[sys.argv[3]], state["fc.weight"].shape[0], 0)
model.load_state_dict(state, strict=True)
model.eval()
with torch.no_grad():
    logits = model(load_file(sys.argv[4])["x"])
save_file({"logits": logits.contiguous()}, sys.argv[5])
"#;

#[test]
fn a_trained_resnet_gives_the_pytorch_twins_logits() {
    let Some(python) = common::python_with("resnet parity", &["torch", "safetensors"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("run"));
    common::synthetic_cifar10(&data, 40);
    // One epoch moves the weights and BatchNorm's running statistics away from their init.
    let config = common::tiny_config(&data, &out, "relu", 1);
    let formula = actsearch::expr::Formula::parse("relu(x)").unwrap();
    actsearch::train::train(&config, &formula, &Device::flex(), false, &Silent).unwrap();
    let model_file = out.join("model.safetensors");

    let device = Device::flex();
    let (tensors, _) = read_safetensors(&model_file).unwrap();
    let model =
        ResNet::new(Network::Resnet8, &formula, 10, 0, &device).unwrap().load_state_dict(&tensors).unwrap().valid();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let shape = [6, 3, 32, 32];
    let x: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| rng.random_range(-2.0..2.0)).collect();
    let ours = host_f32(model.forward(Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &device)));
    let inputs = tmp.path().join("inputs.safetensors");
    let input = NamedTensor { name: "x".into(), shape: shape.to_vec(), values: Values::F32(x) };
    write_safetensors(&inputs, &[input], BTreeMap::new()).unwrap();

    let script = tmp.path().join("twin.py");
    std::fs::write(&script, TWIN_LOGITS).unwrap();
    let logits = tmp.path().join("logits.safetensors");
    let python_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let run = Command::new(&python)
        .arg(&script)
        .args([&python_dir, &model_file, Path::new("resnet8"), &inputs, &logits])
        .output()
        .unwrap();
    assert!(run.status.success(), "the twin failed: {}", String::from_utf8_lossy(&run.stderr));
    let bytes = std::fs::read(&logits).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let theirs = file.tensor("logits").unwrap();
    assert_eq!((theirs.shape(), theirs.dtype()), (&[6, 10][..], safetensors::Dtype::F32));
    let theirs: Vec<f32> = theirs.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let scale = theirs.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() <= 1e-4 * scale, "logit {i}: ours {a}, PyTorch {b} (scale {scale})");
    }
}

/// Loads our ViT's weights into `transformers_ref.ViT` strictly (a formula with parameters
/// through the module `export --layout features` writes for it), then redraws every parameter
/// from N(0, 0.5^2) (at the init's 0.02, attention is nearly uniform and a wrong scale would
/// hide), and writes those weights and the model's logits on our inputs.
const VIT_TWIN: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
import transformers_ref as tr

ours, act, mlp, inputs, out = sys.argv[2:7]
if act == "gelu":
    act = tr.named("gelu")
else:  # the module `actsearch export --to pytorch --layout features` wrote beside this script
    sys.path.insert(0, sys.argv[7])
    import exported
    act = exported.Activation
model = tr.ViT("vit-micro", act, classes=10, mlp=mlp)
model.load_state_dict(load_file(ours), strict=True)
torch.manual_seed(0)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.5)
model.eval()
with torch.no_grad():
    logits = model(load_file(inputs)["x"])
state = {k: v.contiguous() for k, v in model.state_dict().items()}
state["logits"] = logits.contiguous()
save_file(state, out)
"#;

const GPT_TWIN: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import torch
from safetensors.torch import load_file, save_file
import transformers_ref as tr

ours, act, mlp, inputs, out = sys.argv[2:7]
if act == "gelu":
    act = tr.named("gelu")
else:  # the module `actsearch export --to pytorch --layout features` wrote beside this script
    sys.path.insert(0, sys.argv[7])
    import exported
    act = exported.Activation
model = tr.GPT("gpt-micro", act, vocab=65, mlp=mlp)
model.load_state_dict(load_file(ours), strict=True)
torch.manual_seed(0)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.3)
model.eval()
with torch.no_grad():
    logits = model(load_file(inputs)["ids"].long())
state = {k: v.contiguous() for k, v in model.state_dict().items()}
state["logits"] = logits.reshape(-1, logits.shape[-1]).contiguous()
save_file(state, out)
"#;

const SEQ2SEQ_TWIN: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import torch
from safetensors.torch import load_file, save_file
import transformers_ref as tr

ours, act, mlp, inputs, out = sys.argv[2:7]
if act == "gelu":
    act = tr.named("gelu")
else:
    sys.path.insert(0, sys.argv[7])
    import exported
    act = exported.Activation
model = tr.Seq2Seq("transformer-micro", act, 50, 50, mlp=mlp)
model.load_state_dict(load_file(ours), strict=True)
torch.manual_seed(0)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.3)
model.eval()
x = load_file(inputs)
with torch.no_grad():
    logits = model(x["src"].long(), x["tgt"].long())
state = {k: v.contiguous() for k, v in model.state_dict().items()}
state["logits"] = logits.reshape(-1, logits.shape[-1]).contiguous()
save_file(state, out)
"#;

/// Every tensor of a safetensors file written by another program (no checksum of ours).
fn plain_safetensors(path: &Path) -> std::collections::HashMap<String, NamedTensor> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name.clone(), NamedTensor { name, shape: view.shape().to_vec(), values: Values::F32(values) })
        })
        .collect()
}

/// Runs `script` (one of the `*_TWIN` scripts) on our weights `ours` with `activation` (gelu,
/// or the module `export --to pytorch` writes for it) and `mlp_name`, on `inputs`: the
/// reference's re-drawn weights, loaded strictly, and its logits in eval mode.
fn run_twin(
    python: &str,
    script: &str,
    ours: &[NamedTensor],
    activation: &str,
    mlp_name: &str,
    inputs: &[NamedTensor],
    tmp: &Path,
) -> (std::collections::HashMap<String, NamedTensor>, Vec<f32>) {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
    let ours_file = tmp.join("ours.safetensors");
    write_safetensors(&ours_file, ours, BTreeMap::new()).unwrap();
    let inputs_file = tmp.join("inputs.safetensors");
    write_safetensors(&inputs_file, inputs, BTreeMap::new()).unwrap();
    let script_file = tmp.join("twin.py");
    std::fs::write(&script_file, script).unwrap();
    let theirs_file = tmp.join("theirs.safetensors");
    let act = if activation == "gelu(x)" { "gelu" } else { "exported" };
    let formula = actsearch::expr::Formula::parse(activation).unwrap();
    let canonical = formula.canonical();
    let exported = actsearch::export::Exported {
        formula: &canonical,
        values: &vec![1.0; canonical.num_params()],
        values_from: "its initial value",
        source: activation,
        layout: actsearch::space::genotype::SiteLayout::Features,
    };
    let code = actsearch::export::export(&exported, actsearch::export::Target::Pytorch);
    std::fs::write(tmp.join("exported.py"), code).unwrap();
    let run = Command::new(python)
        .arg(&script_file)
        .arg(&reference)
        .args([&ours_file, Path::new(act), Path::new(mlp_name), &inputs_file, &theirs_file, tmp])
        .output()
        .unwrap();
    assert!(run.status.success(), "{activation} {mlp_name}: {}", String::from_utf8_lossy(&run.stderr));
    let mut theirs = plain_safetensors(&theirs_file);
    let Values::F32(logits) = theirs.remove("logits").unwrap().values else { unreachable!() };
    (theirs, logits)
}

/// Our logits `got` are the reference's within 1e-4 of their largest magnitude, which is
/// large enough to test something.
fn assert_same_logits(got: &[f32], logits: &[f32], what: &str) {
    assert_eq!(got.len(), logits.len(), "{what}");
    let scale = logits.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(logits).enumerate() {
        assert!((a - b).abs() <= 1e-4 * scale, "{what} logit {i}: ours {a}, reference {b}");
    }
    assert!(scale > 1.0, "{what}: logits too small to test anything (largest {scale})");
}

/// The activations the transformers' parity tests run: GELU in a standard MLP, and a Swish
/// with a per-feature parameter in a gated one.
const TRANSFORMER_CASES: [(&str, actsearch::model::Mlp, &str); 2] = [
    ("gelu(x)", actsearch::model::Mlp::Standard, "standard"),
    ("x*sigmoid(b*x)", actsearch::model::Mlp::Gated, "gated"),
];

/// Integer ids as the f32 tensor `name` (safetensors for the twin scripts).
fn ids_tensor(name: &str, ids: &[i64], shape: &[usize]) -> NamedTensor {
    NamedTensor {
        name: name.into(),
        shape: shape.to_vec(),
        values: Values::F32(ids.iter().map(|&i| i as f32).collect()),
    }
}

#[test]
fn the_vit_gives_the_reference_vits_logits_and_loads_strictly() {
    use actsearch::model::vit::{Vit, VitSize};
    let Some(python) = common::python_with("vit parity", &["torch", "safetensors"]) else { return };
    let device = Device::flex();
    for (activation, mlp, mlp_name) in TRANSFORMER_CASES {
        let tmp = tempfile::tempdir().unwrap();
        let formula = actsearch::expr::Formula::parse(activation).unwrap();
        let ours = Vit::with_sites(VitSize::VitMicro, mlp, 10, 0, &device, |width| {
            actsearch::model::Activation::new(&formula, width, &device)
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let shape = [3, 3, 32, 32];
        let x: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| rng.random_range(-2.0..2.0)).collect();
        let input = NamedTensor { name: "x".into(), shape: shape.to_vec(), values: Values::F32(x.clone()) };
        let (theirs, logits) =
            run_twin(&python, VIT_TWIN, &ours.state_dict(0), activation, mlp_name, &[input], tmp.path());
        let model = ours.load_state_dict(&theirs).unwrap().valid();
        let got = host_f32(model.forward(Tensor::<4>::from_data(TensorData::new(x, shape), &device)));
        assert_same_logits(&got, &logits, &format!("vit {activation} {mlp_name}"));
    }
}

/// Our gpt-micro loads into `transformers_ref.GPT` with `strict=True`, and with the
/// reference's (re-drawn) weights gives its logits, causal mask and tied head included.
#[test]
fn the_gpt_gives_the_reference_gpts_logits_and_loads_strictly() {
    use actsearch::model::gpt::{Gpt, GptSize};
    let Some(python) = common::python_with("gpt parity", &["torch", "safetensors"]) else { return };
    let device = Device::flex();
    for (activation, mlp, mlp_name) in TRANSFORMER_CASES {
        let tmp = tempfile::tempdir().unwrap();
        let formula = actsearch::expr::Formula::parse(activation).unwrap();
        let ours = Gpt::with_sites(GptSize::GptMicro, mlp, 65, 0, &device, |width| {
            actsearch::model::Activation::new(&formula, width, &device)
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let shape = [3, 64];
        let ids: Vec<i64> = (0..shape.iter().product::<usize>()).map(|_| rng.random_range(0..65)).collect();
        let input = ids_tensor("ids", &ids, &shape);
        let (theirs, logits) =
            run_twin(&python, GPT_TWIN, &ours.state_dict(0), activation, mlp_name, &[input], tmp.path());
        let model = ours.load_state_dict(&theirs).unwrap().valid();
        let got = host_f32(model.forward(Tensor::<2, Int>::from_data(TensorData::new(ids, shape), &device)));
        assert_eq!(got.len(), 3 * 64 * 65);
        assert_same_logits(&got, &logits, &format!("gpt {activation} {mlp_name}"));
    }
}

/// Our transformer-micro loads into `transformers_ref.Seq2Seq` with `strict=True`, and with
/// the reference's (re-drawn) weights gives its logits on padded pairs: the padding masks of
/// the encoder, the decoder and the cross-attention, the causal mask, the sinusoidal
/// positions and the tied head included.
#[test]
fn the_seq2seq_gives_the_reference_seq2seqs_logits_and_loads_strictly() {
    use actsearch::model::seq2seq::{Seq2Seq, Seq2SeqInput, Seq2SeqSize};
    let Some(python) = common::python_with("seq2seq parity", &["torch", "safetensors"]) else { return };
    let device = Device::flex();
    let vocab = 50;
    for (activation, mlp, mlp_name) in TRANSFORMER_CASES {
        let tmp = tempfile::tempdir().unwrap();
        let formula = actsearch::expr::Formula::parse(activation).unwrap();
        let ours = Seq2Seq::with_sites(Seq2SeqSize::TransformerMicro, mlp, vocab, vocab, 0.0, 0, &device, |width| {
            actsearch::model::Activation::new(&formula, width, &device)
        });
        // Three pairs of different lengths, padded with 0; every row starts with a real token.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (batch, src_len, tgt_len) = (3, 9, 7);
        let mut row = |len: usize, real: usize, first: i64| -> Vec<i64> {
            (0..len)
                .map(|i| {
                    if i == 0 {
                        first
                    } else if i < real {
                        rng.random_range(4..vocab as i64)
                    } else {
                        0
                    }
                })
                .collect()
        };
        let src: Vec<i64> = [9, 5, 2].iter().flat_map(|&n| row(src_len, n, 7)).collect();
        let tgt: Vec<i64> = [7, 3, 6].iter().flat_map(|&n| row(tgt_len, n, 2)).collect();
        let inputs = [ids_tensor("src", &src, &[batch, src_len]), ids_tensor("tgt", &tgt, &[batch, tgt_len])];
        let (theirs, logits) =
            run_twin(&python, SEQ2SEQ_TWIN, &ours.state_dict(0), activation, mlp_name, &inputs, tmp.path());
        let model = ours.load_state_dict(&theirs).unwrap().valid();
        let input = Seq2SeqInput {
            batch,
            src_len,
            tgt_len,
            src: src.iter().map(|&i| i as u32).collect(),
            tgt: tgt.iter().map(|&i| i as u32).collect(),
        };
        let got = host_f32(model.forward(input));
        assert_eq!(got.len(), batch * tgt_len * vocab);
        // Rows of padded target positions are not compared: the reference's are as
        // meaningless as ours (a padded query's attention is not masked).
        let real = |i: usize| tgt[i / vocab] != 0 || (i / vocab).is_multiple_of(tgt_len);
        let pick = |v: &[f32]| v.iter().enumerate().filter(|(i, _)| real(*i)).map(|(_, x)| *x).collect::<Vec<_>>();
        assert_same_logits(&pick(&got), &pick(&logits), &format!("seq2seq {activation} {mlp_name}"));
    }
}

/// `eval --write-plan` on a vit-micro, then `python/vit_torch.py` on its folder: from the same
/// initial weights, on the same augmented batches in the same order, with the same AdamW,
/// warm-up, cosine and clipping, the twin's per-epoch losses and accuracies are ours (2
/// epochs of two batches each, the second batch 32 images).
#[test]
fn vit_torch_trains_on_the_plan_to_our_numbers() {
    let Some(python) = common::python_with("vit twin", &["torch", "safetensors"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    common::synthetic_cifar10(&dir.path().join("data"), 40);
    let run = common::actsearch(
        &[
            "eval",
            "--network",
            "vit-micro",
            "--activation",
            "gelu",
            "--epochs",
            "2",
            "--subset",
            "160",
            "--test-subset",
            "64",
            "--dataset",
            "cifar10",
            "--data-dir",
            "data",
            "--out",
            "run",
            "--write-plan",
        ],
        dir.path(),
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    common::assert_twin_agrees(
        &python,
        "vit_torch.py",
        &dir.path().join("run"),
        &["train_loss", "test_loss", "test_acc"],
        2,
    );
}
