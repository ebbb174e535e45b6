//! The fused CPU kernel against the reference path (composed burn tensor ops): values and
//! every gradient (input, per-channel parameters, mixing weights) on random inputs with edge
//! values (0, negatives for sqrt/log, large magnitudes that hit the bounds), for fixed
//! formulas and for the mixed cells (soft mixes, GDAS' single path, GRAFS' bound); and the
//! fused gradients against finite differences of the fused forward. Both layouts: parameters
//! per channel on `[N, C, H, W]` (the ResNets) and per feature of the last axis on
//! `[batch, tokens, features]` (the transformers' MLPs, with more features than one chunk
//! and more rows than one block).

use std::sync::Arc;

use actsearch::expr::named::resolve;
use actsearch::kernels::program::{Layout, Program};
use actsearch::kernels::{fused, reference};
use actsearch::model::MixedCell;
use actsearch::model::cell::{Mix, PositionMix};
use actsearch::model::state::host_f32;
use actsearch::space::cell::CellSpace;
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SHAPE: [usize; 4] = [2, 3, 5, 7];
/// `[batch, tokens, features]`: 300 features are two chunks of the kernel (256 + 44), 40 rows
/// are three blocks.
const TOKENS: [usize; 3] = [2, 20, 300];

/// The axis holding the parameters, and the stride of one step along it.
fn param_axis<const D: usize>(shape: [usize; D], layout: Layout) -> (usize, usize) {
    let axis = match layout {
        Layout::Channels => 1,
        Layout::Features => D - 1,
    };
    (axis, shape[axis + 1..].iter().product())
}

/// A `[C]` parameter vector shaped to broadcast along `axis`.
fn along<const D: usize>(p: Tensor<1>, shape: [usize; D], axis: usize) -> Tensor<D> {
    let mut to = [1usize; D];
    to[axis] = shape[axis];
    p.reshape(to)
}

/// Random inputs with edge values mixed in: 0, tiny and negative values (sqrt, log), and
/// magnitudes up to `large` (1000 hits the bounds of bounded cells; in an unbounded cell
/// x = 1000 feeds trigonometric ops with arguments near 1e6, where one f32 ulp changes the
/// derivative entirely, so those cells are tested up to 25).
fn inputs(rng: &mut ChaCha8Rng, n: usize, large: f32) -> Vec<f32> {
    let edges = [0.0f32, -0.0, 1e-12, -1e-12, -3.0, 25.0, -25.0, large, -large, 0.5, -0.5, 1.0];
    (0..n).map(|i| if i % 5 == 0 { edges[(i / 5) % edges.len()] } else { rng.random_range(-4.0f32..4.0) }).collect()
}

fn leaf<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values, shape), device).require_grad()
}

/// The inputs at exactly 0, where relu, abs, min/max and the other kinked ops have their
/// kink: there burn's ops pick their own subgradient, while the fused path follows the op
/// table (PyTorch's convention), which `kernels::program`'s own test checks at 0 against the
/// scalar evaluator.
fn kinks(xs: &[f32]) -> Vec<usize> {
    (0..xs.len()).filter(|&i| xs[i] == 0.0).collect()
}

/// Relative error with an absolute floor of 1 (values near 0 compare absolutely).
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_close_except(what, got, want, tol, &[]);
}

/// As [`assert_close`], skipping the indices in `skip`.
fn assert_close_except(what: &str, got: &[f32], want: &[f32], tol: f64, skip: &[usize]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate().filter(|(i, _)| !skip.contains(i)) {
        let (g, w) = (g as f64, w as f64);
        if w.is_nan() || g.is_nan() {
            assert!(w.is_nan() && g.is_nan(), "{what}[{i}]: {g} vs {w}");
            continue;
        }
        let err = (g - w).abs() / w.abs().max(1.0);
        assert!(err < tol, "{what}[{i}]: fused {g} vs reference {w} (error {err:.2e})");
    }
}

#[test]
fn fixed_formulas_match_the_reference_path() {
    check_fixed_formulas(SHAPE, Layout::Channels, 1);
}

#[test]
fn fixed_formulas_on_features_match_the_reference_path() {
    check_fixed_formulas(TOKENS, Layout::Features, 11);
}

