//! The transformers' CPU kernels against burn's own ops (with autodiff's backward):
//! - attention (`kernels::attention`): the output and the gradient of qkv, with and without
//!   the causal mask, with right-padded samples, on scores large enough that the softmax is far from uniform; the
//!   gradient against finite differences of the kernel's own forward;
//! - layer norm (`kernels::layer_norm`): the output and the gradients of x, gamma and beta
//!   against `burn::nn::LayerNorm`, on rows with a large mean;
//! - linear (`kernels::linear`): the output and the gradients of x, W and b against burn's
//!   `linear`, and only the gradients that are asked for;
//! - the GPT's bias-free linear layers (a transposed weight too) and shift-free LayerNorm;
//! - cross-entropy (`kernels::cross_entropy`): the loss and the gradient of the logits against
//!   burn's `CrossEntropyLoss`, plain, label-smoothed and with padding rows ignored;
//! - each: the same bits on 1 and 3 threads.

use actsearch::kernels::attention::{padded_self_attention, reference, self_attention};
use actsearch::kernels::cross_entropy::CrossEntropy;
use actsearch::kernels::{layer_norm, linear};
use actsearch::model::state::host_f32;
use burn::module::Param;
use burn::nn::LayerNormConfig;
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `[batch, tokens, 3 d]` with d = 24 in 3 heads of 8; 17 tokens (not a multiple of 8).
const SHAPE: [usize; 3] = [3, 17, 72];
const HEADS: usize = 3;

fn qkv(seed: u64, std: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..SHAPE.iter().product()).map(|_| rng.random_range(-std..std)).collect()
}

/// A fixed random weighting of the output, so that every output element's gradient differs.
fn weights(n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The output and the gradient of `sum(w * out)` for qkv `xs`, by `f`.
fn run(xs: &[f32], causal: bool, f: fn(Tensor<3>, usize, bool) -> Tensor<3>) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let x = Tensor::<3>::from_data(TensorData::new(xs.to_vec(), SHAPE), &device).require_grad();
    let y = f(x.clone(), HEADS, causal);
    let [b, t, d] = y.dims();
    let w = Tensor::<3>::from_data(TensorData::new(weights(b * t * d), [b, t, d]), &device);
    let grads = (y.clone() * w).sum().backward();
    (host_f32(y.inner()), host_f32(x.grad(&grads).unwrap()))
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs() / (w as f64).abs().max(1.0);
        assert!(err < tol, "{what}[{i}]: kernel {g} vs reference {w} (error {err:.2e})");
    }
}

#[test]
fn attention_matches_the_reference_path() {
    // std 3: scores up to ~70, a softmax that is nearly one-hot in places.
    for (seed, std) in [(1, 0.5f32), (2, 3.0)] {
        let xs = qkv(seed, std);
        for causal in [false, true] {
            let (y, dx) = run(&xs, causal, self_attention);
            let (y_ref, dx_ref) = run(&xs, causal, |x, h, c| reference(x, h, c, &[]));
            let what = format!("std {std}, causal {causal}");
            assert_close(&format!("output ({what})"), &y, &y_ref, 1e-5);
            assert_close(&format!("d qkv ({what})"), &dx, &dx_ref, 1e-4);
        }
    }
}

/// The causal mask: changing a later token's keys and values leaves earlier outputs alone.
#[test]
fn a_causal_token_sees_only_its_past() {
    let xs = qkv(3, 1.0);
    let mut changed = xs.clone();
    let [_, t, w] = SHAPE;
    for c in w / 3..w {
        changed[(t - 1) * w + c] += 1.0; // the last token of sample 0: its k and v
    }
    let (a, _) = run(&xs, true, self_attention);
    let (b, _) = run(&changed, true, self_attention);
    let d = w / 3;
    assert_eq!(a[..(t - 1) * d], b[..(t - 1) * d], "earlier tokens of sample 0 moved");
    assert_ne!(a[(t - 1) * d..t * d], b[(t - 1) * d..t * d], "the last token did not move");
    let (a, _) = run(&xs, false, self_attention);
    let (b, _) = run(&changed, false, self_attention);
    assert_ne!(a[..d], b[..d], "without the mask the first token sees the last");
}

