//! Sheet cells ↔ typed values, exactly.
//!
//! Reads use `UNFORMATTED_VALUE` with `SERIAL_NUMBER` dates, so a cell arrives as a JSON number,
//! string or boolean, or `""` when empty. Writes use `RAW` input, so a string is stored as the
//! very string (never a formula, never a parsed number), a number as a number.
//!
//! | Column type | Written as | Read from |
//! |---|---|---|
//! | integer | number within ±2^53, else text | whole number, or text of an integer |
//! | decimal | number when `f64` holds it exactly, else text | number (shortest form) or text |
//! | float | number (NaN and infinities as text) | number or text |
//! | boolean | `TRUE`/`FALSE` | boolean, or text `TRUE`/`FALSE` (any case) |
//! | text, enum | text, as is | text; numbers and booleans as they print |
//! | date, time, timestamp | serial number (days since 1899-12-30, time as the fraction) | serial number or ISO text |
//! | timestamp with time zone | serial number in the spreadsheet's time zone | same |
//! | uuid, json, bytes | text (bytes as `\x…` hex) | text |
//! | NULL | empty cell | empty cell |

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value as Json;
use sheetsync_core::{ColumnType, Decimal, Value};

/// Google's limit on the characters in one cell.
pub const MAX_CELL_CHARS: usize = 50_000;

const MAX_SAFE_INT: i64 = 1 << 53;
const MICROS_PER_DAY: f64 = 86_400_000_000.0;

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1899, 12, 30)
        .expect("valid date")
        .and_hms_opt(0, 0, 0)
        .expect("valid time")
}

/// A naive date-time as a serial number.
pub fn to_serial(t: NaiveDateTime) -> f64 {
    let d = t - epoch();
    // Whole microseconds keep the fraction exact enough to read back to the microsecond.
    d.num_microseconds()
        .map_or(d.num_seconds() as f64 / 86_400.0, |us| {
            us as f64 / MICROS_PER_DAY
        })
}

/// A serial number as a naive date-time, rounded to the microsecond.
pub fn from_serial(serial: f64) -> Option<NaiveDateTime> {
    if !serial.is_finite() || serial.abs() > 3_000_000.0 {
        return None;
    }
    let micros = (serial * MICROS_PER_DAY).round() as i64;
    Some(epoch() + Duration::microseconds(micros))
}

/// Why a cell does not hold a value of its column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError(pub String);

fn shown(cell: &Json) -> String {
    let s = match cell {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{:?}...", s.chars().take(40).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        Decimal::from_f64(f).map_or_else(|| f.to_string(), |d| d.to_string())
    }
}

