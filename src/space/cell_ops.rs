//! The op tables of the cell search spaces, exactly as `DESIGN.md` lists them: each op is a
//! name, a template formula (unary ops over `x`, binary ops over `x1`, `x2`), the initial value
//! of each of its parameter slots and a one-line description.
//!
//! - [`OpSet::Seed`]: the seed's restricted set (18 unary, 7 binary), used by `small` and `huge`.
//! - [`OpSet::Grafs`]: the GRAFS set (23 unary, 9 binary) with bounded outputs: every op's
//!   template is `max(min(op, 10), -10)` (the canonical form drops the clamp where the op is
//!   bounded anyway, as `tanh`), and `sqrt` reads `max(x, 0.001)`.
//! - [`OpSet::Core`]: Ramachandran et al.'s core-unit set (25 unary, 10 binary). `DESIGN.md`
//!   says "(24)" but lists 25 unary ops; all 25 are here. Its `eps` (in `log(|x| + eps)` and
//!   `x1/(x2 + eps)`) is the seed's [`EPS`](crate::expr::ops::EPS) = 1e-10, the same `eps` as the
//!   `sqrt`/`log` clamp: `x2 = 0` gives `x1*1e10`, still finite in f32, and a candidate that
//!   blows up is simply a failed sample in the sample-based search.
//!
//! Parameters start at 1 (per channel), except the GRAFS gate of `gate_mix`,
//! `sigmoid(b1)*x1 + (1 - sigmoid(b1))*x2`, which starts at 0 (an even mix).
//! Templates are parsed once, on first use, and kept in canonical form.

use std::sync::OnceLock;

use crate::expr::Formula;

/// Which op table a cell draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpSet {
    Seed,
    Grafs,
    Core,
}

/// Whether a cell position (and an op) takes one input or two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PosKind {
    Unary,
    Binary,
}

/// A cell op, ready to use.
#[derive(Clone, Debug, PartialEq)]
pub struct CellOp {
    pub name: &'static str,
    pub kind: PosKind,
    /// The template as written in the table (GRAFS ops with their clamp).
    pub text: String,
    /// The canonical template: arguments `Arg(0)` (unary) or `Arg(0)`, `Arg(1)` (binary).
    pub template: Formula,
    /// The initial value of each parameter slot of `template`.
    pub init: Vec<f64>,
    pub about: &'static str,
}

/// Both tables of one set.
#[derive(Debug)]
pub struct OpTable {
    pub unary: Vec<CellOp>,
    pub binary: Vec<CellOp>,
}

impl OpSet {
    pub const ALL: &[OpSet] = &[OpSet::Seed, OpSet::Grafs, OpSet::Core];

    /// The name used in cell files (`ops_set = "seed"`).
    pub fn name(self) -> &'static str {
        match self {
            OpSet::Seed => "seed",
            OpSet::Grafs => "grafs",
            OpSet::Core => "core",
        }
    }

    pub fn from_name(name: &str) -> Option<OpSet> {
        OpSet::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// The ops of this set (parsed on first use).
    pub fn table(self) -> &'static OpTable {
        static TABLES: [OnceLock<OpTable>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let (i, unary, binary, bounded) = match self {
            OpSet::Seed => (0, SEED_UNARY, SEED_BINARY, false),
            OpSet::Grafs => (1, GRAFS_UNARY, GRAFS_BINARY, true),
            OpSet::Core => (2, CORE_UNARY, CORE_BINARY, false),
        };
        TABLES[i].get_or_init(|| OpTable {
            unary: unary.iter().map(|d| d.build(PosKind::Unary, bounded)).collect(),
            binary: binary.iter().map(|d| d.build(PosKind::Binary, bounded)).collect(),
        })
    }

    /// The ops of one kind.
    pub fn ops(self, kind: PosKind) -> &'static [CellOp] {
        let table = self.table();
        match kind {
            PosKind::Unary => &table.unary,
            PosKind::Binary => &table.binary,
        }
    }

    /// The op of this kind called `name`.
    pub fn find(self, kind: PosKind, name: &str) -> Option<(usize, &'static CellOp)> {
        self.ops(kind).iter().enumerate().find(|(_, op)| op.name == name)
    }
}

