//! Typed cell/column values and their one canonical encoding.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::decimal::Decimal;
use super::schema::ColumnType;

/// One value of a column, as both sides agree on it.
///
/// Adapters convert their native representation (a SQL type, a Sheet cell) into the value of the
/// column's [`ColumnType`]; the engine compares values only through [`Value::encode`], so two
/// values are equal exactly when their canonical encodings are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// SQL `NULL`; an empty Sheet cell.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// An exact decimal.
    Decimal(Decimal),
    /// A double. `-0.0` equals `0.0` and every NaN equals every other NaN.
    Float(f64),
    /// Text, kept exactly (leading zeros, leading `=`, whitespace).
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A time of day.
    Time(NaiveTime),
    /// A timestamp without time zone.
    Timestamp(NaiveDateTime),
    /// An instant (timestamp with time zone), kept in UTC.
    TimestampTz(DateTime<Utc>),
    /// A UUID.
    Uuid(uuid::Uuid),
    /// A JSON document; object keys compare in sorted order.
    Json(serde_json::Value),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

/// Why a value does not convert to a column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not a valid {expected}")]
pub struct ConvertError {
    /// A short rendering of the offending value.
    pub value: String,
    /// The expected type.
    pub expected: ColumnType,
}

mod tag {
    pub const NULL: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const DECIMAL: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const TEXT: u8 = 5;
    pub const DATE: u8 = 6;
    pub const TIME: u8 = 7;
    pub const TIMESTAMP: u8 = 8;
    pub const TIMESTAMPTZ: u8 = 9;
    pub const UUID: u8 = 10;
    pub const JSON: u8 = 11;
    pub const BYTES: u8 = 12;
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends the canonical encoding: a type tag and a length-delimited payload. The encoding is
    /// stable across versions and platforms (it is persisted in state stores) and decodable with
    /// [`Value::decode`].
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
            out.push(tag);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
        match self {
            Value::Null => out.push(tag::NULL),
            Value::Bool(b) => out.extend_from_slice(&[tag::BOOL, *b as u8]),
            Value::Int(i) => {
                out.push(tag::INT);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Decimal(d) => bytes(out, tag::DECIMAL, d.as_str().as_bytes()),
            Value::Float(f) => {
                out.push(tag::FLOAT);
                out.extend_from_slice(&canonical_float_bits(*f).to_be_bytes());
            }
            Value::Text(s) => bytes(out, tag::TEXT, s.as_bytes()),
            Value::Date(d) => {
                out.push(tag::DATE);
                out.extend_from_slice(&d.num_days_from_ce().to_be_bytes());
            }
            Value::Time(t) => {
                out.push(tag::TIME);
                out.extend_from_slice(&t.num_seconds_from_midnight().to_be_bytes());
                out.extend_from_slice(&t.nanosecond().to_be_bytes());
            }
            Value::Timestamp(ts) => {
                out.push(tag::TIMESTAMP);
                let utc = ts.and_utc();
                out.extend_from_slice(&utc.timestamp().to_be_bytes());
                out.extend_from_slice(&utc.timestamp_subsec_nanos().to_be_bytes());
            }
            Value::TimestampTz(ts) => {
                out.push(tag::TIMESTAMPTZ);
                out.extend_from_slice(&ts.timestamp().to_be_bytes());
                out.extend_from_slice(&ts.timestamp_subsec_nanos().to_be_bytes());
            }
            Value::Uuid(u) => {
                out.push(tag::UUID);
                out.extend_from_slice(u.as_bytes());
            }
            // serde_json's map is a BTreeMap (no `preserve_order`), so keys serialise sorted.
            Value::Json(j) => bytes(out, tag::JSON, j.to_string().as_bytes()),
            Value::Bytes(b) => bytes(out, tag::BYTES, b),
        }
    }

