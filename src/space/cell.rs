//! Cells: the searchable activations of the one-shot search, and the core-unit spaces of the
//! sample-based search. A cell is a fixed shape of unary and binary positions, each choosing one
//! op from its list; choosing an op per position gives a [`Genotype`] whose formula is the
//! composition of the chosen ops' templates.
//!
//! Shapes (positions listed in evaluation order):
//! - [`CellShape::Small`] `b(u1(x), u2(x))`: positions `u1`, `u2`, `b`;
//! - [`CellShape::Huge`] `b2(u3(b1(u1(x), u2(x))), u4(x))`: positions `u1`, `u2`, `b1`, `u3`,
//!   `u4`, `b2`.
//!
//! Spaces ([`CellSpace::parse`]): `small` and `huge` over the seed's op set, `grafs` (the huge
//! shape over the bounded GRAFS set), `core1` and `core2` (Ramachandran's core unit
//! `b(u1(x1), u2(x2))` with both inputs `x`, once or chained twice: the second unit takes the
//! first unit's output through `u3` and `x` through `u4`, which is the huge shape) over the core
//! set, and a user's `PATH.toml` cell file (`cell_toml`).

use anyhow::{Result, bail};

use super::cell_ops::{CellOp, OpSet, PosKind};
use super::genotype::{Genotype, ParamInfo, PositionChoice};
use crate::expr::{Expr, Formula};

/// The arrangement of a cell's positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellShape {
    Small,
    Huge,
}

impl CellShape {
    /// `"small"` or `"huge"`, as in cell files.
    pub fn name(self) -> &'static str {
        match self {
            CellShape::Small => "small",
            CellShape::Huge => "huge",
        }
    }

    pub fn from_name(name: &str) -> Option<CellShape> {
        [CellShape::Small, CellShape::Huge].into_iter().find(|s| s.name() == name)
    }

    /// Position names and kinds in evaluation order.
    pub fn layout(self) -> &'static [(&'static str, PosKind)] {
        use PosKind::{Binary, Unary};
        match self {
            CellShape::Small => &[("u1", Unary), ("u2", Unary), ("b", Binary)],
            CellShape::Huge => {
                &[("u1", Unary), ("u2", Unary), ("b1", Binary), ("u3", Unary), ("u4", Unary), ("b2", Binary)]
            }
        }
    }

    /// Where each position's arguments come from, parallel to [`Self::layout`]: the cell input
    /// or the output of an earlier position. Mirrors [`Self::compose`].
    pub fn wiring(self) -> &'static [&'static [Source]] {
        use Source::{Input, Pos};
        match self {
            CellShape::Small => &[&[Input], &[Input], &[Pos(0), Pos(1)]],
            CellShape::Huge => &[&[Input], &[Input], &[Pos(0), Pos(1)], &[Pos(2)], &[Input], &[Pos(3), Pos(4)]],
        }
    }

    /// The cell's formula: `pieces[i]` is the op chosen at position `i` of [`Self::layout`].
    fn compose(self, pieces: Vec<Piece>) -> Piece {
        let x = || Piece { formula: Formula { expr: Expr::X, params: Vec::new() }, origin: Vec::new() };
        let mut p = pieces.into_iter();
        let mut next = || p.next().unwrap_or_else(x);
        let (u1, u2, b1) = (next(), next(), next());
        let unit = b1.apply(vec![u1.apply(vec![x()]), u2.apply(vec![x()])]);
        match self {
            CellShape::Small => unit,
            CellShape::Huge => {
                let (u3, u4, b2) = (next(), next(), next());
                b2.apply(vec![u3.apply(vec![unit]), u4.apply(vec![x()])])
            }
        }
    }
}

/// The source of one argument of a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The cell's input `x`.
    Input,
    /// The output of position `i`.
    Pos(usize),
}

/// A formula being composed, with the origin `(position, slot of its op)` of each slot.
struct Piece {
    formula: Formula,
    origin: Vec<(usize, usize)>,
}

