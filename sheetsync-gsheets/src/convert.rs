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
//! | date, time, timestamp | serial number (days since 1899-12-30, time as the fraction) when it reads back exactly, else ISO text | serial number or ISO text |
//! | timestamp with time zone | serial number in the spreadsheet's time zone when it reads back exactly, else text with its offset | same, or RFC 3339 text |
//! | uuid, json, bytes | text (bytes as `\x…` hex) | text |
//! | NULL | empty cell | empty cell |
//!
//! # Dates and times are exact
//!
//! A serial is a double, so it holds a date-time only to a fraction of its own size: about
//! 0.6 µs for the years 1900–2079 (serials below 2^16 days), 40 µs around the year 9999. The
//! rules that keep every round trip exact (a value written and read back is the same value, so a
//! full read never reports a change nobody made):
//!
//! * **Reading** a serial gives the coarsest value within one unit in the last place of it: a
//!   whole second if there is one, else a whole millisecond, else the nearest microsecond
//!   (computed exactly, not with a rounded product). So whatever a person types (at most
//!   milliseconds) reads back as typed, even where Google's arithmetic is an ulp away from ours.
//! * **Writing** uses a number only when reading that number gives the value back; otherwise the
//!   value is written as text (`2150-01-01 12:00:00.000001`, `2026-11-01 01:30:00-05:00`), which
//!   reads back exactly.
//!
//! Measured bounds (see the tests): every microsecond value from 1720-07-25 to 2079-06-05
//! (serials of magnitude below 65,536) is written as a number; whole milliseconds, seconds and
//! days are written as numbers for every serial up to ±3,000,000 days (the years −6314 to 10113).
//! Outside those bounds a value is a number where it happens to read back exactly and text
//! otherwise. Sub-microsecond times (SQLite text can hold nanoseconds) are written as text.
//!
//! # Time zones
//!
//! A timestamp with time zone is written as the local time of the spreadsheet's time zone. A
//! local time read from a cell names an instant as follows:
//!
//! * a local time that occurs twice (the repeated hour when clocks go back) is the **earlier**
//!   instant. The later instant of such an hour is therefore written as text with its offset
//!   (`2026-11-01 01:30:00-05:00`), so it reads back as itself;
//! * a local time that does not occur (the hour skipped when clocks go forward; only a person can
//!   type one) is read with the offset in effect **before** the jump, as java.time and JavaScript
//!   do: 02:30 in a 02:00→03:00 gap is the instant shown as 03:30 afterwards.
//!
//! Text cells of a timestamp-with-time-zone column may carry an offset (RFC 3339 or
//! `YYYY-MM-DD HH:MM:SS±HH:MM`) or none, in which case they are local times as above.

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use serde_json::Value as Json;
use sheetsync_core::{ColumnType, Decimal, Value};

/// Google's limit on the characters in one cell.
pub const MAX_CELL_CHARS: usize = 50_000;

const MAX_SAFE_INT: i64 = 1 << 53;
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// The largest serial (in days, either sign) read as a date: about the year 10113.
const MAX_SERIAL: f64 = 3_000_000.0;

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1899, 12, 30)
        .expect("valid date")
        .and_hms_opt(0, 0, 0)
        .expect("valid time")
}

/// A naive date-time as a serial number: its whole microseconds since 1899-12-30, in days.
/// Whether the serial holds the value exactly is for [`write_cell`] to check.
pub fn to_serial(t: NaiveDateTime) -> f64 {
    let d = t - epoch();
    d.num_microseconds()
        .map_or(d.num_seconds() as f64 / 86_400.0, |us| {
            us as f64 / MICROS_PER_DAY as f64
        })
}

/// A serial number as a naive date-time: the coarsest value within one unit in the last place
/// of the serial (a whole second, else a whole millisecond), else the nearest microsecond.
/// `None` for serials that are not finite or beyond ±3,000,000 days.
pub fn from_serial(serial: f64) -> Option<NaiveDateTime> {
    if !serial.is_finite() || serial.abs() > MAX_SERIAL {
        return None;
    }
    let micros = serial_micros(serial);
    epoch().checked_add_signed(Duration::microseconds(i64::try_from(micros).ok()?))
}