/// Reads a cell as a value of `ty`. An empty cell is `Null`.
pub fn read_cell(cell: &Json, ty: ColumnType, tz: Tz) -> Result<Value, CellError> {
    let bad = || CellError(format!("{} is not a valid {ty}", shown(cell)));
    if matches!(cell, Json::Null) || cell.as_str() == Some("") {
        return Ok(Value::Null);
    }
    // Error values (#DIV/0!, #REF!, ...) are strings under UNFORMATTED_VALUE.
    if let Json::String(s) = cell {
        if ty != ColumnType::Text
            && s.starts_with('#')
            && (s.ends_with('!') || s.ends_with('?') || s == "#N/A")
        {
            return Err(CellError(format!("the cell shows the error {s}")));
        }
    }
    Ok(match ty {
        ColumnType::Text => Value::Text(match cell {
            Json::String(s) => s.clone(),
            Json::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            Json::Number(n) => number_text(n.as_f64().ok_or_else(bad)?),
            _ => return Err(bad()),
        }),
        ColumnType::Int => match cell {
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else {
                    let f = n.as_f64().ok_or_else(bad)?;
                    if f.fract() != 0.0 || f.abs() > MAX_SAFE_INT as f64 {
                        return Err(bad());
                    }
                    Value::Int(f as i64)
                }
            }
            Json::String(s) => Value::Int(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnType::Decimal => match cell {
            Json::Number(n) => Value::Decimal(
                n.as_i64()
                    .map(Decimal::from_i64)
                    .or_else(|| n.as_f64().and_then(Decimal::from_f64))
                    .ok_or_else(bad)?,
            ),
            Json::String(s) => Value::Decimal(s.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnType::Float => match cell {
            Json::Number(n) => Value::Float(n.as_f64().ok_or_else(bad)?),
            Json::String(s) => Value::Float(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnType::Bool => match cell {
            Json::Bool(b) => Value::Bool(*b),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(bad()),
        },
        ColumnType::Date => match cell {
            Json::Number(n) => {
                let t = n.as_f64().and_then(from_serial).ok_or_else(bad)?;
                if t.time() != NaiveTime::MIN {
                    return Err(CellError(format!(
                        "{} has a time of day but the column holds dates",
                        shown(cell)
                    )));
                }
                Value::Date(t.date())
            }
            _ => Value::parse(ty, cell.as_str().ok_or_else(bad)?).map_err(|_| bad())?,
        },
        ColumnType::Time => match cell {
            Json::Number(n) => {
                let f = n.as_f64().ok_or_else(bad)?;
                if !(0.0..1.0).contains(&f) {
                    return Err(bad());
                }
                Value::Time(from_serial(f).ok_or_else(bad)?.time())
            }
            _ => Value::parse(ty, cell.as_str().ok_or_else(bad)?).map_err(|_| bad())?,
        },
        ColumnType::Timestamp => match cell {
            Json::Number(n) => Value::Timestamp(n.as_f64().and_then(from_serial).ok_or_else(bad)?),
            _ => Value::parse(ty, cell.as_str().ok_or_else(bad)?).map_err(|_| bad())?,
        },
        ColumnType::TimestampTz => match cell {
            Json::Number(n) => {
                let local = n.as_f64().and_then(from_serial).ok_or_else(bad)?;
                let at = tz.from_local_datetime(&local).earliest().ok_or_else(|| {
                    CellError(format!("{} does not exist in time zone {tz}", shown(cell)))
                })?;
                Value::TimestampTz(at.with_timezone(&Utc))
            }
            _ => Value::parse(ty, cell.as_str().ok_or_else(bad)?).map_err(|_| bad())?,
        },
        ColumnType::Uuid | ColumnType::Json | ColumnType::Bytes => {
            Value::parse(ty, cell.as_str().ok_or_else(bad)?).map_err(|_| bad())?
        }
    })
}

/// The cell to write for `v` with `RAW` input. Fails only for text longer than a cell holds.
pub fn write_cell(v: &Value, tz: Tz) -> Result<Json, CellError> {
    Ok(match v {
        // Never JSON null: google-sheets4 strips nulls from arrays, which would shift cells.
        Value::Null => Json::String(String::new()),
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) if i.unsigned_abs() <= MAX_SAFE_INT as u64 => Json::from(*i),
        Value::Int(i) => Json::String(i.to_string()),
        Value::Decimal(d) => match d.to_f64_lossless() {
            Some(f) => Json::from(f),
            None => Json::String(d.to_string()),
        },
        Value::Float(f) if f.is_finite() => Json::from(*f),
        Value::Float(f) => Json::String(f.to_string()),
        Value::Text(s) => {
            if s.chars().count() > MAX_CELL_CHARS {
                return Err(CellError(format!(
                    "the text has {} characters; a Sheet cell holds at most {MAX_CELL_CHARS}",
                    s.chars().count()
                )));
            }
            Json::String(s.clone())
        }
        Value::Date(d) => Json::from(to_serial(d.and_time(NaiveTime::MIN))),
        Value::Time(t) => Json::from(to_serial(epoch().date().and_time(*t))),
        Value::Timestamp(t) => Json::from(to_serial(*t)),
        Value::TimestampTz(t) => Json::from(to_serial(local(*t, tz))),
        other => Json::String(other.to_string()),
    })
}

fn local(t: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// Parses a spreadsheet's `timeZone` property (an IANA name); unknown names fall back to UTC
/// with a warning, as Google itself treats `Etc/GMT`.
pub fn parse_tz(name: &str) -> Tz {
    name.parse().unwrap_or_else(|_| {
        tracing::warn!(time_zone = name, "unknown spreadsheet time zone; using UTC");
        Tz::UTC
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rt(v: Value, ty: ColumnType) {
        let tz: Tz = "America/New_York".parse().unwrap();
        let cell = write_cell(&v, tz).unwrap();
        assert_eq!(read_cell(&cell, ty, tz).unwrap(), v, "cell {cell}");
    }

    #[test]
    fn values_round_trip_through_cells() {
        rt(Value::Int(42), ColumnType::Int);
        rt(Value::Int(i64::MAX), ColumnType::Int);
        rt(Value::Decimal("0.1".parse().unwrap()), ColumnType::Decimal);
        rt(
            Value::Decimal("12345678901234567890.123".parse().unwrap()),
            ColumnType::Decimal,
        );
        rt(Value::Text("007".into()), ColumnType::Text);
        rt(Value::Text("=1+1".into()), ColumnType::Text);
        rt(Value::Bool(true), ColumnType::Bool);
        rt(Value::Float(f64::NAN), ColumnType::Float);
        rt(
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            ColumnType::Date,
        );
        rt(
            Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
            ColumnType::Time,
        );
        rt(
            Value::Timestamp(
                NaiveDate::from_ymd_opt(1950, 1, 1)
                    .unwrap()
                    .and_hms_micro_opt(1, 2, 3, 456_789)
                    .unwrap(),
            ),
            ColumnType::Timestamp,
        );
        rt(
            Value::TimestampTz(Utc.with_ymd_and_hms(2024, 7, 1, 12, 0, 0).unwrap()),
            ColumnType::TimestampTz,
        );
        rt(Value::Null, ColumnType::Int);
    }

    #[test]
    fn serials_match_google() {
        // 2020-01-01 is serial 43831 (see the emulator's golden tests and Google's docs).
        assert_eq!(
            to_serial(
                NaiveDate::from_ymd_opt(2020, 1, 1)
                    .unwrap()
                    .and_time(NaiveTime::MIN)
            ),
            43831.0
        );
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // Noon UTC is 13:00 in Berlin in winter.
        let cell = write_cell(
            &Value::TimestampTz(Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0).unwrap()),
            tz,
        )
        .unwrap();
        assert_eq!(cell, json!(43831.0 + 13.0 / 24.0));
    }

    #[test]
    fn bad_cells_are_named() {
        let e = read_cell(&json!("lots"), ColumnType::Int, Tz::UTC).unwrap_err();
        assert_eq!(e.0, "\"lots\" is not a valid integer");
        assert!(read_cell(&json!(1.5), ColumnType::Int, Tz::UTC).is_err());
        assert!(read_cell(&json!("#DIV/0!"), ColumnType::Decimal, Tz::UTC)
            .unwrap_err()
            .0
            .contains("#DIV/0!"));
        assert_eq!(
            read_cell(&json!("#DIV/0!"), ColumnType::Text, Tz::UTC).unwrap(),
            Value::Text("#DIV/0!".into())
        );
        assert!(read_cell(&json!(43831.5), ColumnType::Date, Tz::UTC).is_err());
        assert!(write_cell(&Value::Text("x".repeat(MAX_CELL_CHARS + 1)), Tz::UTC).is_err());
    }

    #[test]
    fn numbers_in_text_columns_print_plainly() {
        assert_eq!(
            read_cell(&json!(7), ColumnType::Text, Tz::UTC).unwrap(),
            Value::Text("7".into())
        );
        assert_eq!(
            read_cell(&json!(0.5), ColumnType::Text, Tz::UTC).unwrap(),
            Value::Text("0.5".into())
        );
        assert_eq!(
            read_cell(&json!(true), ColumnType::Text, Tz::UTC).unwrap(),
            Value::Text("TRUE".into())
        );
    }
}
