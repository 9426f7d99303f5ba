//! `valueInputOption` handling (spec §5.3): RAW stores as-is, USER_ENTERED parses like the UI
//! (en_US).

use serde_json::Value;

use super::dates::{serial_of, valid_date};
use crate::model::{CellValue, FormatKind, NumberFormat};

/// `ValueInputOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOption {
    /// Stored as-is.
    Raw,
    /// Parsed as if typed into the UI.
    UserEntered,
}

impl InputOption {
    /// Parses the query/body value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RAW" => Some(InputOption::Raw),
            "USER_ENTERED" => Some(InputOption::UserEntered),
            _ => None,
        }
    }
}

/// What writing one JSON value does to a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `null`: leave the cell alone.
    Skip,
    /// Set the value (None = clear) and, for USER_ENTERED, the inferred number format.
    Set(Option<CellValue>, Option<NumberFormat>),
}

/// Converts one JSON value of a `values` matrix; `None` for arrays/objects (invalid).
pub fn from_json(v: &Value, opt: InputOption) -> Option<Write> {
    Some(match v {
        Value::Null => Write::Skip,
        Value::Bool(b) => Write::Set(Some(CellValue::Bool(*b)), None),
        Value::Number(n) => Write::Set(Some(CellValue::Number(n.as_f64().unwrap_or(0.0))), None),
        Value::String(s) => match opt {
            InputOption::Raw => {
                if s.is_empty() {
                    Write::Set(None, None)
                } else {
                    Write::Set(Some(CellValue::Text(s.clone())), None)
                }
            }
            InputOption::UserEntered => {
                let (v, f) = parse_user_entered(s);
                Write::Set(v, f)
            }
        },
        Value::Array(_) | Value::Object(_) => return None,
    })
}

fn fmt(kind: FormatKind, pattern: &str) -> Option<NumberFormat> {
    Some(NumberFormat {
        kind,
        pattern: pattern.to_string(),
    })
}

/// Strict decimal number syntax: `[+-]?(d+(.d*)?|.d+)([eE][+-]?d+)?`.
fn plain_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let ds = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - ds;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let fs = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - fs;
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let es = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == es {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse().ok()
}

/// Number with optional valid thousands grouping. Returns (value, grouped, decimals).
fn grouped_number(s: &str) -> Option<(f64, bool, usize)> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = match body.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (body, None),
    };
    if let Some(f) = frac {
        if !f.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let decimals = frac.map_or(0, str::len);
    if int.contains(',') {
        let groups: Vec<&str> = int.split(',').collect();
        let first = groups[0];
        if first.is_empty() || first.len() > 3 || !first.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if !groups[1..]
            .iter()
            .all(|g| g.len() == 3 && g.bytes().all(|c| c.is_ascii_digit()))
        {
            return None;
        }
        let digits: String = groups.concat();
        let text = match frac {
            Some(f) => format!("{digits}.{f}"),
            None => digits,
        };
        return text.parse::<f64>().ok().map(|v| (sign * v, true, decimals));
    }
    plain_number(body).map(|v| (sign * v, false, decimals))
}

fn decimals_pattern(base: &str, decimals: usize) -> String {
    if decimals == 0 {
        base.to_string()
    } else {
        format!("{base}.{}", "0".repeat(decimals))
    }
}

/// Parses a time `H:MM[:SS][ AM|PM]`. Returns (fraction of day, pattern).
fn parse_time(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let upper = s.to_ascii_uppercase();
    let (clock, ampm) = if let Some(r) = upper.strip_suffix("AM") {
        (r.trim_end().to_string(), Some(false))
    } else if let Some(r) = upper.strip_suffix("PM") {
        (r.trim_end().to_string(), Some(true))
    } else {
        (upper.clone(), None)
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let num = |p: &str| -> Option<u32> {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            p.parse().ok()
        }
    };
    let mut h = num(parts[0])?;
    let m = num(parts[1])?;
    if parts[1].len() != 2 {
        return None;
    }
    let sec = if parts.len() == 3 {
        if parts[2].len() != 2 {
            return None;
        }
        num(parts[2])?
    } else {
        0
    };
    if m > 59 || sec > 59 {
        return None;
    }
    let pattern = match ampm {
        Some(pm) => {
            if h == 0 || h > 12 {
                return None;
            }
            if pm && h != 12 {
                h += 12;
            } else if !pm && h == 12 {
                h = 0;
            }
            if parts.len() == 3 {
                "h:mm:ss am/pm".to_string()
            } else {
                "h:mm am/pm".to_string()
            }
        }
        None => {
            if h > 23 {
                return None;
            }
            "h:mm:ss".to_string()
        }
    };
    Some((f64::from(h * 3600 + m * 60 + sec) / 86_400.0, pattern))
}