/// The microseconds a serial stands for (see [`from_serial`]), in exact integer arithmetic:
/// `serial × 86,400,000,000` is `num / 2^shift` with no rounding.
fn serial_micros(serial: f64) -> i128 {
    let bits = serial.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        return 0; // zero or subnormal: far below a microsecond
    }
    let mantissa = i128::from((bits & ((1 << 52) - 1)) | (1 << 52));
    let sign = if bits >> 63 == 1 { -1 } else { 1 };
    let num = sign * mantissa * i128::from(MICROS_PER_DAY);
    // serial = mantissa × 2^(exp - 1075); |serial| ≤ MAX_SERIAL keeps the exponent below 0.
    let shift = 1075 - exp;
    if shift > 100 {
        return 0; // |serial| < 2^-48 days: below a nanosecond
    }
    // One unit in the last place of the serial is `MICROS_PER_DAY / 2^shift` microseconds.
    let ulp = i128::from(MICROS_PER_DAY);
    let nearest = |unit: i128| div_round(num, unit << shift) * unit;
    [1_000_000, 1_000]
        .into_iter()
        .map(nearest)
        .find(|c| ((c << shift) - num).abs() <= ulp)
        .unwrap_or_else(|| nearest(1))
}

/// `a / b` rounded to the nearest integer, halves away from zero (`b > 0`).
fn div_round(a: i128, b: i128) -> i128 {
    let q = (2 * a.abs() + b) / (2 * b);
    if a < 0 {
        -q
    } else {
        q
    }
}

/// The instant a local date-time of `tz` names: the earlier one when the local time occurs
/// twice, and for a local time that never occurs (skipped by a jump forward) the one read with
/// the offset in effect before the jump.
pub fn instant_of_local(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => {
            let before: FixedOffset = tz
                .from_local_datetime(&local.checked_sub_signed(Duration::days(1))?)
                .earliest()?
                .offset()
                .fix();
            Some(
                before
                    .from_local_datetime(&local)
                    .single()?
                    .with_timezone(&Utc),
            )
        }
    }
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
            _ => parse_text(ty, cell.as_str().ok_or_else(bad)?, tz).ok_or_else(bad)?,
        },
        ColumnType::Time => match cell {
            Json::Number(n) => {
                let f = n.as_f64().ok_or_else(bad)?;
                if !(0.0..1.0).contains(&f) {
                    return Err(bad());
                }
                Value::Time(from_serial(f).ok_or_else(bad)?.time())
            }
            _ => parse_text(ty, cell.as_str().ok_or_else(bad)?, tz).ok_or_else(bad)?,
        },
        ColumnType::Timestamp => match cell {
            Json::Number(n) => Value::Timestamp(n.as_f64().and_then(from_serial).ok_or_else(bad)?),
            _ => parse_text(ty, cell.as_str().ok_or_else(bad)?, tz).ok_or_else(bad)?,
        },
        ColumnType::TimestampTz => match cell {
            Json::Number(n) => {
                let local = n.as_f64().and_then(from_serial).ok_or_else(bad)?;
                let at = instant_of_local(local, tz).ok_or_else(|| {
                    CellError(format!("{} has no instant in time zone {tz}", shown(cell)))
                })?;
                Value::TimestampTz(at)
            }
            _ => parse_text(ty, cell.as_str().ok_or_else(bad)?, tz).ok_or_else(bad)?,
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
        Value::Date(d) => serial_or_text(v, d.and_time(NaiveTime::MIN), tz),
        Value::Time(t) => serial_or_text(v, epoch().date().and_time(*t), tz),
        Value::Timestamp(t) => serial_or_text(v, *t, tz),
        Value::TimestampTz(t) => serial_or_text(v, t.with_timezone(&tz).naive_local(), tz),
        other => Json::String(other.to_string()),
    })
}

/// The serial of `local` when that number reads back as exactly `v`; else `v`'s text form,
/// which does.
fn serial_or_text(v: &Value, local: NaiveDateTime, tz: Tz) -> Json {
    let ty = v.column_type().expect("a temporal value has a type");
    let number = Json::from(to_serial(local));
    if read_cell(&number, ty, tz).as_ref() == Ok(v) {
        return number;
    }
    Json::String(match v {
        Value::Date(d) => d.format(DATE).to_string(),
        Value::Time(t) => t.format(TIME).to_string(),
        Value::Timestamp(t) => t.format(TIMESTAMP).to_string(),
        Value::TimestampTz(t) => {
            let local = t.with_timezone(&tz);
            // Local mean times before standard zones have offsets with seconds (New York's
            // -04:56:02).
            let format = if local.offset().fix().local_minus_utc() % 60 == 0 {
                TIMESTAMP_TZ
            } else {
                TIMESTAMP_TZ_SECONDS
            };
            local.format(format).to_string()
        }
        other => other.to_string(),
    })
}

