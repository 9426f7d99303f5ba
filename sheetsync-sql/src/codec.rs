//! Values between sheetsync and the databases: how each value is bound, and how the databases'
//! text, integer and float forms become values of a column's type.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use sheetsync_core::{ColumnType, Decimal, Value};

pub(crate) use crate::dialect::Bind;
use crate::dialect::Dialect;

/// The bind of a value in a dialect.
pub(crate) fn to_bind(dialect: Dialect, v: &Value) -> Bind {
    match v {
        Value::Null => Bind::Null,
        Value::Bool(b) => Bind::Bool(*b),
        Value::Int(i) => Bind::Int(*i),
        Value::Float(f) => Bind::Float(*f),
        Value::Decimal(d) => Bind::Text(d.as_str().to_string()),
        Value::Text(s) => Bind::Text(s.clone()),
        Value::Date(d) => Bind::Text(d.format("%Y-%m-%d").to_string()),
        Value::Time(t) => Bind::Text(t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(t) => Bind::Text(t.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
        Value::TimestampTz(t) => Bind::Text(match dialect {
            // The adapter's MySQL sessions run with time_zone = '+00:00'.
            Dialect::MySql => t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            _ => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        }),
        Value::Uuid(u) => Bind::Text(u.hyphenated().to_string()),
        Value::Json(j) => Bind::Text(j.to_string()),
        Value::Bytes(b) => Bind::Bytes(b.clone()),
    }
}

/// Parses a database's text form of a value of type `ty` (PostgreSQL's and MySQL's output
/// formats, SQLite's stored text).
pub(crate) fn parse_text(ty: ColumnType, s: &str) -> Result<Value, String> {
    let bad = || format!("{:?} is not a valid {ty}", shorten(s));
    Ok(match ty {
        ColumnType::Bool => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "y" | "yes" | "on" => Value::Bool(true),
            "f" | "false" | "0" | "n" | "no" | "off" => Value::Bool(false),
            _ => return Err(bad()),
        },
        ColumnType::Int => Value::Int(s.trim().parse().map_err(|_| bad())?),
        ColumnType::Decimal => Value::Decimal(s.parse::<Decimal>().map_err(|_| bad())?),
        ColumnType::Float => Value::Float(s.trim().parse().map_err(|_| bad())?),
        ColumnType::Text => Value::Text(s.to_string()),
        ColumnType::Date => {
            Value::Date(NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad())?)
        }
        ColumnType::Time => {
            Value::Time(NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f").map_err(|_| bad())?)
        }
        ColumnType::Timestamp => Value::Timestamp(parse_naive_timestamp(s).ok_or_else(bad)?),
        ColumnType::TimestampTz => {
            let t = s.trim();
            let dt = DateTime::parse_from_rfc3339(t)
                .ok()
                .or_else(|| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z").ok())
                .map(|d| d.with_timezone(&Utc))
                // No offset: the adapter's sessions store and read instants in UTC.
                .or_else(|| parse_naive_timestamp(t).map(|n| n.and_utc()))
                .ok_or_else(bad)?;
            Value::TimestampTz(dt)
        }
        ColumnType::Uuid => Value::Uuid(s.trim().parse().map_err(|_| bad())?),
        ColumnType::Json => Value::Json(serde_json::from_str(s).map_err(|_| bad())?),
        ColumnType::Bytes => Value::Bytes(parse_hex(s.trim()).ok_or_else(bad)?),
    })
}

fn parse_naive_timestamp(s: &str) -> Option<NaiveDateTime> {
    let t = s.trim();
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("\\x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A value of `ty` from an integer the database holds.
pub(crate) fn from_int(ty: ColumnType, i: i64) -> Result<Value, String> {
    Ok(match ty {
        ColumnType::Int => Value::Int(i),
        ColumnType::Bool if i == 0 || i == 1 => Value::Bool(i == 1),
        ColumnType::Decimal => Value::Decimal(Decimal::from_i64(i)),
        ColumnType::Float => Value::Float(i as f64),
        ColumnType::Text => Value::Text(i.to_string()),
        // SQLite stores a JSON number in a column declared JSON (numeric affinity) as a number.
        ColumnType::Json => Value::Json(i.into()),
        _ => return Err(format!("the integer {i} is not a valid {ty}")),
    })
}

/// A value of `ty` from a double the database holds.
pub(crate) fn from_float(ty: ColumnType, f: f64) -> Result<Value, String> {
    Ok(match ty {
        ColumnType::Float => Value::Float(f),
        ColumnType::Decimal => Value::Decimal(
            Decimal::from_f64(f).ok_or_else(|| format!("{f} is not a valid decimal"))?,
        ),
        ColumnType::Int if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
            Value::Int(f as i64)
        }
        ColumnType::Text => Value::Text(f.to_string()),
        ColumnType::Json => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Json(n.into()),
            None => return Err(format!("the number {f} is not a valid {ty}")),
        },
        _ => return Err(format!("the number {f} is not a valid {ty}")),
    })
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_stored_as_numbers_read_back() {
        assert_eq!(
            from_int(ColumnType::Json, 915_767_238),
            Ok(Value::Json(serde_json::json!(915_767_238)))
        );
        assert_eq!(
            from_float(ColumnType::Json, -2.5),
            Ok(Value::Json(serde_json::json!(-2.5)))
        );
        assert!(from_float(ColumnType::Json, f64::NAN).is_err());
    }

    #[test]
    fn text_forms_parse_exactly() {
        assert_eq!(
            parse_text(ColumnType::Decimal, "12345678901234567890.1250").unwrap(),
            Value::Decimal("12345678901234567890.125".parse().unwrap())
        );
        assert_eq!(
            parse_text(ColumnType::Bool, "t").unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            parse_text(ColumnType::Bool, "0").unwrap(),
            Value::Bool(false)
        );
        let ts = parse_text(ColumnType::TimestampTz, "2024-03-01 10:00:00+01").unwrap();
        assert_eq!(
            ts,
            parse_text(ColumnType::TimestampTz, "2024-03-01T09:00:00Z").unwrap()
        );
        assert_eq!(
            parse_text(ColumnType::Timestamp, "2024-02-29 13:45:10.123456").unwrap(),
            parse_text(ColumnType::Timestamp, "2024-02-29T13:45:10.123456").unwrap()
        );
        assert_eq!(
            parse_text(ColumnType::Bytes, "\\x00ff").unwrap(),
            Value::Bytes(vec![0, 255])
        );
        assert!(parse_text(ColumnType::Int, "12x")
            .unwrap_err()
            .contains("12x"));
        assert!(parse_text(ColumnType::Decimal, "NaN").is_err());
        assert_eq!(
            parse_text(ColumnType::Text, " 007 ").unwrap(),
            Value::Text(" 007 ".into())
        );
    }

    #[test]
    fn values_bind_as_text_where_exactness_needs_it() {
        let d: Decimal = "-0.000000000000000000000000000001".parse().unwrap();
        assert_eq!(
            to_bind(Dialect::Postgres, &Value::Decimal(d)),
            Bind::Text("-0.000000000000000000000000000001".into())
        );
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap();
        assert_eq!(
            to_bind(Dialect::Postgres, &Value::TimestampTz(t)),
            Bind::Text("2024-03-01T09:00:00Z".into())
        );
        assert_eq!(
            to_bind(Dialect::MySql, &Value::TimestampTz(t)),
            Bind::Text("2024-03-01 09:00:00".into())
        );
    }

    use chrono::TimeZone;
}
