//! A small formula evaluator: arithmetic, comparison, `&`, cell and range references (also on
//! other sheets) and a handful of common functions. Anything it does not know evaluates to the
//! error value Google would show (`#NAME?` for unknown functions, `#ERROR!` for parse errors).

use std::collections::{HashMap, HashSet};

use crate::a1;
use crate::model::{CellValue, Spreadsheet};

/// Sheets error values (`ErrorValue.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// `#DIV/0!`
    Div0,
    /// `#VALUE!`
    Value,
    /// `#REF!`
    Ref,
    /// `#NAME?`
    Name,
    /// `#N/A`
    Na,
    /// `#NUM!`
    Num,
    /// `#NULL!`
    Null,
    /// `#ERROR!`
    Error,
}

impl ErrKind {
    /// The text a cell shows.
    pub fn text(self) -> &'static str {
        match self {
            ErrKind::Div0 => "#DIV/0!",
            ErrKind::Value => "#VALUE!",
            ErrKind::Ref => "#REF!",
            ErrKind::Name => "#NAME?",
            ErrKind::Na => "#N/A",
            ErrKind::Num => "#NUM!",
            ErrKind::Null => "#NULL!",
            ErrKind::Error => "#ERROR!",
        }
    }

    /// `ErrorValue.type`.
    pub fn api_type(self) -> &'static str {
        match self {
            ErrKind::Div0 => "DIVIDE_BY_ZERO",
            ErrKind::Value => "VALUE",
            ErrKind::Ref => "REF",
            ErrKind::Name => "NAME",
            ErrKind::Na => "N_A",
            ErrKind::Num => "NUM",
            ErrKind::Null => "NULL_VALUE",
            ErrKind::Error => "ERROR",
        }
    }

    /// `ErrorValue.message`.
    pub fn message(self) -> &'static str {
        match self {
            ErrKind::Div0 => "Function DIVIDE parameter 2 cannot be zero.",
            ErrKind::Value => "A value used in the formula is of the wrong type.",
            ErrKind::Ref => "Reference does not exist or circular dependency detected.",
            ErrKind::Name => "Unknown function or named range.",
            ErrKind::Na => "Value not available.",
            ErrKind::Num => "Invalid numeric value.",
            ErrKind::Null => "Null value.",
            ErrKind::Error => "Formula parse error.",
        }
    }
}

