//! The tokens of formula text, and how error messages name them.

/// A token of formula text.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// A non-negative number and its text.
    Num(f64, String),
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    LParen,
    RParen,
    Bar,
    Comma,
    End,
}

impl Tok {
    /// How the token is named in error messages, e.g. `number '2'` or `')'`.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Num(_, s) => format!("number '{s}'"),
            Tok::Ident(s) => format!("name '{s}'"),
            Tok::Plus => "'+'".into(),
            Tok::Minus => "'-'".into(),
            Tok::Star => "'*'".into(),
            Tok::Slash => "'/'".into(),
            Tok::Caret => "'^'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Bar => "'|'".into(),
            Tok::Comma => "','".into(),
            Tok::End => "the end of the formula".into(),
        }
    }
}
