//! The one-pass batch norm + activation kernel (`kernels::norm_program`) against its pieces
//! (`kernels::norm`, a sum, `kernels::fused`): the output and every gradient (input, residual,
//! gamma, beta, the formula's per-channel parameters), with and without a residual, for a
//! formula with parameters, a single op and a constant; and the same numbers at any thread
//! count. A ResNet's training step goes through it at every site (`model::resnet`), so the
//! networks' parity tests against their PyTorch twins cover it end to end.

use std::sync::Arc;

use actsearch::expr::resolve;
use actsearch::kernels::program::Program;
use actsearch::kernels::{fused, norm, norm_program};
use actsearch::model::state::host_f32;
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{assert_close, leaf};

fn random(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Output, then the gradients of x, the residual (empty without one), gamma, beta and each
/// parameter row, for an upstream gradient `up`; in one pass or in pieces.
fn run(formula: &str, residual: bool, one_pass: bool, seed: u64) -> Vec<Vec<f32>> {
    let device = Device::flex().autodiff();
    let shape = [3, 4, 5, 6];
    let (n, c) = (shape.iter().product::<usize>(), shape[1]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let f = resolve(formula).unwrap();
    let x = leaf(&random(&mut rng, n, -2.0, 3.0), shape, &device);
    let r = leaf(&random(&mut rng, n, -1.0, 1.0), shape, &device);
    let gamma = leaf(&random(&mut rng, c, 0.5, 1.5), [c], &device);
    let beta = leaf(&random(&mut rng, c, -0.5, 0.5), [c], &device);
    let params: Vec<Tensor<1>> =
        (0..f.num_params()).map(|_| leaf(&random(&mut rng, c, 0.5, 1.5), [c], &device)).collect();
    let up = Tensor::<4>::from_data(TensorData::new(random(&mut rng, n, -1.0, 1.0), shape), &device);
    let program = Arc::new(Program::from_formula(&f));
    let stats = norm::statistics(x.clone());
    let residual = residual.then(|| r.clone());
    let y = match one_pass {
        true => norm_program::apply(
            program,
            x.clone(),
            residual.clone(),
            gamma.clone(),
            beta.clone(),
            stats,
            params.clone(),
            None,
            1e-5,
        ),
        false => {
            let z = norm::train_with(x.clone(), gamma.clone(), beta.clone(), stats, 1e-5);
            let z = match residual.clone() {
                Some(r) => z + r,
                None => z,
            };
            fused::apply(program, z, params.clone(), None)
        }
    };
    let grads = (y.clone() * up).sum().backward();
    let mut out = vec![host_f32(y), host_f32(x.grad(&grads).unwrap())];
    out.push(residual.map_or(Vec::new(), |r| host_f32(r.grad(&grads).unwrap())));
    out.extend([gamma, beta].into_iter().chain(params).map(|t| host_f32(t.grad(&grads).unwrap())));
    out
}

#[test]
fn one_pass_matches_the_pieces_values_and_every_gradient() {
    let names = ["y", "dx", "dr", "dgamma", "dbeta", "dparam"];
    for (seed, formula) in
        ["x*sigmoid(b*x)", "relu(x)", "b1*tanh(x) + (1 - b1)*x*x", "x + b", "2"].into_iter().enumerate()
    {
        for residual in [false, true] {
            let (one, pieces) = (run(formula, residual, true, seed as u64), run(formula, residual, false, seed as u64));
            assert_eq!(one.len(), pieces.len());
            for (k, (a, b)) in one.iter().zip(&pieces).enumerate() {
                let what = format!("{formula}, residual {residual}: {}", names[k.min(names.len() - 1)]);
                assert_close(&what, a, b, 2e-5);
            }
        }
    }
}

#[test]
fn one_pass_results_do_not_depend_on_the_thread_count() {
    let with_threads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run("x*sigmoid(b*x)", true, true, 9))
    };
    assert_eq!(with_threads(1), with_threads(3));
}

/// A site that leaves batch norm to the network (the trait's default `forward_normalized`:
/// normalize, add, then the activation), as every site did before the one-pass kernel.
#[derive(burn::module::Module, Debug)]
struct Pieces {
    inner: actsearch::model::activation::Activation,
}

impl actsearch::model::activation::Site for Pieces {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.inner.forward(x)
    }

    fn forward_features<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.inner.forward_features(x)
    }
}

/// A ResNet-8 training pass with the one-pass sites gives the logits, the gradients and the
/// running statistics of the same network built from the pieces.
#[test]
fn a_resnet_step_is_the_same_in_one_pass_and_in_pieces() {
    use actsearch::model::activation::Activation;
    use actsearch::model::network::Network;
    use actsearch::model::resnet::ResNet;
    let device = Device::flex().autodiff();
    let f = resolve("x*sigmoid(b*x)").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let images =
        Tensor::<4>::from_data(TensorData::new(random(&mut rng, 4 * 3 * 32 * 32, -2.0, 2.0), [4, 3, 32, 32]), &device);
    let up = Tensor::<2>::from_data(TensorData::new(random(&mut rng, 40, -1.0, 1.0), [4, 10]), &device);
    let one = ResNet::new(Network::Resnet8, &f, 10, 5, &device).unwrap();
    let pieces =
        ResNet::with_sites(Network::Resnet8, 10, 5, &device, |c| Pieces { inner: Activation::new(&f, c, &device) })
            .unwrap();
    let (y1, y2) = (one.forward(images.clone()), pieces.forward(images));
    assert_close("logits", &host_f32(y1.clone()), &host_f32(y2.clone()), 1e-5);
    let (g1, g2) = ((y1 * up.clone()).sum().backward(), (y2 * up).sum().backward());
    let pairs = [
        ("stem conv", one.stem_conv.weight.grad(&g1), pieces.stem_conv.weight.grad(&g2)),
        ("block 0 conv1", one.blocks[0].conv1.weight.grad(&g1), pieces.blocks[0].conv1.weight.grad(&g2)),
        ("block 2 conv2", one.blocks[2].conv2.weight.grad(&g1), pieces.blocks[2].conv2.weight.grad(&g2)),
    ];
    for (what, a, b) in pairs {
        assert_close(what, &host_f32(a.unwrap()), &host_f32(b.unwrap()), 1e-4);
    }
    let beta = |a: &Activation, g| host_f32(a.params[0].grad(g).unwrap());
    assert_close("stem beta", &beta(&one.act, &g1), &beta(&pieces.act.inner, &g2), 1e-4);
    assert_close("block 1 act2 beta", &beta(&one.blocks[1].act2, &g1), &beta(&pieces.blocks[1].act2.inner, &g2), 1e-4);
    let bn = |b: &burn::nn::BatchNorm, g| host_f32(b.gamma.grad(g).unwrap());
    assert_close("block 2 bn2 gamma", &bn(&one.blocks[2].bn2, &g1), &bn(&pieces.blocks[2].bn2, &g2), 1e-4);
    let running = |b: &burn::nn::BatchNorm| host_f32(b.running_var.value());
    assert_close("running var", &running(&one.blocks[1].bn2), &running(&pieces.blocks[1].bn2), 1e-6);
}
