//! The speed workloads that actsearch is measured on, with exactly the shapes and
//! optimizers of `../shared/reference/pytorch_bench.py`:
//!
//! - `w1`: one training step of CIFAR ResNet-20 with ReLU (batch 128, SGD lr 0.1, momentum
//!   0.9, wd 5e-4); 3 warm-up steps, 10 timed.
//! - `w2`: one first-order DARTS step on ResNet-8 whose 7 sites are `small` cells (batch 64):
//!   Adam step of the alphas on a validation batch, then SGD step of the weights (clip 5) on a
//!   training batch; 2 warm-up steps, 8 timed.
//!
//! - `w4`: one training step of a sample-based search's child: ResNet-20, batch 128, SGD as in
//!   w1, every activation `x*sigmoid(b*x)` with a per-channel `b`; 3 warm-up steps, 10 timed.
//! - `w5`: ResNet-20 inference (no autodiff, batch norm with its running statistics) on a
//!   batch of 500, ending in the argmax; 2 warm-up steps, 10 timed.
//!
//! - `w3`: one training epoch of ResNet-8 with ReLU on 10000 random uint8 images through the
//!   real loader (shuffle, pad-crop-flip augmentation, normalization on the loader's thread,
//!   batch 128), SGD as in w1; 1 warm-up epoch, 3 timed.
//!
//! - `w7`: one training step of vit-micro with GELU (batch 128; AdamW lr 1e-3, weight decay
//!   0.05 on the parameters of two or more dimensions, the gradient norm clipped at 1); 3
//!   warm-up steps, 10 timed.
//!
//! - `w6`: one training step of gpt-micro with GELU over a vocabulary of 65 (batch 12 x 64
//!   characters; AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on the parameters of two or
//!   more dimensions, the gradient norm clipped at 1); 3 warm-up steps, 10 timed.
//!
//! - `w8`: one training step of transformer-micro with ReLU over a vocabulary of 8000 (64
//!   pairs of 24 source and 24 target tokens; Adam lr 5e-4, betas (0.9, 0.98), label
//!   smoothing 0.1, no clipping); 3 warm-up steps, 10 timed.
//!
//! Inputs are random with a fixed seed: only speed is measured.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::{IMAGE_BYTES, ImageSet, LoaderConfig, Normalization, batches};
use crate::expr::named::resolve;
use crate::kernels::cross_entropy::CrossEntropy;
use crate::model::init::Init;
use crate::model::seq2seq::{Seq2Seq, Seq2SeqInput, Seq2SeqSize};
use crate::model::{Activation, Gpt, GptSize, MixedCell, Mlp, Net, Network, ResNet, Vit, VitSize};
use crate::search::oneshot::mixing::{Method, Mixer, Pass};
use crate::space::cell::CellSpace;
use crate::train::adam::{Adam, AdamConfig};
use crate::train::sgd::{Sgd, SgdConfig};
use crate::train::steps::to_tensors;
use crate::train::update::{Grads, Group, names_where};

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    W1,
    W2,
    W3,
    W4,
    W5,
    W6,
    W7,
    W8,
}

impl Workload {
    pub fn parse(name: &str) -> Result<Vec<Workload>> {
        Ok(match name {
            "w1" => vec![Workload::W1],
            "w2" => vec![Workload::W2],
            "w3" => vec![Workload::W3],
            "w4" => vec![Workload::W4],
            "w5" => vec![Workload::W5],
            "w6" => vec![Workload::W6],
            "w7" => vec![Workload::W7],
            "w8" => vec![Workload::W8],
            "all" => vec![
                Workload::W1,
                Workload::W2,
                Workload::W3,
                Workload::W4,
                Workload::W5,
                Workload::W6,
                Workload::W7,
                Workload::W8,
            ],
            _ => bail!("unknown workload '{name}': use w1, w2, w3, w4, w5, w6, w7, w8 or all"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::W4 => "w4",
            Workload::W5 => "w5",
            Workload::W6 => "w6",
            Workload::W7 => "w7",
            Workload::W8 => "w8",
        }
    }
}

/// One workload's timings, as the reference script prints them plus our peak memory.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub workload: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub steps: usize,
    pub threads: usize,
    /// Peak resident set size of this process so far, in MB.
    pub peak_rss_mb: f64,
    /// Process CPU time over wall time during the timed steps (200 = two cores busy).
    pub cpu_percent: f64,
}

/// Run `workload` on `device` (plain, not autodiff); `threads` is only recorded.
pub fn run(workload: Workload, device: &Device, threads: usize) -> Result<Timing> {
    let (times, cpu_percent) = match workload {
        Workload::W1 => w1(device)?,
        Workload::W2 => w2(device)?,
        Workload::W3 => w3(device)?,
        Workload::W4 => training_step(device, "x*sigmoid(b*x)")?,
        Workload::W5 => w5(device)?,
        Workload::W6 => w6(device)?,
        Workload::W7 => w7(device)?,
        Workload::W8 => w8(device)?,
    };
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(Timing {
        workload: workload.name().to_string(),
        median_ms: round2(median(&times)),
        min_ms: round2(min),
        steps: times.len(),
        threads,
        peak_rss_mb: round2(peak_rss_mb()),
        cpu_percent: cpu_percent.round(),
    })
}

/// This machine's CPU model (`/proc/cpuinfo`'s first `model name`; "unknown CPU" where there
/// is none).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// The median of `values` (NaN for none).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Milliseconds of each of `steps` calls of `step` after `warmup` untimed ones, and the CPU
/// utilization (percent) over the timed calls.
fn timed(warmup: usize, steps: usize, mut step: impl FnMut() -> Result<()>) -> Result<(Vec<f64>, f64)> {
    let mut times = Vec::with_capacity(steps);
    let (mut cpu_start, mut wall_start) = (0.0, Instant::now());
    for i in 0..warmup + steps {
        if i == warmup {
            (cpu_start, wall_start) = (cpu_seconds(), Instant::now());
        }
        let start = Instant::now();
        step()?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let cpu = 100.0 * (cpu_seconds() - cpu_start) / wall_start.elapsed().as_secs_f64().max(1e-9);
    Ok((times, cpu))
}

/// User + system CPU time of this process in seconds (from /proc; 0 where unavailable).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports in USER_HZ, which is 100 on every mainstream architecture.
    (ticks(11) + ticks(12)) / 100.0
}

/// Random images `[n, 3, 32, 32]` and labels in 0..10 (as the loss takes them).
fn batch(rng: &mut ChaCha8Rng, n: usize, device: &Device) -> (Tensor<4>, Vec<i64>) {
    let images: Vec<f32> = (0..n * 3 * 32 * 32).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..10)).collect();
    (Tensor::from_data(TensorData::new(images, [n, 3, 32, 32]), device), labels)
}

