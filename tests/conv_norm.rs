//! The CPU convolution and batch-norm kernels (`kernels::conv`, `kernels::norm`) against burn's
//! own ops (`module::conv2d`, `module::batch_norm_train`): values and every gradient, for the
//! network's stencils (3x3 stride 1 and 2, 1x1 stride 2) and some others; the kernels'
//! gradients against finite differences; the running statistics of a ResNet step; and that the
//! results do not depend on the thread count.

use actsearch::kernels::{conv, norm};
use actsearch::model::state::host_f32;
use burn::prelude::*;
use burn::tensor::module::{batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{assert_close, leaf};

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// (x shape, cout, kernel, stride, padding)
/// The last two span several im2col tiles (`kernels::conv::TILE` output pixels), the last
/// ending in a partial one.
const CONVS: [([usize; 4], usize, usize, usize, usize); 15] = [
    ([3, 4, 8, 8], 5, 3, 1, 1),
    ([2, 4, 9, 7], 6, 3, 2, 1),
    ([2, 6, 8, 8], 3, 1, 2, 0),
    ([2, 3, 5, 5], 4, 1, 1, 0),
    ([5, 3, 6, 6], 2, 3, 1, 0),
    ([1, 2, 7, 7], 3, 5, 2, 2),
    ([6, 16, 8, 8], 16, 3, 1, 1),
    ([2, 3, 40, 20], 4, 3, 1, 1),
    ([2, 3, 50, 35], 5, 3, 2, 1),
    // A kernel wider than the image: some kernel columns read only padding.
    ([2, 2, 1, 1], 3, 5, 1, 2),
    // Stride-1 same convolutions on batches that are not a multiple of the sample group.
    ([5, 3, 9, 6], 4, 5, 1, 2),
    ([7, 8, 4, 4], 8, 3, 1, 1),
    // Wide enough for the shifted forward (32 columns, 8 channels) and backward (16 columns).
    ([5, 8, 3, 32], 6, 3, 1, 1),
    ([3, 4, 6, 17], 5, 3, 1, 1),
    // More than 16 channels each way: the weight gradient in 16x16 blocks.
    ([2, 20, 2, 16], 18, 3, 1, 1),
];

/// y, dx and dw of the kernel, then of burn's conv2d, for a random upstream gradient.
fn conv_both(xs: &[f32], ws: &[f32], up: &[f32], spec: ([usize; 4], usize, usize, usize, usize)) -> [[Vec<f32>; 3]; 2] {
    let (shape, cout, k, stride, padding) = spec;
    let device = Device::flex().autodiff();
    let run = |kernel: bool| {
        let x = leaf(xs, shape, &device);
        let w = leaf(ws, [cout, shape[1], k, k], &device);
        let y = match kernel {
            true => conv::apply(x.clone(), w.clone(), conv::Stencil { stride, padding }),
            false => conv2d(x.clone(), w.clone(), None, ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1)),
        };
        let dims = y.dims();
        let g = Tensor::<4>::from_data(TensorData::new(up[..dims.iter().product::<usize>()].to_vec(), dims), &device);
        let grads = (y.clone() * g).sum().backward();
        [host_f32(y), host_f32(x.grad(&grads).unwrap()), host_f32(w.grad(&grads).unwrap())]
    };
    [run(true), run(false)]
}

#[test]
fn convolution_matches_burn_values_and_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for spec in CONVS {
        let (shape, cout, k, _, _) = spec;
        let xs = random(&mut rng, shape.iter().product(), 2.0);
        let ws = random(&mut rng, cout * shape[1] * k * k, 1.0);
        let up = random(&mut rng, shape[0] * cout * shape[2] * shape[3], 1.0);
        let [[y, dx, dw], [y_ref, dx_ref, dw_ref]] = conv_both(&xs, &ws, &up, spec);
        assert_close(&format!("{spec:?} y"), &y, &y_ref, 1e-4);
        assert_close(&format!("{spec:?} dx"), &dx, &dx_ref, 1e-4);
        assert_close(&format!("{spec:?} dw"), &dw, &dw_ref, 1e-4);
    }
}