impl Piece {
    /// This template with its arguments replaced by `args`.
    fn apply(self, args: Vec<Piece>) -> Piece {
        let formulas: Vec<Formula> = args.iter().map(|a| a.formula.clone()).collect();
        let (formula, trace) = self.formula.substitute_traced(&formulas);
        let all: Vec<(usize, usize)> = self.origin.into_iter().chain(args.into_iter().flat_map(|a| a.origin)).collect();
        Piece { formula, origin: trace.iter().map(|&i| all[i]).collect() }
    }
}

/// One position of a cell: its name (`u1`, `b1`, ...), kind, and the ops it may choose from.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub name: String,
    pub kind: PosKind,
    /// Op names, each from the space's op set and of this position's kind.
    pub ops: Vec<String>,
    /// The ops themselves, parallel to `ops`.
    resolved: Vec<&'static CellOp>,
}

impl Position {
    /// A position offering `ops` (by name) from `set`; unknown names are an error.
    pub(super) fn new(name: &str, kind: PosKind, set: OpSet, ops: &[String]) -> Result<Position> {
        let mut resolved = Vec::with_capacity(ops.len());
        for op in ops {
            match set.find(kind, op) {
                Some((_, found)) => resolved.push(found),
                None => bail!("unknown {} op '{op}' at position {name}", kind.name()),
            }
        }
        Ok(Position { name: name.to_string(), kind, ops: ops.to_vec(), resolved })
    }

    /// Every op of `kind` in `set`, in table order.
    fn full(name: &str, kind: PosKind, set: OpSet) -> Position {
        let resolved: Vec<&'static CellOp> = set.ops(kind).iter().collect();
        let ops = resolved.iter().map(|op| op.name.to_string()).collect();
        Position { name: name.to_string(), kind, ops, resolved }
    }

    /// The `k`-th op of this position (panics past the end, like slice indexing).
    pub fn op(&self, k: usize) -> &'static CellOp {
        self.resolved[k]
    }
}

/// A search space of cells: a shape and the ops allowed at each of its positions.
#[derive(Clone, Debug, PartialEq)]
pub struct CellSpace {
    /// `small`, `huge`, `grafs`, `core1`, `core2`, or the cell file's path.
    pub name: String,
    pub shape: CellShape,
    pub set: OpSet,
    positions: Vec<Position>,
}

impl CellSpace {
    /// A built-in space, every position offering all ops of its kind.
    pub fn builtin(name: &str) -> Option<CellSpace> {
        let (shape, set) = match name {
            "small" => (CellShape::Small, OpSet::Seed),
            "huge" => (CellShape::Huge, OpSet::Seed),
            "grafs" => (CellShape::Huge, OpSet::Grafs),
            "core1" => (CellShape::Small, OpSet::Core),
            "core2" => (CellShape::Huge, OpSet::Core),
            _ => return None,
        };
        let positions = shape.layout().iter().map(|&(pos, kind)| Position::full(pos, kind, set)).collect();
        Some(CellSpace { name: name.to_string(), shape, set, positions })
    }

    /// A space from given positions, which must match `shape`'s layout (names and kinds).
    pub fn new(name: &str, shape: CellShape, set: OpSet, positions: Vec<Position>) -> Result<CellSpace> {
        let layout = shape.layout();
        let matches = positions.len() == layout.len()
            && positions.iter().zip(layout).all(|(p, &(name, kind))| p.name == name && p.kind == kind);
        if !matches {
            let want: Vec<&str> = layout.iter().map(|(n, _)| *n).collect();
            bail!("the {} shape needs positions {} in this order", shape.name(), want.join(", "));
        }
        if let Some(p) = positions.iter().find(|p| p.ops.is_empty()) {
            bail!("position {} has no ops (list at least one)", p.name);
        }
        Ok(CellSpace { name: name.to_string(), shape, set, positions })
    }