/// Parses a date `YYYY-MM-DD` or `M/D/YYYY`. Returns (serial, pattern).
fn parse_date(s: &str) -> Option<(i64, &'static str)> {
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() == 3 && parts[0].len() == 4 && parts.iter().all(|p| all_digits(p)) {
        let (y, m, d) = (
            parts[0].parse().ok()?,
            parts[1].parse().ok()?,
            parts[2].parse().ok()?,
        );
        if parts[1].len() <= 2 && parts[2].len() <= 2 && valid_date(y, m, d) {
            return Some((serial_of(y, m, d), "yyyy-mm-dd"));
        }
        return None;
    }
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() == 3 && parts.iter().all(|p| all_digits(p)) {
        if parts[0].len() == 4 {
            let (y, m, d) = (
                parts[0].parse().ok()?,
                parts[1].parse().ok()?,
                parts[2].parse().ok()?,
            );
            if valid_date(y, m, d) {
                return Some((serial_of(y, m, d), "yyyy/mm/dd"));
            }
            return None;
        }
        if parts[0].len() <= 2 && parts[1].len() <= 2 && parts[2].len() == 4 {
            let (m, d, y) = (
                parts[0].parse().ok()?,
                parts[1].parse().ok()?,
                parts[2].parse().ok()?,
            );
            if valid_date(y, m, d) {
                return Some((serial_of(y, m, d), "M/d/yyyy"));
            }
        }
    }
    None
}

/// Parses a string as if a user typed it into a cell (en_US locale).
pub fn parse_user_entered(s: &str) -> (Option<CellValue>, Option<NumberFormat>) {
    if s.is_empty() {
        return (None, None);
    }
    if let Some(rest) = s.strip_prefix('\'') {
        return (Some(CellValue::Text(rest.to_string())), None);
    }
    if s.starts_with('=') && s.len() > 1 {
        return (Some(CellValue::Formula(s.to_string())), None);
    }
    let t = s.trim();
    if t.eq_ignore_ascii_case("true") {
        return (Some(CellValue::Bool(true)), None);
    }
    if t.eq_ignore_ascii_case("false") {
        return (Some(CellValue::Bool(false)), None);
    }
    if let Some(v) = plain_number(t) {
        return (Some(CellValue::Number(v)), None);
    }
    if let Some((v, grouped, dec)) = grouped_number(t) {
        if grouped {
            return (
                Some(CellValue::Number(v)),
                fmt(FormatKind::Number, &decimals_pattern("#,##0", dec)),
            );
        }
    }
    if let Some(body) = t.strip_suffix('%') {
        if let Some((v, _, dec)) = grouped_number(body.trim_end()) {
            return (
                Some(CellValue::Number(v / 100.0)),
                fmt(
                    FormatKind::Percent,
                    &format!("{}%", decimals_pattern("0", dec)),
                ),
            );
        }
    }
    let (neg, cur) = match t.strip_prefix("-$") {
        Some(r) => (true, Some(r)),
        None => (false, t.strip_prefix('$')),
    };
    if let Some(body) = cur {
        if let Some((v, _, dec)) = grouped_number(body) {
            if !body.starts_with(['-', '+']) {
                let v = if neg { -v } else { v };
                return (
                    Some(CellValue::Number(v)),
                    fmt(FormatKind::Currency, &decimals_pattern("$#,##0", dec)),
                );
            }
        }
    }
    if let Some((serial, pat)) = parse_date(t) {
        return (
            Some(CellValue::Number(serial as f64)),
            fmt(FormatKind::Date, pat),
        );
    }
    if let Some((frac, pat)) = parse_time(t) {
        return (Some(CellValue::Number(frac)), fmt(FormatKind::Time, &pat));
    }
    if let Some((d, tm)) = t.split_once(' ') {
        if let (Some((serial, dp)), Some((frac, _))) = (parse_date(d), parse_time(tm)) {
            return (
                Some(CellValue::Number(serial as f64 + frac)),
                fmt(FormatKind::DateTime, &format!("{dp} h:mm:ss")),
            );
        }
    }
    (Some(CellValue::Text(s.to_string())), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Option<f64> {
        match parse_user_entered(s).0 {
            Some(CellValue::Number(n)) => Some(n),
            _ => None,
        }
    }

    #[test]
    fn user_entered() {
        assert_eq!(num("0042"), Some(42.0));
        assert_eq!(num("2,000,000.01"), Some(2_000_000.01));
        assert_eq!(num("1e3"), Some(1000.0));
        assert_eq!(num("+5"), Some(5.0));
        assert_eq!(num("12%"), Some(0.12));
        assert_eq!(num("$1,234.50"), Some(1234.5));
        assert_eq!(num("2020-01-01"), Some(43_831.0));
        assert_eq!(num("1/2/2024"), Some(45_293.0));
        assert_eq!(num("13:45"), Some((13.0 * 60.0 + 45.0) / 1440.0));
        assert_eq!(num("1:45 PM"), Some((13.0 * 60.0 + 45.0) / 1440.0));
        assert_eq!(num("1,00"), None);
        assert_eq!(num("inf"), None);
        assert_eq!(num("2024-02-30"), None);
        assert_eq!(
            parse_user_entered("'007").0,
            Some(CellValue::Text("007".into()))
        );
        assert_eq!(
            parse_user_entered("= 1 / 1024").0,
            Some(CellValue::Formula("= 1 / 1024".into()))
        );
        assert_eq!(parse_user_entered("tRuE").0, Some(CellValue::Bool(true)));
        assert_eq!(parse_user_entered("").0, None);
        assert_eq!(
            parse_user_entered("hello").0,
            Some(CellValue::Text("hello".into()))
        );
    }
}
