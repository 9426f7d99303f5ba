//! The last full read, kept to be served again while the file's Drive version stays the same
//! (no Sheets quota spent). It is kept compact: the engine holds the same rows as its bases, so
//! a second copy as values would cost about 250 bytes a row; as the rows' canonical encoding
//! in one buffer it costs the encoded bytes and one offset.

use super::*;

/// A full read's observations, compact.
#[derive(Debug, Default)]
pub(super) struct KeptRead {
    /// Every plain row, [`Row::encode`]d one after another.
    bytes: Vec<u8>,
    entries: Vec<Kept>,
}

#[derive(Debug)]
enum Kept {
    /// A row read as it is, with no time of its own: its values end at this offset.
    Row { end: usize },
    /// Anything else (a held row, an unkeyed row, a row with a person's edit time).
    Other(Box<Observation>),
}

impl KeptRead {
    /// Keeps `observations`.
    pub(super) fn new(observations: &[Observation]) -> Self {
        let mut kept = KeptRead {
            bytes: Vec::new(),
            entries: Vec::with_capacity(observations.len()),
        };
        for o in observations {
            let entry = match (&o.change, o.at) {
                (Change::Upsert(row), None) => {
                    row.encode(&mut kept.bytes);
                    Kept::Row {
                        end: kept.bytes.len(),
                    }
                }
                _ => Kept::Other(Box::new(o.clone())),
            };
            kept.entries.push(entry);
        }
        kept.bytes.shrink_to_fit();
        kept
    }

    /// The observations again, in their order; `None` if the buffer does not decode (then the
    /// tab is read afresh).
    pub(super) fn observations(&self) -> Option<Vec<Observation>> {
        let mut start = 0;
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            out.push(match e {
                Kept::Row { end } => {
                    let row = Row::decode(self.bytes.get(start..*end)?)?;
                    start = *end;
                    Observation::new(Change::Upsert(row))
                }
                Kept::Other(o) => o.as_ref().clone(),
            });
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_kept_read_gives_back_every_observation_in_order() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
        let row = |id: i64, name: &str| {
            Row::new(vec![
                Value::Int(id),
                Value::Text(name.into()),
                Value::Null,
                Value::Decimal("12.50".parse().unwrap()),
            ])
        };
        let observations = vec![
            Observation::new(Change::Upsert(row(1, "a"))),
            Observation::new(Change::Invalid(InvalidRow {
                key: None,
                locator: Some("A3:D3".into()),
                reason: "bad".into(),
            })),
            Observation::new(Change::Upsert(Row::new(Vec::new()))),
            Observation {
                change: Change::Upsert(row(2, "b")),
                at: Some(at),
            },
            Observation::new(Change::Upsert(row(3, "ünïcode"))),
        ];
        let kept = KeptRead::new(&observations);
        assert_eq!(kept.observations().unwrap(), observations);
    }

    #[test]
    fn a_kept_read_that_does_not_decode_is_not_served() {
        let observations = vec![Observation::new(Change::Upsert(Row::new(vec![
            Value::Text("abc".into()),
        ])))];
        let mut kept = KeptRead::new(&observations);
        kept.bytes.pop();
        assert_eq!(kept.observations(), None);
    }
}
