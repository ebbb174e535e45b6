//! Named activations: the standard ones and the seed project's searched functions.
//!
//! `actsearch functions` lists these; `--activation NAME` resolves through [`resolve`].

use super::{Formula, ParseError};

/// An activation known by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedFn {
    pub name: &'static str,
    pub formula: &'static str,
    pub about: &'static str,
}

const fn named(name: &'static str, formula: &'static str, about: &'static str) -> NamedFn {
    NamedFn { name, formula, about }
}

/// Every named activation.
pub const NAMED: &[NamedFn] = &[
    named("relu", "relu(x)", "rectified linear unit, max(x, 0)"),
    named("silu", "silu(x)", "sigmoid-weighted linear unit, x*sigmoid(x)"),
    named("swish", "silu(x)", "alias of silu (swish with beta = 1)"),
    named("gelu", "gelu(x)", "Gaussian error linear unit, x*Phi(x) (exact erf form)"),
    named("elu", "elu(x)", "exponential linear unit with alpha = 1"),
    named("leaky_relu", "leaky_relu(x)", "leaky ReLU with negative slope 0.01"),
    named("tanh", "tanh(x)", "hyperbolic tangent"),
    named("sigmoid", "sigmoid(x)", "logistic function 1/(1 + e^-x)"),
    named("softplus", "softplus(x)", "log(1 + e^x)"),
    named("mish", "x*tanh(softplus(x))", "Mish (Misra 2019)"),
    named("darts_simple_r", "(x + b)^2", "found by DARTS in the small space (seed project)"),
    named("darts_complex_r", "b1*x + (abs(x)*abs(x) + b2)", "found by DARTS in the huge space (seed project)"),
    named("drnas_simple_r", "max(x, 0) + max(x, 0)", "found by DrNAS in the small space (seed project)"),
    named("drnas_complex_r", "x + (min(-x, sqrt(x)) + b)", "found by DrNAS in the huge space (seed project)"),
    named("gdas_simple_r", "sigmoid(sigmoid(x))*sigmoid(x)", "found by GDAS in the small space (seed project)"),
];

/// The named activation called `name` (case-insensitive, surrounding spaces ignored).
pub fn lookup(name: &str) -> Option<&'static NamedFn> {
    let name = name.trim();
    NAMED.iter().find(|n| n.name.eq_ignore_ascii_case(name))
}

/// A named activation's formula if `spec` is a name, otherwise `spec` parsed as a formula.
pub fn resolve(spec: &str) -> Result<Formula, ParseError> {
    match lookup(spec) {
        Some(named) => Formula::parse(named.formula),
        None => Formula::parse(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_formula_parses_and_prints_back() {
        for named in NAMED {
            let f = Formula::parse(named.formula).unwrap_or_else(|e| panic!("{}: {e}", named.name));
            assert_eq!(f.to_string(), named.formula);
            assert!(f.uses_x(), "{}", named.name);
            assert!(f.fingerprint().is_some(), "{}", named.name);
        }
    }

    #[test]
    fn names_are_unique_and_lookup_ignores_case() {
        for (i, a) in NAMED.iter().enumerate() {
            assert!(NAMED[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
        assert_eq!(lookup("ReLU").map(|n| n.name), Some("relu"));
        assert_eq!(lookup(" swish ").map(|n| n.formula), Some("silu(x)"));
        assert!(lookup("relu2").is_none());
    }

    #[test]
    fn resolve_takes_names_or_formulas() {
        assert_eq!(resolve("Mish").unwrap(), Formula::parse("x*tanh(softplus(x))").unwrap());
        assert_eq!(resolve("darts_complex_r").unwrap().num_params(), 2);
        assert_eq!(resolve("x*sigmoid(b*x)").unwrap().num_params(), 1);
        let e = resolve("relu2").unwrap_err().to_string();
        assert!(e.contains("unknown name 'relu2' at column 1"), "{e}");
    }
}