const DATE: &str = "%Y-%m-%d";
const TIME: &str = "%H:%M:%S%.f";
const TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S%.f";
const TIMESTAMP_TZ: &str = "%Y-%m-%d %H:%M:%S%.f%:z";
const TIMESTAMP_TZ_SECONDS: &str = "%Y-%m-%d %H:%M:%S%.f%::z";

/// A temporal value from text: the forms [`write_cell`] writes, then [`Value::parse`]'s; a
/// timestamp-with-time-zone text without an offset is a local time of `tz`.
fn parse_text(ty: ColumnType, s: &str, tz: Tz) -> Option<Value> {
    let t = s.trim();
    let naive = || NaiveDateTime::parse_from_str(t, TIMESTAMP).ok();
    let parsed = match ty {
        ColumnType::Date => NaiveDate::parse_from_str(t, DATE).ok().map(Value::Date),
        ColumnType::Time => NaiveTime::parse_from_str(t, TIME).ok().map(Value::Time),
        ColumnType::Timestamp => naive().map(Value::Timestamp),
        ColumnType::TimestampTz => DateTime::parse_from_str(t, TIMESTAMP_TZ)
            .ok()
            .or_else(|| with_seconds_offset(t))
            .map(|d| d.with_timezone(&Utc))
            .or_else(|| naive().and_then(|l| instant_of_local(l, tz)))
            .map(Value::TimestampTz),
        _ => None,
    };
    parsed.or_else(|| Value::parse(ty, s).ok())
}