    /// Decodes one value from the front of `input`, advancing it.
    pub fn decode(input: &mut &[u8]) -> Option<Value> {
        fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if input.len() < n {
                return None;
            }
            let (a, b) = input.split_at(n);
            *input = b;
            Some(a)
        }
        fn arr<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
            take(input, N)?.try_into().ok()
        }
        fn sized<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
            let n = u32::from_be_bytes(arr(input)?) as usize;
            take(input, n)
        }
        fn text(input: &mut &[u8]) -> Option<String> {
            String::from_utf8(sized(input)?.to_vec()).ok()
        }
        let t = *take(input, 1)?.first()?;
        Some(match t {
            tag::NULL => Value::Null,
            tag::BOOL => Value::Bool(take(input, 1)?[0] != 0),
            tag::INT => Value::Int(i64::from_be_bytes(arr(input)?)),
            tag::DECIMAL => Value::Decimal(text(input)?.parse().ok()?),
            tag::FLOAT => Value::Float(f64::from_bits(u64::from_be_bytes(arr(input)?))),
            tag::TEXT => Value::Text(text(input)?),
            tag::DATE => Value::Date(NaiveDate::from_num_days_from_ce_opt(i32::from_be_bytes(
                arr(input)?,
            ))?),
            tag::TIME => {
                let secs = u32::from_be_bytes(arr(input)?);
                let nanos = u32::from_be_bytes(arr(input)?);
                Value::Time(NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)?)
            }
            tag::TIMESTAMP | tag::TIMESTAMPTZ => {
                let secs = i64::from_be_bytes(arr(input)?);
                let nanos = u32::from_be_bytes(arr(input)?);
                let ts = DateTime::from_timestamp(secs, nanos)?;
                if t == tag::TIMESTAMP {
                    Value::Timestamp(ts.naive_utc())
                } else {
                    Value::TimestampTz(ts)
                }
            }
            tag::UUID => Value::Uuid(uuid::Uuid::from_bytes(arr(input)?)),
            tag::JSON => Value::Json(serde_json::from_str(&text(input)?).ok()?),
            tag::BYTES => Value::Bytes(sized(input)?.to_vec()),
            _ => return None,
        })
    }

    /// The canonical encoding as a new vector.
    pub fn to_canonical(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// The type this value naturally has, or `None` for `Null`.
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => ColumnType::Bool,
            Value::Int(_) => ColumnType::Int,
            Value::Decimal(_) => ColumnType::Decimal,
            Value::Float(_) => ColumnType::Float,
            Value::Text(_) => ColumnType::Text,
            Value::Date(_) => ColumnType::Date,
            Value::Time(_) => ColumnType::Time,
            Value::Timestamp(_) => ColumnType::Timestamp,
            Value::TimestampTz(_) => ColumnType::TimestampTz,
            Value::Uuid(_) => ColumnType::Uuid,
            Value::Json(_) => ColumnType::Json,
            Value::Bytes(_) => ColumnType::Bytes,
        })
    }

    /// Parses the text form of a value of type `ty` (what [`Value`]'s `Display` prints). The empty
    /// string is `Null` for every type but `Text`, where it stays an empty text.
    pub fn parse(ty: ColumnType, s: &str) -> Result<Value, ConvertError> {
        let err = || ConvertError {
            value: shorten(s),
            expected: ty,
        };
        if s.is_empty() && ty != ColumnType::Text {
            return Ok(Value::Null);
        }
        Ok(match ty {
            ColumnType::Bool => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "1" | "yes" => Value::Bool(true),
                "false" | "f" | "0" | "no" => Value::Bool(false),
                _ => return Err(err()),
            },
            ColumnType::Int => Value::Int(s.trim().parse().map_err(|_| err())?),
            ColumnType::Decimal => Value::Decimal(s.parse().map_err(|_| err())?),
            ColumnType::Float => Value::Float(s.trim().parse().map_err(|_| err())?),
            ColumnType::Text => Value::Text(s.to_string()),
            ColumnType::Date => Value::Date(s.trim().parse().map_err(|_| err())?),
            ColumnType::Time => Value::Time(s.trim().parse().map_err(|_| err())?),
            ColumnType::Timestamp => {
                let t = s.trim();
                Value::Timestamp(
                    t.parse::<NaiveDateTime>()
                        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
                        .map_err(|_| err())?,
                )
            }
            ColumnType::TimestampTz => Value::TimestampTz(
                DateTime::parse_from_rfc3339(s.trim())
                    .map_err(|_| err())?
                    .with_timezone(&Utc),
            ),
            ColumnType::Uuid => Value::Uuid(s.trim().parse().map_err(|_| err())?),
            ColumnType::Json => Value::Json(serde_json::from_str(s).map_err(|_| err())?),
            ColumnType::Bytes => Value::Bytes(parse_hex(s.trim()).ok_or_else(err)?),
        })
    }

    /// Converts this value to the column's type where that loses nothing (an `Int` into a
    /// `Decimal` column, a whole `Float` into an `Int` column, text through [`Value::parse`]).
    pub fn coerce(self, ty: ColumnType) -> Result<Value, ConvertError> {
        if self.column_type().is_none_or(|t| t == ty) {
            return Ok(self);
        }
        let err = |v: &Value| ConvertError {
            value: shorten(&v.to_string()),
            expected: ty,
        };
        match (&self, ty) {
            (Value::Text(s), _) => Value::parse(ty, s),
            (Value::Int(i), ColumnType::Decimal) => Ok(Value::Decimal(Decimal::from_i64(*i))),
            (Value::Int(i), ColumnType::Float) if i.unsigned_abs() < (1 << 53) => {
                Ok(Value::Float(*i as f64))
            }
            (Value::Float(f), ColumnType::Int)
                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 =>
            {
                Ok(Value::Int(*f as i64))
            }
            (Value::Float(f), ColumnType::Decimal) => Decimal::from_f64(*f)
                .map(Value::Decimal)
                .ok_or_else(|| err(&self)),
            (Value::Decimal(d), ColumnType::Int) => {
                d.as_str().parse().map(Value::Int).map_err(|_| err(&self))
            }
            (Value::Decimal(d), ColumnType::Float) => d
                .to_f64_lossless()
                .map(Value::Float)
                .ok_or_else(|| err(&self)),
            (Value::Int(i), ColumnType::Bool) if *i == 0 || *i == 1 => Ok(Value::Bool(*i == 1)),
            (Value::Timestamp(t), ColumnType::TimestampTz) => Ok(Value::TimestampTz(t.and_utc())),
            (Value::TimestampTz(t), ColumnType::Timestamp) => Ok(Value::Timestamp(t.naive_utc())),
            (_, ColumnType::Text) => Ok(Value::Text(self.to_string())),
            _ => Err(err(&self)),
        }
    }
}

