//! The conformance suite: one set of checks that every adapter passes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, TimeZone, Utc};
use futures::StreamExt;

use crate::engine::Engine;
use crate::error::Result;
use crate::mapping::MappingConfig;
use crate::memory::MemoryTable;
use crate::model::{Change, Column, ColumnType, Cursor, Row, RowKey, TableSchema, Value};
use crate::table::{Expected, Table, WriteContext, WriteOp, WriteOutcome};

/// A fresh table under test, and a way to change it behind the adapter's back.
pub struct Fixture {
    /// The adapter, for a new empty table.
    pub table: Arc<dyn Table>,
    /// Writes made as another program or a person would make them (no engine origin).
    pub external: Arc<dyn ExternalWriter>,
}

/// Changes a table as another program would.
#[async_trait]
pub trait ExternalWriter: Send + Sync {
    /// Inserts or replaces a row.
    async fn upsert(&self, row: Row) -> Result<()>;
    /// Deletes a row.
    async fn delete(&self, key: RowKey) -> Result<()>;
}

/// Creates fixtures.
#[async_trait]
pub trait FixtureFactory: Send + Sync {
    /// A new, empty table with exactly this schema, change capture installed.
    async fn create(&self, schema: TableSchema) -> Result<Fixture>;
}

/// Which checks ran.
#[derive(Debug, Default, Clone)]
pub struct ConformanceReport {
    /// Checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks skipped, with the capability they need.
    pub skipped: Vec<(&'static str, &'static str)>,
}

/// The schema the suite uses: an integer key, a required text, and a column of every type.
pub fn conformance_schema() -> TableSchema {
    TableSchema::new(
        "conformance",
        vec![
            Column::new("id", ColumnType::Int).nullable(false),
            Column::new("name", ColumnType::Text).nullable(false),
            Column::new("qty", ColumnType::Int),
            Column::new("price", ColumnType::Decimal),
            Column::new("ratio", ColumnType::Float),
            Column::new("active", ColumnType::Bool),
            Column::new("born", ColumnType::Date),
            Column::new("opens", ColumnType::Time),
            Column::new("seen_at", ColumnType::Timestamp),
            Column::new("updated", ColumnType::TimestampTz),
            Column::new("ref", ColumnType::Uuid),
            Column::new("meta", ColumnType::Json),
        ],
        &["id"],
    )
    .expect("conformance schema is valid")
}

fn sample(id: i64, name: &str) -> Row {
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    Row::new(vec![
        Value::Int(id),
        Value::Text(name.to_string()),
        Value::Int(id * 10),
        Value::Decimal("12345678901234567890.125".parse().unwrap()),
        Value::Float(0.5),
        Value::Bool(id % 2 == 0),
        Value::Date(date),
        Value::Time(chrono::NaiveTime::from_hms_micro_opt(8, 30, 0, 250_000).unwrap()),
        Value::Timestamp(date.and_hms_micro_opt(13, 45, 10, 123_456).unwrap()),
        Value::TimestampTz(Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap()),
        Value::Uuid(uuid::Uuid::from_u128(
            0x1234_5678_9abc_def0_1234_5678_9abc_def0 + id as u128,
        )),
        Value::Json(serde_json::json!({"a": [1, 2], "b": "x"})),
    ])
}

fn sparse(id: i64, name: &str) -> Row {
    let mut r = vec![Value::Null; 12];
    r[0] = Value::Int(id);
    r[1] = Value::Text(name.to_string());
    Row::new(r)
}

fn key(id: i64) -> RowKey {
    RowKey::from_values(&[Value::Int(id)])
}

fn engine_ctx() -> WriteContext {
    WriteContext {
        origin: "sheetsync:conformance".into(),
    }
}

async fn scan_all(t: &dyn Table) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut s = t.scan();
    while let Some(page) = s.next().await {
        for obs in page.expect("scan failed") {
            match obs.change {
                Change::Upsert(r) => rows.push(r),
                other => panic!("unexpected observation from scan: {other:?}"),
            }
        }
    }
    rows.sort_by_key(|r| r.key(t.schema()));
    rows
}

