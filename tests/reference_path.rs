//! The reference path (formulas composed from burn tensor ops, autodiff backward) against the
//! op table in `expr::ops` (values and derivatives) and against finite differences.

use actsearch::expr::ops::{BinOp, Func};
use actsearch::expr::{Formula, NAMED, resolve};
use actsearch::kernels::reference;
use actsearch::model::state::host_f32;
use burn::prelude::*;
use burn::tensor::DType;

/// Inputs covering the usual range, edge values and large magnitudes.
fn inputs() -> Vec<f32> {
    let mut xs: Vec<f32> = (0..97).map(|i| -6.0 + 12.0 * i as f32 / 96.0 + 0.0123).collect();
    xs.extend([0.0, -1e-3, 1e-3, -0.5, 0.5, -20.0, 20.0, -40.0, 40.0, 3e-5, -3e-5]);
    xs
}

/// Points where the op has a kink (derivative conventions legitimately differ there).
fn near_kink(f: Func, x: f32) -> bool {
    let kinked = matches!(f, Func::Abs | Func::Relu | Func::LeakyRelu | Func::Elu | Func::Sqrt | Func::Log);
    kinked && x.abs() < 1e-2
}

/// Values and d/dx of `f` applied elementwise through the tensor path.
fn tensor_value_and_grad(xs: &[f32], apply: impl Fn(Tensor<1>) -> Tensor<1>) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let x = Tensor::<1>::from_data(TensorData::new(xs.to_vec(), [xs.len()]), &device).require_grad();
    let y = apply(x.clone());
    let values = host_f32(y.clone().inner());
    let grads = y.sum().backward();
    let dx = host_f32(x.grad(&grads).unwrap());
    (values, dx)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn every_func_tensor_form_matches_the_table() {
    let xs = inputs();
    for &f in Func::ALL {
        let (values, grads) = tensor_value_and_grad(&xs, |x| f.tensor(x));
        for (i, &x) in xs.iter().enumerate() {
            let (v, d) = f.eval(x as f64);
            if !v.is_finite() {
                continue; // exp/sinh/cosh overflow at +-40 in f32: documented
            }
            assert!(close(values[i] as f64, v, 1e-4), "{}({x}): tensor {} vs table {v}", f.name(), values[i]);
            if !near_kink(f, x) && d.is_finite() && d.abs() < 1e6 {
                assert!(close(grads[i] as f64, d, 2e-3), "{}'({x}): autodiff {} vs table {d}", f.name(), grads[i]);
            }
        }
    }
}

#[test]
fn every_binop_tensor_form_matches_the_table() {
    let device = Device::flex().autodiff();
    let a_vals: Vec<f32> = (0..50).map(|i| -3.0 + 0.13 * i as f32).collect();
    let b_vals: Vec<f32> = (0..50).map(|i| 2.5 - 0.11 * i as f32 + 0.01).collect();
    for &op in BinOp::ALL {
        let a = Tensor::<1>::from_data(TensorData::new(a_vals.clone(), [50]), &device).require_grad();
        let b = Tensor::<1>::from_data(TensorData::new(b_vals.clone(), [50]), &device).require_grad();
        let y = op.tensor(a.clone(), b.clone());
        let values = host_f32(y.clone().inner());
        let grads = y.sum().backward();
        let da = host_f32(a.grad(&grads).unwrap());
        let db = host_f32(b.grad(&grads).unwrap());
        for i in 0..50 {
            let (v, ga, gb) = op.eval(a_vals[i] as f64, b_vals[i] as f64);
            if op == BinOp::Div && (b_vals[i] as f64).abs() < 0.05 {
                continue;
            }
            assert!(close(values[i] as f64, v, 1e-5), "{op:?} value");
            assert!(close(da[i] as f64, ga, 1e-4), "{op:?} d/da at {} {}: {} vs {ga}", a_vals[i], b_vals[i], da[i]);
            assert!(close(db[i] as f64, gb, 1e-4), "{op:?} d/db at {} {}: {} vs {gb}", a_vals[i], b_vals[i], db[i]);
        }
    }
}

