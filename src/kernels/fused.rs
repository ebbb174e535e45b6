//! The fused activation kernel for the `flex` CPU backend: a compiled [`Program`] applied to
//! a `[N, C, H, W]` tensor in one pass over memory, with a hand-written backward pass that
//! recomputes from the saved input and returns the gradients for the input, for every
//! per-channel parameter row and for every mixing weight. It plugs into burn through the
//! backend-extension API (`#[backend_extension]`), so autodiff treats it as one node.
//!
//! Work is split by channel plane (one `(n, c)` slice of `H*W` elements) over rayon; the
//! parameter and weight gradients are summed per plane and then reduced in plane order, so
//! results do not depend on the thread count.
//!
//! A program compiled for [`Layout::Features`] instead reads `x` of any rank as rows of
//! features (the last axis) with parameters `[K, F]`, in place: blocks of rows go to rayon, a
//! block runs along each row in chunks of [`LANES`] features, and the gradients are summed
//! per block (a fixed number of rows) and reduced in block order.
//!
//! Other backends use the reference path (`kernels::reference`); [`available`] says which.

use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use rayon::prelude::*;

use super::{Filled, contiguous, zeroed};

use super::program::{LANES, Layout, Program, Scratch};

#[backend_extension(Flex, Autodiff)]
pub trait FusedBackend: Backend {
    /// `program` on x `[N, C, H, W]` with parameter table p `[K, C]` and weights w `[M]`.
    fn fused_program(
        x: FloatTensor<Self>,
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        program: Arc<Program>,
    ) -> FloatTensor<Self>;
}

pub use super::available;

/// `program` applied to `x`, with `params[k]` as parameter row k and `weights` (`[M]`, the
/// concatenated mixing weights) as its weights. `x` must be on a device where [`available`]
/// holds. The program's [`Layout`] says where the parameters vary: per channel (`x` is
/// `[N, C, H, W]`, `params[k]` is `[C]`) or per feature of the last axis (`x` of any rank,
/// `params[k]` is `[F]`).
pub fn apply<const D: usize>(
    program: Arc<Program>,
    x: Tensor<D>,
    params: Vec<Tensor<1>>,
    weights: Option<Tensor<1>>,
) -> Tensor<D> {
    let channels = match program.layout {
        Layout::Channels => {
            assert_eq!(D, 4, "the channel layout takes [N, C, H, W]");
            x.dims()[1]
        }
        Layout::Features => x.dims()[D - 1],
    };
    let device = x.device();
    let p: Tensor<2> = match params.is_empty() {
        true => Tensor::zeros([1, channels], &device),
        false => Tensor::stack(params, 0),
    };
    let w = weights.unwrap_or_else(|| Tensor::zeros([1], &device));
    Tensor::from_dispatch(<Dispatch as FusedBackend>::fused_program(
        x.into_dispatch(),
        p.into_dispatch(),
        w.into_dispatch(),
        program,
    ))
}

/// Row-major `[K, C]` parameters at channel `ch` into `out`.
pub(super) fn channel_params(p: &[f32], channels: usize, ch: usize, out: &mut Vec<f32>) {
    out.clear();
    out.extend((0..p.len() / channels).map(|k| p[k * channels + ch]));
}

fn forward(x: &FlexTensor, p: &FlexTensor, w: &FlexTensor, program: &Program) -> FlexTensor {
    if program.layout == Layout::Features {
        return forward_features(x, p, w, program);
    }
    let shape = x.layout().shape().clone();
    let (channels, plane) = (shape[1], shape[2] * shape[3]);
    let (x, p, w) = (contiguous(x), contiguous(p), contiguous(w));
    let (xs, ps, ws) = (x.as_slice::<f32>().unwrap(), p.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap());
    let mut y = Filled::new(xs.len());
    if plane > 0 {
        let (chunks, ready) = y.chunks(plane);
        chunks.zip(xs.par_chunks(plane)).enumerate().for_each_init(
            || (Scratch::default(), Vec::new()),
            |(scratch, pv), (i, (yo, xi))| {
                let yo = zeroed(yo, ready);
                channel_params(ps, channels, i % channels, pv);
                program.forward_plane(xi, yo, pv, ws, scratch);
            },
        );
    }
    FlexTensor::from_data(TensorData::new(y.into_vec(), shape))
}

