//! Multi-head self-attention, the core between the qkv and output projections:
//! `softmax(q k^T / sqrt(d_head)) v` per head, read from the fused qkv projection
//! `[batch, tokens, 3 d]` (q, k and v side by side, each `d = heads * d_head` wide, heads in
//! order within each) and written as `[batch, tokens, d]`, heads side by side, ready for the
//! output projection. `causal` lets token i attend to tokens 0..=i only, and a sample's key
//! count (for right-padded sequences) keeps every query off the keys after it.
//!
//! On the `flex` CPU backend one node of autodiff with its backward written beside it (as in
//! llm.c); burn's composition of the same math (split, transpose, scale, softmax, two batched
//! products, and the backward of each) copies the tensors several times over, and cost more
//! than all the projections together on vit-micro. Per sample and head, with `s` the scale:
//!
//! - forward: `P = softmax(s Q K^T)` (saved for the backward), `O = P V`;
//! - backward: `dV = P^T dO`, `dP = dO V^T`, `dS = s P ⊙ (dP - rowsum(dP ⊙ P))`,
//!   `dQ = dS K`, `dK = dS^T Q`.
//!
//! Samples go to rayon, one sample's heads on one thread, and nothing is summed across
//! samples, so the results do not depend on the thread count. The products are `gemm` calls
//! on strided views of the qkv rows; no operand is copied. Other backends compose burn's ops
//! ([`reference`]), which is also the oracle of the tests.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use rayon::prelude::*;

use super::fast32::Fast;
use super::lanes::{dot, max_of, sum_of};
use super::matmul::{Dest, Operand, matmul};
use super::{Filled, contiguous, zeroed};
use crate::expr::ops::Real;

#[backend_extension(Flex, Autodiff)]
pub trait AttentionBackend: Backend {
    /// The attention of `qkv` `[batch, tokens, 3 d]` with `heads` heads, as `[batch, tokens, d]`.
    /// `keys[b]` keys of sample b may be attended to (all where `keys` is empty).
    fn self_attention(qkv: FloatTensor<Self>, heads: usize, causal: bool, keys: Vec<usize>) -> FloatTensor<Self>;
}

/// The attention of `qkv` `[batch, tokens, 3 d]` (q, k, v side by side) with `heads` heads:
/// `[batch, tokens, d]`, heads side by side. The CPU kernel where [`super::available`] holds,
/// [`reference`] elsewhere.
pub fn self_attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    padded_self_attention(qkv, heads, causal, &[])
}

/// [`self_attention`] of right-padded samples: sample b's queries attend to its first
/// `keys[b]` keys only (each at least 1; every key where `keys` is empty).
pub fn padded_self_attention(qkv: Tensor<3>, heads: usize, causal: bool, keys: &[usize]) -> Tensor<3> {
    let [batch, tokens, width] = qkv.dims();
    let d = width / 3;
    assert!(heads > 0 && d.is_multiple_of(heads) && width == 3 * d, "attention: qkv must be [batch, tokens, 3 d]");
    assert!(
        keys.is_empty() || (keys.len() == batch && keys.iter().all(|&k| (1..=tokens).contains(&k))),
        "attention: one key count in 1..=tokens per sample"
    );
    if !super::available(&qkv.device()) {
        return reference(qkv, heads, causal, keys);
    }
    Tensor::from_dispatch(<Dispatch as AttentionBackend>::self_attention(
        qkv.into_dispatch(),
        heads,
        causal,
        keys.to_vec(),
    ))
}

/// The same attention composed of burn's ops (any backend; autodiff derives its backward).
pub fn reference(qkv: Tensor<3>, heads: usize, causal: bool, keys: &[usize]) -> Tensor<3> {
    let [batch, tokens, width] = qkv.dims();
    let (d, device) = (width / 3, qkv.device());
    let dh = d / heads;
    let part = |i: usize| qkv.clone().narrow(2, i * d, d).reshape([batch, tokens, heads, dh]).swap_dims(1, 2);
    let (q, k, v) = (part(0), part(1), part(2));
    let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (dh as f64).sqrt());
    if causal {
        let mask = Tensor::<2, Bool>::tril_mask([tokens, tokens], 0, &device).unsqueeze::<4>();
        scores = scores.mask_fill(mask, f32::NEG_INFINITY);
    }
    if !keys.is_empty() {
        let padding: Vec<bool> = keys.iter().flat_map(|&n| (0..tokens).map(move |k| k >= n)).collect();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(padding, [batch, 1, 1, tokens]), &device);
        scores = scores.mask_fill(mask.expand([batch, heads, tokens, tokens]), f32::NEG_INFINITY);
    }
    softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([batch, tokens, d])
}

