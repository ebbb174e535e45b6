//! `actsearch export`: an activation (a formula, a name or a search's `genotype.json`) as
//! self-contained source code for another framework, so that a found function can be dropped
//! into anyone's model:
//!
//! - `pytorch`: an `nn.Module` whose trainable parameters are per channel (dimension 1 of an
//!   `(N, C, ...)` input, as in `nn.BatchNorm2d`) or, with the feature layout, per feature of
//!   the last axis (a transformer's MLP hidden layer, as `transformers_ref.py` builds it with
//!   `act(width)`), initialized to the initial or the learned (mean) values;
//! - `jax`: a pure function of `(x, params)` and, where Flax is installed, a `flax.linen`
//!   module with per-channel parameters on the last axis (JAX's channels-last convention);
//! - `formula`: the canonical formula and its parameter values, as text.
//!
//! Every op is written to compute exactly what the op table (`expr::ops`) computes: `sqrt`
//! and `log` clamp their input at `EPS` first, `sinc` is the normalized `sin(pi x)/(pi x)`,
//! `leaky_relu` has slope 0.01, `gelu` is the exact (erf) form and `softplus` the overflow-free
//! `max(x, 0) + log1p(exp(-|x|))`. The tests run the PyTorch and JAX code where those are
//! installed and compare its values and derivatives with ours.

use crate::expr::ops::EPS;
use crate::expr::{BinOp, Expr, Formula, Func, ParamName};
use crate::space::genotype::SiteLayout;

/// Where the code goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Pytorch,
    Jax,
    Formula,
}

/// What is exported: the canonical formula, its parameter slots' start values and where they
/// come from (for the generated comments).
#[derive(Clone, Debug)]
pub struct Exported<'a> {
    pub formula: &'a Formula,
    pub values: &'a [f64],
    /// "initial values", "mean of the learned values", ...
    pub values_from: &'a str,
    /// What the user exported (shown in the header comment).
    pub source: &'a str,
    /// Where the PyTorch module's parameters lie (JAX's are always on the last axis).
    pub layout: SiteLayout,
}

/// The source code of `e` for `target`.
pub fn export(e: &Exported, target: Target) -> String {
    match target {
        Target::Pytorch => pytorch(e),
        Target::Jax => jax(e),
        Target::Formula => formula_text(e),
    }
}