#[test]
fn convolution_without_input_gradient_still_gives_the_weight_gradient() {
    // The stem's input (the images) needs no gradient: the kernel skips dx.
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (xs, ws) = (random(&mut rng, 2 * 3 * 6 * 6, 1.0), random(&mut rng, 4 * 3 * 9, 1.0));
    let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), [2, 3, 6, 6]), &device);
    let w = leaf(&ws, [4, 3, 3, 3], &device);
    let grads = conv::apply(x.clone(), w.clone(), conv::Stencil { stride: 1, padding: 1 }).sum().backward();
    let [[_, _, dw_full], _] = conv_both(&xs, &ws, &vec![1.0; 2 * 4 * 36], ([2, 3, 6, 6], 4, 3, 1, 1));
    assert_close("dw", &host_f32(w.grad(&grads).unwrap()), &dw_full, 1e-5);
}

/// y, dx, dgamma and dbeta of the kernel, then of burn's batch_norm_train.
fn norm_both(xs: &[f32], gamma: &[f32], beta: &[f32], up: &[f32], shape: [usize; 4]) -> [[Vec<f32>; 6]; 2] {
    let device = Device::flex().autodiff();
    let c = shape[1];
    let run = |kernel: bool| {
        let (x, g, b) = (leaf(xs, shape, &device), leaf(gamma, [c], &device), leaf(beta, [c], &device));
        let (y, mean, var) = match kernel {
            true => norm::train(x.clone(), g.clone(), b.clone(), 1e-5),
            false => {
                let r = batch_norm_train(x.clone(), g.clone(), b.clone(), 1e-5);
                (r.output, r.mean, r.variance)
            }
        };
        let up = Tensor::<4>::from_data(TensorData::new(up.to_vec(), shape), &device);
        let grads = (y.clone() * up).sum().backward();
        [
            host_f32(y),
            host_f32(x.grad(&grads).unwrap()),
            host_f32(g.grad(&grads).unwrap()),
            host_f32(b.grad(&grads).unwrap()),
            host_f32(mean),
            host_f32(var),
        ]
    };
    [run(true), run(false)]
}

#[test]
fn batch_norm_matches_burn_values_gradients_and_statistics() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for shape in [[4, 3, 5, 5], [2, 8, 4, 4], [16, 2, 1, 1], [3, 5, 7, 2]] {
        let n: usize = shape.iter().product();
        // An offset per element keeps the mean away from 0 (centring must be exact).
        let xs: Vec<f32> = random(&mut rng, n, 3.0).into_iter().map(|v| v + 5.0).collect();
        let (gamma, beta) = (random(&mut rng, shape[1], 2.0), random(&mut rng, shape[1], 1.0));
        let up = random(&mut rng, n, 1.0);
        let [got, want] = norm_both(&xs, &gamma, &beta, &up, shape);
        for (name, (g, w)) in ["y", "dx", "dgamma", "dbeta", "mean", "var"].iter().zip(got.iter().zip(&want)) {
            assert_close(&format!("{shape:?} {name}"), g, w, 1e-4);
        }
    }
}

/// Central finite differences of `loss` at `xs`, element by element.
fn finite_differences(xs: &[f32], h: f32, loss: impl Fn(&[f32]) -> f64) -> Vec<f32> {
    (0..xs.len())
        .map(|i| {
            let (mut up, mut down) = (xs.to_vec(), xs.to_vec());
            up[i] += h;
            down[i] -= h;
            ((loss(&up) - loss(&down)) / (2.0 * h as f64)) as f32
        })
        .collect()
}