fn backward(
    x: &FlexTensor,
    p: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    program: &Program,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    if program.layout == Layout::Features {
        return backward_features(x, p, w, dy, program);
    }
    let shape = x.layout().shape().clone();
    let (channels, plane) = (shape[1], shape[2] * shape[3]);
    let (x, p, w, dy) = (contiguous(x), contiguous(p), contiguous(w), contiguous(dy));
    let (xs, ps, ws, gs) = (
        x.as_slice::<f32>().unwrap(),
        p.as_slice::<f32>().unwrap(),
        w.as_slice::<f32>().unwrap(),
        dy.as_slice::<f32>().unwrap(),
    );
    let (k, m) = (ps.len() / channels, ws.len());
    let mut dx = Filled::new(xs.len());
    let planes = xs.len().checked_div(plane).unwrap_or(0);
    // Per plane: k parameter partials then m weight partials (one unused slot if k + m = 0).
    let stride = (k + m).max(1);
    let mut partials = vec![0f64; planes * stride];
    if plane > 0 {
        let (chunks, ready) = dx.chunks(plane);
        chunks
            .zip(xs.par_chunks(plane).zip(gs.par_chunks(plane)))
            .zip(partials.par_chunks_mut(stride))
            .enumerate()
            .for_each_init(
                || (Scratch::default(), Vec::new()),
                |(scratch, pv), (i, ((dxo, (xi, gi)), part))| {
                    let dxo = zeroed(dxo, ready);
                    channel_params(ps, channels, i % channels, pv);
                    let (dp, dw) = part[..k + m].split_at_mut(k);
                    program.backward_plane(xi, gi, dxo, pv, ws, dp, dw, scratch);
                },
            );
    }
    let (mut dp, mut dw) = (vec![0f64; k * channels], vec![0f64; m]);
    for (i, part) in partials.chunks(stride).enumerate() {
        let ch = i % channels;
        for r in 0..k {
            dp[r * channels + ch] += part[r];
        }
        for j in 0..m {
            dw[j] += part[k + j];
        }
    }
    gradients(dx, shape, dp, [k, channels], dw)
}

/// The gradients as tensors: `dx` of the input's shape, the parameter table's `[K, C]` and the
/// weights', summed in f64 and handed back in f32.
fn gradients(
    dx: Filled,
    shape: burn::tensor::Shape,
    dp: Vec<f64>,
    table: [usize; 2],
    dw: Vec<f64>,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|g| g as f32).collect::<Vec<f32>>();
    let m = dw.len();
    (
        FlexTensor::from_data(TensorData::new(dx.into_vec(), shape)),
        FlexTensor::from_data(TensorData::new(to_f32(dp), table)),
        FlexTensor::from_data(TensorData::new(to_f32(dw), [m])),
    )
}

/// Rows of features per rayon task in the feature layout; the gradients are summed per block,
/// so the block size depends on the row count only (never on the thread count).
fn feature_block(rows: usize) -> usize {
    rows.div_ceil(256).max(16)
}

/// Row-major `[K, F]` parameters at features `start..start + n` into `out` as `[K, LANES]`.
fn feature_params(p: &[f32], features: usize, start: usize, n: usize, out: &mut Vec<f32>) {
    let k = p.len() / features;
    out.clear();
    out.resize(k.max(1) * LANES, 0.0);
    for r in 0..k {
        out[r * LANES..r * LANES + n].copy_from_slice(&p[r * features + start..r * features + start + n]);
    }
}

fn forward_features(x: &FlexTensor, p: &FlexTensor, w: &FlexTensor, program: &Program) -> FlexTensor {
    let shape = x.layout().shape().clone();
    let features = shape[shape.num_dims() - 1];
    let (x, p, w) = (contiguous(x), contiguous(p), contiguous(w));
    let (xs, ps, ws) = (x.as_slice::<f32>().unwrap(), p.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap());
    let mut y = Filled::new(xs.len());
    if features > 0 && !xs.is_empty() {
        let block = feature_block(xs.len() / features) * features;
        let (chunks, ready) = y.chunks(block);
        chunks.zip(xs.par_chunks(block)).for_each_init(
            || (Scratch::default(), Vec::new()),
            |(scratch, pv), (yo, xi)| {
                let yo = zeroed(yo, ready);
                for start in (0..features).step_by(LANES) {
                    let n = LANES.min(features - start);
                    feature_params(ps, features, start, n, pv);
                    for (yr, xr) in yo.chunks_mut(features).zip(xi.chunks(features)) {
                        program.forward_plane(&xr[start..start + n], &mut yr[start..start + n], pv, ws, scratch);
                    }
                }
            },
        );
    }
    FlexTensor::from_data(TensorData::new(y.into_vec(), shape))
}