/// The kernel's gradient against central differences of its own forward, in f64 sums.
#[test]
fn attentions_gradient_matches_finite_differences() {
    let xs = qkv(4, 1.0);
    let [b, t, w] = SHAPE;
    let ws = weights(b * t * (w / 3));
    let loss = |xs: &[f32]| -> f64 {
        let device = Device::flex();
        let x = Tensor::<3>::from_data(TensorData::new(xs.to_vec(), SHAPE), &device);
        let y = host_f32(self_attention(x, HEADS, true));
        y.iter().zip(&ws).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let (_, dx) = run(&xs, true, self_attention);
    let h = 1e-2f32;
    for i in (0..xs.len()).step_by(37) {
        let (mut up, mut down) = (xs.clone(), xs.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (loss(&up) - loss(&down)) / (2.0 * h as f64);
        let err = (dx[i] as f64 - numeric).abs();
        assert!(err < 2e-3 * numeric.abs().max(1.0), "d qkv[{i}]: kernel {} vs numeric {numeric}", dx[i]);
    }
}

#[test]
fn attention_does_not_depend_on_the_thread_count() {
    let xs = qkv(5, 2.0);
    let with_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run(&xs, true, self_attention))
    };
    let (y1, dx1) = with_threads(1);
    let (y3, dx3) = with_threads(3);
    assert!(y1.iter().zip(&y3).all(|(a, b)| a.to_bits() == b.to_bits()), "outputs differ");
    assert!(dx1.iter().zip(&dx3).all(|(a, b)| a.to_bits() == b.to_bits()), "gradients differ");
}

/// `[rows, features]` for the layer norm: 3 x 7 rows (more than one block of 16) of 37
/// features (not a multiple of 8).
const LN_SHAPE: [usize; 3] = [3, 7, 37];

/// The output and the gradients of x, gamma and beta of `sum(w * ln(x))`, by the kernel or by
/// burn's `LayerNorm`.
fn run_layer_norm(kernel: bool) -> [Vec<f32>; 4] {
    let device = Device::flex().autodiff();
    let n: usize = LN_SHAPE.iter().product();
    let f = LN_SHAPE[2];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // A row mean of about 50 against a spread of about 2: cancellation shows if the variance
    // is not taken about the mean.
    let xs: Vec<f32> = (0..n).map(|i| 50.0 * ((i / f) % 2) as f32 + rng.random_range(-2.0f32..2.0)).collect();
    let mut ln = LayerNormConfig::new(f).with_epsilon(1e-5).init(&device);
    let gamma: Vec<f32> = (0..f).map(|_| rng.random_range(0.5f32..1.5)).collect();
    let beta: Vec<f32> = (0..f).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    ln.gamma = Param::from_data(TensorData::new(gamma, [f]), &device);
    ln.beta = Some(Param::from_data(TensorData::new(beta, [f]), &device));
    let x = Tensor::<3>::from_data(TensorData::new(xs, LN_SHAPE), &device).require_grad();
    let y = if kernel { layer_norm::apply(&ln, 1e-5, x.clone()) } else { ln.forward(x.clone()) };
    let w = Tensor::<3>::from_data(TensorData::new(weights(n), LN_SHAPE), &device);
    let grads = (y.clone() * w).sum().backward();
    let beta = ln.beta.as_ref().unwrap();
    [
        host_f32(y.inner()),
        host_f32(x.grad(&grads).unwrap()),
        host_f32(ln.gamma.val().grad(&grads).unwrap()),
        host_f32(beta.val().grad(&grads).unwrap()),
    ]
}

#[test]
fn the_layer_norm_kernel_matches_burns_layer_norm() {
    let got = run_layer_norm(true);
    let want = run_layer_norm(false);
    for (name, (g, w)) in ["output", "d x", "d gamma", "d beta"].iter().zip(got.iter().zip(&want)) {
        assert_close(name, g, w, 2e-5);
    }
}

#[test]
fn the_layer_norm_kernel_does_not_depend_on_the_thread_count() {
    let with_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run_layer_norm(true))
    };
    let (one, three) = (with_threads(1), with_threads(3));
    for (a, b) in one.iter().zip(&three) {
        assert!(a.iter().zip(b).all(|(u, v)| u.to_bits() == v.to_bits()), "results differ");
    }
}

/// The output and the gradients of x, W and b of `sum(w * (x W + b))` for x `[m, k]` and W
/// `[k, n]`, by the kernel or by burn's `linear`.
fn run_linear(kernel: bool, (m, k, n): (usize, usize, usize)) -> [Vec<f32>; 4] {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut values = |len: usize| (0..len).map(|_| rng.random_range(-2.0f32..2.0)).collect::<Vec<f32>>();
    let x = Tensor::<2>::from_data(TensorData::new(values(m * k), [m, k]), &device).require_grad();
    let w = Tensor::<2>::from_data(TensorData::new(values(k * n), [k, n]), &device).require_grad();
    let b = Tensor::<1>::from_data(TensorData::new(values(n), [n]), &device).require_grad();
    let y = match kernel {
        true => linear::affine(x.clone(), w.clone(), Some(b.clone())),
        false => burn::tensor::module::linear(x.clone(), w.clone(), Some(b.clone())),
    };
    let weighting = Tensor::<2>::from_data(TensorData::new(weights(m * n), [m, n]), &device);
    let grads = (y.clone() * weighting).sum().backward();
    [
        host_f32(y.inner()),
        host_f32(x.grad(&grads).unwrap()),
        host_f32(w.grad(&grads).unwrap()),
        host_f32(b.grad(&grads).unwrap()),
    ]
}

