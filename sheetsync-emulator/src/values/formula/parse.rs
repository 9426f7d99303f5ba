//! The formula parser: tokens to an expression tree, by precedence (comparison, `&`, `+ -`,
//! `* /`, `^`, unary minus and `%`). References are resolved against the spreadsheet's sheets
//! and grid sizes here, so evaluation needs no names.

use super::lex::Tok;
use super::value::{Eff, ErrKind};
use crate::a1;
use crate::model::Spreadsheet;

/// A parsed formula.
#[derive(Debug, Clone)]
pub(super) enum Expr {
    Lit(Eff),
    Range {
        sheet: Option<usize>,
        r0: u32,
        c0: u32,
        r1: u32,
        c1: u32,
    },
    Neg(Box<Expr>),
    Pct(Box<Expr>),
    Bin(&'static str, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

/// Parses the tokens of a formula written in `sheet`; `None` unless they form exactly one
/// expression.
pub(super) fn parse(toks: Vec<Tok>, ss: &Spreadsheet, sheet: usize) -> Option<Expr> {
    let mut p = Parser {
        toks,
        pos: 0,
        ss,
        sheet,
    };
    let e = p.expr()?;
    (p.pos == p.toks.len()).then_some(e)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    ss: &'a Spreadsheet,
    sheet: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expr(&mut self) -> Option<Expr> {
        let mut l = self.concat()?;
        while let Some(Tok::Op(op @ ("=" | "<>" | "<" | ">" | "<=" | ">="))) = self.peek() {
            let op = *op;
            self.pos += 1;
            let r = self.concat()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
        Some(l)
    }

    fn concat(&mut self) -> Option<Expr> {
        let mut l = self.additive()?;
        while let Some(Tok::Op("&")) = self.peek() {
            self.pos += 1;
            let r = self.additive()?;
            l = Expr::Bin("&", Box::new(l), Box::new(r));
        }
        Some(l)
    }

    fn additive(&mut self) -> Option<Expr> {
        let mut l = self.term()?;
        while let Some(Tok::Op(op @ ("+" | "-"))) = self.peek() {
            let op = *op;
            self.pos += 1;
            let r = self.term()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
        Some(l)
    }

    fn term(&mut self) -> Option<Expr> {
        let mut l = self.power()?;
        while let Some(Tok::Op(op @ ("*" | "/"))) = self.peek() {
            let op = *op;
            self.pos += 1;
            let r = self.power()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
        Some(l)
    }

    fn power(&mut self) -> Option<Expr> {
        let mut l = self.unary()?;
        while let Some(Tok::Op("^")) = self.peek() {
            self.pos += 1;
            let r = self.unary()?;
            l = Expr::Bin("^", Box::new(l), Box::new(r));
        }
        Some(l)
    }

    fn unary(&mut self) -> Option<Expr> {
        match self.peek() {
            Some(Tok::Op("-")) => {
                self.pos += 1;
                Some(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Tok::Op("+")) => {
                self.pos += 1;
                self.unary()
            }
            _ => {
                let mut e = self.primary()?;
                while let Some(Tok::Op("%")) = self.peek() {
                    self.pos += 1;
                    e = Expr::Pct(Box::new(e));
                }
                Some(e)
            }
        }
    }

    fn range(&mut self, sheet: Option<usize>, first: &str) -> Option<Expr> {
        let text = if let Some(Tok::Colon) = self.peek() {
            self.pos += 1;
            match self.next()? {
                Tok::Ident(b) => format!("{first}:{b}"),
                Tok::Num(n) => format!("{first}:{n}"),
                _ => return None,
            }
        } else {
            first.to_string()
        };
        let clean = text.replace('$', "");
        let part = a1::parse_cells(&clean)?;
        let idx = sheet.unwrap_or(self.sheet);
        let (rows, cols) = self
            .ss
            .sheets
            .get(idx)
            .map_or((0, 0), |s| (s.props.row_count, s.props.column_count));
        let r0 = part.start_row.unwrap_or(0);
        let c0 = part.start_col.unwrap_or(0);
        let r1 = part.end_row.unwrap_or(rows.saturating_sub(1));
        let c1 = part.end_col.unwrap_or(cols.saturating_sub(1));
        Some(Expr::Range {
            sheet,
            r0,
            c0,
            r1,
            c1,
        })
    }

    fn primary(&mut self) -> Option<Expr> {
        match self.next()? {
            Tok::Num(n) => Some(Expr::Lit(Eff::Num(n))),
            Tok::Str(s) => Some(Expr::Lit(Eff::Text(s))),
            Tok::LParen => {
                let e = self.expr()?;
                match self.next()? {
                    Tok::RParen => Some(e),
                    _ => None,
                }
            }
            Tok::ErrLit(k) => Some(Expr::Lit(Eff::Err(k))),
            Tok::Sheet(name) => {
                let first = match self.next()? {
                    Tok::Ident(s) => s,
                    Tok::ErrLit(k) => return Some(Expr::Lit(Eff::Err(k))),
                    _ => return None,
                };
                match self.ss.sheet_index_by_title(&name) {
                    Some(idx) => self.range(Some(idx), &first),
                    None => {
                        // Still consume a `:end` part.
                        self.range(None, &first)?;
                        Some(Expr::Lit(Eff::Err(ErrKind::Ref)))
                    }
                }
            }
            Tok::Ident(id) => {
                if let Some(Tok::LParen) = self.peek() {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if let Some(Tok::RParen) = self.peek() {
                        self.pos += 1;
                    } else {
                        loop {
                            args.push(self.expr()?);
                            match self.next()? {
                                Tok::Comma => continue,
                                Tok::RParen => break,
                                _ => return None,
                            }
                        }
                    }
                    return Some(Expr::Call(id.to_ascii_uppercase(), args));
                }
                if id.eq_ignore_ascii_case("TRUE") {
                    return Some(Expr::Lit(Eff::Bool(true)));
                }
                if id.eq_ignore_ascii_case("FALSE") {
                    return Some(Expr::Lit(Eff::Bool(false)));
                }
                let save = self.pos;
                if let Some(r) = self.range(None, &id) {
                    return Some(r);
                }
                self.pos = save;
                Some(Expr::Lit(Eff::Err(ErrKind::Name)))
            }
            _ => None,
        }
    }
}
