//! Rows, their identity (key) and their content hash.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::schema::TableSchema;
use super::value::Value;

/// One row: a value per schema column, in schema order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// A row of the given values.
    pub fn new(values: Vec<Value>) -> Self {
        Row(values)
    }

    /// The values in schema order.
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    /// The content hash of the canonical encoding of every value.
    pub fn hash(&self) -> RowHash {
        let mut buf = Vec::with_capacity(16 * self.0.len());
        self.encode(&mut buf);
        RowHash::new(xxhash_rust::xxh3::xxh3_128(&buf))
    }

    /// Appends the canonical encoding of every value ([`Value::encode`], what [`Row::hash`]
    /// hashes), which [`Row::decode`] reads back.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in &self.0 {
            v.encode(out);
        }
    }

    /// The row whose [`Row::encode`]ing is all of `bytes`; `None` if any part does not decode.
    pub fn decode(mut bytes: &[u8]) -> Option<Row> {
        let mut values = Vec::new();
        while !bytes.is_empty() {
            values.push(Value::decode(&mut bytes)?);
        }
        Some(Row::new(values))
    }

    /// The row's key under `schema`, or `None` when a key value is `Null` (a new Sheet row that
    /// has not been given a key yet).
    pub fn key(&self, schema: &TableSchema) -> Option<RowKey> {
        let mut buf = Vec::new();
        for &i in &schema.key {
            let v = self.0.get(i)?;
            if v.is_null() {
                return None;
            }
            v.encode(&mut buf);
        }
        Some(RowKey::from_vec(buf))
    }
}

/// A row's identity: the canonical encoding of its key values.
///
/// Keys order by their encoding, which gives the engine a deterministic processing order.
/// Short keys (up to 22 bytes: any integer, a UUID, short text) are stored inline, so the
/// engine's per-row state needs no allocation for them.
#[derive(Clone)]
pub struct RowKey(KeyBytes);

#[derive(Clone)]
enum KeyBytes {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

const INLINE: usize = 22;

impl PartialEq for RowKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for RowKey {}

impl PartialOrd for RowKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RowKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for RowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

impl RowKey {
    fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..bytes.len()].copy_from_slice(&bytes);
            RowKey(KeyBytes::Inline {
                len: bytes.len() as u8,
                buf,
            })
        } else {
            RowKey(KeyBytes::Heap(bytes.into_boxed_slice()))
        }
    }

    /// The key made of these values (in key-column order).
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut buf = Vec::new();
        for v in values {
            v.encode(&mut buf);
        }
        RowKey::from_vec(buf)
    }

    /// The key from its canonical bytes (as persisted by a state store); `None` when the bytes
    /// are not a sequence of encoded values.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut rest = bytes;
        while !rest.is_empty() {
            Value::decode(&mut rest)?;
        }
        Some(RowKey::from_vec(bytes.to_vec()))
    }

    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            KeyBytes::Inline { len, buf } => &buf[..*len as usize],
            KeyBytes::Heap(b) => b,
        }
    }

    /// The key values, in key-column order.
    pub fn values(&self) -> Vec<Value> {
        let mut rest: &[u8] = self.as_bytes();
        let mut out = Vec::new();
        while !rest.is_empty() {
            match Value::decode(&mut rest) {
                Some(v) => out.push(v),
                None => break,
            }
        }
        out
    }
}

impl fmt::Display for RowKey {
    /// The key values joined by `/`, e.g. `42` or `acme/2024-01-31`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = self.values();
        for (i, v) in vals.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowKey({self})")
    }
}

impl Serialize for RowKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.values().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RowKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let values = Vec::<Value>::deserialize(d)?;
        Ok(RowKey::from_values(&values))
    }
}

/// Builds hashers for maps keyed by [`RowKey`]: xxh3 over the key's canonical bytes with a
/// per-map random seed. Faster than the default SipHash on the engine's hot path, and seeded so
/// that keys typed into a Sheet cannot be chosen to collide.
#[derive(Clone)]
pub struct KeyHashBuilder(u64);