    /// The positions in evaluation order.
    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// Op `op` of position `pos` (panics past the end, like slice indexing).
    pub fn op(&self, pos: usize, op: usize) -> &'static CellOp {
        self.positions[pos].op(op)
    }

    /// The template of op `op` at position `pos`: over `Arg(0)` (unary) or `Arg(0)`, `Arg(1)`.
    pub fn op_template(&self, pos: usize, op: usize) -> &'static Formula {
        &self.op(pos, op).template
    }

    /// The op index at each position that `genotype.ops` names (the inverse of
    /// [`CellSpace::genotype`]'s `ops`). A position missing, repeated or unknown, or an op this
    /// space does not offer there, is an error naming it.
    pub fn choice_of(&self, genotype: &Genotype) -> Result<Vec<usize>> {
        if genotype.ops.len() != self.positions.len() {
            bail!(
                "it lists {} ops but the {} space has {} positions ({})",
                genotype.ops.len(),
                self.name,
                self.positions.len(),
                self.positions.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        self.positions
            .iter()
            .map(|p| {
                let mut named = genotype.ops.iter().filter(|c| c.position == p.name);
                let (Some(chosen), None) = (named.next(), named.next()) else {
                    bail!("it must name position {} of the {} space exactly once", p.name, self.name);
                };
                p.ops.iter().position(|o| *o == chosen.op).ok_or_else(|| {
                    anyhow::anyhow!("position {} of the {} space has no op '{}'", p.name, self.name, chosen.op)
                })
            })
            .collect()
    }

    /// The genotype choosing op `choice[i]` at position `i`.
    pub fn genotype(&self, choice: &[usize]) -> Result<Genotype> {
        if choice.len() != self.positions.len() {
            bail!(
                "a choice for the {} space needs {} op indices (one per position), got {}",
                self.name,
                self.positions.len(),
                choice.len()
            );
        }
        let mut pieces = Vec::with_capacity(choice.len());
        for (i, (p, &k)) in self.positions.iter().zip(choice).enumerate() {
            if k >= p.ops.len() {
                bail!("op index {k} at position {} is out of range (it has {} ops)", p.name, p.ops.len());
            }
            let template = p.op(k).template.clone();
            let origin = (0..template.num_params()).map(|slot| (i, slot)).collect();
            pieces.push(Piece { formula: template, origin });
        }
        let cell = self.shape.compose(pieces);
        let (formula, trace) = cell.formula.canonical_traced();
        let params = trace
            .iter()
            .zip(&formula.params)
            .map(|(&old, name)| {
                let (pos, slot) = cell.origin[old];
                ParamInfo {
                    name: name.to_string(),
                    init: self.op(pos, choice[pos]).init[slot],
                    position: self.positions[pos].name.clone(),
                    slot,
                    learned: None,
                }
            })
            .collect();
        let ops = self
            .positions
            .iter()
            .zip(choice)
            .map(|(p, &k)| PositionChoice { position: p.name.clone(), op: p.ops[k].clone() })
            .collect();
        Ok(Genotype { space: self.name.clone(), ops, formula: formula.to_string(), params, layout: Default::default() })
    }

    /// The genotype of the largest alpha at each position (ties: the lowest index; NaN never
    /// wins). `alphas[i]` holds one weight per op of position `i`.
    pub fn discretize(&self, alphas: &[Vec<f64>]) -> Result<Genotype> {
        if alphas.len() != self.positions.len() {
            bail!(
                "alphas for the {} space need {} rows (one per position), got {}",
                self.name,
                self.positions.len(),
                alphas.len()
            );
        }
        let mut choice = Vec::with_capacity(alphas.len());
        for (p, row) in self.positions.iter().zip(alphas) {
            if row.len() != p.ops.len() {
                bail!("alphas of position {} need {} values (one per op), got {}", p.name, p.ops.len(), row.len());
            }
            choice.push(argmax(row));
        }
        self.genotype(&choice)
    }
}

/// Index of the largest value; the first one on ties; NaN is skipped (0 if all are NaN).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(space: &CellSpace, names: &[&str]) -> Vec<usize> {
        space.positions().iter().zip(names).map(|(p, n)| p.ops.iter().position(|o| o == n).unwrap()).collect()
    }

    fn formula(space: &str, names: &[&str]) -> String {
        let space = CellSpace::parse(space).unwrap();
        let g = space.genotype(&choice(&space, names)).unwrap();
        // The formula parses back with one parameter per listed parameter.
        assert_eq!(Formula::parse(&g.formula).unwrap().num_params(), g.params.len(), "{}", g.formula);
        g.formula
    }

    #[test]
    fn builtin_spaces_have_their_shapes_and_sets() {
        let counts = |s: &str| {
            let space = CellSpace::parse(s).unwrap();
            space.positions().iter().map(|p| (p.name.clone(), p.ops.len())).collect::<Vec<_>>()
        };
        let n = |v: &[(&str, usize)]| v.iter().map(|(a, b)| (a.to_string(), *b)).collect::<Vec<_>>();
        assert_eq!(counts("small"), n(&[("u1", 18), ("u2", 18), ("b", 7)]));
        assert_eq!(counts("huge"), n(&[("u1", 18), ("u2", 18), ("b1", 7), ("u3", 18), ("u4", 18), ("b2", 7)]));
        assert_eq!(counts("grafs"), n(&[("u1", 23), ("u2", 23), ("b1", 9), ("u3", 23), ("u4", 23), ("b2", 9)]));
        assert_eq!(counts("core1"), n(&[("u1", 25), ("u2", 25), ("b", 10)]));
        assert_eq!(counts("core2").len(), 6);
        let e = CellSpace::parse("medium").unwrap_err().to_string();
        assert_eq!(e, "unknown search space 'medium' (use small, huge, grafs, core1, core2 or a PATH.toml cell file)");
    }

    #[test]
    fn composition_gives_the_expected_formulas() {
        assert_eq!(formula("small", &["beta_mul", "tanh", "mul"]), "b*x*tanh(x)");
        assert_eq!(formula("small", &["beta_mul", "tanh", "sigmoid_mul"]), "sigmoid(b*x)*tanh(x)");
        assert_eq!(formula("small", &["beta_add", "beta", "beta_mix"]), "b1*(x + b) + (1 - b1)*b");
        assert_eq!(formula("small", &["zero", "identity", "add"]), "x");
        assert_eq!(formula("small", &["identity", "zero", "sub"]), "x");
        assert_eq!(formula("small", &["max0", "max0", "add"]), "max(x, 0) + max(x, 0)");
        assert_eq!(formula("small", &["beta_add", "beta_add", "mul"]), "(x + b)*(x + b)");
        // The seed's darts_complex_r and drnas_complex_r are points of the huge space.
        assert_eq!(formula("huge", &["abs", "abs", "mul", "beta_add", "beta_mul", "add"]), "abs(x)*abs(x) + b + b*x");
        assert_eq!(formula("huge", &["neg", "sqrt", "min", "beta_add", "identity", "add"]), "min(-x, sqrt(x)) + b + x");
        assert_eq!(
            formula("grafs", &["identity", "tanh", "mul", "identity", "beta", "gate_mix"]),
            // The clamps of tanh, of the product of two bounded values and of identity on a bounded
            // value cannot bind, so the canonical form drops them.
            "max(min(sigmoid(b1)*(max(min(x, 10), -10)*tanh(x)) + (1 - sigmoid(b1))*max(min(b, 10), -10), 10), -10)"
        );
        assert_eq!(
            formula("grafs", &["square", "exp", "add", "tanh", "cube", "left"]),
            "tanh(min(min(x^2, 10) + min(exp(x), 10), 10))"
        );
        assert_eq!(formula("core1", &["identity", "sigmoid", "mul"]), "x*sigmoid(x)");
        assert_eq!(
            formula("core2", &["beta_mul", "identity", "div", "sin", "beta", "exp_sq_diff"]),
            "exp(-b*(sin(b*x/(x + 1e-10)) - b)^2)"
        );
    }

    #[test]
    fn params_carry_their_position_and_initial_value() {
        let space = CellSpace::parse("grafs").unwrap();
        let g = space
            .genotype(&choice(&space, &["beta_mul", "beta_add", "gate_mix", "identity", "beta", "gate_mix"]))
            .unwrap();
        let info: Vec<(&str, f64, &str, usize)> =
            g.params.iter().map(|p| (p.name.as_str(), p.init, p.position.as_str(), p.slot)).collect();
        assert_eq!(
            info,
            [("b1", 0.0, "b2", 0), ("b2", 0.0, "b1", 0), ("b", 1.0, "u1", 0), ("b", 1.0, "u2", 0), ("b", 1.0, "u4", 0)]
        );
        assert!(g.formula.starts_with("max(min(sigmoid(b1)*max(min(sigmoid(b2)*"), "{}", g.formula);
    }

    #[test]
    fn discretize_takes_the_argmax() {
        let space = CellSpace::parse("small").unwrap();
        let mut alphas: Vec<Vec<f64>> = space.positions().iter().map(|p| vec![0.0; p.ops.len()]).collect();
        alphas[0][7] = 0.9; // beta_mul
        alphas[1][10] = 0.5; // tanh
        alphas[1][12] = 0.5; // atan ties with tanh: the lower index wins
        alphas[2][2] = 0.3; // mul
        alphas[2][0] = f64::NAN;
        let g = space.discretize(&alphas).unwrap();
        assert_eq!(g.formula, "b*x*tanh(x)");
        let ops: Vec<(&str, &str)> = g.ops.iter().map(|c| (c.position.as_str(), c.op.as_str())).collect();
        assert_eq!(ops, [("u1", "beta_mul"), ("u2", "tanh"), ("b", "mul")]);
        assert_eq!(g.space, "small");
        let e = space.discretize(&alphas[..2]).unwrap_err().to_string();
        assert_eq!(e, "alphas for the small space need 3 rows (one per position), got 2");
        alphas[1].pop();
        let e = space.discretize(&alphas).unwrap_err().to_string();
        assert_eq!(e, "alphas of position u2 need 18 values (one per op), got 17");
        assert!(space.genotype(&[0, 0, 7]).unwrap_err().to_string().contains("out of range"));
        assert_eq!(argmax(&[f64::NAN, f64::NAN]), 0);
    }

    #[test]
    fn genotype_values_equal_composed_templates() {
        // Every choice of the small space, and random ones of the others, evaluate like the
        // cell built op by op with eval_args.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for name in ["small", "huge", "grafs", "core1", "core2"] {
            let space = CellSpace::parse(name).unwrap();
            for _ in 0..200 {
                let choice: Vec<usize> = space.positions().iter().map(|p| rng.random_range(0..p.ops.len())).collect();
                let g = space.genotype(&choice).unwrap();
                let f = Formula::parse(&g.formula).unwrap();
                // Per op instance, its parameter values.
                let values: Vec<Vec<f64>> = choice
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| (0..space.op(i, k).init.len()).map(|_| rng.random_range(0.3..1.5)).collect())
                    .collect();
                let pos_index = |n: &str| space.positions().iter().position(|p| p.name == n).unwrap();
                let params: Vec<f64> = g.params.iter().map(|p| values[pos_index(&p.position)][p.slot]).collect();
                for _ in 0..5 {
                    let x: f64 = rng.random_range(-3.0..3.0);
                    let op = |i: usize, args: &[f64]| space.op_template(i, choice[i]).eval_args(x, args, &values[i]);
                    let unit = op(2, &[op(0, &[x]), op(1, &[x])]);
                    let want = match space.shape {
                        CellShape::Small => unit,
                        CellShape::Huge => op(5, &[op(3, &[unit]), op(4, &[x])]),
                    };
                    let got = f.eval(x, &params);
                    let same = got == want
                        || (got.is_nan() && want.is_nan())
                        || (got - want).abs() <= 1e-9 * want.abs().max(1.0);
                    assert!(same, "{name} {:?}: {} at {x}: {got} vs {want}", g.ops, g.formula);
                }
            }
        }
    }
}