#[test]
fn kernel_gradients_match_finite_differences() {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    // A nonlinear loss of the kernels chained: sum(up * tanh(bn(conv(x)))).
    let shape = [3, 2, 5, 5];
    let (xs, ws) = (random(&mut rng, 150, 1.0), random(&mut rng, 3 * 2 * 9, 1.0));
    let (gamma, beta, up) = (random(&mut rng, 3, 2.0), random(&mut rng, 3, 1.0), random(&mut rng, 3 * 3 * 9, 1.0));
    let stencil = conv::Stencil { stride: 2, padding: 1 };
    let forward = |x: Tensor<4>, w: Tensor<4>, g: Tensor<1>| {
        let y = conv::apply(x, w, stencil);
        let (y, _, _) = norm::train(y, g, Tensor::from_data(TensorData::new(beta.clone(), [3]), &device), 1e-5);
        let up = Tensor::<4>::from_data(TensorData::new(up.clone(), y.dims()), &device);
        (y.tanh() * up).sum()
    };
    let value = |xs: &[f32], ws: &[f32], gs: &[f32]| {
        let t = |v: &[f32], s: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), s), &device);
        let g = Tensor::<1>::from_data(TensorData::new(gs.to_vec(), [3]), &device);
        host_f32(forward(t(xs, shape), t(ws, [3, 2, 3, 3]), g))[0] as f64
    };
    let (x, w, g) = (leaf(&xs, shape, &device), leaf(&ws, [3, 2, 3, 3], &device), leaf(&gamma, [3], &device));
    let grads = forward(x.clone(), w.clone(), g.clone()).backward();
    let h = 1e-2;
    let checks = [
        ("dx", host_f32(x.grad(&grads).unwrap()), finite_differences(&xs, h, |v| value(v, &ws, &gamma))),
        ("dw", host_f32(w.grad(&grads).unwrap()), finite_differences(&ws, h, |v| value(&xs, v, &gamma))),
        ("dgamma", host_f32(g.grad(&grads).unwrap()), finite_differences(&gamma, h, |v| value(&xs, &ws, v))),
    ];
    for (name, got, want) in checks {
        assert_close(name, &got, &want, 2e-2);
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // im2col (8x8) and the shifted products (32 wide), both over several sample groups.
    for spec in [([9, 16, 8, 8], 16, 3, 1, 1), ([9, 16, 4, 32], 16, 3, 1, 1)] {
        let n: usize = spec.0.iter().product();
        let xs = random(&mut rng, n, 2.0);
        let ws = random(&mut rng, 16 * 16 * 9, 1.0);
        let up = random(&mut rng, n, 1.0);
        let with_threads = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let [[y, dx, dw], _] = conv_both(&xs, &ws, &up, spec);
                let [[ny, ndx, ng, nb, ..], _] = norm_both(&xs, &[1.5; 16], &[0.1; 16], &up, spec.0);
                [y, dx, dw, ny, ndx, ng, nb]
            })
        };
        assert_eq!(with_threads(1), with_threads(3), "{spec:?}");
    }
}

#[test]
fn network_layers_match_burn_modules_including_running_statistics() {
    use actsearch::model::layers::{convolve, normalize};
    use burn::nn::BatchNormConfig;
    use burn::nn::conv::Conv2dConfig;
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = Tensor::<4>::from_data(TensorData::new(random(&mut rng, 4 * 3 * 6 * 6, 2.0), [4, 3, 6, 6]), &device);
    let conv = Conv2dConfig::new([3, 8], [3, 3])
        .with_stride([2, 2])
        .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(&device);
    assert_close("conv", &host_f32(convolve(&conv, x.clone())), &host_f32(conv.forward(x.clone())), 1e-5);
    let (ours, burns) = (BatchNormConfig::new(3).init(&device), BatchNormConfig::new(3).init(&device));
    for step in 0..3 {
        let xi = x.clone().mul_scalar(step as f32 + 1.0).add_scalar(step as f32);
        assert_close("bn", &host_f32(normalize(&ours, xi.clone())), &host_f32(burns.forward(xi)), 1e-4);
    }
    assert_close("running mean", &host_f32(ours.running_mean.value()), &host_f32(burns.running_mean.value()), 1e-5);
    assert_close("running var", &host_f32(ours.running_var.value()), &host_f32(burns.running_var.value()), 1e-5);
}

