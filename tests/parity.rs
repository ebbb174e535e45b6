//! Our networks against their PyTorch twins on the same weights: a trained `model.safetensors`
//! loads into the twin with `strict=True`, and both give the same logits on the same inputs.
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
    let model = ResNet::new(Network::Resnet8, &formula, 10, 0, &device).load_state_dict(&tensors).unwrap().valid();
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