/// The shape of one call: tokens, model width and the width of one head.
#[derive(Clone, Copy, Debug)]
struct Dims {
    tokens: usize,
    d: usize,
    dh: usize,
}

impl Dims {
    fn of(qkv: &FlexTensor, heads: usize) -> Dims {
        let shape = qkv.layout().shape();
        assert_eq!(shape.num_dims(), 3, "attention: qkv must be [batch, tokens, 3 d]");
        let d = shape[2] / 3;
        Dims { tokens: shape[1], d, dh: d / heads }
    }

    fn scale(&self) -> f32 {
        (1.0 / (self.dh as f64).sqrt()) as f32
    }

    /// The columns (in q, k or v's block of a qkv row: 0, 1 or 2) of head h.
    fn col(&self, block: usize, h: usize) -> usize {
        block * self.d + h * self.dh
    }
}

/// The output `[batch, tokens, d]` and the attention probabilities `[batch, heads, tokens,
/// tokens]`.
fn forward(qkv: &FlexTensor, heads: usize, causal: bool, keys: &[usize]) -> (FlexTensor, FlexTensor) {
    let dims = Dims::of(qkv, heads);
    let batch = qkv.layout().shape()[0];
    let Dims { tokens: t, d, dh, .. } = dims;
    let qkv = contiguous(qkv);
    let x = qkv.as_slice::<f32>().unwrap();
    let mut out = Filled::new(batch * t * d);
    let mut probs = Filled::new(batch * heads * t * t);
    if batch * t * d > 0 {
        let (out_chunks, out_ready) = out.chunks(t * d);
        let (p_chunks, p_ready) = probs.chunks(heads * t * t);
        out_chunks.zip(p_chunks).zip(x.par_chunks(3 * t * d)).enumerate().for_each(|(b, ((o, p), x))| {
            let (o, p) = (zeroed(o, out_ready), zeroed(p, p_ready));
            let live_keys = keys.get(b).copied().unwrap_or(t);
            for h in 0..heads {
                let p = &mut p[h * t * t..(h + 1) * t * t];
                let (q, k, v) = (&x[dims.col(0, h)..], &x[dims.col(1, h)..], &x[dims.col(2, h)..]);
                // P = Q K^T (K^T's element (c, j) is K[j, c]).
                matmul(Dest::rows(p, t), false, (t, t, dh), Operand(q, 3 * d, 1), Operand(k, 1, 3 * d));
                softmax_rows(p, t, dims.scale(), causal, live_keys);
                matmul(Dest::rows(&mut o[h * dh..], d), false, (t, dh, t), Operand(p, t, 1), Operand(v, 3 * d, 1));
            }
        });
    }
    let shape = qkv.layout().shape().clone();
    (
        FlexTensor::from_data(TensorData::new(out.into_vec(), [batch, t, d])),
        FlexTensor::from_data(TensorData::new(probs.into_vec(), [shape[0], heads, t, t])),
    )
}

