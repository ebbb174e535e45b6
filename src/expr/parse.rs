//! Parsing formula text into a [`Formula`].
//!
//! Grammar, loosest binding first. Unary minus binds tighter than `*` but looser than `^`, so
//! `-x^2` is `-(x^2)` and `-x*y` is `(-x)*y`; a minus directly before a number makes a negative
//! number unless a `^` follows (`-2*x` holds the number -2, `-2^2` is `-(2^2)`).
//!
//! ```text
//! sum      := product (("+" | "-") product)*
//! product  := unary (("*" | "/") unary)*
//! unary    := "-" unary | power
//! power    := atom ("^" exponent)?          exponent := ["-"] INT | "(" ["-"] INT ")"
//! atom     := NUMBER | "x" | PARAM | FUNC "(" sum ")" | ("max" | "min") "(" sum "," sum ")"
//!           | "(" sum ")" | "|" sum "|"
//! ```
//!
//! Nesting (parentheses, calls, bars, minus signs) is limited to 200 levels and trees to 1000
//! levels, so hostile input cannot overflow the stack here or in the recursive evaluators.

use std::collections::HashMap;

use super::lex::{Tok, Token, lex};
use super::parse_error::{ParseError, Problem};
use super::{BinOp, Expr, Formula, Func, ParamName, named};

/// Deepest nesting of parentheses, calls, bars and unary minus the parser follows.
const MAX_NESTING: usize = 200;
/// Tallest expression tree the parser builds (long flat sums grow trees without nesting).
const MAX_HEIGHT: usize = 1000;
/// Largest exponent magnitude accepted after `^`.
const MAX_EXPONENT: f64 = 1000.0;

impl Formula {
    /// Parses formula text such as `x*sigmoid(b*x)`. Names such as `x1` are unknown here:
    /// arguments only exist in templates ([`Formula::parse_template`]).
    pub fn parse(text: &str) -> Result<Formula, ParseError> {
        Formula::parse_template(text, &[])
    }

    /// Parses a cell op template whose argument names are `args`: `args[k]` becomes
    /// [`Expr::Arg`]`(k)`. For example `parse_template("sigmoid(x1)*x2", &["x1", "x2"])`.
    /// Argument names take precedence over every other name (so `&["x"]` makes `x` an argument).
    pub fn parse_template(text: &str, args: &[&str]) -> Result<Formula, ParseError> {
        let mut parser = Parser {
            text,
            args,
            tokens: lex(text)?,
            pos: 0,
            nesting: 0,
            params: Vec::new(),
            named_slots: HashMap::new(),
            error: None,
        };
        match parser.formula() {
            Ok(expr) => Ok(Formula { expr, params: parser.params }),
            Err(Failed) => Err(parser.error.unwrap_or_else(|| ParseError::new(text, 1, Problem::Empty))),
        }
    }
}

/// An expression and the height of its tree.
type Node = (Expr, usize);

/// A parse step's result. On failure the error itself waits in [`Parser::error`]: a
/// zero-sized `Err` keeps the recursive functions' stack frames small, which is what bounds
/// the stack use of deeply nested input.
type Parsed<T> = Result<T, Failed>;

/// Marker for a failed parse step; see [`Parser::error`].
struct Failed;

struct Parser<'a> {
    text: &'a str,
    /// Names that stand for template arguments, in argument order.
    args: &'a [&'a str],
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
    params: Vec<ParamName>,
    /// Slot of each named parameter `b<N>` seen so far.
    named_slots: HashMap<u32, usize>,
    /// The first error found.
    error: Option<ParseError>,
}

