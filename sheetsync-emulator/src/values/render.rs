//! `valueRenderOption` / `dateTimeRenderOption` (spec §5.2) and number formatting.

use serde_json::{json, Value};

use super::dates::{civil_from_days, UNIX_EPOCH_SERIAL};
use super::formula::{Eff, Evaluator};
use crate::model::{Cell, CellValue, FormatKind, NumberFormat};

/// `ValueRenderOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRender {
    /// Calculated and formatted (strings).
    Formatted,
    /// Calculated, not formatted.
    Unformatted,
    /// Formulas as text; other cells as unformatted.
    Formula,
}

impl ValueRender {
    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FORMATTED_VALUE" => Some(ValueRender::Formatted),
            "UNFORMATTED_VALUE" => Some(ValueRender::Unformatted),
            "FORMULA" => Some(ValueRender::Formula),
            _ => None,
        }
    }
}

/// `DateTimeRenderOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRender {
    /// Serial numbers.
    Serial,
    /// Strings in the cell's date format.
    FormattedString,
}

impl DateRender {
    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SERIAL_NUMBER" => Some(DateRender::Serial),
            "FORMATTED_STRING" => Some(DateRender::FormattedString),
            _ => None,
        }
    }
}

/// Both render options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOpts {
    /// Value render option.
    pub value: ValueRender,
    /// Date-time render option.
    pub date: DateRender,
}

impl Default for RenderOpts {
    fn default() -> Self {
        RenderOpts {
            value: ValueRender::Formatted,
            date: DateRender::Serial,
        }
    }
}

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

/// Formats a serial number with a date/time pattern (`yyyy-mm-dd`, `M/d/yyyy`, `h:mm:ss am/pm`).
pub fn format_datetime(serial: f64, pattern: &str) -> String {
    let mut days = serial.floor() as i64;
    let mut secs = ((serial - serial.floor()) * 86_400.0).round() as i64;
    if secs >= 86_400 {
        days += 1;
        secs -= 86_400;
    }
    let unix_days = days - UNIX_EPOCH_SERIAL;
    let (y, mo, d) = civil_from_days(unix_days);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let weekday = unix_days.rem_euclid(7) as usize;

    #[derive(Clone, PartialEq)]
    enum T {
        Y(usize),
        M(usize),
        D(usize),
        H(usize),
        S(usize),
        AmPm,
        Lit(String),
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect::<String>().to_ascii_lowercase();
        if rest.starts_with("am/pm") {
            toks.push(T::AmPm);
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
                'y' => T::Y(n),
                'm' => T::M(n),
                'd' => T::D(n),
                'h' => T::H(n),
                _ => T::S(n),
            });
        } else if c == '"' {
            let mut lit = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                lit.push(chars[i]);
                i += 1;
            }
            i += 1;
            toks.push(T::Lit(lit));
        } else if c == '\\' && i + 1 < chars.len() {
            toks.push(T::Lit(chars[i + 1].to_string()));
            i += 2;
        } else {
            toks.push(T::Lit(c.to_string()));
            i += 1;
        }
    }
    let ampm = toks.contains(&T::AmPm);
    let mut out = String::new();
    for (k, t) in toks.iter().enumerate() {
        match t {
            T::Y(n) => {
                if *n <= 2 {
                    out.push_str(&format!("{:02}", y.rem_euclid(100)));
                } else {
                    out.push_str(&format!("{y:04}"));
                }
            }
            T::M(n) => {
                let prev_h = toks[..k]
                    .iter()
                    .rev()
                    .find(|t| !matches!(t, T::Lit(_)))
                    .is_some_and(|t| matches!(t, T::H(_)));
                let next_s = toks[k + 1..]
                    .iter()
                    .find(|t| !matches!(t, T::Lit(_)))
                    .is_some_and(|t| matches!(t, T::S(_)));
                if (prev_h || next_s) && *n <= 2 {
                    if *n == 1 {
                        out.push_str(&mi.to_string());
                    } else {
                        out.push_str(&format!("{mi:02}"));
                    }
                } else {
                    match n {
                        1 => out.push_str(&mo.to_string()),
                        2 => out.push_str(&format!("{mo:02}")),
                        3 => out.push_str(&MONTHS[(mo - 1) as usize][..3]),
                        _ => out.push_str(MONTHS[(mo - 1) as usize]),
                    }
                }
            }
            T::D(n) => match n {
                1 => out.push_str(&d.to_string()),
                2 => out.push_str(&format!("{d:02}")),
                3 => out.push_str(&DAYS[weekday][..3]),
                _ => out.push_str(DAYS[weekday]),
            },
            T::H(n) => {
                let hh = if ampm {
                    let x = h % 12;
                    if x == 0 {
                        12
                    } else {
                        x
                    }
                } else {
                    h
                };
                if *n >= 2 {
                    out.push_str(&format!("{hh:02}"));
                } else {
                    out.push_str(&hh.to_string());
                }
            }
            T::S(n) => {
                if *n >= 2 {
                    out.push_str(&format!("{s:02}"));
                } else {
                    out.push_str(&s.to_string());
                }
            }
            T::AmPm => out.push_str(if h < 12 { "AM" } else { "PM" }),
            T::Lit(l) => out.push_str(l),
        }
    }
    out
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

/// Renders a calculated value as FORMATTED_VALUE text.
pub fn formatted(eff: &Eff, fmt: Option<&NumberFormat>) -> String {
    match eff {
        Eff::Empty => String::new(),
        Eff::Num(n) => format_number(*n, fmt),
        Eff::Text(s) => s.clone(),
        Eff::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Eff::Err(e) => e.text().into(),
    }
}

/// Renders a calculated value per the options (not FORMULA).
fn render_eff(eff: &Eff, fmt: Option<&NumberFormat>, opts: RenderOpts) -> Value {
    match opts.value {
        ValueRender::Formatted => Value::String(formatted(eff, fmt)),
        _ => match eff {
            Eff::Empty => Value::String(String::new()),
            Eff::Num(n) => {
                if opts.date == DateRender::FormattedString
                    && fmt.is_some_and(|f| f.kind.is_temporal())
                {
                    Value::String(format_number(*n, fmt))
                } else {
                    json_number(*n)
                }
            }
            Eff::Text(s) => Value::String(s.clone()),
            Eff::Bool(b) => Value::Bool(*b),
            Eff::Err(e) => Value::String(e.text().into()),
        },
    }
}

/// Renders one stored cell as a values-API JSON value; `None` if the cell is empty.
pub fn render_cell(
    ev: &mut Evaluator<'_>,
    sheet: usize,
    r: u32,
    c: u32,
    cell: &Cell,
    opts: RenderOpts,
) -> Option<Value> {
    let fmt = cell.format.as_deref();
    let v = cell.value.as_ref()?;
    Some(match v {
        CellValue::Formula(f) if opts.value == ValueRender::Formula => Value::String(f.clone()),
        CellValue::Formula(_) => {
            let eff = ev.cell(sheet, r, c);
            render_eff(&eff, fmt, opts)
        }
        CellValue::Text(s) => Value::String(s.clone()),
        CellValue::Bool(b) => match opts.value {
            ValueRender::Formatted => Value::String(if *b { "TRUE" } else { "FALSE" }.to_string()),
            _ => Value::Bool(*b),
        },
        CellValue::Number(n) => render_eff(&Eff::Num(*n), fmt, opts),
    })
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