/// How the parameter slot `i` is written in the formula (`b`, `b2`, ...), for comments.
fn slot_name(f: &Formula, i: usize) -> String {
    match f.params[i] {
        ParamName::Anon => {
            let nth = f.params[..=i].iter().filter(|p| **p == ParamName::Anon).count();
            format!("b (the {} anonymous `b` reading left to right)", ordinal(nth))
        }
        ParamName::Named(n) => format!("b{n}"),
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A number as Python source, exactly (Rust's shortest round-trip form).
fn number(v: f64) -> String {
    let text = format!("{v:?}");
    if text.contains(['.', 'e', 'E']) || text.contains("inf") || text.contains("NaN") {
        text
    } else {
        format!("{text}.0")
    }
}

/// How one framework spells the ops.
struct Dialect {
    /// `(module path, name)` of each unary op, or a helper of the generated file.
    call: fn(Func) -> &'static str,
    max: &'static str,
    min: &'static str,
    /// A constant where a tensor is needed (an argument of a call, `max` or `min`), made like
    /// the tensor named by the second argument.
    constant: fn(f64, &str) -> String,
    /// The array module (`torch`, `jnp`) and the library's leaky ReLU.
    np: &'static str,
    leaky_relu: &'static str,
}

const TORCH: Dialect = Dialect {
    call: |f| match f {
        Func::Abs => "torch.abs",
        Func::Sqrt => "_sqrt",
        Func::Exp => "torch.exp",
        Func::Log => "_log",
        Func::Sin => "torch.sin",
        Func::Cos => "torch.cos",
        Func::Sinh => "torch.sinh",
        Func::Cosh => "torch.cosh",
        Func::Tanh => "torch.tanh",
        Func::Asinh => "torch.asinh",
        Func::Atan => "torch.atan",
        Func::Sinc => "torch.sinc",
        Func::Erf => "torch.erf",
        Func::Sigmoid => "torch.sigmoid",
        Func::Softplus => "_softplus",
        Func::Relu => "torch.relu",
        Func::Silu => "F.silu",
        Func::Gelu => "F.gelu",
        Func::Elu => "F.elu",
        Func::LeakyRelu => "_leaky_relu",
    },
    max: "torch.maximum",
    min: "torch.minimum",
    constant: |v, like| format!("{like}.new_tensor({})", number(v)),
    np: "torch",
    leaky_relu: "F.leaky_relu",
};

const JAX: Dialect = Dialect {
    call: |f| match f {
        Func::Abs => "jnp.abs",
        Func::Sqrt => "_sqrt",
        Func::Exp => "jnp.exp",
        Func::Log => "_log",
        Func::Sin => "jnp.sin",
        Func::Cos => "jnp.cos",
        Func::Sinh => "jnp.sinh",
        Func::Cosh => "jnp.cosh",
        Func::Tanh => "jnp.tanh",
        Func::Asinh => "jnp.arcsinh",
        Func::Atan => "jnp.arctan",
        Func::Sinc => "jnp.sinc",
        Func::Erf => "erf",
        Func::Sigmoid => "jax.nn.sigmoid",
        Func::Softplus => "_softplus",
        Func::Relu => "jax.nn.relu",
        Func::Silu => "jax.nn.silu",
        Func::Gelu => "_gelu",
        Func::Elu => "jax.nn.elu",
        Func::LeakyRelu => "_leaky_relu",
    },
    max: "jnp.maximum",
    min: "jnp.minimum",
    constant: |v, like| format!("jnp.asarray({}, {like}.dtype)", number(v)),
    np: "jnp",
    leaky_relu: "jax.nn.leaky_relu",
};

/// `e` as a Python expression; parameter `i` is the variable `p{i}`. Every compound operand is
/// parenthesized, so Python's precedence (`-a**2` is `-(a**2)`) never matters.
fn python(e: &Expr, d: &Dialect) -> String {
    // An operand that must be a tensor (a call's argument): constants are made tensors.
    let tensor =
        |a: &Expr| if a.uses_x() || a.uses_params() { python(a, d) } else { (d.constant)(constant_value(a), "x") };
    match e {
        Expr::X => "x".into(),
        Expr::Num(v) => number(*v),
        Expr::Param(i) => format!("p{i}"),
        Expr::Arg(k) => format!("x{}", k + 1),
        Expr::Neg(a) => format!("(-{})", python(a, d)),
        Expr::Pow(a, n) => format!("({} ** {n})", python(a, d)),
        Expr::Call(f, a) => format!("{}({})", (d.call)(*f), tensor(a)),
        Expr::Bin(op, a, b) => match op {
            BinOp::Max | BinOp::Min => {
                let name = if *op == BinOp::Max { d.max } else { d.min };
                format!("{name}({}, {})", tensor(a), tensor(b))
            }
            _ => format!("({} {} {})", python(a, d), op.symbol().expect("infix op"), python(b, d)),
        },
    }
}

/// The value of an expression without `x` or parameters.
fn constant_value(e: &Expr) -> f64 {
    Formula { expr: e.clone(), params: Vec::new() }.eval(0.0, &[])
}

/// The outermost parentheses of a generated expression dropped, when they enclose it all.
fn unwrap(text: String) -> String {
    let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else { return text };
    let mut depth = 0i32;
    for c in inner.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return text;
        }
    }
    inner.to_string()
}

fn header(e: &Exported, comment: &str) -> String {
    let mut out = format!("{comment} Activation exported by actsearch from {}\n", crate::expr::shorten(e.source));
    out += &format!("{comment}   f(x) = {}\n", e.formula);
    for (i, v) in e.values.iter().enumerate() {
        out +=
            &format!("{comment}   p{i} = {} starts at {} ({})\n", slot_name(e.formula, i), number(*v), e.values_from);
    }
    out
}

/// The helpers the generated expressions call: the op table's clamped `sqrt` and `log`, its
/// overflow-free `softplus` and its leaky ReLU slope.
fn helpers(d: &Dialect) -> String {
    let np = d.np;
    format!(
        "def _sqrt(a):\n    return {np}.sqrt({np}.maximum(a, {c}))\n\n\n\
         def _log(a):\n    return {np}.log({np}.maximum(a, {c}))\n\n\n\
         def _softplus(a):\n    return {np}.maximum(a, {z}) + {np}.log1p({np}.exp(-{np}.abs(a)))\n\n\n\
         def _leaky_relu(a):\n    return {}(a, 0.01)\n\n\n",
        d.leaky_relu,
        c = (d.constant)(EPS, "a"),
        z = (d.constant)(0.0, "a"),
    )
}

/// The returned expression of `f`: shaped like `x` even where `f` does not use it.
fn body(f: &Formula, d: &Dialect) -> String {
    let body = unwrap(python(&f.expr, d));
    if f.uses_x() { body } else { format!("{}.zeros_like(x) + {body}", d.np) }
}

fn pytorch(e: &Exported) -> String {
    let f = e.formula;
    let body = body(f, &TORCH);
    let n = f.num_params();
    let mut out = header(e, "#");
    out += match e.layout {
        SiteLayout::Channels => {
            "#   Every parameter is per channel: one value per channel of dimension 1 of an (N, C, ...)\n\
             #   input (as nn.BatchNorm2d), or a single value everywhere with channels=1.\n"
        }
        SiteLayout::Features => {
            "#   Every parameter is per feature: one value per entry of the last axis of a (..., F)\n\
             #   input (a transformer's MLP hidden layer, built as Activation(F)), or a single value\n\
             #   everywhere with channels=1.\n"
        }
    };
    out += &format!(
        "#   Same values as actsearch: sqrt and log clamp their input at {EPS:e}, sinc is sin(pi x)/(pi x).\n"
    );
    out += "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n";
    out += &helpers(&TORCH);
    out += "class Activation(nn.Module):\n";
    out += &format!("    \"\"\"f(x) = {}\"\"\"\n\n", f.to_string().replace('\\', "\\\\").replace('"', "'"));
    let defaults: Vec<String> = e.values.iter().map(|v| number(*v)).collect();
    out += &format!("    initial_values = ({})\n\n", tuple(&defaults));
    out += "    def __init__(self, channels: int = 1, initial_values=None):\n        super().__init__()\n";
    out += "        values = self.initial_values if initial_values is None else tuple(initial_values)\n";
    out += &format!(
        "        if len(values) != {n}:\n            raise ValueError(f\"initial_values needs {n} values, got {{len(values)}}\")\n"
    );
    out += "        self.channels = channels\n";
    for i in 0..n {
        out += &format!("        self.p{i} = nn.Parameter(torch.full((channels,), float(values[{i}])))\n");
    }
    out += "\n    def forward(self, x):\n";
    for i in 0..n {
        out += &format!("        p{i} = self._per_channel(self.p{i}, x)\n");
    }
    out += &format!("        return {body}\n");
    if n > 0 {
        out += "\n    @staticmethod\n    def _per_channel(p, x):\n";
        match e.layout {
            SiteLayout::Channels => {
                out += "        if x.dim() < 2 or p.numel() == 1:\n            return p.to(x.dtype)\n";
                out += "        return p.to(x.dtype).view(1, -1, *([1] * (x.dim() - 2)))\n";
            }
            // The last axis: broadcasting lines p up with it as it is.
            SiteLayout::Features => out += "        return p.to(x.dtype)\n",
        }
    }
    out
}

fn jax(e: &Exported) -> String {
    let f = e.formula;
    let body = body(f, &JAX);
    let n = f.num_params();
    let mut out = header(e, "#");
    out += "#   Parameters broadcast over the last axis (JAX's channels-last layout): scalars, or one\n";
    out += "#   value per channel.\n";
    out += "import jax\nimport jax.numpy as jnp\nfrom jax.scipy.special import erf\n\n";
    let defaults: Vec<String> = e.values.iter().map(|v| number(*v)).collect();
    out += &format!("INITIAL_VALUES = ({})\n\n\n", tuple(&defaults));
    out += &helpers(&JAX);
    out += "def _gelu(a):\n    return jax.nn.gelu(a, approximate=False)\n\n\n";
    out += &format!(
        "def activation(x, params=INITIAL_VALUES):\n    \"\"\"f(x) = {}\"\"\"\n",
        f.to_string().replace('"', "'")
    );
    if n > 0 {
        let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        out += &format!("    {} = (jnp.asarray(p, x.dtype) for p in params)\n", tuple(&names));
    }
    out += &format!("    return {body}\n\n\n");
    out += "try:\n    import flax.linen as nn\nexcept ImportError:  # Flax is optional: activation() needs only JAX\n    nn = None\n\n";
    out += "if nn is not None:\n\n    class Activation(nn.Module):\n";
    out += "        \"\"\"Per-channel parameters on the last axis, initialized to INITIAL_VALUES.\"\"\"\n\n";
    out += "        @nn.compact\n        def __call__(self, x):\n";
    out += "            params = tuple(\n";
    out += "                self.param(f\"p{i}\", lambda key, v=v: jnp.full((x.shape[-1],), v, x.dtype))\n";
    out += "                for i, v in enumerate(INITIAL_VALUES)\n            )\n";
    out += "            return activation(x, params)\n";
    out
}

/// A Python tuple of the given items (`(a,)` for one).
fn tuple(items: &[String]) -> String {
    match items.len() {
        1 => format!("{},", items[0]),
        _ => items.join(", "),
    }
}

fn formula_text(e: &Exported) -> String {
    let mut out = format!("{}\n", e.formula);
    for (i, v) in e.values.iter().enumerate() {
        out += &format!("# {} = {} ({})\n", slot_name(e.formula, i), number(*v), e.values_from);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(text: &str, values: &[f64], target: Target) -> String {
        let f = Formula::parse(text).unwrap().canonical();
        let layout = SiteLayout::Channels;
        export(&Exported { formula: &f, values, values_from: "initial values", source: text, layout }, target)
    }

    #[test]
    fn python_expressions_are_fully_parenthesized() {
        let f = Formula::parse("(-x)^2 + b*sigmoid(x) - max(x, 0.5)").unwrap();
        let text = unwrap(python(&f.expr, &TORCH));
        assert_eq!(text, "(((-x) ** 2) + (p0 * torch.sigmoid(x))) - torch.maximum(x, x.new_tensor(0.5))");
        assert_eq!(unwrap("(a) + (b)".to_string()), "(a) + (b)");
    }

    #[test]
    fn numbers_round_trip_and_look_like_floats() {
        assert_eq!(number(10.0), "10.0");
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(1e-10), "1e-10");
        assert_eq!(number(-2.5), "-2.5");
    }

    #[test]
    fn each_target_names_the_formula_and_the_values() {
        let torch = exported("x*sigmoid(b*x)", &[1.5], Target::Pytorch);
        assert!(torch.contains("class Activation(nn.Module):"), "{torch}");
        assert!(torch.contains("initial_values = (1.5,)"), "{torch}");
        assert!(torch.contains("return x * torch.sigmoid((p0 * x))"), "{torch}");
        let jax = exported("x*sigmoid(b*x)", &[1.5], Target::Jax);
        assert!(
            jax.contains("def activation(x, params=INITIAL_VALUES):") && jax.contains("INITIAL_VALUES = (1.5,)"),
            "{jax}"
        );
        let text = exported("b1*x + b1*tanh(x)", &[0.25], Target::Formula);
        assert_eq!(text, "b1*x + b1*tanh(x)\n# b1 = 0.25 (initial values)\n");
        // Without parameters and without x.
        assert!(exported("relu(x)", &[], Target::Pytorch).contains("return torch.relu(x)"));
        assert!(exported("sigmoid(2)", &[], Target::Pytorch).contains("torch.zeros_like(x) + "));
    }
}