/// Reference-path value, d/dx per element and d/dparam (summed) for a formula with
/// per-element parameter values `p`.
fn formula_on_tensors(f: &Formula, xs: &[f32], p: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let n = xs.len();
    let x = Tensor::<1>::from_data(TensorData::new(xs.to_vec(), [n]), &device).require_grad();
    let params: Vec<Tensor<1>> =
        p.iter().map(|&v| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), &device).require_grad()).collect();
    let y = reference::eval(f, x.clone(), &params);
    let values = host_f32(y.clone().inner());
    let grads = y.sum().backward();
    let dx = x.grad(&grads).map(host_f32).unwrap_or(vec![0.0; n]);
    let dp = params.iter().map(|t| t.grad(&grads).map(|g| g.into_scalar::<f32>()).unwrap_or(0.0)).collect();
    (values, dx, dp)
}

#[test]
fn formulas_on_tensors_match_scalar_evaluation_and_gradients() {
    let mut formulas: Vec<Formula> = NAMED.iter().map(|n| resolve(n.name).unwrap()).collect();
    for text in [
        "x*sigmoid(b*x)",
        "b1*x + b2*tanh(x)^2 - b1",
        "max(x, b)*min(x, 1) + x/(abs(x) + 1)",
        "b",
        "sinc(x)*b + 2",
        "-x^3 + (x - 1)^2/4",
    ] {
        formulas.push(Formula::parse(text).unwrap());
    }
    let xs: Vec<f32> = (0..41).map(|i| -4.0 + 0.2 * i as f32 + 0.037).collect();
    for f in &formulas {
        let p: Vec<f32> = (0..f.num_params()).map(|i| 0.7 + 0.3 * i as f32).collect();
        let p64: Vec<f64> = p.iter().map(|&v| v as f64).collect();
        let (values, dx, dp) = formula_on_tensors(f, &xs, &p);
        let mut dp_sum = vec![0.0f64; p.len()];
        for (i, &x) in xs.iter().enumerate() {
            let mut dpi = vec![0.0f64; p.len()];
            let (v, d) = f.eval_grad(x as f64, &p64, &mut dpi);
            for (s, g) in dp_sum.iter_mut().zip(&dpi) {
                *s += g;
            }
            assert!(close(values[i] as f64, v, 1e-4), "{f} at {x}: tensor {} vs scalar {v}", values[i]);
            assert!(close(dx[i] as f64, d, 1e-3), "{f}' at {x}: tensor {} vs scalar {d}", dx[i]);
        }
        for (k, (&a, &b)) in dp.iter().zip(&dp_sum).enumerate() {
            assert!(close(a as f64, b, 1e-3), "{f}: d/dparam{k} tensor {a} vs scalar {b}");
        }
    }
}

#[test]
fn reference_gradients_match_finite_differences() {
    let device = Device::flex();
    for text in
        ["x*sigmoid(b*x)", "(x + b)^2", "b1*x + (abs(x)*abs(x) + b2)", "x*tanh(softplus(x))", "gelu(x) + atan(b*x)"]
    {
        let f = Formula::parse(text).unwrap();
        let xs: Vec<f32> = vec![-2.3, -0.7, 0.4, 1.9];
        let p: Vec<f32> = (0..f.num_params()).map(|i| 0.8 + 0.1 * i as f32).collect();
        let (_, dx, _) = formula_on_tensors(&f, &xs, &p);
        let eval_at = |x: f64| {
            let t = Tensor::<1>::from_data(TensorData::new(vec![x], [1]), (&device, DType::F64));
            let params: Vec<Tensor<1>> = p
                .iter()
                .map(|&v| Tensor::<1>::from_data(TensorData::new(vec![v as f64], [1]), (&device, DType::F64)))
                .collect();
            reference::eval(&f, t, &params).into_scalar::<f64>()
        };
        for (i, &x) in xs.iter().enumerate() {
            let h = 1e-5;
            let fd = (eval_at(x as f64 + h) - eval_at(x as f64 - h)) / (2.0 * h);
            assert!(close(dx[i] as f64, fd, 1e-3), "{text}' at {x}: autodiff {} vs finite difference {fd}", dx[i]);
        }
    }
}
