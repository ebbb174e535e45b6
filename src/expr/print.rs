//! The canonical text of a formula: minimal parentheses from precedence and associativity,
//! `+`/`-` spaced, `* / ^` tight, `abs(...)` for absolute values, parameters as `b` / `b1`,
//! template arguments as `x1`, `x2`, ... (`parse_template(print(t), &["x1", "x2", ...]) == t`).
//!
//! Printing then parsing gives back the identical tree and parameter slots
//! (`parse(print(f)) == f`) for every formula the parser or [`Formula::canonical`] produces, as
//! long as its numbers are finite. Operands of the same precedence on the right of an infix
//! operator are parenthesized (`a - (b - c)`, `a + (b + c)`), and so are negations and negative
//! numbers on the right (`x*(-b)`, `x - (-2)`).

use std::fmt;

use super::{BinOp, Expr, Formula, ParamName};

/// Binding strength of what an expression prints as; higher binds tighter.
const SUM: u8 = 1;
const PRODUCT: u8 = 2;
const UNARY: u8 = 3;
const POWER: u8 = 4;
const ATOM: u8 = 5;

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_expr(&mut out, &self.expr, &self.params, 0, false);
        f.write_str(&out)
    }
}

impl fmt::Display for ParamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamName::Anon => f.write_str("b"),
            ParamName::Named(n) => write!(f, "b{n}"),
        }
    }
}

/// Writes `e`, parenthesized if it binds looser than `min` or, with `no_unary`, if it starts
/// with a minus sign at the top.
fn write_expr(out: &mut String, e: &Expr, params: &[ParamName], min: u8, no_unary: bool) {
    let p = precedence(e);
    if p < min || (no_unary && p == UNARY) {
        out.push('(');
        write_bare(out, e, params);
        out.push(')');
    } else {
        write_bare(out, e, params);
    }
}

fn write_bare(out: &mut String, e: &Expr, params: &[ParamName]) {
    match e {
        Expr::X => out.push('x'),
        Expr::Arg(k) => {
            out.push('x');
            out.push_str(&(k + 1).to_string());
        }
        Expr::Num(v) => out.push_str(&format_number(*v)),
        Expr::Param(i) => out.push_str(&params.get(*i).copied().unwrap_or(ParamName::Anon).to_string()),
        Expr::Neg(a) => {
            out.push('-');
            if let Expr::Num(v) = **a {
                // `-(2)` keeps a negated number distinct from the negative number `-2`.
                out.push('(');
                out.push_str(&format_number(v));
                out.push(')');
            } else {
                write_expr(out, a, params, UNARY, false);
            }
        }
        Expr::Pow(a, n) => {
            write_expr(out, a, params, ATOM, false);
            out.push('^');
            out.push_str(&n.to_string());
        }
        Expr::Call(f, a) => {
            out.push_str(f.name());
            out.push('(');
            write_expr(out, a, params, 0, false);
            out.push(')');
        }
        Expr::Bin(op, a, b) => match op.symbol() {
            Some(sym) => {
                let own = precedence(e);
                write_expr(out, a, params, own, false);
                if own == SUM {
                    out.push(' ');
                    out.push_str(sym);
                    out.push(' ');
                } else {
                    out.push_str(sym);
                }
                write_expr(out, b, params, own + 1, true);
            }
            None => {
                out.push_str(op.name());
                out.push('(');
                write_expr(out, a, params, 0, false);
                out.push_str(", ");
                write_expr(out, b, params, 0, false);
                out.push(')');
            }
        },
    }
}

fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::X | Expr::Arg(_) | Expr::Param(_) | Expr::Call(..) => ATOM,
        Expr::Num(v) => {
            if v.is_sign_negative() {
                UNARY
            } else {
                ATOM
            }
        }
        Expr::Neg(_) => UNARY,
        Expr::Pow(..) => POWER,
        Expr::Bin(BinOp::Add | BinOp::Sub, ..) => SUM,
        Expr::Bin(BinOp::Mul | BinOp::Div, ..) => PRODUCT,
        Expr::Bin(BinOp::Max | BinOp::Min, ..) => ATOM,
    }
}