impl Parser<'_> {
    /// The whole text as one expression.
    fn formula(&mut self) -> Parsed<Expr> {
        if self.peek() == &Tok::End {
            return self.fail(1, Problem::Empty);
        }
        let (expr, _) = self.sum()?;
        let tok = self.next();
        match tok.tok {
            Tok::End => Ok(expr),
            Tok::RParen => self.fail(tok.col, Problem::UnmatchedClose),
            other => self.fail(tok.col, Problem::Trailing(other)),
        }
    }

    fn sum(&mut self) -> Parsed<Node> {
        self.enter()?;
        let mut left = self.product()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => break,
            };
            let col = self.next().col;
            let right = self.product()?;
            left = self.bin(op, left, right, col)?;
        }
        self.nesting -= 1;
        Ok(left)
    }

    fn product(&mut self) -> Parsed<Node> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => break,
            };
            let col = self.next().col;
            let right = self.unary()?;
            left = self.bin(op, left, right, col)?;
        }
        Ok(left)
    }

    fn unary(&mut self) -> Parsed<Node> {
        if self.peek() != &Tok::Minus {
            return self.power();
        }
        let col = self.next().col;
        if let Tok::Num(v, _) = self.peek()
            && self.peek_at(1) != &Tok::Caret
        {
            let v = -*v;
            self.next();
            return Ok((Expr::Num(v), 1));
        }
        self.enter()?;
        let (inner, h) = self.unary()?;
        self.nesting -= 1;
        self.node(Expr::Neg(Box::new(inner)), h, col)
    }

    fn power(&mut self) -> Parsed<Node> {
        let (base, h) = self.atom()?;
        if self.peek() != &Tok::Caret {
            return Ok((base, h));
        }
        let col = self.next().col;
        let n = self.exponent()?;
        if self.peek() == &Tok::Caret {
            let col = self.next().col;
            return self.fail(col, Problem::ChainedPower);
        }
        self.node(Expr::Pow(Box::new(base), n), h, col)
    }

    /// The integer after `^`: `2`, `-1`, `(2)` or `(-1)`.
    fn exponent(&mut self) -> Parsed<i32> {
        let open = self.peek() == &Tok::LParen;
        let open_col = self.peek_col();
        if open {
            self.next();
        }
        let negative = self.peek() == &Tok::Minus;
        if negative {
            self.next();
        }
        let tok = self.next();
        let n = match tok.tok {
            Tok::Num(v, s) => {
                if v.fract() != 0.0 {
                    return self.fail(tok.col, Problem::NonIntegerExponent(s));
                }
                if v > MAX_EXPONENT {
                    return self.fail(tok.col, Problem::ExponentTooLarge(s));
                }
                let n = v as i32;
                if negative { -n } else { n }
            }
            other => return self.fail(tok.col, Problem::ExponentNotLiteral(other)),
        };
        if open {
            self.expect_close(open_col)?;
        }
        Ok(n)
    }

    fn atom(&mut self) -> Parsed<Node> {
        let tok = self.next();
        match tok.tok {
            Tok::Num(v, _) => Ok((Expr::Num(v), 1)),
            Tok::Ident(name) => self.name(name, tok.col),
            Tok::LParen => {
                let inner = self.sum()?;
                self.expect_close(tok.col)?;
                Ok(inner)
            }
            Tok::Bar => {
                let (inner, h) = self.sum()?;
                let close = self.next();
                if close.tok != Tok::Bar {
                    return self.fail(close.col, Problem::ExpectedBar(close.tok, tok.col));
                }
                self.node(Expr::Call(Func::Abs, Box::new(inner)), h, tok.col)
            }
            other => self.fail(tok.col, Problem::ExpectedOperand(other)),
        }
    }

    /// A template argument, `x`, a parameter, or a call.
    fn name(&mut self, name: String, col: usize) -> Parsed<Node> {
        if let Some(k) = self.args.iter().position(|a| *a == name) {
            return Ok((Expr::Arg(k), 1));
        }
        if name == "x" {
            return Ok((Expr::X, 1));
        }
        if let Some(param) = param_name(&name) {
            return match param {
                Some(param) => Ok((Expr::Param(self.slot(param)), 1)),
                None => self.fail(col, Problem::ParamNumberTooLarge(name)),
            };
        }
        let op = match name.as_str() {
            "max" => Some(BinOp::Max),
            "min" => Some(BinOp::Min),
            _ => None,
        };
        if let Some(op) = op {
            let [a, b] = self.call_args(name, col)?;
            return self.bin(op, a, b, col);
        }
        if let Some(f) = Func::from_name(&name) {
            let [(a, h)] = self.call_args(name, col)?;
            return self.node(Expr::Call(f, Box::new(a)), h, col);
        }
        if named::lookup(&name).is_some() {
            return self.fail(col, Problem::NamedNotFunction(name));
        }
        self.fail(col, Problem::UnknownName(name))
    }

    /// Parses `(arg, arg, ...)` after the function `name` and checks there are `N` arguments.
    fn call_args<const N: usize>(&mut self, name: String, col: usize) -> Parsed<[Node; N]> {
        let open = self.next();
        if open.tok != Tok::LParen {
            return self.fail(col, Problem::NoParens(name, N));
        }
        let mut args = Vec::new();
        if self.peek() != &Tok::RParen {
            loop {
                args.push(self.sum()?);
                if self.peek() != &Tok::Comma {
                    break;
                }
                self.next();
            }
        }
        self.expect_close(open.col)?;
        let got = args.len();
        match <[Node; N]>::try_from(args) {
            Ok(args) => Ok(args),
            Err(_) => self.fail(col, Problem::Arity(name, N, got)),
        }
    }

    fn expect_close(&mut self, open_col: usize) -> Parsed<()> {
        let tok = self.next();
        if tok.tok == Tok::RParen {
            return Ok(());
        }
        self.fail(tok.col, Problem::ExpectedClose(tok.tok, open_col))
    }

    /// The slot of a parameter occurrence: a fresh one for `b`, a shared one for `b<N>`.
    fn slot(&mut self, param: ParamName) -> usize {
        match param {
            ParamName::Anon => {
                self.params.push(param);
                self.params.len() - 1
            }
            ParamName::Named(n) => *self.named_slots.entry(n).or_insert_with(|| {
                self.params.push(param);
                self.params.len() - 1
            }),
        }
    }

    fn bin(&mut self, op: BinOp, (a, ha): Node, (b, hb): Node, col: usize) -> Parsed<Node> {
        self.node(Expr::Bin(op, Box::new(a), Box::new(b)), ha.max(hb), col)
    }

    /// Wraps a new node over children of height `h`, refusing trees that grow too tall.
    fn node(&mut self, e: Expr, h: usize, col: usize) -> Parsed<Node> {
        if h + 1 > MAX_HEIGHT {
            return self.fail(col, Problem::TooLarge(MAX_HEIGHT));
        }
        Ok((e, h + 1))
    }

    fn enter(&mut self) -> Parsed<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return self.fail(self.peek_col(), Problem::TooDeep(MAX_NESTING));
        }
        Ok(())
    }

    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.pos + ahead).min(last)].tok
    }

    fn peek_col(&self) -> usize {
        self.tokens[self.pos.min(self.tokens.len() - 1)].col
    }

    /// Consumes one token; at the end it keeps returning `End`.
    fn next(&mut self) -> Token {
        let last = self.tokens.len() - 1;
        let tok = self.tokens[self.pos.min(last)].clone();
        self.pos = (self.pos + 1).min(last);
        tok
    }

    /// Records the error and fails the current step.
    #[cold]
    #[inline(never)]
    fn fail<T>(&mut self, column: usize, problem: Problem) -> Parsed<T> {
        self.error = Some(ParseError::new(self.text, column, problem));
        Err(Failed)
    }
}