impl Default for KeyHashBuilder {
    fn default() -> Self {
        use std::hash::BuildHasher;
        KeyHashBuilder(std::collections::hash_map::RandomState::new().hash_one(0u64))
    }
}

impl std::hash::BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            seed: self.0,
            hash: 0,
        }
    }
}

/// The hasher of [`KeyHashBuilder`].
pub struct KeyHasher {
    seed: u64,
    hash: u64,
}

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.hash = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.seed ^ self.hash);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A hash map keyed by [`RowKey`].
pub type KeyMap<V> = std::collections::HashMap<RowKey, V, KeyHashBuilder>;

/// A 128-bit content hash of a row's canonical encoding.
///
/// Held as two 64-bit halves: a `u128` field would align the engine's per-row base to 16
/// bytes, 24 bytes more per row in its map. It orders, formats (`{:x}`) and serializes as
/// the `u128`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowHash {
    hi: u64,
    lo: u64,
}

impl RowHash {
    /// The hash with this value.
    pub const fn new(value: u128) -> Self {
        RowHash {
            hi: (value >> 64) as u64,
            lo: value as u64,
        }
    }

    /// The hash's value.
    pub const fn get(self) -> u128 {
        ((self.hi as u128) << 64) | self.lo as u128
    }
}

impl fmt::Debug for RowHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowHash({self:032x})")
    }
}

impl fmt::LowerHex for RowHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.get(), f)
    }
}

impl Serialize for RowHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RowHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        u128::deserialize(d).map(RowHash::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, ColumnType};

    #[test]
    fn key_roundtrips_and_null_key_is_unkeyed() {
        let schema = TableSchema::new(
            "t",
            vec![
                Column::new("a", ColumnType::Text),
                Column::new("b", ColumnType::Int),
            ],
            &["a", "b"],
        )
        .unwrap();
        let row = Row::new(vec!["x/y".into(), Value::Int(3)]);
        let key = row.key(&schema).unwrap();
        assert_eq!(key.values(), vec![Value::Text("x/y".into()), Value::Int(3)]);
        assert_eq!(RowKey::from_bytes(key.as_bytes()), Some(key.clone()));
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<RowKey>(&json).unwrap(), key);
        assert!(Row::new(vec![Value::Null, Value::Int(3)])
            .key(&schema)
            .is_none());
        assert!(RowKey::from_bytes(&[200]).is_none());
    }

    #[test]
    fn a_hash_orders_formats_and_serializes_as_its_u128() {
        let (a, b) = (1u128 << 64, (1u128 << 64) - 1);
        assert!(
            RowHash::new(a) > RowHash::new(b),
            "the high half orders first"
        );
        assert_eq!(RowHash::new(a).get(), a);
        assert_eq!(format!("{:032x}", RowHash::new(b)), format!("{b:032x}"));
        let json = serde_json::to_string(&RowHash::new(u128::MAX)).unwrap();
        assert_eq!(json, serde_json::to_string(&u128::MAX).unwrap());
        assert_eq!(
            serde_json::from_str::<RowHash>(&json).unwrap().get(),
            u128::MAX
        );
    }

    #[test]
    fn a_row_decodes_from_its_encoding_and_a_cut_one_does_not() {
        let row = Row::new(vec![Value::Int(7), Value::Null, Value::Text("é".into())]);
        let mut buf = Vec::new();
        row.encode(&mut buf);
        assert_eq!(Row::decode(&buf), Some(row));
        assert_eq!(Row::decode(&buf[..buf.len() - 1]), None);
        assert_eq!(Row::decode(&[]), Some(Row::new(Vec::new())));
    }

    #[test]
    fn hash_depends_on_every_value() {
        let a = Row::new(vec![Value::Int(1), Value::Text("a".into())]);
        let b = Row::new(vec![Value::Int(1), Value::Text("b".into())]);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), a.clone().hash());
    }
}