fn w6(device: &Device) -> Result<(Vec<f64>, f64)> {
    let device = device.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let gelu = resolve("gelu")?;
    let vocab = 65;
    let model = Gpt::with_sites(GptSize::GptMicro, Mlp::Standard, vocab, 0, &device, |width| {
        Activation::new(&gelu, width, &device)
    });
    let (rows, len) = (12, 64);
    let ids = |rng: &mut ChaCha8Rng| (0..rows * len).map(|_| rng.random_range(0..vocab as i64)).collect::<Vec<i64>>();
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids(&mut rng), [rows, len]), &device);
    adamw_steps(model, x, ids(&mut rng), AdamWork { betas: (0.9, 0.99), weight_decay: 0.1, ..AdamWork::VIT })
}

fn w7(device: &Device) -> Result<(Vec<f64>, f64)> {
    let device = device.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let gelu = resolve("gelu")?;
    let model = Vit::with_sites(VitSize::VitMicro, Mlp::Standard, 10, 0, &device, |width| {
        Activation::new(&gelu, width, &device)
    });
    let (x, y) = batch(&mut rng, 128, &device);
    adamw_steps(model, x, y, AdamWork::VIT)
}

fn w8(device: &Device) -> Result<(Vec<f64>, f64)> {
    let device = device.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let relu = resolve("relu")?;
    let vocab = 8000;
    let model = Seq2Seq::with_sites(Seq2SeqSize::TransformerMicro, Mlp::Standard, vocab, vocab, 0.0, 0, &device, |w| {
        Activation::new(&relu, w, &device)
    });
    let (rows, len) = (64, 24);
    let mut ids = |n: usize| (0..n).map(|_| rng.random_range(1..vocab as u32)).collect::<Vec<u32>>();
    let (src, tgt) = (ids(rows * len), ids(rows * (len + 1)));
    // The decoder reads each target but its last token and predicts each but its first.
    let (mut tgt_in, mut tgt_out) = (Vec::new(), Vec::new());
    for row in tgt.chunks(len + 1) {
        tgt_in.extend_from_slice(&row[..len]);
        tgt_out.extend(row[1..].iter().map(|&t| t as i64));
    }
    let x = Seq2SeqInput { batch: rows, src_len: len, tgt_len: len, src, tgt: tgt_in };
    let loss = CrossEntropy { smoothing: 0.1, ignore: Some(0) };
    let adam = AdamWork { lr: 5e-4, betas: (0.9, 0.98), weight_decay: 0.0, clip: None, loss };
    adamw_steps(model, x, tgt_out, adam)
}

/// The optimizer and loss of a transformer's timed steps.
struct AdamWork {
    lr: f64,
    betas: (f64, f64),
    /// On the parameters of two or more dimensions.
    weight_decay: f64,
    /// The gradient norm's clip.
    clip: Option<f64>,
    loss: CrossEntropy,
}

impl AdamWork {
    /// w7's: AdamW lr 1e-3, weight decay 0.05, clipped at 1, plain cross-entropy.
    const VIT: AdamWork =
        AdamWork { lr: 1e-3, betas: (0.9, 0.999), weight_decay: 0.05, clip: Some(1.0), loss: CrossEntropy::PLAIN };
}

