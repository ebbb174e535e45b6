//! Parameter slots across formulas: substituting formulas into a template's arguments, and the
//! renumbering pass that puts slots in reading order.
//!
//! Slot rule (what [`Formula::substitute`] and [`Formula::canonical`] produce): slots are
//! numbered in order of first appearance reading the printed text left to right, so
//! `parse(print(f)) == f`. A slot that occurs exactly once and was anonymous stays `b`; every
//! other slot is named `b1`, `b2`, ... in reading order. Substitution never merges slots of
//! different pieces: `b1*x1 + (1 - b1)*x2` with `x1 = x + b`, `x2 = b` gives
//! `b1*(x + b) + (1 - b1)*b` (three slots), and two pieces that both use `b1` get `b1` and `b2`.
//! Slots that no longer occur (the argument a template ignores, as `left` ignores `x2`) are
//! dropped.

use std::collections::HashMap;

use super::{Expr, Formula, ParamName};

impl Formula {
    /// Replaces each argument `Arg(k)` by `args[k]`'s expression (arguments past the end of
    /// `args` stay arguments). The parameter slots follow the slot rule in the module docs.
    pub fn substitute(&self, args: &[Formula]) -> Formula {
        self.substitute_traced(args).0
    }

    /// [`Formula::substitute`], also returning where each slot of the result came from: its
    /// index in the concatenation of `self`'s slots followed by each argument's slots in order.
    pub fn substitute_traced(&self, args: &[Formula]) -> (Formula, Vec<usize>) {
        let mut names = self.params.clone();
        let mut offsets = Vec::with_capacity(args.len());
        for arg in args {
            offsets.push(names.len());
            names.extend(&arg.params);
        }
        let expr = plug(&self.expr, args, &offsets);
        renumber(&expr, &names)
    }
}

/// `e` with the arguments replaced by the argument expressions, whose parameters are shifted
/// by their offsets.
fn plug(e: &Expr, args: &[Formula], offsets: &[usize]) -> Expr {
    let go = |a: &Expr| Box::new(plug(a, args, offsets));
    match e {
        Expr::Arg(k) if *k < args.len() => shift(&args[*k].expr, offsets[*k]),
        Expr::X | Expr::Num(_) | Expr::Param(_) | Expr::Arg(_) => e.clone(),
        Expr::Neg(a) => Expr::Neg(go(a)),
        Expr::Pow(a, n) => Expr::Pow(go(a), *n),
        Expr::Call(f, a) => Expr::Call(*f, go(a)),
        Expr::Bin(op, a, b) => Expr::Bin(*op, go(a), go(b)),
    }
}

/// `e` with every parameter index moved up by `offset`.
fn shift(e: &Expr, offset: usize) -> Expr {
    map_params(e, &mut |i| i + offset)
}

/// `e` with parameter index `i` replaced by `f(i)`, visiting parameters in reading order.
fn map_params(e: &Expr, f: &mut impl FnMut(usize) -> usize) -> Expr {
    match e {
        Expr::Param(i) => Expr::Param(f(*i)),
        Expr::X | Expr::Num(_) | Expr::Arg(_) => e.clone(),
        Expr::Neg(a) => Expr::Neg(Box::new(map_params(a, f))),
        Expr::Pow(a, n) => Expr::Pow(Box::new(map_params(a, f)), *n),
        Expr::Call(func, a) => Expr::Call(*func, Box::new(map_params(a, f))),
        Expr::Bin(op, a, b) => {
            // Left operand first: that is the reading order.
            let a = map_params(a, f);
            let b = map_params(b, f);
            Expr::Bin(*op, Box::new(a), Box::new(b))
        }
    }
}

