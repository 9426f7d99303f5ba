//! The spreadsheet functions the evaluator knows (`SUM`, `IF`, `LEFT`, ...). A function sees
//! its arguments only through [`Args`], so it does not depend on how they are evaluated.

use super::value::{num, text, truthy, Eff, ErrKind};

/// The arguments of one call, evaluated when a function asks for them.
pub(super) trait Args {
    /// How many arguments were written.
    fn count(&self) -> usize;
    /// Argument `i` as one value (`Empty` when it was not written).
    fn scalar(&mut self, i: usize) -> Eff;
    /// Every argument's value, ranges expanded to their non-empty cells, each with whether it
    /// came from a range.
    fn flatten(&mut self) -> Vec<(Eff, bool)>;
}

/// Calls function `name` (upper case); an unknown name is `#NAME?`.
pub(super) fn call(name: &str, args: &mut impl Args) -> Eff {
    let res = match name {
        "SUM" | "PRODUCT" | "AVERAGE" | "MIN" | "MAX" | "COUNT" | "COUNTA" => aggregate(name, args),
        "IF" | "IFERROR" | "AND" | "OR" | "NOT" => logical(name, args),
        "CONCATENATE" | "CONCAT" | "LEN" | "UPPER" | "LOWER" | "TRIM" | "LEFT" | "RIGHT" => {
            text_function(name, args)
        }
        "ABS" | "ROUND" | "MOD" => math(name, args),
        _ => Err(ErrKind::Name),
    };
    res.unwrap_or_else(Eff::Err)
}

/// The numbers among the arguments: text and booleans from ranges are skipped, written ones
/// must convert; the first error wins.
fn numbers(args: &mut impl Args) -> Result<Vec<f64>, ErrKind> {
    let mut out = Vec::new();
    for (v, from_range) in args.flatten() {
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

/// `SUM`, `PRODUCT`, `AVERAGE`, `MIN`, `MAX`, `COUNT`, `COUNTA`.
fn aggregate(name: &str, args: &mut impl Args) -> Result<Eff, ErrKind> {
    match name {
        "SUM" => Ok(Eff::Num(numbers(args)?.iter().sum())),
        "PRODUCT" => Ok(Eff::Num(numbers(args)?.iter().product())),
        "AVERAGE" => {
            let n = numbers(args)?;
            if n.is_empty() {
                return Err(ErrKind::Div0);
            }
            Ok(Eff::Num(n.iter().sum::<f64>() / n.len() as f64))
        }
        "MIN" => Ok(Eff::Num(
            numbers(args)?.into_iter().reduce(f64::min).unwrap_or(0.0),
        )),
        "MAX" => Ok(Eff::Num(
            numbers(args)?.into_iter().reduce(f64::max).unwrap_or(0.0),
        )),
        "COUNT" => Ok(Eff::Num(
            args.flatten()
                .iter()
                .filter(|(v, _)| matches!(v, Eff::Num(_)))
                .count() as f64,
        )),
        "COUNTA" => Ok(Eff::Num(
            args.flatten()
                .iter()
                .filter(|(v, _)| !matches!(v, Eff::Empty))
                .count() as f64,
        )),
        _ => Err(ErrKind::Name),
    }
}

/// `IF`, `IFERROR`, `AND`, `OR`, `NOT`.
fn logical(name: &str, args: &mut impl Args) -> Result<Eff, ErrKind> {
    match name {
        "IF" => {
            if args.count() < 2 || args.count() > 3 {
                return Err(ErrKind::Na);
            }
            let c = args.scalar(0);
            if truthy(&c)? {
                Ok(args.scalar(1))
            } else if args.count() == 3 {
                Ok(args.scalar(2))
            } else {
                Ok(Eff::Bool(false))
            }
        }
        "IFERROR" => {
            let v = args.scalar(0);
            if matches!(v, Eff::Err(_)) {
                Ok(args.scalar(1))
            } else {
                Ok(v)
            }
        }
        "AND" | "OR" => {
            let vals = args.flatten();
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
        "NOT" => Ok(Eff::Bool(!truthy(&args.scalar(0))?)),
        _ => Err(ErrKind::Name),
    }
}

/// `CONCATENATE`/`CONCAT`, `LEN`, `UPPER`, `LOWER`, `TRIM`, `LEFT`, `RIGHT`.
fn text_function(name: &str, args: &mut impl Args) -> Result<Eff, ErrKind> {
    match name {
        "CONCATENATE" | "CONCAT" => {
            let mut s = String::new();
            for (v, _) in args.flatten() {
                s.push_str(&text(&v)?);
            }
            Ok(Eff::Text(s))
        }
        "LEN" => Ok(Eff::Num(text(&args.scalar(0))?.chars().count() as f64)),
        "UPPER" => Ok(Eff::Text(text(&args.scalar(0))?.to_uppercase())),
        "LOWER" => Ok(Eff::Text(text(&args.scalar(0))?.to_lowercase())),
        "TRIM" => Ok(Eff::Text(
            text(&args.scalar(0))?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "LEFT" | "RIGHT" => {
            let s = text(&args.scalar(0))?;
            let n = if args.count() > 1 {
                num(&args.scalar(1))?
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
    }
}

/// `ABS`, `ROUND`, `MOD`.
fn math(name: &str, args: &mut impl Args) -> Result<Eff, ErrKind> {
    match name {
        "ABS" => Ok(Eff::Num(num(&args.scalar(0))?.abs())),
        "ROUND" => {
            let x = num(&args.scalar(0))?;
            let d = if args.count() > 1 {
                num(&args.scalar(1))?.trunc() as i32
            } else {
                0
            };
            let f = 10f64.powi(d);
            Ok(Eff::Num((x * f).round() / f))
        }
        "MOD" => {
            let a = num(&args.scalar(0))?;
            let b = num(&args.scalar(1))?;
            if b == 0.0 {
                return Err(ErrKind::Div0);
            }
            Ok(Eff::Num(a - b * (a / b).floor()))
        }
        _ => Err(ErrKind::Name),
    }
}