#[test]
fn the_linear_kernel_matches_burns_linear() {
    let got = run_linear(true, (70, 37, 19));
    let want = run_linear(false, (70, 37, 19));
    for (name, (g, w)) in ["output", "d x", "d W", "d b"].iter().zip(got.iter().zip(&want)) {
        assert_close(name, g, w, 1e-5);
    }
}

/// A constant input (the images of a patch embedding): no gradient is computed for it, and
/// the weight's is still right.
#[test]
fn the_linear_kernel_skips_gradients_nobody_asked_for() {
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]), &device);
    let w = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]), &device).require_grad();
    let y = linear::affine(x.clone(), w.clone(), Some(Tensor::zeros([2], &device)));
    let grads = y.sum().backward();
    assert!(x.grad(&grads).is_none());
    assert_eq!(host_f32(w.grad(&grads).unwrap()), vec![4.0, 4.0, 6.0, 6.0]);
}

/// Products large enough (over `gemm`'s threading threshold of 48 x 48 x 256) that `gemm`
/// splits them over the threads.
#[test]
fn the_linear_kernel_does_not_depend_on_the_thread_count() {
    let with_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run_linear(true, (600, 40, 70)))
    };
    let (one, three) = (with_threads(1), with_threads(3));
    for (a, b) in one.iter().zip(&three) {
        assert!(a.iter().zip(b).all(|(u, v)| u.to_bits() == v.to_bits()), "results differ");
    }
}

/// The GPT's layers have no bias: the linear kernel without one matches burn's `linear`
/// without one, output and gradients of x and W (a transposed weight, as the tied head's).
#[test]
fn the_linear_kernel_without_a_bias_matches_burns() {
    let device = Device::flex().autodiff();
    let (m, k, n) = (70, 37, 19);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut values = |len: usize| (0..len).map(|_| rng.random_range(-2.0f32..2.0)).collect::<Vec<f32>>();
    let xs = values(m * k);
    let ws = values(n * k);
    let run = |kernel: bool| {
        let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [m, k]), &device).require_grad();
        let w = Tensor::<2>::from_data(TensorData::new(ws.clone(), [n, k]), &device).require_grad();
        let y = match kernel {
            true => linear::affine(x.clone(), w.clone().transpose(), None),
            false => burn::tensor::module::linear(x.clone(), w.clone().transpose(), None),
        };
        let weighting = Tensor::<2>::from_data(TensorData::new(weights(m * n), [m, n]), &device);
        let grads = (y.clone() * weighting).sum().backward();
        [host_f32(y.inner()), host_f32(x.grad(&grads).unwrap()), host_f32(w.grad(&grads).unwrap())]
    };
    let (got, want) = (run(true), run(false));
    for (name, (g, w)) in ["output", "d x", "d W"].iter().zip(got.iter().zip(&want)) {
        assert_close(name, g, w, 1e-5);
    }
}

/// A LayerNorm without a shift (the GPT's): the kernel matches burn's, output and the
/// gradients of x and gamma.
#[test]
fn the_layer_norm_kernel_without_a_shift_matches_burns() {
    let device = Device::flex().autodiff();
    let n: usize = LN_SHAPE.iter().product();
    let f = LN_SHAPE[2];
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let xs: Vec<f32> = (0..n).map(|i| 50.0 * ((i / f) % 2) as f32 + rng.random_range(-2.0f32..2.0)).collect();
    let gamma: Vec<f32> = (0..f).map(|_| rng.random_range(0.5f32..1.5)).collect();
    let run = |kernel: bool| {
        let mut ln = LayerNormConfig::new(f).with_epsilon(1e-5).with_bias(false).init(&device);
        ln.gamma = Param::from_data(TensorData::new(gamma.clone(), [f]), &device);
        let x = Tensor::<3>::from_data(TensorData::new(xs.clone(), LN_SHAPE), &device).require_grad();
        let y = if kernel { layer_norm::apply(&ln, 1e-5, x.clone()) } else { ln.forward(x.clone()) };
        let w = Tensor::<3>::from_data(TensorData::new(weights(n), LN_SHAPE), &device);
        let grads = (y.clone() * w).sum().backward();
        [host_f32(y.inner()), host_f32(x.grad(&grads).unwrap()), host_f32(ln.gamma.val().grad(&grads).unwrap())]
    };
    let (got, want) = (run(true), run(false));
    for (name, (g, w)) in ["output", "d x", "d gamma"].iter().zip(got.iter().zip(&want)) {
        assert_close(name, g, w, 2e-5);
    }
}

