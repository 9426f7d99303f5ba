//! Number formatting as Sheets shows it: the automatic format, the cell number formats
//! (number, percent, currency, scientific, date/time patterns) and JSON numbers. Pure
//! functions of a number; rendering a cell (which evaluates formulas) is in `render`.

use serde_json::{json, Value};

use super::dates::{civil_from_days, UNIX_EPOCH_SERIAL};
use crate::model::{FormatKind, NumberFormat};

/// A JSON number, integral values without `.0`.
pub fn json_number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

/// Sheets' "automatic" number format (shortest form, ~15 significant digits).
pub fn auto_number(n: f64) -> String {
    if n == 0.0 {
        return "0".into();
    }
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    let a = n.abs();
    if !(1e-9..1e15).contains(&a) {
        let s = format!("{:.5E}", n);
        // 1.23450E15 -> 1.2345E+15
        let (mant, exp) = s.split_once('E').unwrap_or((&s, "0"));
        let mant = mant.trim_end_matches('0').trim_end_matches('.');
        let exp: i32 = exp.parse().unwrap_or(0);
        return format!("{mant}E{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let rounded: f64 = format!("{:.14e}", n).parse().unwrap_or(n);
    format!("{rounded}")
}

fn group(int: &str) -> String {
    let b = int.as_bytes();
    let mut out = String::new();
    for (i, ch) in b.iter().enumerate() {
        if i > 0 && (b.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(*ch as char);
    }
    out
}

fn pattern_decimals(p: &str) -> usize {
    match p.split_once('.') {
        Some((_, rest)) => rest.chars().take_while(|c| *c == '0' || *c == '#').count(),
        None => 0,
    }
}

fn fixed(n: f64, decimals: usize, grouping: bool) -> String {
    let s = format!("{:.*}", decimals, n.abs());
    let (int, frac) = match s.split_once('.') {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (s.clone(), None),
    };
    let int = if grouping { group(&int) } else { int };
    let sign = if n < 0.0 && s.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        "-"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{int}.{f}"),
        None => format!("{sign}{int}"),
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

/// One part of a date/time pattern: a field with its letter count, `am/pm`, or literal text.
#[derive(Clone, PartialEq)]
enum DatePart {
    Y(usize),
    M(usize),
    D(usize),
    H(usize),
    S(usize),
    AmPm,
    Lit(String),
}

/// The calendar and clock fields of a serial number (seconds rounded).
struct DateFields {
    y: i64,
    mo: u32,
    d: u32,
    h: i64,
    mi: i64,
    s: i64,
    weekday: usize,
}

impl DateFields {
    fn of(serial: f64) -> Self {
        let mut days = serial.floor() as i64;
        let mut secs = ((serial - serial.floor()) * 86_400.0).round() as i64;
        if secs >= 86_400 {
            days += 1;
            secs -= 86_400;
        }
        let unix_days = days - UNIX_EPOCH_SERIAL;
        let (y, mo, d) = civil_from_days(unix_days);
        DateFields {
            y,
            mo,
            d,
            h: secs / 3600,
            mi: secs / 60 % 60,
            s: secs % 60,
            weekday: unix_days.rem_euclid(7) as usize,
        }
    }
}

/// Formats a serial number with a date/time pattern (`yyyy-mm-dd`, `M/d/yyyy`, `h:mm:ss am/pm`).
pub fn format_datetime(serial: f64, pattern: &str) -> String {
    let f = DateFields::of(serial);
    let parts = date_parts(pattern);
    let ampm = parts.contains(&DatePart::AmPm);
    (0..parts.len())
        .map(|k| date_part_text(&parts, k, &f, ampm))
        .collect()
}

/// Splits a date/time pattern into fields (runs of one letter), `am/pm`, quoted text,
/// `\`-escaped characters and other literal characters.
fn date_parts(pattern: &str) -> Vec<DatePart> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect::<String>().to_ascii_lowercase();
        if rest.starts_with("am/pm") {
            toks.push(DatePart::AmPm);
            i += 5;
            continue;
        }
        let c = chars[i];
        let lc = c.to_ascii_lowercase();
        if matches!(lc, 'y' | 'm' | 'd' | 'h' | 's') {
            let mut n = 0;
            while i < chars.len() && chars[i].to_ascii_lowercase() == lc {
                n += 1;
                i += 1;
            }
            toks.push(match lc {
                'y' => DatePart::Y(n),
                'm' => DatePart::M(n),
                'd' => DatePart::D(n),
                'h' => DatePart::H(n),
                _ => DatePart::S(n),
            });
        } else if c == '"' {
            let mut lit = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                lit.push(chars[i]);
                i += 1;
            }
            i += 1;
            toks.push(DatePart::Lit(lit));
        } else if c == '\\' && i + 1 < chars.len() {
            toks.push(DatePart::Lit(chars[i + 1].to_string()));
            i += 2;
        } else {
            toks.push(DatePart::Lit(c.to_string()));
            i += 1;
        }
    }
    toks
}

/// Whether the `m` at `k` means minutes: right after an hour or right before seconds
/// (literals between do not count).
fn m_is_minutes(parts: &[DatePart], k: usize) -> bool {
    let prev_h = parts[..k]
        .iter()
        .rev()
        .find(|t| !matches!(t, DatePart::Lit(_)))
        .is_some_and(|t| matches!(t, DatePart::H(_)));
    let next_s = parts[k + 1..]
        .iter()
        .find(|t| !matches!(t, DatePart::Lit(_)))
        .is_some_and(|t| matches!(t, DatePart::S(_)));
    prev_h || next_s
}

/// The text of part `k` of a pattern for the date `f` (`ampm`: the pattern has `am/pm`).
fn date_part_text(parts: &[DatePart], k: usize, f: &DateFields, ampm: bool) -> String {
    match &parts[k] {
        DatePart::Y(n) => {
            if *n <= 2 {
                format!("{:02}", f.y.rem_euclid(100))
            } else {
                format!("{:04}", f.y)
            }
        }
        DatePart::M(n) if *n <= 2 && m_is_minutes(parts, k) => {
            if *n == 1 {
                f.mi.to_string()
            } else {
                format!("{:02}", f.mi)
            }
        }
        DatePart::M(n) => match n {
            1 => f.mo.to_string(),
            2 => format!("{:02}", f.mo),
            3 => MONTHS[(f.mo - 1) as usize][..3].to_string(),
            _ => MONTHS[(f.mo - 1) as usize].to_string(),
        },
        DatePart::D(n) => match n {
            1 => f.d.to_string(),
            2 => format!("{:02}", f.d),
            3 => DAYS[f.weekday][..3].to_string(),
            _ => DAYS[f.weekday].to_string(),
        },
        DatePart::H(n) => {
            let hh = if ampm {
                let x = f.h % 12;
                if x == 0 {
                    12
                } else {
                    x
                }
            } else {
                f.h
            };
            if *n >= 2 {
                format!("{hh:02}")
            } else {
                hh.to_string()
            }
        }
        DatePart::S(n) => {
            if *n >= 2 {
                format!("{:02}", f.s)
            } else {
                f.s.to_string()
            }
        }
        DatePart::AmPm => if f.h < 12 { "AM" } else { "PM" }.to_string(),
        DatePart::Lit(l) => l.clone(),
    }
}

/// Formats a number with a cell's number format (FORMATTED_VALUE).
pub fn format_number(n: f64, fmt: Option<&NumberFormat>) -> String {
    let Some(f) = fmt else {
        return auto_number(n);
    };
    match f.kind {
        FormatKind::Date | FormatKind::Time | FormatKind::DateTime => {
            let pat = if f.pattern.is_empty() {
                match f.kind {
                    FormatKind::Date => "M/d/yyyy",
                    FormatKind::Time => "h:mm:ss am/pm",
                    _ => "M/d/yyyy H:mm:ss",
                }
            } else {
                &f.pattern
            };
            format_datetime(n, pat)
        }
        FormatKind::Percent => {
            let dec = if f.pattern.is_empty() {
                2
            } else {
                pattern_decimals(&f.pattern)
            };
            format!("{}%", fixed(n * 100.0, dec, f.pattern.contains(',')))
        }
        FormatKind::Currency => {
            let dec = if f.pattern.is_empty() {
                2
            } else {
                pattern_decimals(&f.pattern)
            };
            let body = fixed(n.abs(), dec, true);
            if n < 0.0 {
                format!("-${body}")
            } else {
                format!("${body}")
            }
        }
        FormatKind::Number => {
            if f.pattern.is_empty() {
                return fixed(n, 2, true);
            }
            fixed(n, pattern_decimals(&f.pattern), f.pattern.contains(','))
        }
        FormatKind::Scientific => {
            let s = format!("{:.2E}", n);
            let (m, e) = s.split_once('E').unwrap_or((&s, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            format!("{m}E{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        FormatKind::Text => auto_number(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: FormatKind, p: &str) -> NumberFormat {
        NumberFormat {
            kind,
            pattern: p.into(),
        }
    }

    #[test]
    fn formats() {
        assert_eq!(auto_number(2.0), "2");
        assert_eq!(auto_number(1.5), "1.5");
        assert_eq!(auto_number(0.1 + 0.2), "0.3");
        assert_eq!(auto_number(1.0 / 1024.0), "0.0009765625");
        assert_eq!(
            format_number(2_000_000.01, Some(&f(FormatKind::Number, "#,##0.00"))),
            "2,000,000.01"
        );
        assert_eq!(
            format_number(43_831.0, Some(&f(FormatKind::Date, "yyyy-mm-dd"))),
            "2020-01-01"
        );
        assert_eq!(
            format_number(45_293.0, Some(&f(FormatKind::Date, "M/d/yyyy"))),
            "1/2/2024"
        );
        let t = (13.0 * 60.0 + 45.0) / 1440.0;
        assert_eq!(
            format_number(t, Some(&f(FormatKind::Time, "h:mm:ss"))),
            "13:45:00"
        );
        assert_eq!(
            format_number(t, Some(&f(FormatKind::Time, "h:mm am/pm"))),
            "1:45 PM"
        );
        assert_eq!(
            format_number(0.12, Some(&f(FormatKind::Percent, "0%"))),
            "12%"
        );
        assert_eq!(
            format_number(1234.5, Some(&f(FormatKind::Currency, "$#,##0.00"))),
            "$1,234.50"
        );
        assert_eq!(json_number(2.0).to_string(), "2");
        assert_eq!(json_number(0.12).to_string(), "0.12");
    }
}