/// The gradient of qkv `[batch, tokens, 3 d]` from the output's `dy` `[batch, tokens, d]`.
fn backward(qkv: &FlexTensor, probs: &FlexTensor, dy: &FlexTensor, heads: usize) -> FlexTensor {
    let dims = Dims::of(qkv, heads);
    let shape = qkv.layout().shape().clone();
    let Dims { tokens: t, d, dh, .. } = dims;
    let (qkv, probs, dy) = (contiguous(qkv), contiguous(probs), contiguous(dy));
    let (x, ps, gs) = (qkv.as_slice::<f32>().unwrap(), probs.as_slice::<f32>().unwrap(), dy.as_slice::<f32>().unwrap());
    let mut dx = Filled::new(x.len());
    if !x.is_empty() {
        let (chunks, ready) = dx.chunks(3 * t * d);
        chunks.zip(x.par_chunks(3 * t * d)).zip(ps.par_chunks(heads * t * t).zip(gs.par_chunks(t * d))).for_each_init(
            || vec![0f32; t * t],
            |ds, ((dx, x), (p, g))| {
                let dx = zeroed(dx, ready);
                for h in 0..heads {
                    let p = &p[h * t * t..(h + 1) * t * t];
                    let (q, k, v) = (&x[dims.col(0, h)..], &x[dims.col(1, h)..], &x[dims.col(2, h)..]);
                    let g = &g[h * dh..];
                    // dV = P^T dO.
                    let dv = Dest::rows(&mut dx[dims.col(2, h)..], 3 * d);
                    matmul(dv, false, (t, dh, t), Operand(p, 1, t), Operand(g, d, 1));
                    // dP = dO V^T, then dS in place.
                    matmul(Dest::rows(ds, t), false, (t, t, dh), Operand(g, d, 1), Operand(v, 1, 3 * d));
                    softmax_backward_rows(ds, p, t, dims.scale());
                    // dQ = dS K, dK = dS^T Q.
                    let dq = Dest::rows(&mut dx[dims.col(0, h)..], 3 * d);
                    matmul(dq, false, (t, dh, t), Operand(ds, t, 1), Operand(k, 3 * d, 1));
                    let dk = Dest::rows(&mut dx[dims.col(1, h)..], 3 * d);
                    matmul(dk, false, (t, dh, t), Operand(ds, 1, t), Operand(q, 3 * d, 1));
                }
            },
        );
    }
    FlexTensor::from_data(TensorData::new(dx.into_vec(), shape))
}

simd_fn! {
    /// `rows` of `n` scores, each replaced by `softmax(scale * row)` over its first `keys`
    /// columns; with `causal`, row i keeps columns 0..=i too. The rest become 0.
    fn softmax_rows(p: &mut [f32], n: usize, scale: f32, causal: bool, keys: usize) => softmax_rows_impl
}

#[inline(always)]
fn softmax_rows_impl(p: &mut [f32], n: usize, scale: f32, causal: bool, keys: usize) {
    for (i, row) in p.chunks_mut(n).enumerate() {
        let live = if causal { i + 1 } else { n }.min(keys);
        let (row, masked) = row.split_at_mut(live.min(n));
        let max = max_of(row) * scale;
        for v in row.iter_mut() {
            *v = Fast(*v * scale - max).exp().0;
        }
        let inv = 1.0 / sum_of(row, |v| v);
        row.iter_mut().for_each(|v| *v *= inv);
        masked.iter_mut().for_each(|v| *v = 0.0);
    }
}

simd_fn! {
    /// `ds` (holding dP) replaced by `scale * P ⊙ (dP - rowsum(dP ⊙ P))`, row by row.
    fn softmax_backward_rows(ds: &mut [f32], p: &[f32], n: usize, scale: f32) => softmax_backward_rows_impl
}

#[inline(always)]
fn softmax_backward_rows_impl(ds: &mut [f32], p: &[f32], n: usize, scale: f32) {
    for (dr, pr) in ds.chunks_mut(n).zip(p.chunks(n)) {
        let dot = dot(dr, pr);
        for (g, &pv) in dr.iter_mut().zip(pr) {
            *g = scale * pv * (*g - dot);
        }
    }
}

impl AttentionBackend for Flex {
    fn self_attention(qkv: FloatTensor<Self>, heads: usize, causal: bool, keys: Vec<usize>) -> FloatTensor<Self> {
        forward(&qkv, heads, causal, &keys).0
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 1> for AttentionBackward {
    /// The saved qkv and probabilities (shared handles) and the heads. (The causal and padding
    /// masks need nothing more: their probabilities are 0, and so are their gradients.)
    type State = (FlexTensor, FlexTensor, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (qkv, probs, heads) = ops.state;
        if let Some(n) = node {
            grads.register::<Flex>(n.id, backward(&qkv, &probs, &dy, heads));
        }
    }
}

impl<C: CheckpointStrategy> AttentionBackend for Autodiff<Flex, C> {
    fn self_attention(qkv: FloatTensor<Self>, heads: usize, causal: bool, keys: Vec<usize>) -> FloatTensor<Self> {
        match AttentionBackward.prepare::<C>([qkv.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let qkv = qkv.into_primitive();
                let (y, probs) = forward(&qkv, heads, causal, &keys);
                prep.finish((qkv, probs, heads), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(qkv.primitive(), heads, causal, &keys).0),
        }
    }
}
