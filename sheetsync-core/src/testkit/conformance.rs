//! The conformance suite: one set of checks that every adapter passes, each a function of its
//! own named after the check, gated by the capability it needs. [`CHECKS`] lists them;
//! [`conformance_tests!`](crate::conformance_tests) makes one test per check for an adapter's
//! fixture factory, [`run_conformance`] runs them all in one go.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, TimeZone, Utc};
use futures::future::BoxFuture;
use futures::StreamExt;

use crate::engine::Engine;
use crate::error::Result;
use crate::mapping::MappingConfig;
use crate::memory::MemoryTable;
use crate::model::{Change, Column, ColumnType, Cursor, Row, RowKey, TableSchema, Value};
use crate::table::{Expected, SourceExt, Table, WriteContext, WriteOp, WriteOutcome};

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

/// The rows a scan shows, sorted by key; anything but a plain row fails the check.
async fn scan_all(t: &dyn Table) -> Vec<Row> {
    let mut rows: Vec<Row> = t
        .scan_all()
        .await
        .expect("scan failed")
        .into_iter()
        .map(|obs| match obs.change {
            Change::Upsert(r) => r,
            other => panic!("unexpected observation from scan: {other:?}"),
        })
        .collect();
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

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The adapter passed the check (a failure panics, naming the check).
    Passed,
    /// The adapter does not declare the capability the check needs.
    Skipped(&'static str),
}

/// A conformance check: runs on fresh fixtures from the factory.
pub type CheckFn = for<'a> fn(&'a dyn FixtureFactory) -> BoxFuture<'a, Outcome>;

/// One named check of the suite.
#[derive(Clone, Copy)]
pub struct Check {
    /// Its name, which is also the name of its function in this module and of the test that
    /// [`conformance_tests!`](crate::conformance_tests) generates for it.
    pub name: &'static str,
    /// The check.
    pub run: CheckFn,
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check of the suite, in the order [`run_conformance`] runs them.
        pub const CHECKS: &[Check] = &[$(Check {
            name: stringify!($name),
            run: |f| Box::pin($name(f)),
        }),*];
    };
}

checks!(
    scan_empty,
    upsert_roundtrip,
    update_and_delete,
    idempotent_reapply,
    held_row_does_not_block_batch,
    conditional_writes,
    changes_since_cursor,
    generated_keys,
    wakeups,
    engine_roundtrip,
);

/// Runs the check called `name` (see [`CHECKS`]); panics when there is none, or when the
/// adapter fails it. A skipped check is reported on stderr.
pub async fn run_check(name: &str, factory: &dyn FixtureFactory) -> Outcome {
    let check = CHECKS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no conformance check is called {name:?}"));
    let outcome = (check.run)(factory).await;
    if let Outcome::Skipped(capability) = outcome {
        eprintln!("conformance check {name} skipped: the adapter does not declare {capability}");
    }
    outcome
}

/// Runs every check the adapter's capabilities allow; panics with a message naming the check
/// that failed. An adapter's tests usually prefer one test per check
/// ([`conformance_tests!`](crate::conformance_tests)), which reports every failing check.
pub async fn run_conformance(factory: &dyn FixtureFactory) -> ConformanceReport {
    let mut report = ConformanceReport::default();
    for check in CHECKS {
        match (check.run)(factory).await {
            Outcome::Passed => report.passed.push(check.name),
            Outcome::Skipped(capability) => report.skipped.push((check.name, capability)),
        }
    }
    report
}

/// The capabilities some check needs that the factory's tables do not declare: the checks
/// that [`conformance_tests!`](crate::conformance_tests) would pass by skipping them.
pub async fn undeclared_capabilities(factory: &dyn FixtureFactory) -> Vec<&'static str> {
    let caps = fixture(factory).await.table.capabilities();
    [
        ("conditional_writes", caps.conditional_writes),
        ("incremental", caps.incremental),
        ("generated_keys", caps.generated_keys),
        ("wakeups", caps.wakeups),
    ]
    .into_iter()
    .filter(|(_, declared)| !declared)
    .map(|(name, _)| name)
    .collect()
}

