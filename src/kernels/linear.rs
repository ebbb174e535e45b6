//! The linear layer `y = x W + b` on rows (`x` `[rows, in]`, `W` `[in, out]`, `b` `[out]`) for
//! the `flex` CPU backend, forward and backward as one node of autodiff.
//!
//! burn's `linear` on flex is a product into a zero-filled buffer that is then copied into
//! an aligned one (burn-flex 0.22's `FlexTensor::empty`), and a second pass that adds the
//! bias, with a backward that reduces the bias gradient in a pass of its own. Here the bias is
//! written into the output first and the product accumulates onto it, one `gemm` call over
//! all rows (gemm splits rows and columns over the threads, never the inner dimension, so the
//! sums do not depend on the thread count):
//! - forward: `y = b + x W`;
//! - backward: `dx = dy W^T`, `dW = x^T dy`, `db = Σ_rows dy` (per block of rows of a size
//!   that depends on the row count only, then across blocks in order).

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::nn::Linear;
use burn::prelude::*;
use rayon::prelude::*;

use super::matmul::{Operand, product};
use super::{Filled, contiguous, written};

#[backend_extension(Flex, Autodiff)]
pub trait LinearBackend: Backend {
    /// `x W + b` for x `[rows, in]`, W `[in, out]` and b `[out]`.
    fn linear_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `layer` applied to the rows of `x` `[rows, in]` ([`affine`]).
pub fn apply(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    affine(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

/// `x W (+ b)` for x `[rows, in]`: the kernel where [`super::available`] holds (without a
/// bias, on a zero one that wants no gradient: the GPT has none), burn's `linear` elsewhere.
pub fn affine(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    if !super::available(&x.device()) {
        return burn::tensor::module::linear(x, weight, bias);
    }
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[1]], &x.device()));
    Tensor::from_dispatch(<Dispatch as LinearBackend>::linear_rows(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// Rows per rayon task of the bias passes.
fn block_rows(rows: usize) -> usize {
    rows.div_ceil(64).max(16)
}

/// `dst` `[m, n]` (row-major, written through the pointer only) = `(dst if accumulate) + a b`,
/// over all threads of the current pool.
///
/// # Safety
/// As [`product`]'s.
unsafe fn gemm_into(dst: *mut f32, accumulate: bool, (m, n, k): (usize, usize, usize), a: Operand, b: Operand) {
    // SAFETY: the caller's contract.
    unsafe { product(dst, (n, 1), accumulate, (m, n, k), a, b, gemm::Parallelism::Rayon(0)) }
}

/// The shape `(rows, in, out)`, checked.
fn dims(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> (usize, usize, usize) {
    let (xs, ws, bs) = (x.layout().shape(), w.layout().shape(), b.layout().shape());
    assert!(
        xs.num_dims() == 2 && ws.num_dims() == 2 && bs.num_dims() == 1,
        "linear: x [rows, in], W [in, out], b [out]"
    );
    assert!(xs[1] == ws[0] && ws[1] == bs[0], "linear: x {xs:?}, W {ws:?} and b {bs:?} do not fit");
    (xs[0], ws[0], ws[1])
}

fn forward(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let (m, k, n) = dims(x, w, b);
    let (x, w, b) = (contiguous(x), contiguous(w), contiguous(b));
    let (xs, ws, bs) = (x.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
    let mut y = Filled::new(m * n);
    if m * n > 0 {
        let (chunks, ready) = y.chunks(block_rows(m) * n);
        chunks.for_each(|chunk| {
            for (o, &v) in chunk.iter_mut().zip(bs.iter().cycle()) {
                o.write(v);
            }
            // SAFETY: every element was just written (the chunk is whole rows of n).
            unsafe { written(chunk, ready) };
        });
    }
    let mut y = y.into_vec();
    if m * n * k > 0 {
        // SAFETY: y is m x n and initialized; x is m x k and w is k x n, row-major.
        unsafe { gemm_into(y.as_mut_ptr(), true, (m, n, k), Operand(xs, k, 1), Operand(ws, n, 1)) };
    }
    FlexTensor::from_data(TensorData::new(y, [m, n]))
}

/// Gradients for x, W and b, each where `wanted`.
fn backward(
    x: &FlexTensor,
    w: &FlexTensor,
    b: &FlexTensor,
    dy: &FlexTensor,
    wanted: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    let (m, k, n) = dims(x, w, b);
    let (x, w, dy) = (contiguous(x), contiguous(w), contiguous(dy));
    let (xs, ws, gs) = (x.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap(), dy.as_slice::<f32>().unwrap());
    // dx = dy W^T (W^T's element (j, i) is W[i, j]); gemm writes every element.
    let mut dx = Vec::with_capacity(m * k);
    if wanted[0] && m * k > 0 {
        if n == 0 {
            dx.resize(m * k, 0.0);
        } else {
            // SAFETY: dx has room for m x k floats, written (not read) by gemm; dy is m x n
            // and w is k x n, row-major.
            unsafe {
                gemm_into(dx.as_mut_ptr(), false, (m, k, n), Operand(gs, n, 1), Operand(ws, 1, n));
                dx.set_len(m * k);
            }
        }
    }
    // dW = x^T dy.
    let mut dw = vec![0f32; k * n];
    if wanted[1] && m * k * n > 0 {
        // SAFETY: dw is k x n; x is m x k and dy m x n, row-major.
        unsafe { gemm_into(dw.as_mut_ptr(), false, (k, n, m), Operand(xs, 1, k), Operand(gs, n, 1)) };
    }
    // db = Σ_rows dy, per block then in block order.
    let mut db = vec![0f32; n];
    if wanted[2] && m * n > 0 {
        let block = block_rows(m) * n;
        let partials: Vec<Vec<f32>> = gs
            .par_chunks(block)
            .map(|rows| {
                let mut sum = vec![0f32; n];
                for row in rows.chunks(n) {
                    sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
                sum
            })
            .collect();
        for part in partials {
            db.iter_mut().zip(&part).for_each(|(s, v)| *s += v);
        }
    }
    [
        wanted[0].then(|| FlexTensor::from_data(TensorData::new(dx, [m, k]))),
        wanted[1].then(|| FlexTensor::from_data(TensorData::new(dw, [k, n]))),
        wanted[2].then(|| FlexTensor::from_data(TensorData::new(db, [n]))),
    ]
}

impl LinearBackend for Flex {
    fn linear_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(&x, &weight, &bias)
    }
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    /// The saved input, weight and bias (shared handles).
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, w, b) = ops.state;
        let wanted = ops.parents.each_ref().map(|n| n.is_some());
        for (node, grad) in ops.parents.into_iter().zip(backward(&x, &w, &b, &dy, wanted)) {
            if let (Some(n), Some(grad)) = (node, grad) {
                grads.register::<Flex>(n.id, grad);
            }
        }
    }
}

impl<C: CheckpointStrategy> LinearBackend for Autodiff<Flex, C> {
    fn linear_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        match LinearBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, w, b) = (x.into_primitive(), weight.into_primitive(), bias.into_primitive());
                let y = forward(&x, &w, &b);
                prep.finish((x, w, b), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), weight.primitive(), bias.primitive())),
        }
    }
}