/// A calculated (effective) value.
#[derive(Debug, Clone, PartialEq)]
pub enum Eff {
    /// Nothing.
    Empty,
    /// A number.
    Num(f64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// An error.
    Err(ErrKind),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '0'..='9' | '.' => {
                let st = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                    let save = i;
                    i += 1;
                    if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                        i += 1;
                    }
                    if i < chars.len() && chars[i].is_ascii_digit() {
                        while i < chars.len() && chars[i].is_ascii_digit() {
                            i += 1;
                        }
                    } else {
                        i = save;
                    }
                }
                // A number immediately followed by letters/`:` is a row range like `1:2`.
                let text: String = chars[st..i].iter().collect();
                if i < chars.len() && chars[i] == ':' && text.bytes().all(|b| b.is_ascii_digit()) {
                    out.push(Tok::Ident(text));
                } else {
                    out.push(Tok::Num(text.parse().ok()?));
                }
            }
            '"' => {
                i += 1;
                let mut sv = String::new();
                loop {
                    if i >= chars.len() {
                        return None;
                    }
                    if chars[i] == '"' {
                        if i + 1 < chars.len() && chars[i + 1] == '"' {
                            sv.push('"');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    sv.push(chars[i]);
                    i += 1;
                }
                out.push(Tok::Str(sv));
            }
            '\'' => {
                i += 1;
                let mut sv = String::new();
                loop {
                    if i >= chars.len() {
                        return None;
                    }
                    if chars[i] == '\'' {
                        if i + 1 < chars.len() && chars[i + 1] == '\'' {
                            sv.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    sv.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() && chars[i] == '!' {
                    i += 1;
                    out.push(Tok::Sheet(sv));
                } else {
                    return None;
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let st = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '.'))
                {
                    i += 1;
                }
                let text: String = chars[st..i].iter().collect();
                if i < chars.len() && chars[i] == '!' {
                    i += 1;
                    out.push(Tok::Sheet(text));
                } else {
                    out.push(Tok::Ident(text));
                }
            }
            '#' => {
                let rest: String = chars[i..].iter().collect::<String>().to_ascii_uppercase();
                let (text, kind) = ERROR_LITERALS.iter().find(|(t, _)| rest.starts_with(t))?;
                out.push(Tok::ErrLit(*kind));
                i += text.chars().count();
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "<=" => Some("<="),
                    ">=" => Some(">="),
                    "<>" => Some("<>"),
                    _ => None,
                };
                if let Some(op) = op {
                    out.push(Tok::Op(op));
                    i += 2;
                    continue;
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
                out.push(Tok::Op(op));
                i += 1;
            }
        }
    }
    Some(out)
}

#[derive(Debug, Clone)]
enum Expr {
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

enum Val {
    S(Eff),
    R(usize, u32, u32, u32, u32),
}

/// Evaluates formulas of one spreadsheet, memoising cell results and detecting cycles.
pub struct Evaluator<'a> {
    ss: &'a Spreadsheet,
    memo: HashMap<(usize, u32, u32), Eff>,
    active: HashSet<(usize, u32, u32)>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator over `ss`.
    pub fn new(ss: &'a Spreadsheet) -> Self {
        Evaluator {
            ss,
            memo: HashMap::new(),
            active: HashSet::new(),
        }
    }

    /// The effective value of a cell.
    pub fn cell(&mut self, sheet: usize, r: u32, c: u32) -> Eff {
        let Some(sh) = self.ss.sheets.get(sheet) else {
            return Eff::Err(ErrKind::Ref);
        };
        let value = sh.grid.get(r, c).and_then(|c| c.value.as_ref());
        match value {
            None => Eff::Empty,
            Some(CellValue::Number(n)) => Eff::Num(*n),
            Some(CellValue::Text(s)) => Eff::Text(s.clone()),
            Some(CellValue::Bool(b)) => Eff::Bool(*b),
            Some(CellValue::Formula(f)) => {
                let key = (sheet, r, c);
                if let Some(v) = self.memo.get(&key) {
                    return v.clone();
                }
                if !self.active.insert(key) || self.active.len() > 200 {
                    return Eff::Err(ErrKind::Ref);
                }
                let f = f.clone();
                let v = self.formula(sheet, &f);
                self.active.remove(&key);
                self.memo.insert(key, v.clone());
                v
            }
        }
    }

    /// Evaluates formula text (with its leading `=`) as if it were in `sheet`.
    pub fn formula(&mut self, sheet: usize, text: &str) -> Eff {
        let body = text.strip_prefix('=').unwrap_or(text);
        let Some(toks) = tokenize(body) else {
            return Eff::Err(ErrKind::Error);
        };
        let mut p = Parser {
            toks,
            pos: 0,
            ss: self.ss,
            sheet,
        };
        let Some(e) = p.expr() else {
            return Eff::Err(ErrKind::Error);
        };
        if p.pos != p.toks.len() {
            return Eff::Err(ErrKind::Error);
        }
        let v = self.eval(sheet, &e);
        let v = self.scalar(v);
        match v {
            Eff::Num(n) if !n.is_finite() => Eff::Err(ErrKind::Num),
            Eff::Empty => Eff::Num(0.0),
            v => v,
        }
    }

    fn scalar(&mut self, v: Val) -> Eff {
        match v {
            Val::S(e) => e,
            Val::R(s, r0, c0, r1, c1) => {
                if r0 == r1 && c0 == c1 {
                    self.cell(s, r0, c0)
                } else {
                    Eff::Err(ErrKind::Value)
                }
            }
        }
    }

    fn eval(&mut self, sheet: usize, e: &Expr) -> Val {
        match e {
            Expr::Lit(v) => Val::S(v.clone()),
            Expr::Range {
                sheet: s,
                r0,
                c0,
                r1,
                c1,
            } => Val::R(s.unwrap_or(sheet), *r0, *c0, *r1, *c1),
            Expr::Neg(x) => {
                let v = self.eval(sheet, x);
                let v = self.scalar(v);
                Val::S(match num(&v) {
                    Ok(n) => Eff::Num(-n),
                    Err(e) => Eff::Err(e),
                })
            }
            Expr::Pct(x) => {
                let v = self.eval(sheet, x);
                let v = self.scalar(v);
                Val::S(match num(&v) {
                    Ok(n) => Eff::Num(n / 100.0),
                    Err(e) => Eff::Err(e),
                })
            }
            Expr::Bin(op, a, b) => {
                let a = self.eval(sheet, a);
                let a = self.scalar(a);
                let b = self.eval(sheet, b);
                let b = self.scalar(b);
                Val::S(binop(op, a, b))
            }
            Expr::Call(name, args) => Val::S(self.call(sheet, name, args)),
        }
    }

    /// Flattens arguments into (value, came_from_range) pairs.
    fn flatten(&mut self, sheet: usize, args: &[Expr]) -> Vec<(Eff, bool)> {
        let mut out = Vec::new();
        for a in args {
            match self.eval(sheet, a) {
                Val::S(v) => out.push((v, false)),
                Val::R(s, r0, c0, r1, c1) => {
                    let Some(sh) = self.ss.sheets.get(s) else {
                        out.push((Eff::Err(ErrKind::Ref), false));
                        continue;
                    };
                    let cells: Vec<(u32, u32)> = sh
                        .grid
                        .rows_in(r0, r1.saturating_add(1))
                        .flat_map(|(r, row)| {
                            row.iter()
                                .enumerate()
                                .filter(|(c, cell)| {
                                    *c as u32 >= c0 && *c as u32 <= c1 && cell.has_value()
                                })
                                .map(move |(c, _)| (r, c as u32))
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    for (r, c) in cells {
                        let v = self.cell(s, r, c);
                        out.push((v, true));
                    }
                }
            }
        }
        out
    }

    fn numbers(&mut self, sheet: usize, args: &[Expr]) -> Result<Vec<f64>, ErrKind> {
        let mut out = Vec::new();
        for (v, from_range) in self.flatten(sheet, args) {
            match v {
                Eff::Err(e) => return Err(e),
                Eff::Num(n) => out.push(n),
                Eff::Empty => {}
                Eff::Bool(_) | Eff::Text(_) if from_range => {}
                other => out.push(num(&other)?),
            }
        }
        Ok(out)
    }

    fn arg(&mut self, sheet: usize, args: &[Expr], i: usize) -> Eff {
        match args.get(i) {
            Some(a) => {
                let v = self.eval(sheet, a);
                self.scalar(v)
            }
            None => Eff::Empty,
        }
    }

    fn call(&mut self, sheet: usize, name: &str, args: &[Expr]) -> Eff {
        let res: Result<Eff, ErrKind> = (|| match name {
            "SUM" => Ok(Eff::Num(self.numbers(sheet, args)?.iter().sum())),
            "PRODUCT" => Ok(Eff::Num(self.numbers(sheet, args)?.iter().product())),
            "AVERAGE" => {
                let n = self.numbers(sheet, args)?;
                if n.is_empty() {
                    return Err(ErrKind::Div0);
                }
                Ok(Eff::Num(n.iter().sum::<f64>() / n.len() as f64))
            }
            "MIN" => Ok(Eff::Num(
                self.numbers(sheet, args)?
                    .into_iter()
                    .reduce(f64::min)
                    .unwrap_or(0.0),
            )),
            "MAX" => Ok(Eff::Num(
                self.numbers(sheet, args)?
                    .into_iter()
                    .reduce(f64::max)
                    .unwrap_or(0.0),
            )),
            "COUNT" => Ok(Eff::Num(
                self.flatten(sheet, args)
                    .iter()
                    .filter(|(v, _)| matches!(v, Eff::Num(_)))
                    .count() as f64,
            )),
            "COUNTA" => Ok(Eff::Num(
                self.flatten(sheet, args)
                    .iter()
                    .filter(|(v, _)| !matches!(v, Eff::Empty))
                    .count() as f64,
            )),
            "CONCATENATE" | "CONCAT" => {
                let mut s = String::new();
                for (v, _) in self.flatten(sheet, args) {
                    s.push_str(&text(&v)?);
                }
                Ok(Eff::Text(s))
            }
            "IF" => {
                if args.len() < 2 || args.len() > 3 {
                    return Err(ErrKind::Na);
                }
                let c = self.arg(sheet, args, 0);
                if truthy(&c)? {
                    Ok(self.arg(sheet, args, 1))
                } else if args.len() == 3 {
                    Ok(self.arg(sheet, args, 2))
                } else {
                    Ok(Eff::Bool(false))
                }
            }
            "IFERROR" => {
                let v = self.arg(sheet, args, 0);
                if matches!(v, Eff::Err(_)) {
                    Ok(self.arg(sheet, args, 1))
                } else {
                    Ok(v)
                }
            }
            "AND" | "OR" => {
                let vals = self.flatten(sheet, args);
                let mut acc = name == "AND";
                for (v, from_range) in vals {
                    if from_range && matches!(v, Eff::Text(_) | Eff::Empty) {
                        continue;
                    }
                    let b = truthy(&v)?;
                    if name == "AND" {
                        acc &= b;
                    } else {
                        acc |= b;
                    }
                }
                Ok(Eff::Bool(acc))
            }
            "NOT" => Ok(Eff::Bool(!truthy(&self.arg(sheet, args, 0))?)),
            "LEN" => Ok(Eff::Num(
                text(&self.arg(sheet, args, 0))?.chars().count() as f64
            )),
            "UPPER" => Ok(Eff::Text(text(&self.arg(sheet, args, 0))?.to_uppercase())),
            "LOWER" => Ok(Eff::Text(text(&self.arg(sheet, args, 0))?.to_lowercase())),
            "TRIM" => Ok(Eff::Text(
                text(&self.arg(sheet, args, 0))?
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )),
            "ABS" => Ok(Eff::Num(num(&self.arg(sheet, args, 0))?.abs())),
            "ROUND" => {
                let x = num(&self.arg(sheet, args, 0))?;
                let d = if args.len() > 1 {
                    num(&self.arg(sheet, args, 1))?.trunc() as i32
                } else {
                    0
                };
                let f = 10f64.powi(d);
                Ok(Eff::Num((x * f).round() / f))
            }
            "MOD" => {
                let a = num(&self.arg(sheet, args, 0))?;
                let b = num(&self.arg(sheet, args, 1))?;
                if b == 0.0 {
                    return Err(ErrKind::Div0);
                }
                Ok(Eff::Num(a - b * (a / b).floor()))
            }
            "LEFT" | "RIGHT" => {
                let s = text(&self.arg(sheet, args, 0))?;
                let n = if args.len() > 1 {
                    num(&self.arg(sheet, args, 1))?
                } else {
                    1.0
                };
                if n < 0.0 {
                    return Err(ErrKind::Value);
                }
                let chars: Vec<char> = s.chars().collect();
                let n = (n as usize).min(chars.len());
                Ok(Eff::Text(if name == "LEFT" {
                    chars[..n].iter().collect()
                } else {
                    chars[chars.len() - n..].iter().collect()
                }))
            }
            _ => Err(ErrKind::Name),
        })();
        res.unwrap_or_else(Eff::Err)
    }
}

fn num(v: &Eff) -> Result<f64, ErrKind> {
    match v {
        Eff::Empty => Ok(0.0),
        Eff::Num(n) => Ok(*n),
        Eff::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Eff::Text(s) => match crate::values::input::parse_user_entered(s).0 {
            Some(CellValue::Number(n)) => Ok(n),
            _ => Err(ErrKind::Value),
        },
        Eff::Err(e) => Err(*e),
    }
}

fn text(v: &Eff) -> Result<String, ErrKind> {
    match v {
        Eff::Empty => Ok(String::new()),
        Eff::Num(n) => Ok(crate::values::render::auto_number(*n)),
        Eff::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.to_string()),
        Eff::Text(s) => Ok(s.clone()),
        Eff::Err(e) => Err(*e),
    }
}

fn truthy(v: &Eff) -> Result<bool, ErrKind> {
    match v {
        Eff::Text(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Eff::Text(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Eff::Text(_) => Err(ErrKind::Value),
        other => Ok(num(other)? != 0.0),
    }
}

fn binop(op: &str, a: Eff, b: Eff) -> Eff {
    if let Eff::Err(e) = a {
        return Eff::Err(e);
    }
    if let Eff::Err(e) = b {
        return Eff::Err(e);
    }
    let r: Result<Eff, ErrKind> = (|| match op {
        "+" => Ok(Eff::Num(num(&a)? + num(&b)?)),
        "-" => Ok(Eff::Num(num(&a)? - num(&b)?)),
        "*" => Ok(Eff::Num(num(&a)? * num(&b)?)),
        "/" => {
            let d = num(&b)?;
            if d == 0.0 {
                return Err(ErrKind::Div0);
            }
            Ok(Eff::Num(num(&a)? / d))
        }
        "^" => Ok(Eff::Num(num(&a)?.powf(num(&b)?))),
        "&" => Ok(Eff::Text(text(&a)? + &text(&b)?)),
        _ => {
            let ord = compare(&a, &b);
            Ok(Eff::Bool(match op {
                "=" => ord == std::cmp::Ordering::Equal,
                "<>" => ord != std::cmp::Ordering::Equal,
                "<" => ord == std::cmp::Ordering::Less,
                ">" => ord == std::cmp::Ordering::Greater,
                "<=" => ord != std::cmp::Ordering::Greater,
                _ => ord != std::cmp::Ordering::Less,
            }))
        }
    })();
    r.unwrap_or_else(Eff::Err)
}

fn rank(v: &Eff) -> u8 {
    match v {
        Eff::Num(_) | Eff::Empty => 0,
        Eff::Text(_) => 1,
        Eff::Bool(_) => 2,
        Eff::Err(_) => 3,
    }
}

fn compare(a: &Eff, b: &Eff) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Eff::Empty, Eff::Text(s)) | (Eff::Text(s), Eff::Empty) if s.is_empty() => Ordering::Equal,
        (Eff::Text(x), Eff::Text(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Eff::Bool(x), Eff::Bool(y)) => x.cmp(y),
        _ if rank(a) == 0 && rank(b) == 0 => {
            let x = num(a).unwrap_or(0.0);
            let y = num(b).unwrap_or(0.0);
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cell;

    fn sheet() -> Spreadsheet {
        let mut ss = Spreadsheet::new("x".into(), "t".into(), 0);
        let g = &mut ss.sheets[0].grid;
        for (r, v) in [1.0, 2.0, 3.0].iter().enumerate() {
            g.set(
                r as u32,
                0,
                Cell {
                    value: Some(CellValue::Number(*v)),
                    ..Cell::default()
                },
            );
        }
        g.set(
            0,
            1,
            Cell {
                value: Some(CellValue::Text("ab".into())),
                ..Cell::default()
            },
        );
        g.set(
            1,
            1,
            Cell {
                value: Some(CellValue::Formula("=B3".into())),
                ..Cell::default()
            },
        );
        g.set(
            2,
            1,
            Cell {
                value: Some(CellValue::Formula("=B2".into())),
                ..Cell::default()
            },
        );
        ss
    }

    fn ev(f: &str) -> Eff {
        let ss = sheet();
        Evaluator::new(&ss).formula(0, f)
    }

    #[test]
    fn evaluates() {
        assert_eq!(ev("=4/2"), Eff::Num(2.0));
        assert_eq!(ev("= 1 / 1024"), Eff::Num(1.0 / 1024.0));
        assert_eq!(ev("=1+2*3"), Eff::Num(7.0));
        assert_eq!(ev("=(1+2)*3"), Eff::Num(9.0));
        assert_eq!(ev("=-2^2"), Eff::Num(4.0));
        assert_eq!(ev("=SUM(A1:A3)"), Eff::Num(6.0));
        assert_eq!(ev("=SUM(A:A)*2"), Eff::Num(12.0));
        assert_eq!(ev("=Sheet1!A2+$A$3"), Eff::Num(5.0));
        assert_eq!(ev("=CONCATENATE(B1,\"-\",A1)"), Eff::Text("ab-1".into()));
        assert_eq!(ev("=B1&A2"), Eff::Text("ab2".into()));
        assert_eq!(ev("=1/0"), Eff::Err(ErrKind::Div0));
        assert_eq!(ev("=FOO(1)"), Eff::Err(ErrKind::Name));
        assert_eq!(ev("=1+"), Eff::Err(ErrKind::Error));
        assert_eq!(ev("=B1+1"), Eff::Err(ErrKind::Value));
        assert_eq!(ev("=IF(A1>0,\"pos\",\"neg\")"), Eff::Text("pos".into()));
        assert_eq!(ev("=Nope!A1"), Eff::Err(ErrKind::Ref));
        assert_eq!(ev("=B2"), Eff::Err(ErrKind::Ref));
        assert_eq!(ev("=50%"), Eff::Num(0.5));
        assert_eq!(ev("=AVERAGE(A1:A3)"), Eff::Num(2.0));
    }
}

/// A structural change references must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    /// Rows (true) or columns.
    pub rows: bool,
    /// First index inserted or deleted (zero-based).
    pub at: u32,
    /// How many.
    pub n: u32,
    /// Insertion (true) or deletion.
    pub insert: bool,
}

#[derive(Debug, Clone, Copy)]
struct Endpoint {
    col: Option<u32>,
    col_abs: bool,
    row: Option<u32>,
    row_abs: bool,
}

fn parse_endpoint(chars: &[char], mut i: usize) -> Option<(Endpoint, usize)> {
    let col_abs = chars.get(i) == Some(&'$');
    if col_abs {
        i += 1;
    }
    let ls = i;
    while i < chars.len() && chars[i].is_ascii_alphabetic() && i - ls < 4 {
        i += 1;
    }
    let letters: String = chars[ls..i].iter().collect();
    let row_abs = chars.get(i) == Some(&'$') && !letters.is_empty();
    if row_abs {
        i += 1;
    }
    let ds = i;
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    let digits: String = chars[ds..i].iter().collect();
    if letters.is_empty() && digits.is_empty() {
        return None;
    }
    if col_abs && letters.is_empty() {
        // `$5` style absolute row.
        let row: u32 = digits.parse().ok()?;
        return Some((
            Endpoint {
                col: None,
                col_abs: false,
                row: Some(row.checked_sub(1)?),
                row_abs: true,
            },
            i,
        ));
    }
    let col = if letters.is_empty() {
        None
    } else {
        Some(a1::letters_col(&letters)?)
    };
    let row = if digits.is_empty() {
        None
    } else {
        Some(digits.parse::<u32>().ok()?.checked_sub(1)?)
    };
    Some((
        Endpoint {
            col,
            col_abs,
            row,
            row_abs,
        },
        i,
    ))
}

fn emit(e: &Endpoint) -> String {
    let mut s = String::new();
    if let Some(c) = e.col {
        if e.col_abs {
            s.push('$');
        }
        s.push_str(&a1::col_letters(c));
    }
    if let Some(r) = e.row {
        if e.row_abs {
            s.push('$');
        }
        s.push_str(&(r + 1).to_string());
    }
    s
}

/// Moves an index for a shift; `None` if it was deleted.
fn shift_index(i: u32, s: &Shift) -> Option<u32> {
    if s.insert {
        Some(if i >= s.at { i + s.n } else { i })
    } else if i >= s.at && i < s.at + s.n {
        None
    } else if i >= s.at + s.n {
        Some(i - s.n)
    } else {
        Some(i)
    }
}

/// Walks the cell references of a formula (outside string literals; function names and other
/// identifiers are left alone). `f` gets each reference's sheet name (if written), its first
/// endpoint and, for a range, its second; it answers the new text after the sheet prefix, or
/// `None` to keep the reference as written.
fn rewrite_references(
    formula: &str,
    mut f: impl FnMut(Option<&str>, &Endpoint, Option<&Endpoint>) -> Option<String>,
) -> String {
    let chars: Vec<char> = formula.chars().collect();
    let mut out = String::with_capacity(formula.len());
    let mut i = 0;
    let mut in_str = false;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == '"' {
            in_str = true;
            out.push(c);
            i += 1;
            continue;
        }
        let prev_ident =
            i > 0 && (chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '_' | '.' | '$'));
        if prev_ident {
            out.push(c);
            i += 1;
            continue;
        }
        // Optional sheet prefix.
        let mut j = i;
        let mut sheet: Option<String> = None;
        if c == '\'' {
            let mut k = i + 1;
            let mut name = String::new();
            let mut closed = false;
            while k < chars.len() {
                if chars[k] == '\'' {
                    if chars.get(k + 1) == Some(&'\'') {
                        name.push('\'');
                        k += 2;
                        continue;
                    }
                    closed = true;
                    k += 1;
                    break;
                }
                name.push(chars[k]);
                k += 1;
            }
            if closed && chars.get(k) == Some(&'!') {
                sheet = Some(name);
                j = k + 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let mut k = i;
            while k < chars.len() && (chars[k].is_alphanumeric() || chars[k] == '_') {
                k += 1;
            }
            if chars.get(k) == Some(&'!') {
                sheet = Some(chars[i..k].iter().collect());
                j = k + 1;
            }
        }
        let Some((e1, mut k)) = parse_endpoint(&chars, j) else {
            out.push(c);
            i += 1;
            continue;
        };
        let mut e2 = None;
        if chars.get(k) == Some(&':') {
            if let Some((e, k2)) = parse_endpoint(&chars, k + 1) {
                e2 = Some(e);
                k = k2;
            }
        }
        let next_ident = chars
            .get(k)
            .is_some_and(|ch| ch.is_alphanumeric() || matches!(ch, '_' | '(' | '.' | '!'));
        let valid = match e2 {
            None => e1.col.is_some() && e1.row.is_some(),
            Some(e2) => {
                (e1.col.is_some() == e2.col.is_some() || e1.row.is_some() == e2.row.is_some())
                    && (e1.col.is_some() || e1.row.is_some())
            }
        };
        if next_ident || !valid {
            // Not a reference (function name, identifier): copy the word as is.
            let mut k = i;
            while k < chars.len()
                && (chars[k].is_alphanumeric() || matches!(chars[k], '_' | '.' | '$'))
            {
                k += 1;
            }
            let k = k.max(i + 1);
            out.extend(&chars[i..k]);
            i = k;
            continue;
        }
        let prefix: String = chars[i..j].iter().collect();
        match f(sheet.as_deref(), &e1, e2.as_ref()) {
            Some(text) => {
                out.push_str(&prefix);
                out.push_str(&text);
            }
            None => out.extend(&chars[i..k]),
        }
        i = k;
    }
    out
}

/// Rewrites the references of `formula` (which lives on sheet `own`) that point at sheet
/// `target` after rows/columns were inserted or deleted there, as Sheets does: references
/// move, ranges grow or shrink, references to deleted cells become `#REF!`.
pub fn shift_references(formula: &str, own: &str, target: &str, shift: &Shift) -> String {
    rewrite_references(formula, |sheet, e1, e2| {
        if sheet.unwrap_or(own) != target {
            return None;
        }
        let get = |e: &Endpoint| if shift.rows { e.row } else { e.col };
        let set = |e: &mut Endpoint, v: u32| {
            if shift.rows {
                e.row = Some(v)
            } else {
                e.col = Some(v)
            }
        };
        let replaced = match e2.copied() {
            None => {
                let mut e = *e1;
                match get(&e).map(|v| shift_index(v, shift)) {
                    Some(None) => "#REF!".to_string(),
                    Some(Some(v)) => {
                        set(&mut e, v);
                        emit(&e)
                    }
                    None => emit(&e),
                }
            }
            Some(e2) => {
                let (mut a, mut b) = (*e1, e2);
                match (get(&a), get(&b)) {
                    (Some(x), Some(y)) => {
                        let (lo, hi) = (x.min(y), x.max(y));
                        let new_lo = if shift.insert {
                            shift_index(lo, shift)
                        } else {
                            // A deleted start snaps to the first surviving index.
                            (lo..=hi).find_map(|v| shift_index(v, shift))
                        };
                        let new_hi = if shift.insert {
                            shift_index(hi, shift)
                        } else {
                            (lo..=hi).rev().find_map(|v| shift_index(v, shift))
                        };
                        match (new_lo, new_hi) {
                            (Some(l), Some(h)) => {
                                set(&mut a, l);
                                set(&mut b, h);
                                format!("{}:{}", emit(&a), emit(&b))
                            }
                            _ => "#REF!".to_string(),
                        }
                    }
                    _ => format!("{}:{}", emit(&a), emit(&b)),
                }
            }
        };
        Some(replaced)
    })
}

/// Moves the relative parts of an endpoint by (`dr`, `dc`); `None` when it leaves the grid.
fn offset_endpoint(e: &Endpoint, dr: i64, dc: i64) -> Option<Endpoint> {
    let move_by = |v: Option<u32>, abs: bool, d: i64| -> Option<Option<u32>> {
        match v {
            Some(x) if !abs => u32::try_from(i64::from(x) + d).ok().map(Some),
            other => Some(other),
        }
    };
    Some(Endpoint {
        col: move_by(e.col, e.col_abs, dc)?,
        row: move_by(e.row, e.row_abs, dr)?,
        ..*e
    })
}

/// Rewrites a formula copied `dr` rows down and `dc` columns right (negative: up/left), as a
/// copy and paste does: relative references move by the offset whatever sheet they name,
/// absolute parts (`$A`, `$1`) stay, and a reference moved off the top or left becomes `#REF!`.
pub fn offset_references(formula: &str, dr: i64, dc: i64) -> String {
    if dr == 0 && dc == 0 {
        return formula.to_string();
    }
    rewrite_references(formula, |_, e1, e2| {
        let a = offset_endpoint(e1, dr, dc);
        Some(match e2 {
            None => a.map_or_else(|| "#REF!".to_string(), |a| emit(&a)),
            Some(e2) => match (a, offset_endpoint(e2, dr, dc)) {
                (Some(a), Some(b)) => format!("{}:{}", emit(&a), emit(&b)),
                _ => "#REF!".to_string(),
            },
        })
    })
}

#[cfg(test)]
mod shift_tests {
    use super::*;

    fn ins_rows(at: u32, n: u32) -> Shift {
        Shift {
            rows: true,
            at,
            n,
            insert: true,
        }
    }

    fn del_rows(at: u32, n: u32) -> Shift {
        Shift {
            rows: true,
            at,
            n,
            insert: false,
        }
    }

    #[test]
    fn copied_references_move_by_the_offset() {
        assert_eq!(offset_references("=A1+B2*2", 3, 1), "=B4+C5*2");
        assert_eq!(offset_references("=$A1+A$1+$A$1", 2, 2), "=$A3+C$1+$A$1");
        assert_eq!(offset_references("=SUM(A1:B2)", 1, 0), "=SUM(A2:B3)");
        assert_eq!(
            offset_references("=SUM(A:A)+SUM(1:2)", 5, 1),
            "=SUM(B:B)+SUM(6:7)"
        );
        assert_eq!(
            offset_references("=Other!A1+'My Sheet'!B2", 1, 0),
            "=Other!A2+'My Sheet'!B3"
        );
        assert_eq!(offset_references("=A2-1", -1, 0), "=A1-1");
        assert_eq!(offset_references("=A1+1", -1, 0), "=#REF!+1");
        assert_eq!(offset_references("=SUM(A1:A3)", 0, -1), "=SUM(#REF!)");
        assert_eq!(
            offset_references("=LOG10(A1)&\"A1\"", 1, 0),
            "=LOG10(A2)&\"A1\""
        );
        assert_eq!(offset_references("=A1", 0, 0), "=A1");
    }

    #[test]
    fn references_follow_rows() {
        assert_eq!(
            shift_references("=SUM(B2,B4)", "S", "S", &ins_rows(1, 1)),
            "=SUM(B3,B5)"
        );
        assert_eq!(
            shift_references("=SUM(A1:A10)", "S", "S", &ins_rows(4, 2)),
            "=SUM(A1:A12)"
        );
        assert_eq!(
            shift_references("=$A$5+A1", "S", "S", &ins_rows(0, 1)),
            "=$A$6+A2"
        );
        assert_eq!(
            shift_references("=B3*2", "S", "S", &del_rows(2, 1)),
            "=#REF!*2"
        );
        assert_eq!(
            shift_references("=SUM(A2:A5)", "S", "S", &del_rows(1, 2)),
            "=SUM(A2:A3)"
        );
        assert_eq!(
            shift_references("=Other!A5+A5", "S", "Other", &ins_rows(0, 1)),
            "=Other!A6+A5"
        );
        assert_eq!(
            shift_references("='My Sheet'!A5", "S", "My Sheet", &ins_rows(0, 1)),
            "='My Sheet'!A6"
        );
        assert_eq!(
            shift_references("=CONCATENATE(\"A1\",A1)", "S", "S", &ins_rows(0, 1)),
            "=CONCATENATE(\"A1\",A2)"
        );
        assert_eq!(
            shift_references("=LOG10(A1)", "S", "S", &ins_rows(0, 1)),
            "=LOG10(A2)"
        );
        assert_eq!(
            shift_references("=SUM(A:A)", "S", "S", &ins_rows(0, 1)),
            "=SUM(A:A)"
        );
        assert_eq!(
            shift_references(
                "=B1+C1",
                "S",
                "S",
                &Shift {
                    rows: false,
                    at: 1,
                    n: 1,
                    insert: true
                }
            ),
            "=C1+D1"
        );
    }
}