/// The float's bits with `-0.0` folded into `0.0` and every NaN into one NaN.
fn canonical_float_bits(f: f64) -> u64 {
    if f.is_nan() {
        f64::NAN.to_bits()
    } else if f == 0.0 {
        0
    } else {
        f.to_bits()
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
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

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => {
                canonical_float_bits(*a) == canonical_float_bits(*b)
            }
            (Value::Json(a), Value::Json(b)) => a == b,
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Decimal(a), Value::Decimal(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Time(a), Value::Time(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::TimestampTz(a), Value::TimestampTz(b)) => a == b,
            (Value::Uuid(a), Value::Uuid(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.to_canonical());
    }
}

impl fmt::Display for Value {
    /// The text form [`Value::parse`] reads back: ISO dates, RFC 3339 instants, hex bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Value::Time(t) => write!(f, "{}", t.format("%H:%M:%S%.f")),
            Value::Timestamp(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.f")),
            Value::TimestampTz(t) => write!(f, "{}", t.to_rfc3339()),
            Value::Uuid(u) => write!(f, "{u}"),
            Value::Json(j) => write!(f, "{j}"),
            Value::Bytes(b) => {
                f.write_str("\\x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value { Value::$v(x.into()) }
        }
    )*};
}

value_from! {
    bool => Bool, i64 => Int, i32 => Int, f64 => Float, String => Text, &str => Text,
    Decimal => Decimal, NaiveDate => Date, NaiveTime => Time, NaiveDateTime => Timestamp,
    DateTime<Utc> => TimestampTz, uuid::Uuid => Uuid, serde_json::Value => Json, Vec<u8> => Bytes,
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Value {
        x.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_equality_folds_float_zero_and_nan() {
        assert_eq!(Value::Float(-0.0), Value::Float(0.0));
        assert_eq!(Value::Float(f64::NAN), Value::Float(-f64::NAN));
        assert_eq!(
            Value::Float(-0.0).to_canonical(),
            Value::Float(0.0).to_canonical()
        );
        assert_ne!(Value::Int(1), Value::Float(1.0));
        assert_ne!(Value::Text("".into()), Value::Null);
    }

    #[test]
    fn text_keeps_leading_zeros_and_formulas() {
        let v = Value::parse(ColumnType::Text, "007").unwrap();
        assert_eq!(v, Value::Text("007".into()));
        let v = Value::parse(ColumnType::Text, "=1+1").unwrap();
        assert_eq!(v.to_string(), "=1+1");
    }

    #[test]
    fn parse_errors_name_value_and_type() {
        let e = Value::parse(ColumnType::Int, "12x").unwrap_err();
        assert_eq!(e.to_string(), "\"12x\" is not a valid integer");
        assert_eq!(Value::parse(ColumnType::Int, "").unwrap(), Value::Null);
    }

    #[test]
    fn coerce_is_lossless_or_fails() {
        assert_eq!(
            Value::Float(3.0).coerce(ColumnType::Int).unwrap(),
            Value::Int(3)
        );
        assert!(Value::Float(3.5).coerce(ColumnType::Int).is_err());
        assert_eq!(
            Value::Int(7).coerce(ColumnType::Decimal).unwrap(),
            Value::Decimal("7".parse().unwrap())
        );
        assert!(Value::Text("abc".into()).coerce(ColumnType::Date).is_err());
    }

    #[test]
    fn json_key_order_does_not_matter() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":[1,2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap();
        assert_eq!(Value::Json(a).to_canonical(), Value::Json(b).to_canonical());
    }
}
