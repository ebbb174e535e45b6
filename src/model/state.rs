//! Saving and loading weights by name.
//!
//! Names follow the `state_dict` of the PyTorch reference model in `python/resnet_torch.py`
//! (`stem.0.weight`, `stem.1.running_mean`, `blocks.3.short.0.weight`, `fc.weight`, ...), so
//! `safetensors.torch.load_file` + `load_state_dict(strict=True)` works. Burn stores a linear
//! weight as `[in, out]` and PyTorch as `[out, in]`; the transpose happens here and only here.

use std::collections::{BTreeMap, HashMap};
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

/// How a network's burn module paths become its PyTorch twin's `state_dict` names.
pub trait Naming {
    /// The PyTorch name of the tensor at burn path `path`.
    fn torch_name(&self, path: &str) -> String;
    /// Whether the tensor at `path` is a linear weight (burn keeps `[in, out]`, PyTorch
    /// `[out, in]`).
    fn transposed(&self, path: &str) -> bool;
}

/// The CIFAR ResNets' names ([`torch_name`]; the classifier `fc` is the one linear layer),
/// also used for the other modules saved by name (a search controller's state).
pub struct ResNetNames;

impl Naming for ResNetNames {
    fn torch_name(&self, path: &str) -> String {
        torch_name(path)
    }

    fn transposed(&self, path: &str) -> bool {
        is_linear_weight(path)
    }
}

/// Every tensor of `module` under the ResNets' PyTorch names, plus `num_batches_tracked` for
/// each BatchNorm (PyTorch's strict loading expects it).
pub fn state_dict<M: Module>(module: &M, batches_tracked: i64) -> Vec<NamedTensor> {
    state_dict_with(module, batches_tracked, &ResNetNames)
}

/// [`state_dict`] under the names `names` gives.
pub fn state_dict_with<M: Module>(module: &M, batches_tracked: i64, names: &dyn Naming) -> Vec<NamedTensor> {
    let mut collector = Collector { path: Vec::new(), out: Vec::new() };
    module.visit(&mut collector);
    let mut out = Vec::new();
    for (path, mut shape, mut values) in collector.out {
        if names.transposed(&path) {
            values = transpose(&values, shape[0], shape[1]);
            shape.swap(0, 1);
        }
        let name = names.torch_name(&path);
        let tracked = name.strip_suffix(".running_var").map(|prefix| format!("{prefix}.num_batches_tracked"));
        out.push(NamedTensor { name, shape, values: Values::F32(values) });
        if let Some(tracked) = tracked {
            out.push(NamedTensor { name: tracked, shape: vec![], values: Values::I64(vec![batches_tracked]) });
        }
    }
    out
}

/// Replace every tensor of `module` by the one of the same PyTorch name (the ResNets' names)
/// in `tensors`. Missing names or shape mismatches are errors that name the tensor.
pub fn load_state_dict<M: Module>(module: M, tensors: &HashMap<String, NamedTensor>) -> Result<M> {
    load_state_dict_with(module, tensors, &ResNetNames)
}

/// [`load_state_dict`] under the names `names` gives.
pub fn load_state_dict_with<M: Module>(
    module: M,
    tensors: &HashMap<String, NamedTensor>,
    names: &dyn Naming,
) -> Result<M> {
    let mut loader = Loader { path: Vec::new(), tensors, names, error: None };
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
    names: &'a dyn Naming,
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
        let name = self.names.torch_name(&path);
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.dims();
        let loaded = match self.tensors.get(&name) {
            None => Err(anyhow!("the weights file has no tensor '{name}'")),
            Some(t) => host_values(t, &shape[..], self.names.transposed(&path)),
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

/// The metadata entry holding the file's checksum (see [`write_safetensors`]).
pub const CHECKSUM_KEY: &str = "checksum";

/// Write tensors (and string metadata) to a `.safetensors` file, atomically.
///
/// The file is byte-for-byte reproducible: the header's tensors and metadata are in sorted
/// order (the `safetensors` crate writes its metadata map in hash order). Its metadata carries
/// a [`CHECKSUM_KEY`] entry, the xxh3 of the header without that entry plus every data byte,
/// which [`read_safetensors`] verifies.
pub fn write_safetensors(path: &Path, tensors: &[NamedTensor], metadata: BTreeMap<String, String>) -> Result<()> {
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
    let mut metadata: HashMap<String, String> = metadata.into_iter().collect();
    metadata.remove(CHECKSUM_KEY);
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|e| anyhow!("cannot encode tensors for {}: {e}", path.display()))?;
    let (mut header, data) =
        split_file(&file).map_err(|e| anyhow!("cannot encode tensors for {}: {e}", path.display()))?;
    let checksum = file_checksum(&header, data)?;
    header.metadata.insert(CHECKSUM_KEY.to_string(), checksum);
    let mut text = serde_json::to_string(&header)?.into_bytes();
    // Keep the data 8-byte aligned, as the safetensors crate does.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    crate::files::write_atomic(path, &out)
}

/// A safetensors header in a fixed (sorted) order.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    #[serde(rename = "__metadata__", default)]
    metadata: BTreeMap<String, String>,
    #[serde(flatten)]
    tensors: BTreeMap<String, serde_json::Value>,
}

