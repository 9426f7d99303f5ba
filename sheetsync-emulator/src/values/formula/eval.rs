//! The evaluator: cell values and formula results of one spreadsheet, memoised per cell, with
//! circular references answered `#REF!`; operators and their comparison rules.

use std::collections::{HashMap, HashSet};

use super::functions::{self, Args};
use super::lex::tokenize;
use super::parse::{parse, Expr};
use super::value::{num, text, Eff, ErrKind};
use crate::model::{CellValue, Spreadsheet};

/// An evaluated expression: a value, or a range (sheet, r0, c0, r1, c1) not yet read.
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
        let Some(e) = tokenize(body).and_then(|toks| parse(toks, self.ss, sheet)) else {
            return Eff::Err(ErrKind::Error);
        };
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
            Expr::Call(name, args) => Val::S(functions::call(
                name,
                &mut CallArgs {
                    ev: self,
                    sheet,
                    args,
                },
            )),
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
}

/// The arguments of a call being evaluated.
struct CallArgs<'e, 'a> {
    ev: &'e mut Evaluator<'a>,
    sheet: usize,
    args: &'e [Expr],
}

impl Args for CallArgs<'_, '_> {
    fn count(&self) -> usize {
        self.args.len()
    }

    fn scalar(&mut self, i: usize) -> Eff {
        match self.args.get(i) {
            Some(a) => {
                let v = self.ev.eval(self.sheet, a);
                self.ev.scalar(v)
            }
            None => Eff::Empty,
        }
    }

    fn flatten(&mut self) -> Vec<(Eff, bool)> {
        self.ev.flatten(self.sheet, self.args)
    }
}

/// A binary operator on two values (errors propagate, left first).
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

/// Sort rank of a value's type in comparisons: numbers, text, booleans, errors.
fn rank(v: &Eff) -> u8 {
    match v {
        Eff::Num(_) | Eff::Empty => 0,
        Eff::Text(_) => 1,
        Eff::Bool(_) => 2,
        Eff::Err(_) => 3,
    }
}

/// Sheets' comparison: text ignores case, empty equals "", types by rank.
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