fn backward_features(
    x: &FlexTensor,
    p: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    program: &Program,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = x.layout().shape().clone();
    let features = shape[shape.num_dims() - 1];
    let (x, p, w, dy) = (contiguous(x), contiguous(p), contiguous(w), contiguous(dy));
    let (xs, ps, ws, gs) = (
        x.as_slice::<f32>().unwrap(),
        p.as_slice::<f32>().unwrap(),
        w.as_slice::<f32>().unwrap(),
        dy.as_slice::<f32>().unwrap(),
    );
    let (k, m) = (ps.len() / features.max(1), ws.len());
    let mut dx = Filled::new(xs.len());
    // Per block: the [K, F] parameter partials, then the m weight partials.
    let stride = k * features + m;
    let mut dp = vec![0f64; k * features];
    let mut dw = vec![0f64; m];
    if features > 0 && !xs.is_empty() {
        let block = feature_block(xs.len() / features) * features;
        let blocks = xs.len().div_ceil(block);
        let mut partials = vec![0f64; blocks * stride.max(1)];
        let (chunks, ready) = dx.chunks(block);
        chunks
            .zip(xs.par_chunks(block).zip(gs.par_chunks(block)))
            .zip(partials.par_chunks_mut(stride.max(1)))
            .for_each_init(
                || (Scratch::default(), Vec::new(), Vec::new()),
                |(scratch, pv, dpc), ((dxo, (xi, gi)), part)| {
                    let dxo = zeroed(dxo, ready);
                    let (dp_part, dw_part) = part[..stride].split_at_mut(k * features);
                    for start in (0..features).step_by(LANES) {
                        let n = LANES.min(features - start);
                        feature_params(ps, features, start, n, pv);
                        dpc.clear();
                        dpc.resize(k * LANES, 0f64);
                        let rows = dxo.chunks_mut(features).zip(xi.chunks(features).zip(gi.chunks(features)));
                        for (dxr, (xr, gr)) in rows {
                            let span = start..start + n;
                            let (xr, gr) = (&xr[span.clone()], &gr[span.clone()]);
                            program.backward_plane(xr, gr, &mut dxr[span], pv, ws, dpc, dw_part, scratch);
                        }
                        for r in 0..k {
                            dp_part[r * features + start..r * features + start + n]
                                .copy_from_slice(&dpc[r * LANES..r * LANES + n]);
                        }
                    }
                },
            );
        for part in partials.chunks(stride.max(1)) {
            for (d, g) in dp.iter_mut().zip(&part[..k * features]) {
                *d += g;
            }
            for (d, g) in dw.iter_mut().zip(&part[k * features..stride]) {
                *d += g;
            }
        }
    }
    gradients(dx, shape, dp, [k, features], dw)
}

impl FusedBackend for Flex {
    fn fused_program(
        x: FloatTensor<Self>,
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        program: Arc<Program>,
    ) -> FloatTensor<Self> {
        forward(&x, &p, &w, &program)
    }
}

#[derive(Debug)]
struct FusedBackward;

impl Backward<Flex, 3> for FusedBackward {
    /// The saved input, parameters and weights (cheap shared handles) and the program.
    type State = (FlexTensor, FlexTensor, FlexTensor, Arc<Program>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_p, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, p, w, program) = ops.state;
        let (dx, dp, dw) = backward(&x, &p, &w, &dy, &program);
        if let Some(n) = node_x {
            grads.register::<Flex>(n.id, dx);
        }
        if let Some(n) = node_p {
            grads.register::<Flex>(n.id, dp);
        }
        if let Some(n) = node_w {
            grads.register::<Flex>(n.id, dw);
        }
    }
}

impl<C: CheckpointStrategy> FusedBackend for Autodiff<Flex, C> {
    fn fused_program(
        x: FloatTensor<Self>,
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        program: Arc<Program>,
    ) -> FloatTensor<Self> {
        match FusedBackward.prepare::<C>([x.node(), p.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, p, w) = (x.into_primitive(), p.into_primitive(), w.into_primitive());
                let y = forward(&x, &p, &w, &program);
                prep.finish((x, p, w, program), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), p.primitive(), w.primitive(), &program)),
        }
    }
}