/// The shortest text that parses back to exactly `v`: plain below 1e16, exponent form for
/// very large or very small magnitudes (`1e-7`, not `0.0000001`).
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) { format!("{v:e}") } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::super::named::NAMED;
    use super::super::random_tree::TreeGen;
    use super::*;
    use crate::expr::ops::Func;

    fn round_trip(f: &Formula) {
        let text = f.to_string();
        let back = Formula::parse(&text).unwrap_or_else(|e| panic!("{text:?} of {f:?}: {e}"));
        assert_eq!(&back, f, "{text:?}");
        assert_eq!(back.to_string(), text);
    }

    /// Formulas already in canonical print form: printing their parse gives them back.
    const CANONICAL_TEXT: &[&str] = &[
        "x*sigmoid(b*x)",
        "b1*x + (abs(x)*abs(x) + b2)",
        "(x + b)^2",
        "x - (b - x)",
        "x/(b*x)",
        "x/b*x",
        "x - b - x",
        "-x^2",
        "(-x)^2",
        "-2^2",
        "(-2)^2",
        "-2*x",
        "-(2)*x",
        "-(2*x)",
        "--x",
        "-(-2)",
        "--(2)",
        "x*(-x)",
        "x - (-2)",
        "x + (-x)",
        "-x + x",
        "x^-1",
        "(x^2)^3",
        "(x + 1)^-2",
        "max(x, 0) + max(x, 0)",
        "min(-x, sqrt(x))",
        "x + (min(-x, sqrt(x)) + b)",
        "1e-7*x + 1.5e20",
        "0.30000000000000004*x",
        "leaky_relu(x - 1)/(2 + x)",
        "b1*b2*b1 + b + b",
        "exp(-x^2)",
        "sigmoid(x)*x - (x + x)",
        "(x - 1)*(x + 1)",
        "1/(x + 1)/x",
        "-x/2",
        "-0.5",
    ];

    #[test]
    fn canonical_text_prints_back_unchanged() {
        for &text in CANONICAL_TEXT {
            let f = Formula::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.to_string(), text);
            round_trip(&f);
        }
        for named in NAMED {
            let f = Formula::parse(named.formula).unwrap();
            assert_eq!(f.to_string(), named.formula, "{}", named.name);
            round_trip(&f);
        }
    }

    #[test]
    fn tricky_inputs_round_trip() {
        let inputs = [
            "x+b",
            "((x))",
            "-(-(-x))",
            "- - 2",
            "2^-1",
            "x^(-1)",
            "(x)^(2)",
            "|x - 1|",
            "||x|-1|",
            "x*-x",
            "x - -x",
            "x + -2",
            "1 - (2 - (3 - x))",
            "1/(2/(3/x))",
            "(1/2)/x",
            "-x*-x",
            "-(x^2)",
            "(-x)^3",
            "0.1+0.2",
            "1e300*x",
            "1E-300+x",
            "beta*x + beta1",
            "b0",
            "max(min(x, b), -b)",
            "sinc(x)^2",
            "-(0)",
            "-0",
            "x^0",
            "5.",
            ".25",
        ];
        for text in inputs {
            let f = Formula::parse(text).unwrap_or_else(|e| panic!("{e}"));
            round_trip(&f);
        }
    }

    #[test]
    fn hand_built_trees_round_trip() {
        let x = || Box::new(Expr::X);
        let num = |v| Box::new(Expr::Num(v));
        let bin = |op, a, b| Box::new(Expr::Bin(op, a, b));
        let trees = [
            Expr::Num(-2.0),
            Expr::Neg(num(2.0)),
            Expr::Neg(num(-2.0)),
            Expr::Neg(Box::new(Expr::Neg(num(-0.5)))),
            Expr::Pow(num(-2.0), 2),
            Expr::Pow(Box::new(Expr::Neg(num(2.0))), -3),
            Expr::Neg(Box::new(Expr::Pow(num(2.0), 2))),
            *bin(BinOp::Sub, x(), bin(BinOp::Sub, x(), num(1.0))),
            *bin(BinOp::Div, x(), bin(BinOp::Mul, x(), num(1.0))),
            *bin(BinOp::Mul, num(-1.0), bin(BinOp::Add, num(-3.0), num(-4.0))),
            *bin(BinOp::Sub, num(-1.0), num(-1.0)),
            *bin(BinOp::Add, Box::new(Expr::Neg(num(1.0))), Box::new(Expr::Neg(x()))),
            *bin(BinOp::Max, num(-1e-7), Box::new(Expr::Call(Func::Abs, num(-1e30)))),
            Expr::Pow(Box::new(Expr::Pow(x(), 2)), 3),
            Expr::Num(f64::MAX),
            Expr::Num(f64::MIN_POSITIVE),
            Expr::Num(5e-324),
            Expr::Num(-0.0),
        ];
        for expr in trees {
            round_trip(&Formula { expr, params: vec![] });
        }
    }

    #[test]
    fn random_trees_round_trip() {
        let mut g = TreeGen::new(2024, false);
        for _ in 0..3000 {
            let f = g.formula(6);
            round_trip(&f);
        }
    }

    #[test]
    fn spacing_style() {
        let f = Formula::parse("b1 * x+(|x| * |x|+b2)").unwrap();
        assert_eq!(f.to_string(), "b1*x + (abs(x)*abs(x) + b2)");
        assert_eq!(Formula::parse("x ^ 2 / 3").unwrap().to_string(), "x^2/3");
        assert_eq!(format_number(1e-7), "1e-7");
        assert_eq!(format_number(1e16), "1e16");
        assert_eq!(format_number(2.0), "2");
        assert_eq!(format_number(0.5), "0.5");
    }
}
