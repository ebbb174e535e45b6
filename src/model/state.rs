//! Saving and loading weights by name.
//!
//! Names follow the `state_dict` of the PyTorch reference model in `python/resnet_torch.py`
//! (`stem.0.weight`, `stem.1.running_mean`, `blocks.3.short.0.weight`, `fc.weight`, ...), so
//! `safetensors.torch.load_file` + `load_state_dict(strict=True)` works. Burn stores a linear
//! weight as `[in, out]` and PyTorch as `[out, in]`; the transpose happens here and only here.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// A named host tensor, the unit of every weights or checkpoint file.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor's values on the host, as f32.
pub fn host_f32<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
}

/// The PyTorch name of a burn module path (`blocks.0.bn1.gamma` → `blocks.0.bn1.weight`).
pub fn torch_name(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('.').collect();
    let n = parts.len();
    let is_bn = n >= 2 && (parts[n - 2].starts_with("bn") || parts[n - 2] == "stem_bn");
    if is_bn {
        match parts[n - 1] {
            "gamma" => parts[n - 1] = "weight",
            "beta" => parts[n - 1] = "bias",
            _ => {}
        }
    }
    let joined = parts.join(".");
    joined
        .replacen("stem_conv.", "stem.0.", 1)
        .replacen("stem_bn.", "stem.1.", 1)
        .replace("short.conv.", "short.0.")
        .replace("short.bn.", "short.1.")
}

/// Whether a burn path is a PyTorch-transposed linear weight.
fn is_linear_weight(path: &str) -> bool {
    path == "fc.weight"
}

/// Every tensor of `module` under PyTorch names, plus `num_batches_tracked` for each
/// BatchNorm (PyTorch's strict loading expects it).
pub fn state_dict<M: Module>(module: &M, batches_tracked: i64) -> Vec<NamedTensor> {
    let mut collector = Collector { path: Vec::new(), out: Vec::new() };
    module.visit(&mut collector);
    let mut out = Vec::new();
    for (path, mut shape, mut values) in collector.out {
        if is_linear_weight(&path) {
            values = transpose(&values, shape[0], shape[1]);
            shape.swap(0, 1);
        }
        let name = torch_name(&path);
        let tracked = name.strip_suffix(".running_var").map(|prefix| format!("{prefix}.num_batches_tracked"));
        out.push(NamedTensor { name, shape, values: Values::F32(values) });
        if let Some(tracked) = tracked {
            out.push(NamedTensor { name: tracked, shape: vec![], values: Values::I64(vec![batches_tracked]) });
        }
    }
    out
}

/// Replace every tensor of `module` by the one of the same PyTorch name in `tensors`.
/// Missing names or shape mismatches are errors that name the tensor.
pub fn load_state_dict<M: Module>(module: M, tensors: &HashMap<String, NamedTensor>) -> Result<M> {
    let mut loader = Loader { path: Vec::new(), tensors, error: None };
    let module = module.map(&mut loader);
    match loader.error {
        Some(e) => Err(e),
        None => Ok(module),
    }
}

struct Collector {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let values = host_f32(tensor);
        self.out.push((self.path.join("."), shape, values));
    }
}

struct Loader<'a> {
    path: Vec<String>,
    tensors: &'a HashMap<String, NamedTensor>,
    error: Option<anyhow::Error>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let path = self.path.join(".");
        let name = torch_name(&path);
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.dims();
        let loaded = match self.tensors.get(&name) {
            None => Err(anyhow!("the weights file has no tensor '{name}'")),
            Some(t) => host_values(t, &shape[..], is_linear_weight(&path)),
        };
        match loaded {
            Ok(values) => {
                let require_grad = tensor.is_require_grad();
                let device = tensor.device();
                let mut new = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
                if require_grad {
                    new = new.require_grad();
                }
                Param::from_mapped_value(id, new, mapper)
            }
            Err(e) => {
                self.error = Some(e);
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
    }
}

/// The values of `t` laid out for a burn tensor of `shape`.
fn host_values(t: &NamedTensor, shape: &[usize], transposed: bool) -> Result<Vec<f32>> {
    let Values::F32(values) = &t.values else {
        bail!("tensor '{}' has the wrong dtype (expected f32)", t.name);
    };
    let expected: Vec<usize> = if transposed { vec![shape[1], shape[0]] } else { shape.to_vec() };
    if t.shape != expected {
        bail!("tensor '{}' has shape {:?} but the model expects {:?}", t.name, t.shape, expected);
    }
    Ok(if transposed { transpose(values, expected[0], expected[1]) } else { values.clone() })
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Write tensors (and string metadata) to a `.safetensors` file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[NamedTensor], metadata: HashMap<String, String>) -> Result<()> {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| match &t.values {
            Values::F32(v) => {
                (t.name.clone(), Dtype::F32, t.shape.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
            Values::I64(v) => {
                (t.name.clone(), Dtype::I64, t.shape.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect())
            }
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, dtype, shape, data)| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow!("cannot encode tensors for {}: {e}", path.display()))?;
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(views, Some(metadata), &tmp)
        .map_err(|e| anyhow!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", tmp.display()))?;
    Ok(())
}

/// Read every tensor of a `.safetensors` file. A corrupt file is an error naming it.
pub fn read_safetensors(path: &Path) -> Result<(HashMap<String, NamedTensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let corrupt = |e: safetensors::SafeTensorError| {
        anyhow!("{} is not a valid safetensors file ({e}); delete it or point to another file", path.display())
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
    let mut out = HashMap::new();
    for (name, view) in file.tensors() {
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => {
                Values::F32(data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
            }
            Dtype::I64 => {
                Values::I64(data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
            }
            other => bail!("{}: tensor '{name}' has unsupported dtype {other:?}", path.display()),
        };
        out.insert(name.clone(), NamedTensor { name, shape: view.shape().to_vec(), values });
    }
    Ok((out, metadata))
}