/// The timed Adam(W) steps of a transformer (w6, w7, w8); 3 warm-up steps, 10 timed.
fn adamw_steps<N: Net>(mut model: N, x: N::Input, y: Vec<i64>, work: AdamWork) -> Result<(Vec<f64>, f64)>
where
    N::Input: Clone,
{
    let no_decay = names_where(&model, &|path, dims| !model.decays(path, dims));
    let config = AdamConfig { betas: work.betas, eps: 1e-8, weight_decay: work.weight_decay, group: Group::All };
    let mut adamw = Adam::adamw(config, no_decay, work.clip);
    timed(3, 10, || {
        let loss = work.loss.forward(model.forward(x.clone()), &y);
        let grads = Grads::of(&model, &loss.backward(), Group::All);
        model = adamw.step(model.clone(), &grads, work.lr);
        Ok(())
    })
}

fn w1(device: &Device) -> Result<(Vec<f64>, f64)> {
    training_step(device, "relu")
}

/// One SGD step of ResNet-20 at batch 128 with `activation` at every site (w1, w4).
fn training_step(device: &Device, activation: &str) -> Result<(Vec<f64>, f64)> {
    let device = device.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = ResNet::new(Network::Resnet20, &resolve(activation)?, 10, 0, &device)?;
    let (x, y) = batch(&mut rng, 128, &device);
    let mut sgd =
        Sgd::new(SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 5e-4, grad_clip: None, group: Group::All });
    timed(3, 10, || {
        let loss = CrossEntropy::PLAIN.forward(model.forward(x.clone()), &y);
        let grads = Grads::of(&model, &loss.backward(), Group::All);
        model = sgd.step(model.clone(), &grads, 0.1);
        Ok(())
    })
}

fn w2(device: &Device) -> Result<(Vec<f64>, f64)> {
    let device = device.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let space = CellSpace::parse("small")?;
    let mut alpha_init = Init::new(0xa1fa);
    let mut model = ResNet::with_sites(Network::Resnet8, 10, 0, &device, |channels| {
        let alphas = space.positions().iter().map(|p| alpha_init.normal(p.ops.len(), 1e-3)).collect();
        MixedCell::new(&space, channels, alphas, &device)
    })?;
    let op_counts: Vec<usize> = space.positions().iter().map(|p| p.ops.len()).collect();
    let mixer = Mixer::new(Method::Darts, false, &op_counts, model.sites().len());
    let (xt, yt) = batch(&mut rng, 64, &device);
    let (xv, yv) = batch(&mut rng, 64, &device);
    let mut adam = Adam::new(AdamConfig { betas: (0.5, 0.999), eps: 1e-8, weight_decay: 1e-3, group: Group::Arch });
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 3e-4,
        grad_clip: Some(5.0),
        group: Group::Weights,
    });
    timed(2, 8, || {
        let m = mixer.install(model.clone(), Pass::Train, 0);
        let loss = CrossEntropy::PLAIN.forward(m.forward(xv.clone()), &yv);
        let grads = Grads::of(&m, &loss.backward(), Group::Arch);
        let m = adam.step(m, &grads, 3e-4);
        let m = mixer.install(m, Pass::Train, 0);
        let loss = CrossEntropy::PLAIN.forward(m.forward(xt.clone()), &yt);
        let grads = Grads::of(&m, &loss.backward(), Group::Weights);
        model = sgd.step(m, &grads, 0.025);
        Ok(())
    })
}

fn w3(device: &Device) -> Result<(Vec<f64>, f64)> {
    let device = device.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = 10000;
    let set = Arc::new(ImageSet {
        images: (0..n * IMAGE_BYTES).map(|_| rng.random::<u8>()).collect(),
        labels: (0..n).map(|_| rng.random_range(0..10u32)).collect(),
        classes: (0..10).map(|c| c.to_string()).collect(),
    });
    let norm = Normalization::of(&set);
    let mut model = ResNet::new(Network::Resnet8, &resolve("relu")?, 10, 0, &device)?;
    let mut sgd =
        Sgd::new(SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 5e-4, grad_clip: None, group: Group::All });
    let mut epoch = 0;
    timed(1, 3, || {
        let cfg = LoaderConfig { batch_size: 128, shuffle: true, augment: true, drop_last: false, seed: 0, epoch };
        epoch += 1;
        for batch in batches(set.clone(), norm, cfg) {
            let (x, _) = to_tensors(&batch, &device);
            let loss = CrossEntropy::PLAIN.forward(model.forward(x), &batch.labels);
            let grads = Grads::of(&model, &loss.backward(), Group::All);
            model = sgd.step(model.clone(), &grads, 0.1);
        }
        Ok(())
    })
}

fn w5(device: &Device) -> Result<(Vec<f64>, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // On the plain backend (no autodiff) batch norm uses its running statistics.
    let model = ResNet::new(Network::Resnet20, &resolve("relu")?, 10, 0, device)?;
    let (x, _) = batch(&mut rng, 500, device);
    timed(2, 10, || {
        let predicted = model.forward(x.clone()).argmax(1);
        predicted.into_data();
        Ok(())
    })
}

/// Peak resident set size of this process (VmHWM) in MB; 0 where /proc is not available.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