/// Inference (no autodiff): the one-pass kernel with the running statistics equals burn's
/// `BatchNorm::forward` in inference mode, after the statistics have moved away from 0 and 1.
#[test]
fn inference_batch_norm_matches_burn_with_the_running_statistics() {
    use actsearch::model::layers::normalize;
    use burn::module::{Module, Param};
    use burn::nn::BatchNormConfig;
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut bn = BatchNormConfig::new(5).init(&device);
    bn.gamma = Param::from_data(TensorData::new(random(&mut rng, 5, 2.0), [5]), &device);
    bn.beta = Param::from_data(TensorData::new(random(&mut rng, 5, 2.0), [5]), &device);
    // training steps on shifted, scaled batches move the running statistics
    for step in 0..4 {
        let x = Tensor::<4>::from_data(TensorData::new(random(&mut rng, 3 * 5 * 4 * 4, 3.0), [3, 5, 4, 4]), &device);
        normalize(&bn, x.add_scalar(step as f32));
    }
    let plain = bn.valid();
    let x =
        Tensor::<4>::from_data(TensorData::new(random(&mut rng, 2 * 5 * 3 * 7, 4.0), [2, 5, 3, 7]), &Device::flex());
    let mean = host_f32(plain.running_mean.value());
    assert!(mean.iter().any(|m| m.abs() > 0.1), "the running mean did not move: {mean:?}");
    assert_close("inference bn", &host_f32(normalize(&plain, x.clone())), &host_f32(plain.forward(x)), 1e-5);
}

/// Inference folds the batch norm into the convolution (`layers::convolve_normalized`): the
/// result equals the convolution followed by the batch norm, on every kernel path (im2col,
/// pointwise, the shifted products on 32-wide images, stride 2), with moved statistics.
#[test]
fn folded_inference_batch_norm_equals_convolution_then_batch_norm() {
    use actsearch::model::layers::{convolve, convolve_normalized, normalize};
    use burn::module::{Module, Param};
    use burn::nn::BatchNormConfig;
    use burn::nn::conv::Conv2dConfig;
    let (train, plain) = (Device::flex().autodiff(), Device::flex());
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    for (shape, cout, k, stride, pad) in [
        ([3, 4, 8, 8], 6, 3, 1, 1),
        ([2, 8, 5, 32], 8, 3, 1, 1),
        ([2, 6, 8, 8], 5, 1, 2, 0),
        ([3, 3, 9, 7], 4, 3, 2, 1),
    ] {
        let conv = Conv2dConfig::new([shape[1], cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .init(&plain);
        let mut bn = BatchNormConfig::new(cout).init(&train);
        bn.gamma = Param::from_data(TensorData::new(random(&mut rng, cout, 2.0), [cout]), &train);
        bn.beta = Param::from_data(TensorData::new(random(&mut rng, cout, 2.0), [cout]), &train);
        for step in 0..3 {
            let y =
                Tensor::<4>::from_data(TensorData::new(random(&mut rng, 2 * cout * 9, 3.0), [2, cout, 3, 3]), &train);
            normalize(&bn, y.mul_scalar(step as f32 + 1.0).add_scalar(step as f32));
        }
        let bn = bn.valid();
        let n: usize = shape.iter().product();
        let x = Tensor::<4>::from_data(TensorData::new(random(&mut rng, n, 2.0), shape), &plain);
        let folded = host_f32(convolve_normalized(&conv, &bn, x.clone()));
        let separate = host_f32(normalize(&bn, convolve(&conv, x)));
        assert_close(&format!("{shape:?} k{k} s{stride}"), &folded, &separate, 1e-4);
    }
}
