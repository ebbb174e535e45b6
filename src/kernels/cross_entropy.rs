//! Softmax cross-entropy of logits against class targets, with label smoothing and an ignored
//! target (padding), as one node of autodiff on the `flex` CPU backend. burn's
//! `CrossEntropyLoss` with smoothing builds a dense one-hot matrix of the logits' size, then
//! log-softmax, scale, multiply, sum and mask it, each a pass over `[rows, classes]` with a
//! backward of its own: for a translation model's 1536 x 8000 logits that is dozens of passes
//! over 49 MB. Here the forward reads each row twice while it is in cache and keeps one number
//! per row; the backward writes the gradient in one pass.
//!
//! Per row with target `t` and smoothing `a` over `V` classes, the target distribution is
//! `(1 - a) onehot(t) + a / V`, so with `lse = log Σ exp(x)`:
//! `loss = lse - (1 - a) x_t - (a / V) Σ x`, and `dloss/dx_j = softmax(x)_j - (1 - a)
//! [j = t] - a / V`. The result is the mean over the rows whose target is not the ignored
//! one (NaN when there are none, as burn and PyTorch give), and their gradient is zero.
//!
//! Rows go to rayon in blocks; the row losses are summed in row order in f64, so the result
//! does not depend on the thread count.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use rayon::prelude::*;

use super::fast32::Fast;
use super::lanes::{max_of, sum_of};
use super::{Filled, contiguous, written};
use crate::expr::ops::Real;

/// The training loss of a task: softmax cross-entropy, label-smoothed by `smoothing` (0 for
/// none), with rows whose target is `ignore` (padding) left out of the mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossEntropy {
    pub smoothing: f32,
    pub ignore: Option<i64>,
}

impl CrossEntropy {
    /// Plain cross-entropy over every row.
    pub const PLAIN: CrossEntropy = CrossEntropy { smoothing: 0.0, ignore: None };

    /// The mean loss of `logits` `[rows, classes]` against `targets` (one class per row), as a
    /// one-element tensor: the kernel where [`super::available`] holds, burn's
    /// `CrossEntropyLoss` elsewhere (which gives the same numbers up to rounding).
    pub fn forward(&self, logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
        let [rows, classes] = logits.dims();
        assert_eq!(rows, targets.len(), "cross-entropy: one target per row of logits");
        assert!(
            targets.iter().all(|&t| Some(t) == self.ignore || (0..classes as i64).contains(&t)),
            "cross-entropy: a target outside the {classes} classes"
        );
        let device = logits.device();
        if !super::available(&device) {
            let labels = Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [rows]), &device);
            let config = CrossEntropyLossConfig::new()
                .with_pad_tokens(self.ignore.map(|i| vec![i as usize]))
                .with_smoothing((self.smoothing > 0.0).then_some(self.smoothing));
            return config.init(&device).forward(logits, labels);
        }
        let ignore = self.ignore.unwrap_or(-1);
        Tensor::from_dispatch(<Dispatch as CrossEntropyBackend>::cross_entropy_rows(
            logits.into_dispatch(),
            targets.to_vec(),
            self.smoothing,
            ignore,
        ))
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait CrossEntropyBackend: Backend {
    /// The mean smoothed cross-entropy of `logits` `[rows, classes]` against `targets`, over
    /// the rows whose target is not `ignore` (-1 for none): `[1]`.
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: Vec<i64>,
        smoothing: f32,
        ignore: i64,
    ) -> FloatTensor<Self>;
}

/// Rows per rayon task.
const BLOCK_ROWS: usize = 16;

simd_fn! {
    /// Each row's `log Σ exp(x)` into `lse` and its smoothed loss into `loss` (0 for an
    /// ignored row).
    fn forward_rows(x: &[f32], targets: &[i64], smoothing: f32, ignore: i64, lse: &mut [f32], loss: &mut [f64])
        => forward_rows_impl
}

#[inline(always)]
fn forward_rows_impl(x: &[f32], targets: &[i64], smoothing: f32, ignore: i64, lse: &mut [f32], loss: &mut [f64]) {
    let classes = x.len() / targets.len();
    for (((row, &t), l), out) in x.chunks_exact(classes).zip(targets).zip(lse.iter_mut()).zip(loss.iter_mut()) {
        if t == ignore {
            (*l, *out) = (0.0, 0.0);
            continue;
        }
        let max = max_of(row);
        let log_sum = max + Fast(sum_of(row, |v| Fast(v - max).exp().0)).ln().0;
        let mut value = log_sum as f64 - (1.0 - smoothing as f64) * row[t as usize] as f64;
        if smoothing > 0.0 {
            value -= smoothing as f64 / classes as f64 * sum_of(row, |v| v) as f64;
        }
        (*l, *out) = (log_sum, value);
    }
}

