//! Splitting formula text into tokens, each with its 1-based character column.

use super::parse_error::{ParseError, Problem};
pub(super) use super::token::Tok;

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    /// 1-based character column.
    pub col: usize,
}

/// Splits `text` into tokens, ending with `Tok::End` one column past the last character.
pub(super) fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let simple = match c {
            '+' => Some(Tok::Plus),
            '-' => Some(Tok::Minus),
            '*' => Some(Tok::Star),
            '/' => Some(Tok::Slash),
            '^' => Some(Tok::Caret),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '|' => Some(Tok::Bar),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if c.is_whitespace() {
            i += 1;
        } else if let Some(tok) = simple {
            tokens.push(Token { tok, col });
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let (tok, end) = lex_number(text, &chars, i)?;
            tokens.push(Token { tok, col });
            i = end;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token { tok: Tok::Ident(chars[start..i].iter().collect()), col });
        } else {
            return Err(ParseError::new(text, col, Problem::BadChar(c)));
        }
    }
    tokens.push(Token { tok: Tok::End, col: chars.len() + 1 });
    Ok(tokens)
}

/// Lexes the number starting at `start` (digits and dots, then an optional exponent such as
/// `e-3`); returns it and the index just past it.
fn lex_number(text: &str, chars: &[char], start: usize) -> Result<(Tok, usize), ParseError> {
    let mut i = start;
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
        i += 1;
    }
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        let mut j = i + 1;
        if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
            j += 1;
        }
        if j < chars.len() && chars[j].is_ascii_digit() {
            i = j;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let s: String = chars[start..i].iter().collect();
    if i < chars.len() && (chars[i].is_ascii_alphabetic() || chars[i] == '_') {
        return Err(ParseError::new(text, i + 1, Problem::MissingOperator(s)));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((Tok::Num(v, s), i)),
        Ok(_) => Err(ParseError::new(text, start + 1, Problem::NumberOutOfRange(s))),
        Err(_) => Err(ParseError::new(text, start + 1, Problem::BadNumber(s))),
    }
}
