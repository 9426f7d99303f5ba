//! What the engine persists besides merge bases: write intents, the mapping's identity, the
//! queue of deletes waiting for approval and the log of recent deletes the guard counts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Row, RowHash, RowKey, Side};

/// What the engine is about to write for one row, persisted before any side is written.
///
/// After a crash, or a write whose answer was lost, a side that holds `target` holds the
/// engine's own write, never a person's edit: the engine either completes the intent (every
/// side it was writing holds the target: the target is the agreed row) or rolls its view back
/// (a side that holds the target is merged as it was before the write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteIntent {
    /// The row.
    pub key: RowKey,
    /// What both sides hold once the writes land (`None`: the row is deleted).
    #[serde(with = "exact_row::option")]
    pub target: Option<Row>,
    /// The hash of the live base the writes were planned against (`None`: no base, or a
    /// tombstone). An intent whose base has since changed is obsolete.
    pub base: Option<RowHash>,
    /// The sides being brought to the target, each with what it held as the merge saw it.
    pub sides: Vec<SideBefore>,
}

/// One side of a [`WriteIntent`]: what it held before the engine's write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideBefore {
    /// The side written.
    pub side: Side,
    /// Its row as the merge saw it (`None`: absent).
    #[serde(with = "exact_row::option")]
    pub row: Option<Row>,
    /// When that row changed (engine clock), so a re-merge weighs it as before.
    pub at: u64,
}

impl WriteIntent {
    /// What `side` held before the write, if the intent writes it.
    pub fn before(&self, side: Side) -> Option<&SideBefore> {
        self.sides.iter().find(|s| s.side == side)
    }
}

/// What a mapping's state belongs to: the two sides' identities (see
/// [`Source::identity`](crate::Source::identity)). State recorded for one pair of tables must
/// never be used with another: every base would look deleted on the new side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingIdentity {
    /// The Sheet side's identity (spreadsheet, tab).
    pub sheet: String,
    /// The database side's identity (server, database, schema, table).
    pub db: String,
}

/// A delete the mass-delete guard parked for an operator: the row is still on the other side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelete {
    /// The row.
    pub key: RowKey,
    /// The side the row was deleted on.
    pub deleted_on: Side,
    /// The row as both sides last agreed on it: what the other side still holds, and what
    /// rejecting the delete restores.
    #[serde(with = "exact_row")]
    pub row: Row,
    /// When the delete was parked.
    pub queued_at: DateTime<Utc>,
    /// Why it waits (which limit the deletes exceeded).
    pub reason: String,
    /// An operator's decision, carried out by the next cycle.
    #[serde(default)]
    pub decision: Option<DeleteDecision>,
}

/// What an operator decided about a [`PendingDelete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteDecision {
    /// Delete the row on the other side too.
    Approve,
    /// Restore the row on the side that deleted it.
    Reject,
}

/// How many deletes the engine applied to one side in one cycle, and when: what the
/// mass-delete guard's window adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentDeletes {
    /// The side the rows were deleted from.
    pub side: Side,
    /// When (Unix milliseconds).
    pub at_ms: i64,
    /// How many rows.
    pub count: usize,
}

/// Serialises a row as the hex of its canonical encoding: exact for every value (a float NaN, a
/// long decimal), which the engine relies on when it compares stored rows with what a side holds.
pub(crate) mod exact_row {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::{Row, Value};

    pub fn serialize<S: Serializer>(row: &Row, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(row))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).ok_or_else(|| serde::de::Error::custom("not a canonical row encoding"))
    }

    pub(crate) fn encode(row: &Row) -> String {
        let mut bytes = Vec::with_capacity(16 * row.0.len());
        for v in &row.0 {
            v.encode(&mut bytes);
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn decode(text: &str) -> Option<Row> {
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return None;
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let mut rest = bytes.as_slice();
        let mut values = Vec::new();
        while !rest.is_empty() {
            values.push(Value::decode(&mut rest)?);
        }
        Some(Row::new(values))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(row: &Option<Row>, s: S) -> Result<S::Ok, S::Error> {
            match row {
                Some(r) => s.serialize_some(&encode(r)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Row>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => decode(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("not a canonical row encoding")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    #[test]
    fn intents_and_pending_deletes_round_trip_exactly_through_json() {
        let odd = Row::new(vec![
            Value::Int(1),
            Value::Float(f64::NAN),
            Value::Decimal("-1234567890.000000000000000000001".parse().unwrap()),
            Value::Null,
            Value::Text(String::new()),
        ]);
        let key = RowKey::from_values(&[Value::Int(1)]);
        let intent = WriteIntent {
            key: key.clone(),
            target: Some(odd.clone()),
            base: Some(odd.hash()),
            sides: vec![SideBefore {
                side: Side::Sheet,
                row: None,
                at: u64::MAX,
            }],
        };
        let json = serde_json::to_string(&intent).unwrap();
        let back: WriteIntent = serde_json::from_str(&json).unwrap();
        assert_eq!(back.target.as_ref().map(Row::hash), Some(odd.hash()));
        assert_eq!(back.base, intent.base);
        assert_eq!(back.sides, intent.sides);
        let pending = PendingDelete {
            key,
            deleted_on: Side::Db,
            row: odd.clone(),
            queued_at: Utc::now(),
            reason: "r".into(),
            decision: Some(DeleteDecision::Reject),
        };
        let back: PendingDelete =
            serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
        assert_eq!(back.row.hash(), odd.hash());
        assert_eq!(back.decision, pending.decision);
        assert!(exact_row::decode("zz").is_none());
        assert!(exact_row::decode("0").is_none());
    }
}