/// Applies the slot rule to `expr`, whose slot `i` was written `names[i]` (anonymous past
/// the end). Returns the formula and, per new slot, the old slot it came from.
pub(super) fn renumber(expr: &Expr, names: &[ParamName]) -> (Formula, Vec<usize>) {
    let mut old_of_new: Vec<usize> = Vec::new();
    let mut uses: Vec<usize> = Vec::new();
    let mut new_of_old: HashMap<usize, usize> = HashMap::new();
    let expr = map_params(expr, &mut |old| {
        let new = *new_of_old.entry(old).or_insert_with(|| {
            old_of_new.push(old);
            uses.push(0);
            old_of_new.len() - 1
        });
        uses[new] += 1;
        new
    });
    let mut next_named = 0;
    let params = old_of_new
        .iter()
        .zip(&uses)
        .map(|(&old, &n)| match names.get(old) {
            Some(ParamName::Anon) | None if n == 1 => ParamName::Anon,
            _ => {
                next_named += 1;
                ParamName::Named(next_named)
            }
        })
        .collect();
    (Formula { expr, params }, old_of_new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> Formula {
        Formula::parse_template(text, &["x1", "x2"]).unwrap()
    }

    fn formula(text: &str) -> Formula {
        Formula::parse(text).unwrap()
    }

    /// Substitutes, checks the printed result parses back to the same formula, returns its text.
    fn sub(t: &str, args: &[&str]) -> String {
        let args: Vec<Formula> = args.iter().map(|a| formula(a)).collect();
        let f = template(t).substitute(&args);
        let text = f.to_string();
        assert_eq!(Formula::parse(&text).as_ref(), Ok(&f), "{text}");
        text
    }

    #[test]
    fn pieces_keep_their_own_slots() {
        assert_eq!(sub("sigmoid(x1)*x2", &["b*x", "tanh(x)"]), "sigmoid(b*x)*tanh(x)");
        assert_eq!(sub("b1*x1 + (1 - b1)*x2", &["x + b", "b"]), "b1*(x + b) + (1 - b1)*b");
        assert_eq!(sub("x1 + x2", &["b1*x + b1", "b1*x"]), "b1*x + b1 + b2*x");
        assert_eq!(sub("x1*x2", &["b2*x + b1", "b"]), "(b1*x + b2)*b");
        assert_eq!(sub("x1 + b", &["b*x"]), "b*x + b");
        assert_eq!(sub("x2 - x1", &["b*x", "x + b"]), "x + b - b*x");
    }

    #[test]
    fn repeated_arguments_share_their_slots() {
        // One op instance used twice: its anonymous slot becomes a shared named one.
        assert_eq!(sub("x1*x1 + x2", &["b*x", "b"]), "b1*x*(b1*x) + b");
    }

    #[test]
    fn ignored_arguments_lose_their_slots() {
        let args = [formula("b*x"), formula("x + b1")];
        let (f, trace) = template("x2").substitute_traced(&args);
        assert_eq!(f.to_string(), "x + b1");
        assert_eq!(trace, vec![1]);
    }

    #[test]
    fn trace_points_into_the_concatenated_slots() {
        let args = [formula("x + b"), formula("b")];
        let (f, trace) = template("b1*x1 + (1 - b1)*x2").substitute_traced(&args);
        assert_eq!(f.num_params(), 3);
        assert_eq!(trace, vec![0, 1, 2]);
        let (f, trace) = template("x2 - x1*b").substitute_traced(&args);
        assert_eq!(f.to_string(), "b - (x + b)*b");
        assert_eq!(trace, vec![2, 1, 0]);
    }

    #[test]
    fn unfilled_arguments_stay() {
        let f = template("x1 + x2").substitute(&[formula("b*x")]);
        assert_eq!(f.to_string(), "b*x + x2");
        assert_eq!(f.num_args(), 2);
    }

    #[test]
    fn values_equal_composed_pieces() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let cases = [
            ("b1*x1 + (1 - b1)*x2", "x + b", "b"),
            ("sigmoid(x1)*x2", "b*x", "tanh(x)"),
            ("max(x1, x2)*b", "b1*x - b1", "b1*sin(x)"),
            ("x1/(x2 + 2) - x1", "b*x + b", "b*x^2"),
        ];
        for (t, a, b) in cases {
            let (t, a, b) = (template(t), formula(a), formula(b));
            let (f, trace) = t.substitute_traced(&[a.clone(), b.clone()]);
            for _ in 0..50 {
                let x: f64 = rng.random_range(-3.0..3.0);
                let all: Vec<f64> =
                    (0..t.num_params() + a.num_params() + b.num_params()).map(|_| rng.random_range(0.2..2.0)).collect();
                let (pt, rest) = all.split_at(t.num_params());
                let (pa, pb) = rest.split_at(a.num_params());
                let want = t.eval_args(x, &[a.eval(x, pa), b.eval(x, pb)], pt);
                let params: Vec<f64> = trace.iter().map(|&i| all[i]).collect();
                let got = f.eval(x, &params);
                assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{f} at {x}: {got} vs {want}");
            }
        }
    }
}