/// `YYYY-MM-DD HH:MM:SS[.f]±HH:MM:SS` (chrono formats `%::z` but does not parse it).
fn with_seconds_offset(t: &str) -> Option<DateTime<FixedOffset>> {
    let (local, offset) = t.split_at_checked(t.len().checked_sub(9)?)?;
    let sign = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hms = NaiveTime::parse_from_str(&offset[1..], "%H:%M:%S").ok()?;
    let secs = i32::try_from(hms.signed_duration_since(NaiveTime::MIN).num_seconds()).ok()?;
    let local = NaiveDateTime::parse_from_str(local, TIMESTAMP).ok()?;
    FixedOffset::east_opt(sign * secs)?
        .from_local_datetime(&local)
        .single()
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

    /// The API's answers carry numbers as JSON: parsing them must be correctly rounded (the
    /// workspace enables serde_json's `float_roundtrip`), or an untouched float or serial
    /// timestamp reads back one unit in the last place off and looks edited.
    #[test]
    fn json_numbers_parse_exactly() {
        for f in [
            -2.0983272816541072e86_f64,
            4.904872156104402e-241,
            107942.38430269784,
            116262.9372311176,
        ] {
            let text = serde_json::to_string(&f).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_bits(), f.to_bits(), "{text}");
            let cell: Json = serde_json::from_str(&text).unwrap();
            assert_eq!(cell.as_f64().map(f64::to_bits), Some(f.to_bits()), "{text}");
        }
    }
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

    /// A tiny deterministic generator (the test needs many values, not a dependency).
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 11
    }

    fn micros_after(start: NaiveDateTime, span_days: u64, state: &mut u64) -> NaiveDateTime {
        start + Duration::microseconds((lcg(state) % (span_days * 86_400_000_000)) as i64)
    }

    #[test]
    fn microsecond_timestamps_of_2026_read_back_exactly_as_numbers() {
        // Before reading serials exactly, about one in ten of these read back 1 µs off, and
        // every full read reported a change nobody made.
        let start = NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_time(NaiveTime::MIN);
        let mut state = 1;
        for _ in 0..200_000 {
            let t = micros_after(start, 365, &mut state);
            let cell = write_cell(&Value::Timestamp(t), Tz::UTC).unwrap();
            assert!(cell.is_number(), "{t} is written as {cell}");
            assert_eq!(
                read_cell(&cell, ColumnType::Timestamp, Tz::UTC).unwrap(),
                Value::Timestamp(t),
                "cell {cell}"
            );
        }
    }

    #[test]
    fn serials_hold_every_microsecond_to_2079_and_every_millisecond_to_10113() {
        let mut state = 7;
        let from = NaiveDate::from_ymd_opt(1720, 7, 25)
            .unwrap()
            .and_time(NaiveTime::MIN);
        let days = (NaiveDate::from_ymd_opt(2079, 6, 5).unwrap() - from.date()).num_days() as u64;
        for _ in 0..100_000 {
            let t = micros_after(from, days, &mut state);
            assert_eq!(
                from_serial(to_serial(t)),
                Some(t),
                "{t} (serial {})",
                to_serial(t)
            );
        }
        // Whole milliseconds (and so seconds and days) over the whole serial range.
        let from = NaiveDate::from_ymd_opt(-6313, 1, 1)
            .unwrap()
            .and_time(NaiveTime::MIN);
        let days = (NaiveDate::from_ymd_opt(10113, 1, 1).unwrap() - from.date()).num_days() as u64;
        for _ in 0..100_000 {
            let t = micros_after(from, days, &mut state);
            let t = t - Duration::microseconds(i64::from(
                t.and_utc().timestamp_subsec_micros() % 1_000,
            ));
            assert!(to_serial(t).abs() <= MAX_SERIAL);
            assert_eq!(from_serial(to_serial(t)), Some(t), "{t}");
        }
        // Where a number cannot hold a microsecond value, the value is written as text.
        let t = NaiveDate::from_ymd_opt(2150, 1, 1)
            .unwrap()
            .and_hms_micro_opt(12, 0, 0, 1)
            .unwrap();
        assert_ne!(
            from_serial(to_serial(t)),
            Some(t),
            "2150 holds only ~1.3 µs"
        );
        let cell = write_cell(&Value::Timestamp(t), Tz::UTC).unwrap();
        assert_eq!(cell, json!("2150-01-01 12:00:00.000001"));
        assert_eq!(
            read_cell(&cell, ColumnType::Timestamp, Tz::UTC).unwrap(),
            Value::Timestamp(t)
        );
    }

    #[test]
    fn whole_seconds_read_back_as_whole_seconds_in_every_year() {
        // The serial of a whole second in 2100, computed the way the Apps Script computes it
        // (Unix milliseconds / 86,400,000 + 25,569): an ulp away from ours, and 1 µs off when
        // rounded to the nearest microsecond.
        let ms: i64 = 4_128_339_180_000;
        let script = ms as f64 / 86_400_000.0 + 25_569.0;
        let t = DateTime::from_timestamp_millis(ms).unwrap().naive_utc();
        assert_ne!(script, to_serial(t));
        assert_eq!(from_serial(script), Some(t));
        // The sentinel people store for "forever", where a serial holds only ~40 µs.
        let forever = NaiveDate::from_ymd_opt(9999, 12, 31)
            .unwrap()
            .and_hms_opt(23, 59, 59)
            .unwrap();
        let cell = write_cell(&Value::Timestamp(forever), Tz::UTC).unwrap();
        assert!(cell.is_number(), "{cell}");
        assert_eq!(
            read_cell(&cell, ColumnType::Timestamp, Tz::UTC).unwrap(),
            Value::Timestamp(forever)
        );
    }

    #[test]
    fn an_instant_in_the_repeated_hour_reads_back_as_itself() {
        // 2026-11-01 in New York: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
        let tz: Tz = "America/New_York".parse().unwrap();
        let first = Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap();
        let second = Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap();
        let cell = write_cell(&Value::TimestampTz(first), tz).unwrap();
        assert!(cell.is_number(), "{cell}");
        let cell2 = write_cell(&Value::TimestampTz(second), tz).unwrap();
        assert_eq!(cell2, json!("2026-11-01 01:30:00-05:00"));
        for (c, t) in [(cell, first), (cell2, second)] {
            assert_eq!(
                read_cell(&c, ColumnType::TimestampTz, tz).unwrap(),
                Value::TimestampTz(t),
                "{c}"
            );
        }
        // A person's 01:30 in that hour (text without an offset) is the earlier instant.
        assert_eq!(
            read_cell(&json!("2026-11-01 01:30:00"), ColumnType::TimestampTz, tz).unwrap(),
            Value::TimestampTz(first)
        );
    }

    #[test]
    fn a_local_time_in_a_gap_takes_the_offset_before_it() {
        // 2026-03-08 in New York: clocks jump from 02:00 EST to 03:00 EDT.
        let tz: Tz = "America/New_York".parse().unwrap();
        let local = NaiveDate::from_ymd_opt(2026, 3, 8)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        let want = Value::TimestampTz(Utc.with_ymd_and_hms(2026, 3, 8, 7, 30, 0).unwrap());
        let cell = Json::from(to_serial(local));
        assert_eq!(read_cell(&cell, ColumnType::TimestampTz, tz).unwrap(), want);
        assert_eq!(
            read_cell(&json!("2026-03-08 02:30:00"), ColumnType::TimestampTz, tz).unwrap(),
            want
        );
        // Europe/Berlin jumps at 01:00 UTC: the same rule, east of Greenwich.
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let local = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(
            read_cell(&Json::from(to_serial(local)), ColumnType::TimestampTz, tz).unwrap(),
            Value::TimestampTz(Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap())
        );
    }
}