impl PosKind {
    /// `"unary"` or `"binary"`.
    pub fn name(self) -> &'static str {
        match self {
            PosKind::Unary => "unary",
            PosKind::Binary => "binary",
        }
    }

    /// The names a template of this kind uses for its arguments.
    pub fn arg_names(self) -> &'static [&'static str] {
        match self {
            PosKind::Unary => &["x"],
            PosKind::Binary => &["x1", "x2"],
        }
    }
}

/// A table row as written.
struct OpDef {
    name: &'static str,
    template: &'static str,
    /// Initial value per parameter slot; empty means every slot starts at 1.
    init: &'static [f64],
    about: &'static str,
}

const fn op(name: &'static str, template: &'static str, about: &'static str) -> OpDef {
    OpDef { name, template, init: &[], about }
}

/// The clamp of the GRAFS set: |output| <= BOUND.
pub const BOUND: f64 = 10.0;

impl OpDef {
    fn build(&self, kind: PosKind, bounded: bool) -> CellOp {
        let text =
            if bounded { format!("max(min({}, {BOUND}), -{BOUND})", self.template) } else { self.template.to_string() };
        let parsed = Formula::parse_template(&text, kind.arg_names())
            .unwrap_or_else(|e| panic!("op table entry {}: {e}", self.name));
        let (template, trace) = parsed.canonical_traced();
        let init = trace.iter().map(|&slot| self.init.get(slot).copied().unwrap_or(1.0)).collect();
        CellOp { name: self.name, kind, text, template, init, about: self.about }
    }
}

const SEED_UNARY: &[OpDef] = &[
    op("identity", "x", "the input"),
    op("zero", "0", "constant 0 (broadcast to the input's shape)"),
    op("sqrt", "sqrt(x)", "sqrt(max(x, 1e-10))"),
    op("sin", "sin(x)", "sine"),
    op("cos", "cos(x)", "cosine"),
    op("abs", "abs(x)", "absolute value"),
    op("neg", "-x", "negation"),
    op("beta_mul", "b*x", "per-channel scale"),
    op("beta_add", "x + b", "per-channel shift"),
    op("log", "log(x)", "log(max(x, 1e-10))"),
    op("tanh", "tanh(x)", "hyperbolic tangent"),
    op("asinh", "asinh(x)", "inverse hyperbolic sine"),
    op("atan", "atan(x)", "arctangent"),
    op("sinc", "sinc(x)", "normalized sinc, sin(pi*x)/(pi*x)"),
    op("max0", "max(x, 0)", "max(x, 0)"),
    op("min0", "min(x, 0)", "min(x, 0)"),
    op("sigmoid", "sigmoid(x)", "logistic function"),
    op("beta", "b", "per-channel constant"),
];

const SEED_BINARY: &[OpDef] = &[
    op("add", "x1 + x2", "sum"),
    op("sub", "x1 - x2", "difference"),
    op("mul", "x1*x2", "product"),
    op("max", "max(x1, x2)", "maximum"),
    op("min", "min(x1, x2)", "minimum"),
    op("sigmoid_mul", "sigmoid(x1)*x2", "sigmoid gate"),
    op("beta_mix", "b1*x1 + (1 - b1)*x2", "mix with one per-channel weight"),
];

const GRAFS_UNARY: &[OpDef] = &[
    op("identity", "x", "the input"),
    op("neg", "-x", "negation"),
    op("abs", "abs(x)", "absolute value"),
    op("square", "x^2", "square"),
    op("cube", "x^3", "cube"),
    op("sqrt", "sqrt(max(x, 0.001))", "square root of max(x, 1e-3)"),
    op("beta_add", "x + b", "per-channel shift"),
    op("beta_mul", "b*x", "per-channel scale"),
    op("beta", "b", "per-channel constant"),
    op("exp", "exp(x)", "exponential"),
    op("sinh", "sinh(x)", "hyperbolic sine"),
    op("tanh", "tanh(x)", "hyperbolic tangent"),
    op("asinh", "asinh(x)", "inverse hyperbolic sine"),
    op("atan", "atan(x)", "arctangent"),
    op("relu", "relu(x)", "max(x, 0)"),
    op("min0", "min(x, 0)", "min(x, 0)"),
    op("sigmoid", "sigmoid(x)", "logistic function"),
    op("softplus", "softplus(x)", "log(1 + e^x)"),
    op("erf", "erf(x)", "error function"),
    op("silu", "silu(x)", "x*sigmoid(x)"),
    op("gelu", "gelu(x)", "x*Phi(x)"),
    op("elu", "elu(x)", "exponential linear unit"),
    op("leaky_relu", "leaky_relu(x)", "leaky ReLU, slope 0.01"),
];

