//! The Winograd F(2x2, 3x3) convolutions (`kernels::winograd`) against the direct path in a
//! whole training run: the same run with and without them gives the same loss curves within
//! a stated tolerance (they round differently, about 1e-6 relative per convolution, and
//! training amplifies that a little). Its own test binary, because the switch is global.

mod common;

use actsearch::expr::resolve;
use actsearch::kernels::set_winograd;
use actsearch::observer::Silent;
use actsearch::train::{TrainConfig, train};
use burn::prelude::*;
use common::{synthetic_cifar10, tiny_config};

/// Relative tolerance on every epoch's losses (the largest difference seen was 5e-7, on the
/// third epoch's test loss).
const TOLERANCE: f64 = 1e-4;

#[test]
fn training_with_and_without_winograd_gives_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_cifar10(dir.path(), 64);
    let activation = "x*sigmoid(b*x)";
    let formula = resolve(activation).unwrap();
    let run = |name: &str, winograd: bool| {
        set_winograd(winograd);
        let config = TrainConfig { batch_size: 16, ..tiny_config(dir.path(), &dir.path().join(name), activation, 3) };
        train(&config, &formula, &Device::flex(), false, &Silent).unwrap().history
    };
    let (fast, direct) = (run("winograd", true), run("direct", false));
    set_winograd(true);
    for (what, a, b) in [
        ("train loss", &fast.train_loss, &direct.train_loss),
        ("valid loss", &fast.valid_loss, &direct.valid_loss),
        ("test loss", &fast.test_loss, &direct.test_loss),
    ] {
        assert_eq!(a.len(), 3, "{what}");
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() <= TOLERANCE * y.abs(), "{what}: winograd {a:?} vs direct {b:?}");
        }
        eprintln!("{what}: winograd {a:?} direct {b:?}");
    }
    // The two paths do round differently: equal curves would mean the switch did nothing.
    assert_ne!(fast.train_loss, direct.train_loss, "the switch changed nothing");
}