simd_fn! {
    /// `scale (softmax(x) - target distribution)` of each row into `dx` (zeros for an ignored
    /// row), every element written.
    fn backward_rows(
        x: &[f32],
        targets: &[i64],
        lse: &[f32],
        smoothing: f32,
        ignore: i64,
        scale: f32,
        dx: &mut [std::mem::MaybeUninit<f32>],
    ) => backward_rows_impl
}

#[inline(always)]
fn backward_rows_impl(
    x: &[f32],
    targets: &[i64],
    lse: &[f32],
    smoothing: f32,
    ignore: i64,
    scale: f32,
    dx: &mut [std::mem::MaybeUninit<f32>],
) {
    let classes = x.len() / targets.len();
    let floor = smoothing / classes as f32;
    for (((row, &t), &l), out) in x.chunks_exact(classes).zip(targets).zip(lse).zip(dx.chunks_exact_mut(classes)) {
        if t == ignore {
            out.iter_mut().for_each(|o| {
                o.write(0.0);
            });
            continue;
        }
        for (o, &v) in out.iter_mut().zip(row) {
            o.write(scale * (Fast(v - l).exp().0 - floor));
        }
        // SAFETY: the loop above wrote every element of the row.
        let target = unsafe { out[t as usize].assume_init_mut() };
        *target -= scale * (1.0 - smoothing);
    }
}

/// The mean loss `[1]` and each row's `log Σ exp` `[rows]`.
fn forward(logits: &FlexTensor, targets: &[i64], smoothing: f32, ignore: i64) -> (FlexTensor, Vec<f32>) {
    let x = contiguous(logits);
    let xs = x.as_slice::<f32>().unwrap();
    let rows = targets.len();
    let classes = xs.len().checked_div(rows).unwrap_or(0);
    let (mut lse, mut loss) = (vec![0f32; rows], vec![0f64; rows]);
    if rows > 0 && classes > 0 {
        xs.par_chunks(BLOCK_ROWS * classes)
            .zip(targets.par_chunks(BLOCK_ROWS))
            .zip(lse.par_chunks_mut(BLOCK_ROWS).zip(loss.par_chunks_mut(BLOCK_ROWS)))
            .for_each(|((xi, ti), (li, lo))| forward_rows(xi, ti, smoothing, ignore, li, lo));
    }
    let counted = targets.iter().filter(|&&t| t != ignore).count();
    let mean = (loss.iter().sum::<f64>() / counted as f64) as f32;
    (FlexTensor::from_data(TensorData::new(vec![mean], [1])), lse)
}

/// The gradient of the logits for an upstream gradient `dy` `[1]` of the mean.
fn backward(
    logits: &FlexTensor,
    targets: &[i64],
    lse: &[f32],
    smoothing: f32,
    ignore: i64,
    dy: &FlexTensor,
) -> FlexTensor {
    let shape = logits.layout().shape().clone();
    let x = contiguous(logits);
    let xs = x.as_slice::<f32>().unwrap();
    let dy = contiguous(dy).as_slice::<f32>().unwrap()[0];
    let rows = targets.len();
    let classes = xs.len().checked_div(rows).unwrap_or(0);
    let counted = targets.iter().filter(|&&t| t != ignore).count();
    let scale = dy / counted as f32;
    let mut dx = Filled::new(xs.len());
    if rows > 0 && classes > 0 {
        let (chunks, ready) = dx.chunks(BLOCK_ROWS * classes);
        chunks
            .zip(xs.par_chunks(BLOCK_ROWS * classes))
            .zip(targets.par_chunks(BLOCK_ROWS).zip(lse.par_chunks(BLOCK_ROWS)))
            .for_each(|((out, xi), (ti, li))| {
                backward_rows(xi, ti, li, smoothing, ignore, scale, out);
                // SAFETY: backward_rows wrote every element of the chunk.
                unsafe { written(out, ready) };
            });
    }
    FlexTensor::from_data(TensorData::new(dx.into_vec(), shape))
}

impl CrossEntropyBackend for Flex {
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: Vec<i64>,
        smoothing: f32,
        ignore: i64,
    ) -> FloatTensor<Self> {
        forward(&logits, &targets, smoothing, ignore).0
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    /// The saved logits, targets, row `log Σ exp`, smoothing and ignored target.
    type State = (FlexTensor, Vec<i64>, Vec<f32>, f32, i64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (logits, targets, lse, smoothing, ignore) = ops.state;
        if let [Some(node)] = ops.parents {
            grads.register::<Flex>(node.id, backward(&logits, &targets, &lse, smoothing, ignore, &dy));
        }
    }
}

impl<C: CheckpointStrategy> CrossEntropyBackend for Autodiff<Flex, C> {
    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: Vec<i64>,
        smoothing: f32,
        ignore: i64,
    ) -> FloatTensor<Self> {
        match CrossEntropyBackward.prepare::<C>([logits.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let (loss, lse) = forward(&logits, &targets, smoothing, ignore);
                prep.finish((logits, targets, lse, smoothing, ignore), loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(logits.primitive(), &targets, smoothing, ignore).0),
        }
    }
}
