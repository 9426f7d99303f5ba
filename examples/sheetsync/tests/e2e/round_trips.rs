//! Value round trips per type and per database, as properties (issue: exact values): random rows
//! of every column type the database has, over each type's range, written to the database,
//! synced to the emulator (spreadsheets in several time zones, with daylight-saving gaps and
//! folds), read back in full and synced again: the second cycle writes nothing, the database
//! holds what was written and the Sheet is unchanged.
//!
//! `SHEETSYNC_ROUND_TRIP_CASES` sets the cases per database (default 8, each of up to 40 rows).

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use sheetsync::emulator::{Config, EmulatorHandle};
use sheetsync::gsheets::{ClientConfig, SheetOptions, SheetTable, SheetsClient};
use sheetsync::sql::{SqlOptions, SqlTable};
use sheetsync::testkit::arb_value_of;
use sheetsync::*;

use crate::harness::{random_hex, Backend, Db};

/// Spreadsheet time zones: with and without daylight saving, a half-hour one, a 30-minute DST.
const ZONES: [&str; 5] = [
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Etc/UTC",
];

fn create_sql(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Postgres => format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, b boolean, i bigint, dec numeric(30,6), \
             f double precision, t text, d date, tm time, ts timestamp, tz timestamptz, u uuid, \
             j jsonb, by bytea)"
        ),
        Backend::MySql => format!(
            "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, b BOOLEAN, i BIGINT, \
             `dec` DECIMAL(30,6), f DOUBLE, t TEXT, d DATE, tm TIME(6), ts DATETIME(6), j JSON, \
             `by` BLOB) CHARACTER SET utf8mb4"
        ),
        Backend::Sqlite => format!(
            "CREATE TABLE {table} (id INTEGER NOT NULL PRIMARY KEY, b BOOLEAN, i INTEGER, \
             dec DECIMAL_TEXT, f REAL, t TEXT, d DATE, tm TIME, ts DATETIME, tz TIMESTAMPTZ, \
             u UUID, j JSON, by BLOB)"
        ),
    }
}

/// Decimals that fit `numeric(30,6)`; the others come from the testkit's strategies.
fn arb_cell(ty: ColumnType) -> BoxedStrategy<Value> {
    match ty {
        ColumnType::Decimal => (any::<bool>(), "[0-9]{1,24}", "[0-9]{0,6}")
            .prop_map(|(neg, i, f)| {
                let s = format!("{}{i}.{f}0", if neg { "-" } else { "" });
                Value::Decimal(s.parse().expect("generated decimal"))
            })
            .boxed(),
        ty => arb_value_of(ty, true),
    }
}

/// Rows of `schema` with keys 1..=n, and a time zone.
fn arb_case(schema: &TableSchema) -> BoxedStrategy<(Vec<Row>, &'static str)> {
    let cells: Vec<BoxedStrategy<Value>> =
        schema.columns[1..].iter().map(|c| arb_cell(c.ty)).collect();
    let row = cells.prop_map(|mut values| {
        values.insert(0, Value::Null);
        values
    });
    (
        proptest::collection::vec(row, 1..40),
        proptest::sample::select(&ZONES[..]),
    )
        .prop_map(|(rows, zone)| {
            let rows = rows
                .into_iter()
                .enumerate()
                .map(|(i, mut values)| {
                    values[0] = Value::Int(i as i64 + 1);
                    Row::new(values)
                })
                .collect();
            (rows, zone)
        })
        .boxed()
}

/// Everything `table` holds, by key.
async fn scan(table: &dyn Table) -> Vec<Row> {
    let mut rows = table.scan_rows().await.expect("scan");
    rows.sort_by_key(|r| format!("{:?}", r.0[0]));
    rows
}

/// The cells that differ between two scans, as `key.column: db value != sheet value`.
fn differences(schema: &TableSchema, db: &[Row], sheet: &[Row]) -> String {
    let mut out = Vec::new();
    for (a, b) in db.iter().zip(sheet) {
        for (i, c) in schema.columns.iter().enumerate() {
            if a.0[i] != b.0[i] {
                out.push(format!(
                    "{:?}.{}: {:?} != {:?}",
                    a.0[0], c.name, a.0[i], b.0[i]
                ));
            }
        }
    }
    if db.len() != sheet.len() {
        out.push(format!(
            "{} database rows, {} Sheet rows",
            db.len(),
            sheet.len()
        ));
    }
    out.join("; ")
}