const GRAFS_BINARY: &[OpDef] = &[
    op("add", "x1 + x2", "sum"),
    op("sub", "x1 - x2", "difference"),
    op("mul", "x1*x2", "product"),
    op("max", "max(x1, x2)", "maximum"),
    op("min", "min(x1, x2)", "minimum"),
    op("sigmoid_mul", "sigmoid(x1)*x2", "sigmoid gate"),
    OpDef {
        name: "gate_mix",
        template: "sigmoid(b1)*x1 + (1 - sigmoid(b1))*x2",
        init: &[0.0],
        about: "mix with a per-channel gate g = b1 (starts at 0: an even mix)",
    },
    op("left", "x1", "the first input"),
    op("right", "x2", "the second input"),
];

const CORE_UNARY: &[OpDef] = &[
    op("identity", "x", "the input"),
    op("neg", "-x", "negation"),
    op("abs", "abs(x)", "absolute value"),
    op("square", "x^2", "square"),
    op("cube", "x^3", "cube"),
    op("sqrt", "sqrt(x)", "sqrt(max(x, 1e-10))"),
    op("beta_mul", "b*x", "per-channel scale"),
    op("beta_add", "x + b", "per-channel shift"),
    op("log_abs", "log(abs(x) + 1e-10)", "log(|x| + eps), eps = 1e-10"),
    op("exp", "exp(x)", "exponential"),
    op("sin", "sin(x)", "sine"),
    op("cos", "cos(x)", "cosine"),
    op("sinh", "sinh(x)", "hyperbolic sine"),
    op("cosh", "cosh(x)", "hyperbolic cosine"),
    op("tanh", "tanh(x)", "hyperbolic tangent"),
    op("asinh", "asinh(x)", "inverse hyperbolic sine"),
    op("atan", "atan(x)", "arctangent"),
    op("sinc", "sinc(x)", "normalized sinc, sin(pi*x)/(pi*x)"),
    op("max0", "max(x, 0)", "max(x, 0)"),
    op("min0", "min(x, 0)", "min(x, 0)"),
    op("sigmoid", "sigmoid(x)", "logistic function"),
    op("softplus", "softplus(x)", "log(1 + e^x)"),
    op("gauss", "exp(-x^2)", "Gaussian bump"),
    op("erf", "erf(x)", "error function"),
    op("beta", "b", "per-channel constant"),
];

