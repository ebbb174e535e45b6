//! The discrete spaces of the sample-based searches: an activation function as a sequence of
//! tokens, one per step, each step choosing from its own list.
//!
//! - `small`, `huge`, `grafs`, `core1` and cell files: one step per cell position (in the
//!   cell's evaluation order), choosing that position's op, so a sequence is exactly a
//!   one-shot search's discretized genotype (`CellSpace::genotype`).
//! - `core2`: Ramachandran et al.'s two chained core units. The first unit is
//!   `y1 = b1(u1(x), u2(x))`; the second is `b2(u3(i3), u4(i4))`, where each input `i3`, `i4`
//!   is chosen (steps `i3`, `i4`) from `x` and `y1`, as in the paper. The steps are
//!   `u1 u2 b1 i3 u3 i4 u4 b2`.
//!
//! Every sequence maps to a canonical formula through `expr`, built from the same op table
//! (`space::cell_ops`) as everything else, with each parameter's initial value.
//!
//! The controller of PPO and REINFORCE reads tokens from one shared vocabulary
//! ([`TokenSpace::vocab`]): each distinct choice (an op of a kind, or an input) is one entry,
//! and [`TokenSpace::mask`] says which entries a step may take.

use anyhow::{Result, bail};

use crate::expr::{Expr, Formula};
use crate::space::cell::CellSpace;
use crate::space::cell_ops::{OpSet, PosKind};

/// What a step chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    Unary,
    Binary,
    /// The input of a unary op of core2's second unit: `x` or `y1`.
    Input,
}

impl StepKind {
    fn name(self) -> &'static str {
        match self {
            StepKind::Unary => "unary",
            StepKind::Binary => "binary",
            StepKind::Input => "input",
        }
    }
}

/// One step of a sequence: its name (`u1`, `b`, `i3`, ...), kind, and choices in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    pub choices: Vec<String>,
}

/// A sequence decoded: its canonical formula and the initial value of each parameter slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub formula: Formula,
    pub init: Vec<f64>,
}

/// A discrete search space.
#[derive(Clone, Debug)]
pub struct TokenSpace {
    /// `small`, `huge`, `grafs`, `core1`, `core2` or a cell file's path.
    pub name: String,
    steps: Vec<Step>,
    cell: CellSpace,
    /// Core2's input steps: where `i3`, `i4` sit in the sequence (none for a plain cell).
    chained: bool,
    /// `vocab()` entries and, per step, the vocabulary index of each choice.
    vocab: Vec<(StepKind, String)>,
    vocab_of: Vec<Vec<usize>>,
}

/// The names of core2's input choices.
const INPUTS: [&str; 2] = ["x", "y1"];