struct Case<'a> {
    db: &'a Db,
    emu: &'a EmulatorHandle,
    backend: Backend,
}

impl Case<'_> {
    async fn run(&self, rows: Vec<Row>, zone: &str) -> Result<(), TestCaseError> {
        let backend = self.backend;
        let table = format!("rt_{}", &random_hex()[..10]);
        self.db.exec(&create_sql(backend, &table)).await;
        let sql = SqlTable::connect(&self.db.url, &table, SqlOptions::default())
            .await
            .unwrap();
        let ctx = WriteContext {
            origin: "a program".into(),
        };
        let ops = rows
            .iter()
            .map(|r| WriteOp::Upsert {
                row: r.clone(),
                expected: Expected::Any,
            })
            .collect();
        let outcomes = sql.apply(ops, &ctx).await.unwrap();
        let held: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o, WriteOutcome::Held(_)))
            .collect();
        prop_assert!(
            held.is_empty(),
            "{backend:?}: the database refused: {held:?}"
        );
        let written = scan(&sql).await;
        sql.install().await.unwrap();
        let store = sql.state_store().await.unwrap();
        let id = self
            .emu
            .create_spreadsheet_from(&serde_json::json!({
                "properties": {"title": "round trips", "timeZone": zone},
                "sheets": [{"properties": {"sheetId": 0, "title": "Sheet1"}}]
            }))
            .unwrap();
        let mut cfg = ClientConfig::emulator(&self.emu.base_url());
        cfg.reads_per_minute = 1_000_000;
        cfg.writes_per_minute = 1_000_000;
        let client = Arc::new(SheetsClient::new(cfg).await.unwrap());
        let mut opts = SheetOptions::new(&id, 0);
        opts.use_drive_version = false; // the second cycle really reads the Sheet
        let sheet = Arc::new(SheetTable::new(client, opts, sql.schema().clone()));
        let sheet_view = sheet.clone();
        let sql = Arc::new(sql);
        let mut mapping = MappingConfig::new(table.clone(), &["id"]);
        mapping.timing.full_scan_interval_ms = 1;
        let engine = Engine::builder(mapping, sheet, sql.clone())
            .state(store)
            .build()
            .await
            .unwrap();
        let first = engine.run_once().await.unwrap();
        prop_assert_eq!(
            first.writes.sheet,
            rows.len(),
            "{:?}: initial sync (held: {:?})",
            backend,
            engine.held().await
        );
        let before = self.emu.read_values(&id, "Sheet1").unwrap();
        let second = engine.run_once().await.unwrap();
        let differs = differences(sql.schema(), &written, &scan(&*sheet_view).await);
        let held = engine.held().await;
        prop_assert!(held.is_empty(), "{backend:?} in {zone}: held {held:?}");
        prop_assert_eq!(
            second.writes.total(),
            0,
            "{:?} in {}: the second cycle wrote (a value did not read back equal: {}): {:?}\nSheet: {}",
            backend,
            zone,
            differs,
            second,
            before
        );
        prop_assert_eq!(
            scan(&*sql).await,
            written,
            "{:?} in {}: the database changed",
            backend,
            zone
        );
        prop_assert_eq!(
            self.emu.read_values(&id, "Sheet1").unwrap(),
            before,
            "{:?} in {}: the Sheet changed",
            backend,
            zone
        );
        sql.uninstall().await.unwrap();
        self.db.exec(&format!("DROP TABLE {table}")).await;
        Ok(())
    }
}

async fn round_trips(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("sheetsync-rt-{}", random_hex()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = Db::create(backend, &dir).await;
    let probe = format!("rt_probe_{}", &random_hex()[..8]);
    db.exec(&create_sql(backend, &probe)).await;
    let schema = SqlTable::connect(&db.url, &probe, SqlOptions::default())
        .await
        .unwrap()
        .schema()
        .clone();
    db.exec(&format!("DROP TABLE {probe}")).await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let cases = std::env::var("SHEETSYNC_ROUND_TRIP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let case = Case {
        db: &db,
        emu: &emu,
        backend,
    };
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&arb_case(&schema), |(rows, zone)| {
            handle.block_on(case.run(rows, zone))
        })
    });
    emu.shutdown().await;
    db.drop_database();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_exactly_sqlite() {
    round_trips(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_exactly_postgres() {
    round_trips(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_exactly_mysql() {
    round_trips(Backend::MySql).await;
}
