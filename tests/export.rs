//! `actsearch export`: the exported PyTorch and JAX code computes what we compute. Each
//! formula is exported by the binary, run by Python on a grid of inputs in float64 (values and
//! autograd derivatives), and compared with `Formula::eval_grad`. Where torch or jax is not
//! installed, that half is skipped with a note (set ACTSEARCH_PYTHON to a Python that has
//! them); CI installs the reference venv and sets ACTSEARCH_REQUIRE_TORCH, so there they run.

mod common;

use std::path::Path;
use std::process::Command;

use actsearch::expr::{Formula, resolve};

/// Every unary op once, then compositions with max/min, powers, constants and parameters.
fn formulas() -> Vec<String> {
    let mut all: Vec<String> =
        actsearch::expr::Func::ALL.iter().map(|f| format!("{}(1.3*x - 0.2)", f.name())).collect();
    all.extend(
        [
            "x*sigmoid(b*x)",
            "b1*x + b2*tanh(x)",
            "max(x, 0.5)*b1 + min(b2*x, sin(x))",
            "(-x)^2 - x^3/4 + |x|",
            "max(leaky_relu(min(elu(x), 10)), min(gelu(x), 10))",
            "sqrt(x) + log(x)",
            "b + sigmoid(2)",
            "mish",
        ]
        .map(String::from),
    );
    all
}

/// Grid points over [-6, 6], with the kinks 0 and 0.2/1.3 avoided only by the derivative check.
fn grid() -> Vec<f64> {
    (0..=120).map(|i| -6.0 + 0.1 * i as f64).collect()
}

