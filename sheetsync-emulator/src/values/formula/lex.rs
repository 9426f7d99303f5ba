//! The formula lexer: formula text (without its `=`) to tokens. Cell and range references
//! are left as identifiers; the parser reads them.

use super::value::ErrKind;

/// One token of a formula.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Sheet(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Colon,
    ErrLit(ErrKind),
}

/// Error literals as written (matched ignoring case).
const ERROR_LITERALS: [(&str, ErrKind); 8] = [
    ("#DIV/0!", ErrKind::Div0),
    ("#VALUE!", ErrKind::Value),
    ("#REF!", ErrKind::Ref),
    ("#NAME?", ErrKind::Name),
    ("#N/A", ErrKind::Na),
    ("#NUM!", ErrKind::Num),
    ("#NULL!", ErrKind::Null),
    ("#ERROR!", ErrKind::Error),
];

/// Splits formula text into tokens; `None` when it cannot be read (an unclosed string, an
/// unknown character or error literal, a quoted name without `!`).
pub(super) fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let mut lx = Lexer {
        chars: s.chars().collect(),
        i: 0,
    };
    let mut out = Vec::new();
    while let Some(&c) = lx.chars.get(lx.i) {
        let tok = match c {
            ' ' | '\t' | '\n' | '\r' => {
                lx.i += 1;
                continue;
            }
            '0'..='9' | '.' => lx.number()?,
            '"' => Tok::Str(lx.quoted('"')?),
            '\'' => {
                let name = lx.quoted('\'')?;
                if lx.peek() != Some('!') {
                    return None;
                }
                lx.i += 1;
                Tok::Sheet(name)
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => lx.word(),
            '#' => lx.error_literal()?,
            '(' => lx.one(Tok::LParen),
            ')' => lx.one(Tok::RParen),
            ',' => lx.one(Tok::Comma),
            ':' => lx.one(Tok::Colon),
            _ => lx.operator(c)?,
        };
        out.push(tok);
    }
    Some(out)
}

/// The characters of a formula and the read position.
struct Lexer {
    chars: Vec<char>,
    i: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn skip_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.i += 1;
        }
    }

    fn text_from(&self, start: usize) -> String {
        self.chars[start..self.i].iter().collect()
    }

    /// A one-character token.
    fn one(&mut self, tok: Tok) -> Tok {
        self.i += 1;
        tok
    }

    /// A number with an optional exponent; digits right before a `:` are a row range (`1:2`).
    fn number(&mut self) -> Option<Tok> {
        let st = self.i;
        self.skip_while(|c| c.is_ascii_digit() || c == '.');
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.i += 1;
            }
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.skip_while(|c| c.is_ascii_digit());
            } else {
                self.i = save;
            }
        }
        let text = self.text_from(st);
        if self.peek() == Some(':') && text.bytes().all(|b| b.is_ascii_digit()) {
            Some(Tok::Ident(text))
        } else {
            Some(Tok::Num(text.parse().ok()?))
        }
    }

    /// Text between `quote`s (a doubled quote is one); `None` if it is not closed.
    fn quoted(&mut self, quote: char) -> Option<String> {
        self.i += 1;
        let mut sv = String::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            if c == quote {
                if self.peek() == Some(quote) {
                    sv.push(quote);
                    self.i += 1;
                    continue;
                }
                return Some(sv);
            }
            sv.push(c);
        }
    }

    /// A name, function name or reference; followed by `!` it is a sheet name.
    fn word(&mut self) -> Tok {
        let st = self.i;
        self.skip_while(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.'));
        let text = self.text_from(st);
        if self.peek() == Some('!') {
            self.i += 1;
            Tok::Sheet(text)
        } else {
            Tok::Ident(text)
        }
    }

    /// `#REF!` and the other error literals (any case).
    fn error_literal(&mut self) -> Option<Tok> {
        let rest: String = self.chars[self.i..]
            .iter()
            .collect::<String>()
            .to_ascii_uppercase();
        let (text, kind) = ERROR_LITERALS.iter().find(|(t, _)| rest.starts_with(t))?;
        self.i += text.chars().count();
        Some(Tok::ErrLit(*kind))
    }

    /// A two-character comparison (`<=`, `>=`, `<>`) or a one-character operator.
    fn operator(&mut self, c: char) -> Option<Tok> {
        let two: String = self.chars[self.i..(self.i + 2).min(self.chars.len())]
            .iter()
            .collect();
        if let Some(op) = ["<=", ">=", "<>"].into_iter().find(|op| *op == two) {
            self.i += 2;
            return Some(Tok::Op(op));
        }
        let op = match c {
            '+' => "+",
            '-' => "-",
            '*' => "*",
            '/' => "/",
            '^' => "^",
            '&' => "&",
            '=' => "=",
            '<' => "<",
            '>' => ">",
            '%' => "%",
            _ => return None,
        };
        self.i += 1;
        Some(Tok::Op(op))
    }
}
