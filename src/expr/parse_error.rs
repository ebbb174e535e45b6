//! Parse errors: what can be wrong with formula text, and the one-line message for each,
//! naming the problem, the column and a fix.
//!
//! The parser records a small [`Problem`] value; the text is only built here, off the
//! recursive path, which keeps the parser's stack frames small.

use std::fmt;

use super::named;
use super::token::Tok;

/// A formula that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    source: String,
    column: usize,
    problem: String,
    fix: String,
}

impl ParseError {
    /// 1-based column (in characters) where the problem was found.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What is wrong, without the column or the suggested fix.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// Records `problem` at `column` of `source`.
    #[cold]
    #[inline(never)]
    pub(super) fn new(source: &str, column: usize, problem: Problem) -> ParseError {
        let (problem, fix) = problem.explain();
        ParseError { source: source.to_string(), column, problem, fix }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug-quoting escapes newlines, keeping the message on one line.
        write!(f, "malformed formula {:?}: {} at column {}", shorten(&self.source), self.problem, self.column)?;
        if !self.fix.is_empty() {
            write!(f, " ({})", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Longest user text (a formula, a path) echoed whole in a message.
pub const SHOWN_CHARS: usize = 80;

/// `text` cut to [`SHOWN_CHARS`] characters with `...` appended when cut, control characters
/// as spaces, so that a 100 kB formula never floods an error line and a message stays one line.
pub fn shorten(text: &str) -> String {
    let mut shown: String = text.chars().take(SHOWN_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(SHOWN_CHARS).is_some() {
        shown.push_str("...");
    }
    shown
}

/// Everything the lexer and parser can reject.
pub(super) enum Problem {
    Empty,
    BadChar(char),
    /// A number directly followed by a name, as in `2x`.
    MissingOperator(String),
    NumberOutOfRange(String),
    BadNumber(String),
    /// Something other than an operator or the end after a complete formula.
    Trailing(Tok),
    UnmatchedClose,
    ExpectedOperand(Tok),
    /// Expected `)` closing the `(` at the given column.
    ExpectedClose(Tok, usize),
    /// Expected `|` closing the `|` at the given column.
    ExpectedBar(Tok, usize),
    ChainedPower,
    NonIntegerExponent(String),
    ExponentTooLarge(String),
    ExponentNotLiteral(Tok),
    ParamNumberTooLarge(String),
    /// A function name without `(`: name and arity.
    NoParens(String, usize),
    /// Wrong argument count: name, arity, count given.
    Arity(String, usize, usize),
    NamedNotFunction(String),
    UnknownName(String),
    TooDeep(usize),
    TooLarge(usize),
}

impl Problem {
    /// `(problem, fix)` texts.
    fn explain(self) -> (String, String) {
        let example = |name: &str, arity: usize| {
            if arity == 1 { format!("write {name}(x)") } else { format!("write {name}(a, b)") }
        };
        match self {
            Problem::Empty => (
                "empty formula".into(),
                "write an expression in x such as x*sigmoid(x), or a named activation such as relu".into(),
            ),
            Problem::BadChar(c) => (
                format!("unexpected character {c:?}"),
                "formulas use x, numbers, b/b1/b2..., + - * / ^, |...| and function calls".into(),
            ),
            Problem::MissingOperator(s) => (
                format!("missing operator after the number '{s}'"),
                format!("multiplication must be written out, as in {s}*x"),
            ),
            Problem::NumberOutOfRange(s) => {
                (format!("number '{s}' is out of range"), "numbers must be below about 1.8e308".into())
            }
            Problem::BadNumber(s) => (format!("bad number '{s}'"), "write numbers like 2, 0.5 or 1e-3".into()),
            Problem::Trailing(tok @ (Tok::Num(..) | Tok::Ident(_) | Tok::LParen)) => (
                format!("unexpected {}", tok.describe()),
                "missing operator? multiplication must be written out, as in 2*x".into(),
            ),
            Problem::Trailing(tok) => (
                format!("unexpected {}", tok.describe()),
                "expected an operator (+ - * / ^) or the end of the formula".into(),
            ),
            Problem::UnmatchedClose => ("unexpected ')'".into(), "no '(' is open here".into()),
            Problem::ExpectedOperand(Tok::End) => {
                ("expected an expression, found the end of the formula".into(), "the formula is incomplete".into())
            }
            Problem::ExpectedOperand(tok) => (
                format!("expected an expression, found {}", tok.describe()),
                "an operand (x, a number, a parameter, a call or a parenthesis) must come here".into(),
            ),
            Problem::ExpectedClose(Tok::End, open) => {
                ("expected ')'".into(), format!("close the '(' opened at column {open}"))
            }
            Problem::ExpectedClose(tok, open) => {
                (format!("expected ')', found {}", tok.describe()), format!("close the '(' opened at column {open}"))
            }
            Problem::ExpectedBar(tok, open) => {
                (format!("expected '|', found {}", tok.describe()), format!("close the '|' opened at column {open}"))
            }
            Problem::ChainedPower => ("chained powers are ambiguous".into(), "add parentheses, as in (x^2)^3".into()),
            Problem::NonIntegerExponent(s) => {
                (format!("non-integer exponent '{s}'"), "exponents must be integers; for x^0.5 use sqrt(x)".into())
            }
            Problem::ExponentTooLarge(s) => {
                (format!("exponent '{s}' is too large"), "exponents are at most 1000 in magnitude".into())
            }
            Problem::ExponentNotLiteral(tok) => (
                format!("expected an integer exponent, found {}", tok.describe()),
                "exponents must be integer literals such as x^2 or x^-1; for x^0.5 use sqrt(x)".into(),
            ),
            Problem::ParamNumberTooLarge(name) => {
                (format!("parameter number in '{name}' is too large"), "use b1, b2, ...".into())
            }
            Problem::NoParens(name, arity) => {
                (format!("function '{name}' needs its argument in parentheses"), example(&name, arity))
            }
            Problem::Arity(name, arity, got) => {
                let plural = if arity == 1 { "argument" } else { "arguments" };
                (format!("{name} takes {arity} {plural}, got {got}"), example(&name, arity))
            }
            Problem::NamedNotFunction(name) => {
                let formula = named::lookup(&name).map_or("", |n| n.formula);
                (
                    format!("'{name}' is a named activation, not a function"),
                    format!("use it alone as the whole formula, or write its formula {formula}"),
                )
            }
            Problem::UnknownName(name) => (
                format!("unknown name '{name}'"),
                "run `actsearch functions` to list functions and named activations".into(),
            ),
            Problem::TooDeep(limit) => (
                format!("formula nests too deeply (more than {limit} levels)"),
                "remove redundant parentheses or minus signs".into(),
            ),
            Problem::TooLarge(limit) => (
                format!("formula is too large (its tree is more than {limit} levels tall)"),
                "split it into a smaller formula".into(),
            ),
        }
    }
}