/// Exports every formula with `--to target` into `dir`, runs `driver` over them and checks
/// values and derivatives against ours with the parameter values the driver used.
fn check_target(target: &str, module: &str, driver: &str) {
    let Some(python) = common::python_with(&format!("export --to {target}"), &[module]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let formulas = formulas();
    for (i, f) in formulas.iter().enumerate() {
        let file = dir.path().join(format!("act{i}.py"));
        let out = Command::new(env!("CARGO_BIN_EXE_actsearch"))
            .args(["export", f, "--to", target, "--out", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(dir.path().join("driver.py"), driver).unwrap();
    let grid = grid();
    let out = Command::new(&python)
        .arg(dir.path().join("driver.py"))
        .arg(dir.path())
        .arg(formulas.len().to_string())
        .arg(serde_json::to_string(&grid).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for (f, r) in formulas.iter().zip(&results) {
        let formula: Formula = resolve(f).unwrap();
        let params: Vec<f64> = r["params"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(params.len(), formula.num_params(), "{f}");
        let values = r["values"].as_array().unwrap();
        let grads = r["grads"].as_array().unwrap();
        for (k, &x) in grid.iter().enumerate() {
            let mut dparams = vec![0.0; params.len()];
            let (v, dx) = formula.eval_grad(x, &params, &mut dparams);
            let theirs = values[k].as_f64().unwrap_or(f64::NAN);
            assert!(close(v, theirs), "{target} {f} at x = {x}: ours {v}, exported {theirs}");
            // Derivatives at kinks (x = 0 for abs, relu, ...; ties of max/min) are a matter of
            // convention: compare away from them.
            let kinky = [0.0, 0.2 / 1.3, 0.5, 10.0].iter().any(|&kink| (x - kink).abs() < 1e-6) || x.abs() < 1e-6;
            if !kinky {
                let theirs = grads[k].as_f64().unwrap_or(f64::NAN);
                assert!(close(dx, theirs), "{target} {f} at x = {x}: derivative ours {dx}, exported {theirs}");
            }
        }
    }
    // Per-channel parameters: channel c of an (N, C, ...) input uses value c.
    assert!(
        results.iter().all(|r| r["per_channel_ok"].as_bool() != Some(false)),
        "per-channel check failed: {results:?}"
    );
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

/// A driver: `setup` (imports, float64), then for each exported module act{i}.py, loaded as
/// `mod`, `per_module`, which appends {"params", "values", "grads", "per_channel_ok"} to `out`
/// for the parameter values `params` (0.7, -1.3, 1.9, ...; `n` of them); prints `out` as JSON.
fn driver(setup: &str, count_params: &str, per_module: &str) -> String {
    format!(
        r#"import importlib.util, json, sys
{setup}
folder, count, grid = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
out = []
for i in range(count):
    spec = importlib.util.spec_from_file_location(f"act{{i}}", f"{{folder}}/act{{i}}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    n = len({count_params})
    params = [0.7, -1.3, 1.9, 0.4][:n] + [1.0] * max(0, n - 4)
{per_module}
print(json.dumps(out))
"#
    )
}

/// Activation in float64: values, autograd derivatives, and channel c of an (N, C, ...) input
/// against a one-channel module with value c.
const TORCH_SETUP: &str =
    "import torch\ntorch.set_default_dtype(torch.float64)  # parameters in float64, not rounded through float32";
const TORCH_EACH: &str = r#"
    act = mod.Activation(initial_values=params).double()
    x = torch.tensor(grid, dtype=torch.float64, requires_grad=True)
    y = act(x)
    (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    g = torch.zeros_like(x) if g is None else g  # a function without x
    ok = None
    if n > 0:
        act3 = mod.Activation(channels=3).double()
        with torch.no_grad():
            for p in act3.parameters():
                p.copy_(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
        xs = torch.linspace(-2, 2, 2 * 3 * 4, dtype=torch.float64).view(2, 3, 2, 2)
        ys = act3(xs)
        ok = True
        for c, v in enumerate([0.5, 1.0, 2.0]):
            one = mod.Activation(initial_values=[v] * n).double()
            ok = ok and bool(torch.allclose(ys[:, c], one(xs[:, c]), rtol=1e-12, atol=1e-12, equal_nan=True))
    as_list = lambda t: [None if v != v else v for v in t.detach().tolist()]
    out.append({"params": params, "values": as_list(y), "grads": as_list(g), "per_channel_ok": ok})"#;

/// activation() in float64: values, jax.grad derivatives, and the last axis per channel.
const JAX_SETUP: &str = "import jax\njax.config.update(\"jax_enable_x64\", True)\nimport jax.numpy as jnp";
const JAX_EACH: &str = r#"
    x = jnp.asarray(grid, dtype=jnp.float64)
    f = lambda x: mod.activation(x, tuple(params))
    y = f(x)
    g = jax.vmap(jax.grad(f))(x)
    ok = None
    if n > 0:
        xs = jnp.linspace(-2, 2, 2 * 2 * 2 * 3, dtype=jnp.float64).reshape(2, 2, 2, 3)
        per = tuple(jnp.asarray([0.5, 1.0, 2.0]) for _ in range(n))
        ys = mod.activation(xs, per)
        ok = all(bool(jnp.allclose(ys[..., c], mod.activation(xs[..., c], tuple([v] * n)), rtol=1e-12, atol=1e-12, equal_nan=True)) for c, v in enumerate([0.5, 1.0, 2.0]))
    as_list = lambda t: [None if v != v else float(v) for v in t.tolist()]
    out.append({"params": params, "values": as_list(y), "grads": as_list(g), "per_channel_ok": ok})"#;

#[test]
fn pytorch_export_computes_our_values_and_derivatives() {
    check_target("pytorch", "torch", &driver(TORCH_SETUP, "mod.Activation.initial_values", TORCH_EACH));
}

#[test]
fn jax_export_computes_our_values_and_derivatives() {
    check_target("jax", "jax", &driver(JAX_SETUP, "mod.INITIAL_VALUES", JAX_EACH));
}

#[test]
fn formula_export_round_trips_and_bad_input_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_actsearch")).args(args).current_dir(dir.path()).output().unwrap()
    };
    let out = run(&["export", "b1*x + max(b1*tanh(x), tanh(x))", "--to", "formula"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    assert_eq!(Formula::parse(first).unwrap(), Formula::parse("b1*x + max(b1*tanh(x), tanh(x))").unwrap().canonical());
    assert!(text.contains("# b1 = 1.0 (its initial value)"), "{text}");
    common::assert_clean_error(&run(&["export", "x +* 2", "--to", "pytorch"]), "x +* 2");
    common::assert_clean_error(&run(&["export", "missing/genotype.json", "--to", "jax"]), "missing/genotype.json");
    common::assert_clean_error(
        &run(&["export", "relu", "--to", "pytorch", "--values", "learned-mean"]),
        "genotype.json",
    );
    // --out into a folder that does not exist: an error, nothing written.
    common::assert_clean_error(
        &run(&["export", "relu", "--to", "pytorch", "--out", "no/such/dir/act.py"]),
        "no/such/dir/act.py",
    );
    assert!(!Path::new(&dir.path().join("no")).exists());
}

/// A genotype searched on a ViT says so (`"layout": "features"`): its PyTorch module puts the
/// parameters on the last axis unless `--layout channels` says otherwise; a formula defaults
/// to channels.
#[test]
fn the_layout_follows_the_genotype_and_the_flag_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let genotype = serde_json::json!({
        "space": "small",
        "ops": [{"position": "u1", "op": "cos"}, {"position": "u2", "op": "cos"}, {"position": "b", "op": "beta_mix"}],
        "formula": "b1*cos(x) + (1 - b1)*cos(x)",
        "params": [{"name": "b1", "init": 1.0, "position": "b", "slot": 0, "learned": [[0.5, 1.5]]}],
        "layout": "features",
    });
    std::fs::write(dir.path().join("genotype.json"), genotype.to_string()).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_actsearch")).args(args).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let features = run(&["export", "genotype.json", "--to", "pytorch"]);
    assert!(features.contains("per feature") && !features.contains(".view(1, -1"), "{features}");
    assert!(features.contains("initial_values = (1.0,)"), "the learned mean: {features}");
    let channels = run(&["export", "genotype.json", "--to", "pytorch", "--layout", "channels"]);
    assert!(channels.contains("per channel") && channels.contains(".view(1, -1"), "{channels}");
    let formula = run(&["export", "b*x", "--to", "pytorch"]);
    assert!(formula.contains(".view(1, -1"), "{formula}");
    assert!(run(&["export", "b*x", "--to", "pytorch", "--layout", "features"]).contains("per feature"));
}