async fn fixture(factory: &dyn FixtureFactory) -> Fixture {
    factory
        .create(conformance_schema())
        .await
        .expect("the fixture factory failed")
}

/// A new table has the schema it was created with and scans empty.
pub async fn scan_empty(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
    assert_eq!(
        f.table.schema(),
        &conformance_schema(),
        "scan_empty: the adapter's schema differs"
    );
    assert!(
        scan_all(&*f.table).await.is_empty(),
        "scan_empty: a new table must scan empty"
    );
    Outcome::Passed
}

/// Every type, NULLs, exact decimals and text that looks like a formula read back as written.
pub async fn upsert_roundtrip(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
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
    Outcome::Passed
}

/// An update (a value set to NULL too) and a delete, each expecting the row it replaces.
pub async fn update_and_delete(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
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
    Outcome::Passed
}

/// The same batch applied twice (a retry after a lost answer) applies, and changes nothing more;
/// deleting an absent row is applied.
pub async fn idempotent_reapply(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
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
    Outcome::Passed
}

/// A row the table refuses (`name` is NOT NULL) is held with a reason; the rest of its batch
/// applies.
pub async fn held_row_does_not_block_batch(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
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
    Outcome::Passed
}

/// Writes whose expectation no longer holds are stale and change nothing (capability
/// `conditional_writes`).
pub async fn conditional_writes(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
    if !f.table.capabilities().conditional_writes {
        return Outcome::Skipped("conditional_writes");
    }
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
    let stale = [
        "changed row must be stale",
        "existing row is not absent",
        "delete of a changed row",
    ];
    for (o, why) in out.iter().zip(stale) {
        assert_eq!(*o, WriteOutcome::Stale, "conditional_writes: {why}");
    }
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
    Outcome::Passed
}

/// The change feed reports other programs' changes since a cursor and never the engine's own
/// writes; `fetch` reads rows by key (capability `incremental`, which needs `fetch`).
pub async fn changes_since_cursor(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
    let t = &*f.table;
    let caps = t.capabilities();
    if !caps.incremental {
        return Outcome::Skipped("incremental");
    }
    assert!(caps.fetch, "an incremental adapter must support fetch");
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
    let (seen, at) = read_feed(t, c0).await;
    check_feed(t, &seen);
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
    Outcome::Passed
}

/// Everything the feed reports from `from` on, two changes a page: each key's last row
/// (`None`: deleted), and the cursor after the last page.
async fn read_feed(t: &dyn Table, from: Cursor) -> (BTreeMap<RowKey, Option<Row>>, Cursor) {
    let mut seen = BTreeMap::new();
    let mut at = from;
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
            return (seen, at);
        }
    }
}

/// What [`changes_since_cursor`]'s feed must show.
fn check_feed(t: &dyn Table, seen: &BTreeMap<RowKey, Option<Row>>) {
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
}

/// Inserts without a key get distinct keys from the table, returned with the stored row
/// (capability `generated_keys`).
pub async fn generated_keys(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
    if !f.table.capabilities().generated_keys {
        return Outcome::Skipped("generated_keys");
    }
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
    Outcome::Passed
}

/// Another program's write wakes the engine (capability `wakeups`).
pub async fn wakeups(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
    if !f.table.capabilities().wakeups {
        return Outcome::Skipped("wakeups");
    }
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
    Outcome::Passed
}

/// The adapter as the database side of a real engine: an initial union, an edit one way and a
/// delete the other, then a steady state that writes nothing.
pub async fn engine_roundtrip(factory: &dyn FixtureFactory) -> Outcome {
    let f = fixture(factory).await;
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", conformance_schema()));
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
    Outcome::Passed
}
