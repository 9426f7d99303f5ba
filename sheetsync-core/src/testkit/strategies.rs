//! proptest strategies for values and rows, with the edge cases that break sync tools: leading
//! zeros, text that looks like a formula or a number, huge decimals, NaN, dates near the epochs.

use chrono::{DateTime, NaiveDate, NaiveTime};
use proptest::prelude::*;

use crate::model::{ColumnType, Decimal, Row, TableSchema, Value};

/// Any value of type `ty`, or `Null` when `nullable`.
pub fn arb_value_of(ty: ColumnType, nullable: bool) -> BoxedStrategy<Value> {
    let v: BoxedStrategy<Value> = match ty {
        ColumnType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ColumnType::Int => prop_oneof![
            any::<i64>(),
            Just(0i64),
            Just(i64::MAX),
            Just(i64::MIN),
            -1000i64..1000
        ]
        .prop_map(Value::Int)
        .boxed(),
        ColumnType::Decimal => (any::<bool>(), "[0-9]{1,30}", "[0-9]{0,20}")
            .prop_map(|(neg, i, f)| {
                let s = format!("{}{i}.{f}0", if neg { "-" } else { "" });
                Value::Decimal(s.parse::<Decimal>().expect("generated decimal"))
            })
            .boxed(),
        ColumnType::Float => prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            Just(0.1),
            Just(-0.0),
            Just(1e300)
        ]
        .prop_map(Value::Float)
        .boxed(),
        ColumnType::Text => prop_oneof![
            "[ -~]{0,12}",
            "\\PC{0,8}",
            Just("007".to_string()),
            Just("=SUM(A1:A2)".to_string()),
            Just("TRUE".to_string()),
            Just("1e5".to_string()),
            Just(" padded ".to_string()),
            Just("'quoted".to_string()),
        ]
        .prop_map(Value::Text)
        .boxed(),
        ColumnType::Date => (-150_000i32..150_000)
            .prop_map(|d| {
                Value::Date(
                    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(d as i64),
                )
            })
            .boxed(),
        ColumnType::Time => (0u32..86_400, 0u32..1_000_000)
            .prop_map(|(s, us)| {
                Value::Time(NaiveTime::from_num_seconds_from_midnight_opt(s, us * 1000).unwrap())
            })
            .boxed(),
        ColumnType::Timestamp => (-4_000_000_000i64..8_000_000_000, 0u32..1_000_000)
            .prop_map(|(s, us)| {
                Value::Timestamp(DateTime::from_timestamp(s, us * 1000).unwrap().naive_utc())
            })
            .boxed(),
        ColumnType::TimestampTz => (-4_000_000_000i64..8_000_000_000, 0u32..1_000_000)
            .prop_map(|(s, us)| Value::TimestampTz(DateTime::from_timestamp(s, us * 1000).unwrap()))
            .boxed(),
        ColumnType::Uuid => any::<u128>()
            .prop_map(|u| Value::Uuid(uuid::Uuid::from_u128(u)))
            .boxed(),
        ColumnType::Json => prop_oneof![
            any::<i32>().prop_map(|i| serde_json::json!(i)),
            "[a-z]{0,6}".prop_map(|s| serde_json::json!({ "k": s, "n": [1, 2] })),
            Just(serde_json::Value::Null),
        ]
        .prop_map(Value::Json)
        .boxed(),
        ColumnType::Bytes => proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(Value::Bytes)
            .boxed(),
    };
    if nullable {
        prop_oneof![1 => Just(Value::Null), 6 => v].boxed()
    } else {
        v
    }
}

/// Any value of any type.
pub fn arb_value() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        arb_value_of(ColumnType::Bool, false),
        arb_value_of(ColumnType::Int, false),
        arb_value_of(ColumnType::Decimal, false),
        arb_value_of(ColumnType::Float, false),
        arb_value_of(ColumnType::Text, false),
        arb_value_of(ColumnType::Date, false),
        arb_value_of(ColumnType::Time, false),
        arb_value_of(ColumnType::Timestamp, false),
        arb_value_of(ColumnType::TimestampTz, false),
        arb_value_of(ColumnType::Uuid, false),
        arb_value_of(ColumnType::Json, false),
        arb_value_of(ColumnType::Bytes, false),
    ]
    .boxed()
}

/// A row of `schema` (key columns are never `Null`).
pub fn arb_row(schema: &TableSchema) -> BoxedStrategy<Row> {
    let cols: Vec<BoxedStrategy<Value>> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| arb_value_of(c.ty, c.nullable && !schema.is_key(i)))
        .collect();
    cols.prop_map(Row::new).boxed()
}