/// `Some(Some(name))` for `b`, `beta`, `b<N>`, `beta<N>`; `Some(None)` when N overflows;
/// `None` for other names.
fn param_name(name: &str) -> Option<Option<ParamName>> {
    if name == "b" || name == "beta" {
        return Some(Some(ParamName::Anon));
    }
    let digits = name.strip_prefix("beta").or_else(|| name.strip_prefix('b'))?;
    if digits.is_empty() || !digits.bytes().all(|d| d.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<u32>().ok().map(ParamName::Named))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ParseError {
        match Formula::parse(text) {
            Ok(f) => panic!("{text:?} parsed as {f:?}"),
            Err(e) => e,
        }
    }

    /// Asserts the error column and that the one-line message names the problem and a fix.
    fn check(text: &str, column: usize, needle: &str) {
        let e = err(text);
        let msg = e.to_string();
        assert_eq!(e.column(), column, "{msg}");
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert!(msg.contains(&format!("at column {column}")), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.ends_with(')'), "no fix in {msg}");
    }

    #[test]
    fn errors_name_problem_column_and_fix() {
        assert_eq!(
            err("x*sigmoid(b*x").to_string(),
            "malformed formula \"x*sigmoid(b*x\": expected ')' at column 14 \
             (close the '(' opened at column 10)"
        );
        assert_eq!(
            err("relu2(x)").to_string(),
            "malformed formula \"relu2(x)\": unknown name 'relu2' at column 1 \
             (run `actsearch functions` to list functions and named activations)"
        );
        check("", 1, "empty formula");
        check("   ", 1, "empty formula");
        check("x + ", 5, "expected an expression, found the end");
        check("x^0.5", 3, "exponents must be integers; for x^0.5 use sqrt(x)");
        check("max(x)", 1, "max takes 2 arguments, got 1");
        check("sigmoid(x, x)", 1, "sigmoid takes 1 argument, got 2");
        check("tanh()", 1, "tanh takes 1 argument, got 0");
        check("x )", 3, "unexpected ')'");
        check("x x", 3, "unexpected name 'x'");
        check("2x", 2, "missing operator after the number '2'");
        check("1.2.3 + x", 1, "bad number '1.2.3'");
        check("x # 2", 3, "unexpected character '#'");
        check("sigmoid + x", 1, "function 'sigmoid' needs its argument in parentheses");
        check("|x", 3, "expected '|'");
        check("x^b", 3, "expected an integer exponent");
        check("x^2^3", 4, "chained powers are ambiguous");
        check("x^5000", 3, "too large");
        check("mish(x)", 1, "'mish' is a named activation");
        check("1e999*x", 1, "out of range");
        check("b99999999999", 1, "too large");
        check("()", 2, "expected an expression, found ')'");
        check("x*(2 + 3", 9, "expected ')'");
        check("min(x, 1", 9, "expected ')'");
        check("x\n+ ?", 5, "unexpected character '?'");
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        let deep = format!("{}x{}", "(".repeat(5000), ")".repeat(5000));
        assert!(err(&deep).to_string().contains("nests too deeply"));
        let minus = format!("{}x", "-".repeat(100_000));
        assert!(err(&minus).to_string().contains("nests too deeply"));
        let bars = format!("{}x{}", "|".repeat(1000), "|".repeat(1000));
        assert!(err(&bars).to_string().contains("nests too deeply"));
        let calls = format!("{}x{}", "sin(".repeat(1000), ")".repeat(1000));
        assert!(err(&calls).to_string().contains("nests too deeply"));
        let long = format!("x{}", "+x".repeat(100_000));
        assert!(err(&long).to_string().contains("too large"));
        // Formulas just inside the limits parse, and the recursive printer, evaluators and
        // simplifier cope with them on a test thread's stack.
        let ok = format!("{}x{}", "(".repeat(199), ")".repeat(199));
        assert_eq!(Formula::parse(&ok).unwrap().expr, Expr::X);
        let limits = [
            format!("x{}", "+x".repeat(998)),
            format!("{}x", "-".repeat(199)),
            format!("{}x{}", "max(b, ".repeat(199), ")".repeat(199)),
            format!("{}x{}", "sin(".repeat(199), ")".repeat(199)),
            format!("{}x{}", "|".repeat(199), "|".repeat(199)),
        ];
        for text in limits {
            let f = Formula::parse(&text).unwrap();
            assert_eq!(Formula::parse(&f.to_string()).unwrap(), f);
            let c = f.canonical();
            let ones = vec![1.0; f.num_params()];
            let mut d = vec![0.0; f.num_params()];
            assert_eq!(f.eval_grad(0.5, &ones, &mut d).0, c.eval(0.5, &ones));
            assert!(f.fingerprint().is_some());
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let alphabet: Vec<char> = "x b1b2(),|+-*/^ .0123456789e sigmoid max min abs beta é".chars().collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.random_range(0..16);
            let text: String = (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
            if let Ok(f) = Formula::parse(&text) {
                assert_eq!(Formula::parse(&f.to_string()), Ok(f), "{text:?}");
            }
        }
    }

    #[test]
    fn anonymous_params_are_separate_and_named_ones_shared() {
        let f = Formula::parse("b*x + b").unwrap();
        assert_eq!(f.params, vec![ParamName::Anon, ParamName::Anon]);
        let f = Formula::parse("b1*x + b1").unwrap();
        assert_eq!(f.params, vec![ParamName::Named(1)]);
        let f = Formula::parse("beta1*x + b1 + beta").unwrap();
        assert_eq!(f.params, vec![ParamName::Named(1), ParamName::Anon]);
        let f = Formula::parse("b2*x + b + b2 + beta + b1").unwrap();
        assert_eq!(f.params, vec![ParamName::Named(2), ParamName::Anon, ParamName::Anon, ParamName::Named(1)]);
        let p = |i| Box::new(Expr::Param(i));
        let sum = |a, b| Box::new(Expr::Bin(BinOp::Add, a, b));
        let expected =
            sum(sum(sum(sum(Box::new(Expr::Bin(BinOp::Mul, p(0), Box::new(Expr::X))), p(1)), p(0)), p(2)), p(3));
        assert_eq!(f.expr, *expected);
    }

    #[test]
    fn templates_have_arguments_and_formulas_do_not() {
        let t = Formula::parse_template("sigmoid(x1)*x2 + b*x", &["x1", "x2"]).unwrap();
        let expected = Expr::Bin(
            BinOp::Add,
            Box::new(Expr::Bin(
                BinOp::Mul,
                Box::new(Expr::Call(Func::Sigmoid, Box::new(Expr::Arg(0)))),
                Box::new(Expr::Arg(1)),
            )),
            Box::new(Expr::Bin(BinOp::Mul, Box::new(Expr::Param(0)), Box::new(Expr::X))),
        );
        assert_eq!(t.expr, expected);
        assert_eq!(t.num_args(), 2);
        assert_eq!(t.to_string(), "sigmoid(x1)*x2 + b*x");
        assert_eq!(Formula::parse_template(&t.to_string(), &["x1", "x2"]).unwrap(), t);
        // A unary template over `x`: `x` is its argument, printed `x1`.
        let u = Formula::parse_template("sin(x)", &["x"]).unwrap();
        assert_eq!(u.expr, Expr::Call(Func::Sin, Box::new(Expr::Arg(0))));
        assert_eq!(Formula::parse_template(&u.to_string(), &["x1"]).unwrap(), u);
        assert_eq!(Formula::parse("x*sin(x)").unwrap().num_args(), 0);
        check("x1 + x", 1, "unknown name 'x1'");
        check("sigmoid(x2)*x", 9, "unknown name 'x2'");
    }

    #[test]
    fn precedence_and_signs() {
        let parse = |s: &str| Formula::parse(s).unwrap().expr;
        let x = || Box::new(Expr::X);
        let num = |v| Box::new(Expr::Num(v));
        assert_eq!(parse("-x^2"), Expr::Neg(Box::new(Expr::Pow(x(), 2))));
        assert_eq!(parse("-2^2"), Expr::Neg(Box::new(Expr::Pow(num(2.0), 2))));
        assert_eq!(parse("-2*x"), Expr::Bin(BinOp::Mul, num(-2.0), x()));
        assert_eq!(parse("-(2)"), Expr::Neg(num(2.0)));
        assert_eq!(parse("x^-1"), Expr::Pow(x(), -1));
        assert_eq!(parse("x^(-1)"), Expr::Pow(x(), -1));
        assert_eq!(parse("x^(3)"), Expr::Pow(x(), 3));
        assert_eq!(parse("x^2.0"), Expr::Pow(x(), 2));
        assert_eq!(parse("(x+b)^3"), Formula::parse("(x + b)^3").unwrap().expr);
        assert_eq!(parse("x - 1 - 2"), parse("(x - 1) - 2"));
        assert_ne!(parse("x - 1 - 2"), parse("x - (1 - 2)"));
        assert_eq!(parse("x/2/3"), parse("(x/2)/3"));
        assert_eq!(parse("1 + 2*x"), parse("1 + (2*x)"));
        assert_eq!(parse("|x|*|x|"), parse("abs(x)*abs(x)"));
        assert_eq!(parse("||x| - 1|"), parse("abs(abs(x) - 1)"));
        assert_eq!(parse("x*-x"), Expr::Bin(BinOp::Mul, x(), Box::new(Expr::Neg(x()))));
        assert_eq!(parse(".5 + 1e-3 + 2E+2 + 5."), parse("0.5 + 0.001 + 200 + 5"));
        assert_eq!(parse("max(x, 0)"), Expr::Bin(BinOp::Max, x(), num(0.0)));
    }
}