const CORE_BINARY: &[OpDef] = &[
    op("add", "x1 + x2", "sum"),
    op("mul", "x1*x2", "product"),
    op("sub", "x1 - x2", "difference"),
    op("div", "x1/(x2 + 1e-10)", "x1/(x2 + eps), eps = 1e-10"),
    op("max", "max(x1, x2)", "maximum"),
    op("min", "min(x1, x2)", "minimum"),
    op("sigmoid_mul", "sigmoid(x1)*x2", "sigmoid gate"),
    op("exp_sq_diff", "exp(-b*(x1 - x2)^2)", "Gaussian similarity exp(-b(x1 - x2)^2)"),
    op("exp_abs_diff", "exp(-b*abs(x1 - x2))", "Laplace similarity exp(-b|x1 - x2|)"),
    op("beta_mix", "b1*x1 + (1 - b1)*x2", "mix with one per-channel weight"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: OpSet, kind: PosKind) -> Vec<&'static str> {
        set.ops(kind).iter().map(|op| op.name).collect()
    }

    #[test]
    fn tables_have_the_listed_ops() {
        assert_eq!(
            names(OpSet::Seed, PosKind::Unary),
            [
                "identity", "zero", "sqrt", "sin", "cos", "abs", "neg", "beta_mul", "beta_add", "log", "tanh", "asinh",
                "atan", "sinc", "max0", "min0", "sigmoid", "beta"
            ]
        );
        assert_eq!(names(OpSet::Seed, PosKind::Binary), ["add", "sub", "mul", "max", "min", "sigmoid_mul", "beta_mix"]);
        assert_eq!(names(OpSet::Grafs, PosKind::Unary).len(), 23);
        assert_eq!(
            names(OpSet::Grafs, PosKind::Binary),
            ["add", "sub", "mul", "max", "min", "sigmoid_mul", "gate_mix", "left", "right"]
        );
        assert_eq!(names(OpSet::Core, PosKind::Unary).len(), 25);
        assert_eq!(names(OpSet::Core, PosKind::Binary).len(), 10);
        for &set in OpSet::ALL {
            assert_eq!(OpSet::from_name(set.name()), Some(set));
            for kind in [PosKind::Unary, PosKind::Binary] {
                let ops = set.ops(kind);
                for (i, op) in ops.iter().enumerate() {
                    assert!(ops[i + 1..].iter().all(|o| o.name != op.name), "{} twice", op.name);
                    assert_eq!(op.kind, kind);
                    assert_eq!(op.init.len(), op.template.num_params(), "{}", op.name);
                    assert!(op.template.num_args() <= kind.arg_names().len(), "{}", op.name);
                    assert!(!op.about.is_empty());
                }
            }
        }
    }

    #[test]
    fn templates_read_as_written() {
        let t = |set: OpSet, kind, name| set.find(kind, name).unwrap().1.template.to_string();
        assert_eq!(t(OpSet::Seed, PosKind::Unary, "beta_mul"), "b*x1");
        assert_eq!(t(OpSet::Seed, PosKind::Binary, "beta_mix"), "b1*x1 + (1 - b1)*x2");
        assert_eq!(t(OpSet::Grafs, PosKind::Unary, "tanh"), "tanh(x1)");
        assert_eq!(t(OpSet::Grafs, PosKind::Unary, "abs"), "min(abs(x1), 10)");
        assert_eq!(t(OpSet::Grafs, PosKind::Unary, "square"), "min(x1^2, 10)");
        assert_eq!(t(OpSet::Grafs, PosKind::Unary, "identity"), "max(min(x1, 10), -10)");
        assert_eq!(t(OpSet::Grafs, PosKind::Unary, "sqrt"), "min(sqrt(max(x1, 0.001)), 10)");
        assert_eq!(t(OpSet::Core, PosKind::Binary, "div"), "x1/(x2 + 1e-10)");
        let gate = OpSet::Grafs.find(PosKind::Binary, "gate_mix").unwrap().1;
        assert_eq!(gate.init, [0.0]);
        assert_eq!(OpSet::Seed.find(PosKind::Binary, "beta_mix").unwrap().1.init, [1.0]);
    }

    #[test]
    fn every_template_is_finite_and_grafs_stays_bounded() {
        let xs: Vec<f64> = (0..=100).map(|i| -5.0 + 0.1 * i as f64).collect();
        for &set in OpSet::ALL {
            for kind in [PosKind::Unary, PosKind::Binary] {
                for op in set.ops(kind) {
                    let params = &op.init;
                    let args: Vec<[f64; 2]> = match kind {
                        PosKind::Unary => xs.iter().map(|&x| [x, 0.0]).collect(),
                        PosKind::Binary => {
                            xs.iter().flat_map(|&a| xs.iter().step_by(7).map(move |&b| [a, b])).collect()
                        }
                    };
                    for a in &args {
                        let v = op.template.eval_args(0.0, a, params);
                        assert!(v.is_finite(), "{} {} at {a:?}: {v}", set.name(), op.name);
                    }
                    if set == OpSet::Grafs {
                        for a in [-1e4f64, -50.0, 50.0, 1e4] {
                            for b in [-1e4, -3.0, 3.0, 1e4] {
                                for p in [-1e4, 1.0, 1e4] {
                                    let params = vec![p; params.len()];
                                    let v: f64 = op.template.eval_args(0.0, &[a, b], &params);
                                    assert!(v.abs() <= BOUND, "{} at {a}, {b}, params {p}: {v}", op.name);
                                    let v = op.template.eval_args(0.0f32, &[a as f32, b as f32], &[p as f32; 1]);
                                    assert!(v.abs() <= BOUND as f32, "{} (f32) at {a}, {b}: {v}", op.name);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