/// 40 rows (three blocks of 16, the last short) of 37 classes (not a multiple of 8), spread
/// wide enough (std about 6) that the softmax is far from uniform; every fifth target is 0.
fn logits_and_targets() -> (Vec<f32>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let logits = (0..40 * 37).map(|_| rng.random_range(-10.0f32..10.0)).collect();
    let targets = (0..40).map(|i| if i % 5 == 0 { 0 } else { rng.random_range(1..37i64) }).collect();
    (logits, targets)
}

/// The loss and the gradient of `2.5 loss` with respect to the logits, by the kernel or by
/// burn's `CrossEntropyLoss`.
fn run_cross_entropy(kernel: bool, loss: CrossEntropy) -> (f32, Vec<f32>) {
    let device = Device::flex().autodiff();
    let (xs, targets) = logits_and_targets();
    let x = Tensor::<2>::from_data(TensorData::new(xs, [40, 37]), &device).require_grad();
    let value = if kernel {
        loss.forward(x.clone(), &targets)
    } else {
        let labels = Tensor::<1, Int>::from_data(TensorData::new(targets, [40]), &device);
        burn::nn::loss::CrossEntropyLossConfig::new()
            .with_pad_tokens(loss.ignore.map(|i| vec![i as usize]))
            .with_smoothing((loss.smoothing > 0.0).then_some(loss.smoothing))
            .init(&device)
            .forward(x.clone(), labels)
    };
    let grads = value.clone().mul_scalar(2.5).backward();
    (value.into_scalar::<f32>(), host_f32(x.grad(&grads).unwrap()))
}

#[test]
fn the_cross_entropy_kernel_matches_burns_loss() {
    for smoothing in [0.0, 0.1] {
        for ignore in [None, Some(0)] {
            let loss = CrossEntropy { smoothing, ignore };
            let (value, grad) = run_cross_entropy(true, loss);
            let (want, want_grad) = run_cross_entropy(false, loss);
            let what = format!("smoothing {smoothing}, ignoring {ignore:?}");
            assert_close(&format!("loss, {what}"), &[value], &[want], 1e-5);
            assert_close(&format!("gradient, {what}"), &grad, &want_grad, 1e-5);
            if ignore.is_some() {
                assert!(grad[..37].iter().all(|&g| g == 0.0), "an ignored row got a gradient ({what})");
            }
        }
    }
}

#[test]
fn the_cross_entropy_kernel_does_not_depend_on_the_thread_count() {
    let loss = CrossEntropy { smoothing: 0.1, ignore: Some(0) };
    let with_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run_cross_entropy(true, loss))
    };
    let ((v1, g1), (v3, g3)) = (with_threads(1), with_threads(3));
    assert_eq!(v1.to_bits(), v3.to_bits(), "losses differ");
    assert!(g1.iter().zip(&g3).all(|(a, b)| a.to_bits() == b.to_bits()), "gradients differ");
}

/// Right-padded samples (3, 17 and 9 keys of 17), with and without the causal mask: the kernel
/// gives the reference's output and qkv gradient, and no query's output depends on a padded
/// key.
#[test]
fn padded_attention_matches_the_reference_path() {
    let keys = [3usize, 17, 9];
    let xs = qkv(8, 2.0);
    for causal in [false, true] {
        let (y, dx) = run(&xs, causal, |x, h, c| padded_self_attention(x, h, c, &[3, 17, 9]));
        let (y_ref, dx_ref) = run(&xs, causal, |x, h, c| reference(x, h, c, &[3, 17, 9]));
        assert_close(&format!("padded output, causal {causal}"), &y, &y_ref, 1e-5);
        assert_close(&format!("padded qkv gradient, causal {causal}"), &dx, &dx_ref, 1e-4);
        // Changing a padded key's k and v changes nothing.
        let mut other = xs.clone();
        let w = SHAPE[2];
        for col in w / 3..w {
            // Sample 0's fourth token, its first padded key.
            other[keys[0] * w + col] += 5.0;
        }
        let (y2, _) = run(&other, causal, |x, h, c| padded_self_attention(x, h, c, &[3, 17, 9]));
        assert_eq!(y, y2, "a padded key changed the output (causal {causal})");
    }
}
