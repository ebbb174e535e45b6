//! Second-order DARTS (Liu et al. 2019, eq. 7-8): the architecture gradient of the
//! validation loss at the weights after one virtual SGD step,
//!
//! ```text
//! w' = w - lr * (momentum * buf + grad_w L_train(w, a) + wd * w)
//! g  = grad_a L_val(w', a) - lr * (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / 2r
//! w± = w ± r * grad_w' L_val(w', a),   r = 0.01 / |grad_w' L_val(w', a)|
//! ```
//!
//! where the second term is the finite-difference Hessian-vector product.

use anyhow::Result;
use burn::module::Module;
use burn::prelude::*;

use crate::train::sgd::Sgd;
use crate::train::update::{self, Grads, Group};

/// The unrolled architecture gradient of `model`. `train_loss` and `valid_loss` evaluate a
/// model (returning it with whatever they installed, and the scalar loss); `sgd` supplies the
/// virtual step (its momentum buffers and weight decay; its state is not changed).
pub fn second_order_arch_grads<M: Module + Clone>(
    model: &M,
    sgd: &Sgd,
    lr: f64,
    train_loss: impl Fn(M) -> Result<(M, Tensor<1>)>,
    valid_loss: impl Fn(M) -> Result<(M, Tensor<1>)>,
) -> Result<Grads> {
    let (at_w, loss) = train_loss(model.clone())?;
    let train_grads = Grads::of(&at_w, &loss.backward(), Group::Weights);

    let (unrolled, loss) = valid_loss(sgd.virtual_step(model.clone(), &train_grads, lr))?;
    let grads = loss.backward();
    let d_alpha = Grads::of(&unrolled, &grads, Group::Arch);
    let d_weights = Grads::of(&unrolled, &grads, Group::Weights);

    let r = 0.01 / d_weights.norm().max(1e-12);
    let shifted_alpha_grads = |sign: f64| -> Result<Grads> {
        let shifted =
            update::apply(model.clone(), &d_weights, Group::Weights, &mut |_, p, d| p + d.mul_scalar(sign * r));
        let (shifted, loss) = train_loss(shifted)?;
        Ok(Grads::of(&shifted, &loss.backward(), Group::Arch))
    };
    let hessian = shifted_alpha_grads(1.0)?.plus(shifted_alpha_grads(-1.0)?.scale(-1.0));
    Ok(d_alpha.plus(hessian.scale(-lr / (2.0 * r))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state::host_f32;
    use crate::train::sgd::SgdConfig;
    use burn::module::Param;

    #[derive(Module, Debug)]
    struct Toy {
        alphas: Param<Tensor<1>>,
        w: Param<Tensor<1>>,
    }

    fn constant(v: &[f64], device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect(), [v.len()]), device)
    }

    /// On L_train = 1/2 sum a (w - alpha)^2 and L_val = 1/2 sum b w^2 + sum c alpha, the exact
    /// d/d alpha L_val(w'(alpha), alpha) is c + lr * a * b * w' (w' = w - lr * a (w - alpha)),
    /// and the finite difference is exact for a quadratic.
    #[test]
    fn matches_the_exact_unrolled_gradient_on_a_quadratic() {
        let device = Device::flex().autodiff();
        let (alpha, w) = ([0.3, -1.2, 0.8], [1.0, 0.5, -2.0]);
        let (a, b, c) = ([2.0, 0.5, 1.5], [1.0, 3.0, 0.7], [0.1, -0.4, 0.2]);
        let lr = 0.1;
        let toy = Toy {
            alphas: Param::from_data(TensorData::new(alpha.map(|x| x as f32).to_vec(), [3]), &device),
            w: Param::from_data(TensorData::new(w.map(|x| x as f32).to_vec(), [3]), &device),
        };
        let sgd = Sgd::new(SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            grad_clip: None,
            group: Group::Weights,
        });
        let train = |m: Toy| {
            let d = m.w.val() - m.alphas.val();
            let loss = (d.clone() * d * constant(&a, &device)).sum().mul_scalar(0.5);
            Ok((m, loss))
        };
        let valid = |m: Toy| {
            let loss = (m.w.val().square() * constant(&b, &device)).sum().mul_scalar(0.5)
                + (m.alphas.val() * constant(&c, &device)).sum();
            Ok((m, loss))
        };
        let grads = second_order_arch_grads(&toy, &sgd, lr, train, valid).unwrap();
        let got = host_f32(grads.0["alphas"].clone());
        for i in 0..3 {
            let w_unrolled = w[i] - lr * a[i] * (w[i] - alpha[i]);
            let expected = c[i] + lr * a[i] * b[i] * w_unrolled;
            assert!((got[i] as f64 - expected).abs() < 2e-3 * expected.abs().max(1.0), "{got:?} vs {expected}");
        }
        // The first-order gradient would be c alone: the second-order term is really there.
        assert!((got[1] as f64 - c[1]).abs() > 0.05);
    }
}
