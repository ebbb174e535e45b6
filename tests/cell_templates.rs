//! Every cell op template (seed, GRAFS and core sets) evaluated on burn tensors through
//! `kernels::reference::eval_args` against the scalar `Formula::eval_args` in f64: values, and
//! the autodiff gradients with respect to x, the arguments and the parameters against
//! `Formula::eval_args_grad`.

use actsearch::expr::Formula;
use actsearch::kernels::reference;
use actsearch::space::cell_ops::{OpSet, PosKind};
use burn::prelude::*;
use burn::tensor::DType;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

fn host_f64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_into_vec::<f64>().unwrap()
}

/// Test inputs: two interleaved grids over [-3.5, 3.5] that never tie and stay clear of 0.
fn inputs() -> (Vec<f64>, Vec<f64>) {
    let a: Vec<f64> = (0..60).map(|i| -3.5 + 7.0 * i as f64 / 59.0 + 0.0123).collect();
    let b: Vec<f64> = (0..60).map(|i| 3.3 - 6.9 * ((i * 37) % 60) as f64 / 59.0 + 0.0371).collect();
    (a, b)
}

/// True where a kink of some template is so close that derivative conventions or rounding
/// legitimately differ: |.|, relu, max/min at 0 or at a tie, the clamp at ±10 (of x^2, x^3,
/// exp, sinh and x1*x2), and division by x2 near 0.
fn near_kink(a: f64, b: f64) -> bool {
    let kinks = [
        a,
        b,
        a - b,
        a * a - 10.0,
        a.abs().powi(3) - 10.0,
        a - 10f64.ln(),
        a.abs() - 10f64.asinh(),
        a * b - 10.0,
        a * b + 10.0,
    ];
    kinks.iter().any(|k| k.abs() < 0.02)
}

#[test]
fn every_cell_template_on_tensors_matches_eval_args() {
    let device = Device::flex().autodiff();
    let (a_vals, b_vals) = inputs();
    let n = a_vals.len();
    let tensor = |v: &[f64]| {
        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), (&device, DType::F64)).require_grad()
    };
    for &set in OpSet::ALL {
        for kind in [PosKind::Unary, PosKind::Binary] {
            for op in set.ops(kind) {
                let t: &Formula = &op.template;
                let params: Vec<f64> = (0..t.num_params()).map(|i| 0.8 + 0.15 * i as f64).collect();
                let x = tensor(&a_vals);
                let args = match kind {
                    PosKind::Unary => vec![tensor(&a_vals)],
                    PosKind::Binary => vec![tensor(&a_vals), tensor(&b_vals)],
                };
                let ps: Vec<Tensor<1>> = params.iter().map(|&p| tensor(&[p])).collect();
                let y = reference::eval_args(t, x.clone(), &args, &ps);
                let values = host_f64(y.clone().inner());
                if t.num_args() == 0 && t.num_params() == 0 {
                    // `zero`: a constant, which autodiff does not track.
                    assert!(values.iter().all(|&v| v == t.eval(0.0, &[])), "{}", op.name);
                    continue;
                }
                let grads = y.sum().backward();
                let grad_of = |t: &Tensor<1>, len: usize| t.grad(&grads).map(host_f64).unwrap_or(vec![0.0; len]);
                let dx = grad_of(&x, n);
                let dargs: Vec<Vec<f64>> = args.iter().map(|a| grad_of(a, n)).collect();
                let dps: Vec<f64> = ps.iter().map(|p| grad_of(p, 1)[0]).collect();
                let mut dps_want = vec![0.0; params.len()];
                let what = format!("{} {} `{}`", set.name(), op.name, op.text);
                for i in 0..n {
                    let point: Vec<f64> = match kind {
                        PosKind::Unary => vec![a_vals[i]],
                        PosKind::Binary => vec![a_vals[i], b_vals[i]],
                    };
                    let mut darg = vec![0.0; point.len()];
                    let (v, d) = t.eval_args_grad(0.5, &point, &params, &mut darg, &mut dps_want);
                    assert!(close(values[i], v, 1e-4), "{what} at {point:?}: tensor {} vs scalar {v}", values[i]);
                    assert_eq!(dx[i], d, "{what}: templates do not read x");
                    if near_kink(point[0], *point.get(1).unwrap_or(&1.0)) {
                        continue;
                    }
                    for (k, want) in darg.iter().enumerate() {
                        let got = dargs[k][i];
                        assert!(close(got, *want, 1e-4), "{what} d/dx{} at {point:?}: autodiff {got} vs {want}", k + 1);
                    }
                }
                for (k, (&got, &want)) in dps.iter().zip(&dps_want).enumerate() {
                    assert!(close(got, want, 1e-4), "{what} d/dparam{k}: autodiff {got} vs scalar {want}");
                }
            }
        }
    }
}

#[test]
fn a_composed_cell_on_tensors_matches_its_templates() {
    // The genotype's formula evaluated on tensors equals the cell evaluated op by op on tensors.
    let space = actsearch::space::CellSpace::parse("huge").unwrap();
    let device = Device::flex();
    let xs: Vec<f64> = (0..41).map(|i| -4.0 + 0.2 * i as f64 + 0.037).collect();
    let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), (&device, DType::F64));
    let choice = [7, 10, 6, 16, 8, 2]; // beta_mul, tanh, beta_mix, sigmoid, beta_add, mul
    let g = space.genotype(&choice).unwrap();
    let f = g.parsed().unwrap();
    let scalar = |v: f64| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), (&device, DType::F64));
    // Distinct parameter values per op instance: position index + 0.5 + slot / 4.
    let value = |pos: usize, slot: usize| pos as f64 + 0.5 + slot as f64 / 4.0;
    let pos_index = |name: &str| space.positions().iter().position(|p| p.name == name).unwrap();
    let params: Vec<Tensor<1>> = g.params.iter().map(|p| scalar(value(pos_index(&p.position), p.slot))).collect();
    let whole = host_f64(reference::eval(&f, x.clone(), &params));
    let op = |pos: usize, args: &[Tensor<1>]| {
        let t = space.op_template(pos, choice[pos]);
        let ps: Vec<Tensor<1>> = (0..t.num_params()).map(|s| scalar(value(pos, s))).collect();
        reference::eval_args(t, x.clone(), args, &ps)
    };
    let unit = op(2, &[op(0, std::slice::from_ref(&x)), op(1, std::slice::from_ref(&x))]);
    let cell = host_f64(op(5, &[op(3, &[unit]), op(4, std::slice::from_ref(&x))]));
    for i in 0..xs.len() {
        assert!(close(whole[i], cell[i], 1e-12), "{} at {}: {} vs {}", g.formula, xs[i], whole[i], cell[i]);
    }
}