fn check_fixed_formulas<const D: usize>(shape: [usize; D], layout: Layout, seed: u64) {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (axis, stride) = param_axis(shape, layout);
    for text in [
        "x*sigmoid(b*x)",
        "(x+b)^2",
        "b1*x + (abs(x)*abs(x) + b2)",
        "x + (min(-x, sqrt(x)) + b)",
        "sigmoid(sigmoid(x))*sigmoid(x)",
        "max(x, 0) + max(x, 0)",
        "sinc(x) + log(x)*tanh(x) - atan(b)*asinh(x)",
        "gelu(x) + elu(x) - erf(x)*softplus(x) + silu(x) - leaky_relu(x)",
        "sin(x)*cos(b*x) + x^3/(abs(x) + 1)",
        "min(max(x, -10), 10)",
        // x alone, and x negated (the program reads x in place and copies it only when the
        // reverse sweep needs its register)
        "x",
        "-x*b",
    ] {
        let formula = resolve(text).unwrap();
        let program = match layout {
            Layout::Channels => Program::from_formula(&formula),
            Layout::Features => Program::from_formula(&formula).on_features(),
        };
        let program = Arc::new(program);
        let xs = inputs(&mut rng, shape.iter().product(), 1e3);
        let c = shape[axis];
        let params: Vec<Vec<f32>> =
            (0..formula.num_params()).map(|_| (0..c).map(|_| rng.random_range(0.3f32..1.5)).collect()).collect();
        let dy: Vec<f32> = (0..xs.len()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let run = |fused_path: bool| {
            let x = leaf(xs.clone(), shape, &device);
            let ps: Vec<Tensor<1>> = params.iter().map(|p| leaf(p.clone(), [c], &device)).collect();
            let y = if fused_path {
                fused::apply(program.clone(), x.clone(), ps.clone(), None)
            } else {
                let shaped: Vec<Tensor<D>> = ps.iter().map(|p| along(p.clone(), shape, axis)).collect();
                reference::eval(&formula, x.clone(), &shaped)
            };
            let weight = Tensor::<D>::from_data(TensorData::new(dy.clone(), shape), &device);
            let grads = (y.clone() * weight).sum().backward();
            let dx = host_f32(x.grad(&grads).unwrap());
            let dps: Vec<Vec<f32>> = ps.iter().map(|p| host_f32(p.grad(&grads).unwrap())).collect();
            (host_f32(y.inner()), dx, dps)
        };
        let (y, dx, dps) = run(true);
        let (y_ref, dx_ref, dps_ref) = run(false);
        assert_close(&format!("{text}: value"), &y, &y_ref, 1e-4);
        let mut skip = kinks(&xs);
        // Where burn's gradient overflows to NaN (elu or softplus at x = 1000 computes e^1000
        // on the masked-off side), the fused one must be the op table's, in f64.
        for i in (0..xs.len()).filter(|&i| dx_ref[i].is_nan() && !y_ref[i].is_nan()) {
            let p: Vec<f64> = params.iter().map(|p| p[(i / stride) % c] as f64).collect();
            let (_, d) = formula.eval_grad(xs[i] as f64, &p, &mut vec![0.0; p.len()]);
            let want = d * dy[i] as f64;
            assert!(
                (dx[i] as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                "{text} at {}: {} vs {want}",
                xs[i],
                dx[i]
            );
            skip.push(i);
        }
        assert_close_except(&format!("{text}: d/dx"), &dx, &dx_ref, 1e-4, &skip);
        for (k, (a, b)) in dps.iter().zip(&dps_ref).enumerate() {
            assert_close(&format!("{text}: d/dparam{k}"), a, b, 1e-4);
        }
    }
}

/// Cells with every op in play, random alphas, random per-channel parameters; the soft mix,
/// the soft mix with some ops dropped (progressive shrinking), the single path, and the bound.
#[test]
fn mixed_cells_match_the_reference_path() {
    check_mixed_cells(SHAPE, Layout::Channels, 2);
}

#[test]
fn mixed_cells_on_features_match_the_reference_path() {
    check_mixed_cells(TOKENS, Layout::Features, 12);
}

fn check_mixed_cells<const D: usize>(shape: [usize; D], layout: Layout, seed: u64) {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (axis, _) = param_axis(shape, layout);
    for space in ["small", "huge", "grafs"] {
        let space = CellSpace::parse(space).unwrap();
        for variant in ["soft", "shrunk", "hard", "bounded"] {
            let c = shape[axis];
            let alphas: Vec<Vec<f32>> = space
                .positions()
                .iter()
                .map(|p| (0..p.ops.len()).map(|_| rng.random_range(-1.0f32..1.0)).collect())
                .collect();
            let mut cell = MixedCell::new(&space, c, alphas, &device);
            cell = cell.bounded((variant == "bounded").then_some(3.0));
            // Per-channel parameters away from their init, so every parameter matters.
            for position in cell.params.iter_mut() {
                for op in position.iter_mut() {
                    for slot in op.iter_mut() {
                        let v: Vec<f32> = (0..c).map(|_| rng.random_range(0.2f32..1.4)).collect();
                        *slot = burn::module::Param::from_data(TensorData::new(v, [c]), &device);
                    }
                }
            }
            let xs = inputs(&mut rng, shape.iter().product(), if space.name == "grafs" { 1e3 } else { 25.0 });
            let dy: Vec<f32> = (0..xs.len()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let hard_choice: Vec<usize> = space.positions().iter().map(|p| rng.random_range(0..p.ops.len())).collect();
            let run = |fused_path: bool| {
                let weights: Vec<Tensor<1>> = space
                    .positions()
                    .iter()
                    .map(|p| {
                        leaf(
                            (0..p.ops.len()).map(|k| 0.05 + 0.9 * ((k * 7 % 11) as f32 / 11.0)).collect(),
                            [p.ops.len()],
                            &device,
                        )
                    })
                    .collect();
                let mixes: Vec<PositionMix> = space
                    .positions()
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let all: Vec<usize> = (0..p.ops.len()).collect();
                        match variant {
                            "hard" => PositionMix::Hard { ops: all, chosen: hard_choice[i], gates: weights[i].clone() },
                            "shrunk" => {
                                let kept: Vec<usize> = all.iter().copied().filter(|k| k % 3 != 1).collect();
                                let index = Tensor::<1, Int>::from_data(
                                    TensorData::new(kept.iter().map(|&k| k as i64).collect::<Vec<_>>(), [kept.len()]),
                                    &device,
                                );
                                PositionMix::Soft { ops: kept, weights: weights[i].clone().select(0, index) }
                            }
                            _ => PositionMix::Soft { ops: all, weights: weights[i].clone() },
                        }
                    })
                    .collect();
                let cell = cell.clone().with_mix(Mix::Positions(mixes));
                let x = leaf(xs.clone(), shape, &device);
                let y = match fused_path {
                    true => cell.forward_fused_on(x.clone(), layout),
                    false => cell.forward_reference_on(x.clone(), layout),
                };
                let g = Tensor::<D>::from_data(TensorData::new(dy.clone(), shape), &device);
                let grads = (y.clone() * g).sum().backward();
                let dx = host_f32(x.grad(&grads).unwrap());
                let dw: Vec<Vec<f32>> = weights.iter().map(|w| host_f32(w.grad(&grads).unwrap())).collect();
                let dp: Vec<Vec<f32>> = cell
                    .params
                    .iter()
                    .flatten()
                    .flatten()
                    .map(|p| p.val().grad(&grads).map(host_f32).unwrap_or_else(|| vec![0.0; c]))
                    .collect();
                (host_f32(y.inner()), dx, dw, dp)
            };
            let (y, dx, dw, dp) = run(true);
            let (y_ref, dx_ref, dw_ref, dp_ref) = run(false);
            let what = format!("{} {variant}", space.name);
            assert_close(&format!("{what}: value"), &y, &y_ref, 1e-4);
            assert_close_except(&format!("{what}: d/dx"), &dx, &dx_ref, 3e-4, &kinks(&xs));
            // Weight and parameter gradients are sums over every element; with inputs up to
            // ±1000 their terms reach 1e6 and cancel, so f32 summation order alone moves the
            // result by ~1e-4 of it (burn sums in f32, the fused kernel per chunk then in f64),
            // and up to ~1e-3 on the 12,000 elements of the feature case. Input gradients are
            // elementwise, but there a few of 12,000 reach 1.2e-4 through the unbounded ops.
            for (i, (a, b)) in dw.iter().zip(&dw_ref).enumerate() {
                assert_close(&format!("{what}: d/dweight of position {i}"), a, b, 3e-3);
            }
            for (i, (a, b)) in dp.iter().zip(&dp_ref).enumerate() {
                assert_close(&format!("{what}: d/dparam {i}"), a, b, 3e-3);
            }
        }
    }
}

/// The fused gradients against central differences of the fused forward (f64 sums of f32
/// values, step 1e-2 on smooth formulas).
#[test]
fn fused_gradients_match_finite_differences() {
    let device = Device::flex().autodiff();
    let plain = Device::flex();
    for text in ["x*sigmoid(b*x)", "b1*tanh(x) + sin(b2*x)*atan(x)", "softplus(b*x) - gelu(x)/(x^2 + b)"] {
        let formula = resolve(text).unwrap();
        let program = Arc::new(Program::from_formula(&formula));
        let c = 2;
        let xs: Vec<f32> = vec![-2.1, -0.7, 0.3, 1.9, -1.2, 0.8, 2.5, -0.1];
        let params: Vec<Vec<f32>> = (0..formula.num_params()).map(|k| vec![0.8 + 0.3 * k as f32, 1.2]).collect();
        let shape = [1, c, 2, 2];
        let total = |xs: &[f32], params: &[Vec<f32>]| -> f64 {
            let x = Tensor::<4>::from_data(TensorData::new(xs.to_vec(), shape), &plain);
            let ps = params.iter().map(|p| Tensor::<1>::from_data(TensorData::new(p.clone(), [c]), &plain)).collect();
            host_f32(fused::apply(program.clone(), x, ps, None)).iter().map(|&v| v as f64).sum()
        };
        let x = leaf(xs.clone(), shape, &device);
        let ps: Vec<Tensor<1>> = params.iter().map(|p| leaf(p.clone(), [c], &device)).collect();
        let grads = fused::apply(program.clone(), x.clone(), ps.clone(), None).sum().backward();
        let dx = host_f32(x.grad(&grads).unwrap());
        let h = 1e-2f32;
        for i in 0..xs.len() {
            let (mut up, mut down) = (xs.clone(), xs.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (total(&up, &params) - total(&down, &params)) / (2.0 * h as f64);
            assert!((dx[i] as f64 - fd).abs() < 2e-3 * fd.abs().max(1.0), "{text} d/dx[{i}]: {} vs {fd}", dx[i]);
        }
        for (k, p) in ps.iter().enumerate() {
            let dp = host_f32(p.grad(&grads).unwrap());
            for ch in 0..c {
                let (mut up, mut down) = (params.clone(), params.clone());
                up[k][ch] += h;
                down[k][ch] -= h;
                let fd = (total(&xs, &up) - total(&xs, &down)) / (2.0 * h as f64);
                assert!(
                    (dp[ch] as f64 - fd).abs() < 2e-3 * fd.abs().max(1.0),
                    "{text} d/db{k}[{ch}]: {} vs {fd}",
                    dp[ch]
                );
            }
        }
    }
}

/// The feature layout's gradients (summed per block of rows, then across blocks) are the same
/// bits on 1 thread and on 3.
#[test]
fn feature_layout_does_not_depend_on_the_thread_count() {
    let device = Device::flex().autodiff();
    let space = CellSpace::parse("grafs").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let alphas: Vec<Vec<f32>> =
        space.positions().iter().map(|p| (0..p.ops.len()).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect();
    let cell = MixedCell::new(&space, TOKENS[2], alphas, &device);
    let xs = inputs(&mut rng, TOKENS.iter().product(), 25.0);
    let with_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let x = leaf(xs.clone(), TOKENS, &device);
            let y = cell.forward_fused_on(x.clone(), Layout::Features);
            let grads = (y.clone() * y.clone()).sum().backward();
            let mut out = vec![host_f32(y.inner()), host_f32(x.grad(&grads).unwrap())];
            out.extend(cell.alphas.iter().map(|a| host_f32(a.val().grad(&grads).unwrap())));
            out.extend(cell.params.iter().flatten().flatten().filter_map(|p| p.val().grad(&grads).map(host_f32)));
            out
        })
    };
    assert_eq!(with_threads(1), with_threads(3));
}