/// The header and the data section of a safetensors file's bytes.
fn split_file(bytes: &[u8]) -> Result<(Header, &[u8])> {
    let len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let Some(len) = len.and_then(|n| usize::try_from(n).ok()).filter(|&n| n <= bytes.len() - 8) else {
        bail!("it is too short for its header");
    };
    let header: Header =
        serde_json::from_slice(&bytes[8..8 + len]).map_err(|e| anyhow!("its header is not valid ({e})"))?;
    Ok((header, &bytes[8 + len..]))
}

/// The xxh3 of `header` without its checksum entry, then of `data`.
fn file_checksum(header: &Header, data: &[u8]) -> Result<String> {
    let mut metadata = header.metadata.clone();
    metadata.remove(CHECKSUM_KEY);
    let canonical = serde_json::to_string(&Header { metadata, tensors: header.tensors.clone() })?;
    let mut sum = crate::files::Checksum::new();
    sum.update(canonical.as_bytes());
    sum.update(data);
    Ok(sum.hex())
}

/// Read every tensor of a `.safetensors` file written by [`write_safetensors`]. A corrupt file
/// (unreadable, without its checksum, or its checksum does not match its contents) is an error
/// naming it.
pub fn read_safetensors(path: &Path) -> Result<(HashMap<String, NamedTensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let corrupt = |e: &dyn std::fmt::Display| anyhow!("{} is corrupt or not a safetensors file ({e})", path.display());
    let (header, data) = split_file(&bytes).map_err(|e| corrupt(&e))?;
    let Some(stored) = header.metadata.get(CHECKSUM_KEY) else {
        return Err(corrupt(&"its header has no checksum: it was not written by actsearch, or its header is damaged"));
    };
    let actual = file_checksum(&header, data)?;
    if &actual != stored {
        return Err(corrupt(&format!("its checksum is {actual} but {stored} was recorded when it was written")));
    }
    let file = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(&e))?;
    let mut metadata: HashMap<String, String> = header.metadata.into_iter().collect();
    metadata.remove(CHECKSUM_KEY);
    let mut out = HashMap::new();
    for (name, view) in file.tensors() {
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => {
                Values::F32(data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
            Dtype::I64 => Values::I64(
                data.chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
            ),
            other => bail!("{}: tensor '{name}' has unsupported dtype {other:?}", path.display()),
        };
        out.insert(name.clone(), NamedTensor { name, shape: view.shape().to_vec(), values });
    }
    Ok((out, metadata))
}

#[cfg(test)]
mod file_tests {
    use super::*;

    fn tensors() -> Vec<NamedTensor> {
        vec![
            NamedTensor { name: "b.weight".into(), shape: vec![2, 2], values: Values::F32(vec![1.0, -2.0, 3.5, 0.25]) },
            NamedTensor { name: "a.num_batches_tracked".into(), shape: vec![], values: Values::I64(vec![7]) },
        ]
    }

    fn metadata() -> BTreeMap<String, String> {
        (0..20).map(|i| (format!("key{i}"), format!("value {i}"))).collect()
    }

    #[test]
    fn identical_writes_give_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
        write_safetensors(&a, &tensors(), metadata()).unwrap();
        // A different insertion order of the same entries must not matter.
        let reversed: BTreeMap<String, String> = metadata().into_iter().rev().collect();
        write_safetensors(&b, &tensors(), reversed).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let (read, meta) = read_safetensors(&a).unwrap();
        assert_eq!(read["b.weight"], tensors()[0]);
        assert_eq!(meta.len(), 20, "the checksum entry is not handed back: {meta:?}");
        // The file is still a plain safetensors file.
        let bytes = std::fs::read(&a).unwrap();
        assert_eq!(SafeTensors::deserialize(&bytes).unwrap().len(), 2);
    }

    #[test]
    fn any_flipped_byte_is_a_corrupt_file_that_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        write_safetensors(&path, &tensors(), metadata()).unwrap();
        let good = std::fs::read(&path).unwrap();
        for at in (0..good.len()).step_by(3) {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let Err(err) = read_safetensors(&path) else {
                // A flip inside the header's padding or a JSON-neutral spot may still parse to
                // the same content; then the values must be unchanged.
                let (read, _) = read_safetensors(&path).unwrap();
                assert_eq!(read["b.weight"], tensors()[0], "byte {at}");
                continue;
            };
            assert!(err.to_string().contains("c.safetensors"), "byte {at}: {err}");
        }
    }
}