impl TokenSpace {
    /// A space by name (`small`, `huge`, `grafs`, `core1`, `core2`) or a `PATH.toml` cell file.
    pub fn parse(spec: &str) -> Result<TokenSpace> {
        let cell = CellSpace::parse(spec)?;
        let chained = spec == "core2";
        let mut steps = Vec::new();
        for p in cell.positions() {
            if chained && (p.name == "u3" || p.name == "u4") {
                let name = if p.name == "u3" { "i3" } else { "i4" };
                steps.push(Step {
                    name: name.to_string(),
                    kind: StepKind::Input,
                    choices: INPUTS.iter().map(|s| s.to_string()).collect(),
                });
            }
            let kind = match p.kind {
                PosKind::Unary => StepKind::Unary,
                PosKind::Binary => StepKind::Binary,
            };
            steps.push(Step { name: p.name.clone(), kind, choices: p.ops.clone() });
        }
        if chained && cell.set != OpSet::Core {
            bail!("core2 must use the core op set");
        }
        let mut vocab: Vec<(StepKind, String)> = Vec::new();
        let mut vocab_of = Vec::with_capacity(steps.len());
        for s in &steps {
            let mut ids = Vec::with_capacity(s.choices.len());
            for c in &s.choices {
                let key = (s.kind, c.clone());
                let id = match vocab.iter().position(|v| *v == key) {
                    Some(id) => id,
                    None => {
                        vocab.push(key);
                        vocab.len() - 1
                    }
                };
                ids.push(id);
            }
            vocab_of.push(ids);
        }
        Ok(TokenSpace { name: spec.to_string(), steps, cell, chained, vocab, vocab_of })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The number of sequences (not of distinct functions: many sequences compute the same one).
    pub fn size(&self) -> u128 {
        self.steps.iter().map(|s| s.choices.len() as u128).product()
    }

    /// A line for `--help` and the log: the steps and the number of sequences.
    pub fn describe(&self) -> String {
        let steps: Vec<String> = self.steps.iter().map(|s| format!("{} ({})", s.name, s.choices.len())).collect();
        format!("{} space: {} sequences, steps {}", self.name, self.size(), steps.join(" "))
    }

    /// Every distinct choice over all steps (kind and name).
    pub fn vocab(&self) -> &[(StepKind, String)] {
        &self.vocab
    }

    /// The vocabulary index of choice `choice` at step `step`.
    pub fn vocab_id(&self, step: usize, choice: usize) -> usize {
        self.vocab_of[step][choice]
    }

    /// The vocabulary indices step `step` may take, in choice order.
    pub fn mask(&self, step: usize) -> &[usize] {
        &self.vocab_of[step]
    }

    /// A sequence written out: `identity sigmoid mul`.
    pub fn tokens_text(&self, tokens: &[usize]) -> String {
        let names: Vec<&str> =
            self.steps.iter().zip(tokens).map(|(s, &t)| s.choices.get(t).map_or("?", |c| c.as_str())).collect();
        names.join(" ")
    }

    /// The sequence [`TokenSpace::tokens_text`] wrote.
    pub fn parse_tokens(&self, text: &str) -> Result<Vec<usize>> {
        let names: Vec<&str> = text.split_whitespace().collect();
        if names.len() != self.steps.len() {
            bail!(
                "\"{text}\" is not a sequence of the {} space: it has {} tokens, not {}",
                self.name,
                names.len(),
                self.steps.len()
            );
        }
        self.steps
            .iter()
            .zip(names)
            .map(|(s, name)| {
                s.choices.iter().position(|c| c == name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "\"{text}\" is not a sequence of the {} space: step {} has no choice {name}",
                        self.name,
                        s.name
                    )
                })
            })
            .collect()
    }

    /// Checks that `tokens` is a sequence of this space.
    pub fn check(&self, tokens: &[usize]) -> Result<()> {
        if tokens.len() != self.steps.len() {
            bail!("a sequence of the {} space has {} tokens, got {}", self.name, self.steps.len(), tokens.len());
        }
        for (s, &t) in self.steps.iter().zip(tokens) {
            if t >= s.choices.len() {
                bail!(
                    "token {t} at step {} is out of range (it has {} {} choices)",
                    s.name,
                    s.choices.len(),
                    s.kind.name()
                );
            }
        }
        Ok(())
    }

    /// The function a sequence computes.
    pub fn decode(&self, tokens: &[usize]) -> Result<Candidate> {
        self.check(tokens)?;
        if !self.chained {
            let g = self.cell.genotype(tokens)?;
            return Ok(Candidate { formula: g.parsed()?, init: g.init_values() });
        }
        // core2: u1 u2 b1 i3 u3 i4 u4 b2.
        let op = |pos: usize, k: usize| self.cell.op_template(pos, k);
        let x = Formula { expr: Expr::X, params: Vec::new() };
        let y1_arg = Formula { expr: Expr::Arg(0), params: Vec::new() };
        let input = |t: usize| if t == 0 { x.clone() } else { y1_arg.clone() };
        let y1 = op(2, tokens[2]).substitute(&[
            op(0, tokens[0]).substitute(std::slice::from_ref(&x)),
            op(1, tokens[1]).substitute(std::slice::from_ref(&x)),
        ]);
        let second = op(5, tokens[7]).substitute(&[
            op(3, tokens[4]).substitute(&[input(tokens[3])]),
            op(4, tokens[6]).substitute(&[input(tokens[5])]),
        ]);
        let formula = second.substitute(&[y1]).canonical();
        // Every op of the core set starts its parameters at 1.
        let init = vec![1.0; formula.num_params()];
        Ok(Candidate { formula, init })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(space: &TokenSpace, names: &[&str]) -> Vec<usize> {
        space.steps().iter().zip(names).map(|(s, n)| s.choices.iter().position(|c| c == n).unwrap()).collect()
    }

    #[test]
    fn sizes_of_the_builtin_spaces() {
        assert_eq!(TokenSpace::parse("core1").unwrap().size(), 25 * 25 * 10);
        let core2 = TokenSpace::parse("core2").unwrap();
        assert_eq!(core2.size(), (25u128 * 25 * 10) * (2 * 25 * 2 * 25 * 10));
        let names: Vec<&str> = core2.steps().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["u1", "u2", "b1", "i3", "u3", "i4", "u4", "b2"]);
        assert_eq!(TokenSpace::parse("small").unwrap().size(), 18 * 18 * 7);
        assert!(TokenSpace::parse("medium").is_err());
    }

    #[test]
    fn sequences_map_to_formulas() {
        let core1 = TokenSpace::parse("core1").unwrap();
        let t = tokens(&core1, &["identity", "sigmoid", "mul"]);
        assert_eq!(core1.decode(&t).unwrap().formula.to_string(), "x*sigmoid(x)");
        assert_eq!(core1.tokens_text(&t), "identity sigmoid mul");

        let core2 = TokenSpace::parse("core2").unwrap();
        // y1 = x*sigmoid(x); second unit: max(y1, x) through identities.
        let t = tokens(&core2, &["identity", "sigmoid", "mul", "y1", "identity", "x", "identity", "max"]);
        assert_eq!(core2.decode(&t).unwrap().formula.to_string(), "max(x*sigmoid(x), x)");
        // Both inputs y1: the first unit's parameter is one slot, used twice.
        let t = tokens(&core2, &["beta_mul", "identity", "add", "y1", "identity", "y1", "sin", "mul"]);
        let c = core2.decode(&t).unwrap();
        assert_eq!(c.formula.num_params(), 1, "{}", c.formula);
        assert_eq!(c.init, vec![1.0]);
        assert!(core2.decode(&[0; 3]).is_err());
        assert!(core2.decode(&[99, 0, 0, 0, 0, 0, 0, 0]).unwrap_err().to_string().contains("out of range"));
    }

    #[test]
    fn the_vocabulary_masks_each_step() {
        let core2 = TokenSpace::parse("core2").unwrap();
        assert_eq!(core2.vocab().len(), 25 + 10 + 2);
        for (i, s) in core2.steps().iter().enumerate() {
            assert_eq!(core2.mask(i).len(), s.choices.len());
            for (k, &id) in core2.mask(i).iter().enumerate() {
                assert_eq!(core2.vocab()[id], (s.kind, s.choices[k].clone()));
            }
        }
        // u1 and u3 share their entries.
        assert_eq!(core2.mask(0), core2.mask(4));
    }
}
