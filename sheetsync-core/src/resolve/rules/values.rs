//! Values between sheetsync and CEL. Numbers stay numbers (decimals become doubles, for
//! comparing), dates, times, instants and UUIDs become their ISO-8601 text (which orders as
//! they do), JSON becomes CEL lists and maps.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::Key;

use crate::model::Value;

/// At most this many JSON elements reach a rule from one row: with the rule's bounded size,
/// this bounds what a list macro can cost.
pub(super) const MAX_ELEMENTS: usize = 10_000;

/// A sheetsync value as CEL sees it; `budget` counts JSON elements down.
pub(super) fn to_cel(v: &Value, budget: &mut usize) -> Result<cel::Value, String> {
    Ok(match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Int(i) => cel::Value::Int(*i),
        Value::Float(x) => cel::Value::Float(*x),
        Value::Decimal(d) => cel::Value::Float(
            d.as_str()
                .parse()
                .map_err(|_| format!("the decimal {d} has no double form"))?,
        ),
        Value::Text(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Bytes(b) => cel::Value::Bytes(Arc::new(b.clone())),
        Value::Json(j) => json(j, budget)?,
        other => cel::Value::String(Arc::new(other.to_string())),
    })
}

fn json(j: &serde_json::Value, budget: &mut usize) -> Result<cel::Value, String> {
    use serde_json::Value as J;
    *budget = budget.checked_sub(1).ok_or_else(|| {
        format!("cost limit: JSON values of more than {MAX_ELEMENTS} elements in one row")
    })?;
    Ok(match j {
        J::Null => cel::Value::Null,
        J::Bool(b) => cel::Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => cel::Value::String(Arc::new(s.clone())),
        J::Array(a) => {
            let items: Result<Vec<_>, _> = a.iter().map(|x| json(x, budget)).collect();
            cel::Value::List(Arc::new(items?))
        }
        J::Object(o) => {
            let mut map: HashMap<Key, cel::Value> = HashMap::with_capacity(o.len());
            for (k, x) in o {
                map.insert(Key::from(k.as_str()), json(x, budget)?);
            }
            cel::Value::Map(map.into())
        }
    })
}

/// The value a field rule returned, before it is converted to the column's type. A map
/// `{"value": x}` returns `x` itself (so a text column can be set to the word "sheet", or a
/// field to null); a bare `null` is not a decision.
pub(super) fn from_cel(v: &cel::Value) -> Result<Value, String> {
    Ok(match v {
        cel::Value::Map(m) if m.map.len() == 1 => match m.map.get(&Key::from("value")) {
            Some(cel::Value::Null) => Value::Null,
            Some(x) => from_cel(x)?,
            None => return Err(format!("it returned {}", describe(v))),
        },
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::Int(i) => Value::Int(*i),
        cel::Value::UInt(u) => {
            Value::Int(i64::try_from(*u).map_err(|_| format!("{u} is too large"))?)
        }
        cel::Value::Float(x) => Value::Float(*x),
        cel::Value::String(s) => Value::Text(s.to_string()),
        cel::Value::Bytes(b) => Value::Bytes(b.to_vec()),
        cel::Value::Null => {
            return Err(
                "it returned null, which is not a decision: return \"next\" to leave the \
                        conflict to the next resolver, or {\"value\": null} to empty the field"
                    .into(),
            )
        }
        other => return Err(format!("it returned {}", describe(other))),
    })
}

/// A short description of a CEL value for messages.
pub(super) fn describe(v: &cel::Value) -> String {
    match v {
        cel::Value::String(s) => format!("{:?}", s.as_str()),
        cel::Value::Int(i) => format!("the int {i}"),
        cel::Value::Float(x) => format!("the double {x}"),
        cel::Value::Bool(b) => format!("the bool {b}"),
        cel::Value::Null => "null".into(),
        cel::Value::List(_) => "a list".into(),
        cel::Value::Map(_) => "a map".into(),
        _ => "a value of another type".into(),
    }
}