async fn apply(t: &dyn Table, ops: Vec<WriteOp>) -> Vec<WriteOutcome> {
    let n = ops.len();
    let out = t.apply(ops, &engine_ctx()).await.expect("apply failed");
    assert_eq!(out.len(), n, "apply must return one outcome per op");
    out
}

fn applied(o: &WriteOutcome) -> bool {
    matches!(o, WriteOutcome::Applied | WriteOutcome::Stored(_))
}

fn upsert(row: Row) -> WriteOp {
    WriteOp::Upsert {
        row,
        expected: Expected::Any,
    }
}

/// Runs every check the adapter's capabilities allow; panics with a message naming the check
/// that failed.
pub async fn run_conformance(factory: &dyn FixtureFactory) -> ConformanceReport {
    let mut report = ConformanceReport::default();
    let schema = conformance_schema();
    let new = || async {
        factory
            .create(schema.clone())
            .await
            .expect("the fixture factory failed")
    };

    // scan_empty
    {
        let f = new().await;
        assert_eq!(
            f.table.schema(),
            &schema,
            "scan_empty: the adapter's schema differs"
        );
        assert!(
            scan_all(&*f.table).await.is_empty(),
            "scan_empty: a new table must scan empty"
        );
        report.passed.push("scan_empty");
    }

    // upsert_roundtrip: every type, NULLs, exact decimals, text that looks like a formula.
    {
        let f = new().await;
        let mut tricky = sample(3, "=1+1");
        tricky.0[3] = Value::Decimal("-0.000000000000000000000000000001".parse().unwrap());
        let rows = vec![sample(1, "Ann"), sparse(2, "007"), tricky];
        let out = apply(&*f.table, rows.iter().cloned().map(upsert).collect()).await;
        assert!(
            out.iter().all(applied),
            "upsert_roundtrip: outcomes {out:?}"
        );
        assert_eq!(
            scan_all(&*f.table).await,
            rows,
            "upsert_roundtrip: scan differs from what was written"
        );
        report.passed.push("upsert_roundtrip");
    }

    // update_and_delete
    {
        let f = new().await;
        apply(
            &*f.table,
            vec![upsert(sample(1, "a")), upsert(sample(2, "b"))],
        )
        .await;
        let mut changed = sample(1, "a2");
        changed.0[2] = Value::Null;
        let out = apply(
            &*f.table,
            vec![
                WriteOp::Upsert {
                    row: changed.clone(),
                    expected: Expected::Row(sample(1, "a")),
                },
                WriteOp::Delete {
                    key: key(2),
                    expected: Expected::Row(sample(2, "b")),
                },
            ],
        )
        .await;
        assert!(
            out.iter().all(applied),
            "update_and_delete: outcomes {out:?}"
        );
        assert_eq!(
            scan_all(&*f.table).await,
            vec![changed],
            "update_and_delete"
        );
        report.passed.push("update_and_delete");
    }

    // idempotent_reapply
    {
        let f = new().await;
        let ops = vec![
            upsert(sample(1, "a")),
            WriteOp::Delete {
                key: key(9),
                expected: Expected::Any,
            },
        ];
        let first = apply(&*f.table, ops.clone()).await;
        let second = apply(&*f.table, ops).await;
        assert!(
            first.iter().chain(&second).all(applied),
            "idempotent_reapply: {first:?} then {second:?}"
        );
        assert_eq!(
            scan_all(&*f.table).await,
            vec![sample(1, "a")],
            "idempotent_reapply"
        );
        report.passed.push("idempotent_reapply");
    }

    // held_row_does_not_block_batch: `name` is NOT NULL.
    {
        let f = new().await;
        let mut bad = sparse(2, "x");
        bad.0[1] = Value::Null;
        let out = apply(
            &*f.table,
            vec![upsert(sample(1, "a")), upsert(bad), upsert(sample(3, "c"))],
        )
        .await;
        assert!(
            applied(&out[0]) && applied(&out[2]),
            "held_row: good rows must apply: {out:?}"
        );
        match &out[1] {
            WriteOutcome::Held(reason) => assert!(!reason.is_empty(), "held_row: empty reason"),
            o => panic!("held_row: a NOT NULL violation must be held, got {o:?}"),
        }
        assert_eq!(
            scan_all(&*f.table).await,
            vec![sample(1, "a"), sample(3, "c")],
            "held_row"
        );
        report.passed.push("held_row_does_not_block_batch");
    }

    let caps = new().await.table.capabilities();

    // conditional_writes
    if caps.conditional_writes {
        let f = new().await;
        apply(
            &*f.table,
            vec![upsert(sample(1, "a")), upsert(sample(2, "b"))],
        )
        .await;
        f.external
            .upsert(sample(1, "changed by someone"))
            .await
            .unwrap();
        let out = apply(
            &*f.table,
            vec![
                WriteOp::Upsert {
                    row: sample(1, "engine"),
                    expected: Expected::Row(sample(1, "a")),
                },
                WriteOp::Upsert {
                    row: sample(2, "x"),
                    expected: Expected::Absent,
                },
                WriteOp::Delete {
                    key: key(1),
                    expected: Expected::Row(sample(1, "a")),
                },
                WriteOp::Upsert {
                    row: sample(3, "c"),
                    expected: Expected::Absent,
                },
            ],
        )
        .await;
        assert_eq!(
            out[0],
            WriteOutcome::Stale,
            "conditional_writes: changed row must be stale"
        );
        assert_eq!(
            out[1],
            WriteOutcome::Stale,
            "conditional_writes: existing row is not absent"
        );
        assert_eq!(
            out[2],
            WriteOutcome::Stale,
            "conditional_writes: delete of a changed row"
        );
        assert!(
            applied(&out[3]),
            "conditional_writes: insert of an absent row: {:?}",
            out[3]
        );
        assert_eq!(
            scan_all(&*f.table).await,
            vec![
                sample(1, "changed by someone"),
                sample(2, "b"),
                sample(3, "c")
            ],
            "conditional_writes: stale writes must change nothing"
        );
        report.passed.push("conditional_writes");
    } else {
        report
            .skipped
            .push(("conditional_writes", "conditional_writes"));
    }

    // changes_since_cursor, echo suppression and fetch
    if caps.incremental {
        assert!(caps.fetch, "an incremental adapter must support fetch");
        let f = new().await;
        let t = &*f.table;
        apply(t, vec![upsert(sample(1, "a")), upsert(sample(2, "b"))]).await;
        let c0: Cursor = t
            .cursor()
            .await
            .unwrap()
            .expect("incremental adapters return a cursor");
        f.external.upsert(sample(3, "c")).await.unwrap();
        f.external.upsert(sample(1, "a2")).await.unwrap();
        f.external.delete(key(2)).await.unwrap();
        // The engine's own writes never come back.
        apply(
            t,
            vec![upsert(sample(4, "engine")), upsert(sample(3, "c-engine"))],
        )
        .await;
        let mut seen = std::collections::BTreeMap::new();
        let mut at = c0.clone();
        loop {
            let batch = t.changes(&at, 2).await.expect("changes failed");
            for obs in batch.changes {
                match obs.change {
                    Change::Upsert(r) => {
                        seen.insert(r.key(t.schema()).unwrap(), Some(r));
                    }
                    // A feed may report an external edit that a write of the engine around the
                    // same time may have overwritten (key 3 certainly was): the edit is `row`.
                    Change::Overwritten { row, actual } => {
                        let k = row.key(t.schema()).unwrap();
                        assert_eq!(
                            actual.key(t.schema()),
                            Some(k.clone()),
                            "an overwrite keeps the key"
                        );
                        seen.insert(k, Some(row));
                    }
                    Change::Delete(k) => {
                        seen.insert(k, None);
                    }
                    other => panic!("changes_since_cursor: unexpected {other:?}"),
                }
            }
            at = batch.cursor;
            if !batch.more {
                break;
            }
        }
        let keys: BTreeSet<RowKey> = seen.keys().cloned().collect();
        assert!(
            !keys.contains(&key(4)),
            "changes_since_cursor: the engine's own insert came back (echo)"
        );
        // A feed that cannot describe a delete (a Sheet's edit trigger) must ask for a full
        // read instead.
        let delete_reported = seen.get(&key(2)) == Some(&None);
        assert!(
            delete_reported || t.full_scan_requested(),
            "changes_since_cursor: the external delete was neither reported nor flagged for a full read"
        );
        let expected: BTreeSet<RowKey> = if delete_reported {
            [key(1), key(2), key(3)].into_iter().collect()
        } else {
            [key(1), key(3)].into_iter().collect()
        };
        assert_eq!(keys, expected, "changes_since_cursor: external changes");
        assert_eq!(
            seen[&key(1)],
            Some(sample(1, "a2")),
            "an upsert carries the row"
        );
        // Key 3 was changed externally and then by the engine: a state-based feed shows the
        // current row, an event feed the external edit; either is a row of key 3.
        assert!(
            seen[&key(3)] == Some(sample(3, "c-engine")) || seen[&key(3)] == Some(sample(3, "c")),
            "changes_since_cursor: key 3 shows {:?}",
            seen[&key(3)]
        );
        t.ack(&at).await.expect("ack failed");
        let after = t.changes(&at, 100).await.unwrap();
        assert!(
            after.changes.is_empty(),
            "changes after the last cursor: {:?}",
            after.changes
        );
        let fetched = t.fetch(&[key(1), key(2)]).await.expect("fetch failed");
        assert_eq!(fetched.len(), 2, "fetch returns one observation per key");
        assert!(fetched
            .iter()
            .any(|o| o.change == Change::Upsert(sample(1, "a2"))));
        assert!(fetched.iter().any(|o| o.change == Change::Delete(key(2))));
        report.passed.push("changes_since_cursor");
    } else {
        report.skipped.push(("changes_since_cursor", "incremental"));
    }

    // generated_keys
    if caps.generated_keys {
        let f = new().await;
        let mut row = sample(0, "new");
        row.0[0] = Value::Null;
        let out = apply(
            &*f.table,
            vec![
                WriteOp::Insert { row: row.clone() },
                WriteOp::Insert { row },
            ],
        )
        .await;
        let keys: Vec<RowKey> = out
            .iter()
            .map(|o| match o {
                WriteOutcome::Stored(r) => r.key(f.table.schema()).expect("stored row has a key"),
                o => panic!("generated_keys: insert must return the stored row, got {o:?}"),
            })
            .collect();
        assert_ne!(
            keys[0], keys[1],
            "generated_keys: two inserts got the same key"
        );
        assert_eq!(scan_all(&*f.table).await.len(), 2);
        report.passed.push("generated_keys");
    } else {
        report.skipped.push(("generated_keys", "generated_keys"));
    }

    // wakeups
    if caps.wakeups {
        let f = new().await;
        let mut w = f
            .table
            .wakeups()
            .expect("an adapter declaring wakeups returns a stream");
        f.external.upsert(sample(1, "a")).await.unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(30), w.next()).await;
        assert!(
            matches!(woke, Ok(Some(()))),
            "wakeups: no wake-up after an external write"
        );
        report.passed.push("wakeups");
    } else {
        report.skipped.push(("wakeups", "wakeups"));
    }

    // engine_roundtrip: the adapter as the database side of a real engine.
    {
        let f = new().await;
        let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
        f.external.upsert(sample(1, "from db")).await.unwrap();
        sheet.upsert(sample(2, "from sheet"));
        let engine = Engine::builder(
            MappingConfig::new("conformance", &["id"]),
            sheet.clone(),
            f.table.clone(),
        )
        .build()
        .await
        .expect("engine");
        engine.run_once().await.expect("first cycle");
        assert_eq!(
            sheet.rows(),
            vec![sample(1, "from db"), sample(2, "from sheet")],
            "engine_roundtrip: sheet"
        );
        assert_eq!(
            scan_all(&*f.table).await,
            sheet.rows(),
            "engine_roundtrip: table"
        );
        f.external.upsert(sample(1, "db edit")).await.unwrap();
        sheet.delete(&key(2));
        engine.run_once().await.expect("second cycle");
        assert_eq!(
            sheet.rows(),
            vec![sample(1, "db edit")],
            "engine_roundtrip: db edit reaches sheet"
        );
        assert_eq!(
            scan_all(&*f.table).await,
            sheet.rows(),
            "engine_roundtrip: sheet delete reaches table"
        );
        let quiet = engine.run_once().await.expect("third cycle");
        assert_eq!(
            quiet.writes.total(),
            0,
            "engine_roundtrip: steady state must write nothing"
        );
        report.passed.push("engine_roundtrip");
    }
    report
}
