//! The engine in process between a real database (PostgreSQL, MariaDB, SQLite) and a tab on the
//! emulator, while another program writes the database and people sort, drag, insert and delete
//! rows in the Sheet *between the engine's read and its write* (scheduled person edits), and
//! answers get lost after Google applied them.
//!
//! After the edits stop and the engine settles, both sides hold the same rows; every row holds
//! what the program last wrote for its key (no values under another key, no write lost); a row
//! is missing only if a person deleted a row (and no more rows are missing than people deleted).
//!
//! `SHEETSYNC_RACE_CASES` sets the cases per database (default 12); the adapter-level property
//! suite (`sheetsync-gsheets/tests/race_properties.rs`) runs 256 cases of the same interleavings.

use std::collections::BTreeMap;
use std::sync::Arc;

use sheetsync::emulator::{Config, EditTrigger, EmulatorHandle, FaultRule, PersonEdit};
use sheetsync::gsheets::{ClientConfig, SheetOptions, SheetTable, SheetsClient};
use sheetsync::sql::{SqlOptions, SqlTable};
use sheetsync::*;

use crate::harness::{random_hex, Backend, Canon, Db};

/// A small deterministic generator, so a failing case can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What people do to the tab at the scheduled point, with positions as fractions.
fn person_edit(rng: &mut Rng, rows: u32) -> (PersonEdit, bool) {
    let at = |rng: &mut Rng| 2 + rng.below(rows.max(1) as u64) as u32;
    match rng.below(4) {
        0 => (
            PersonEdit::SortRange {
                range: format!("Sheet1!A2:F{}", rows + 1),
                column: 1 + rng.below(3) as u32,
                ascending: rng.below(2) == 0,
            },
            false,
        ),
        1 => (
            PersonEdit::DeleteRows {
                sheet: "Sheet1".into(),
                start: at(rng),
                count: 1,
            },
            true,
        ),
        2 => (
            PersonEdit::InsertRows {
                sheet: "Sheet1".into(),
                before: at(rng),
                count: 1 + rng.below(2) as u32,
            },
            false,
        ),
        _ => {
            let start = at(rng);
            let before = at(rng);
            let edit = if before > start + 1 || before < start {
                PersonEdit::MoveRows {
                    sheet: "Sheet1".into(),
                    start,
                    count: 1,
                    before,
                }
            } else {
                PersonEdit::SortRange {
                    range: format!("Sheet1!A2:F{}", rows + 1),
                    column: 2,
                    ascending: false,
                }
            };
            (edit, false)
        }
    }
}

/// The Sheet's data rows by id, in the harness's canonical text form (`name` and `code` only:
/// the columns the program writes).
fn sheet_rows(emu: &EmulatorHandle, id: &str) -> BTreeMap<i64, Vec<(String, String)>> {
    let v = emu.read_values(id, "Sheet1").unwrap();
    let rows: Vec<Vec<serde_json::Value>> = serde_json::from_value(v).unwrap_or_default();
    let text = |c: Option<&serde_json::Value>| match c {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let mut out: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
    for r in rows.iter().skip(1) {
        let Some(key) = r.first().and_then(|c| c.as_f64()) else {
            assert!(
                r.iter().all(|c| c.as_str() == Some("") || c.is_null()),
                "a Sheet row without its key: {r:?}"
            );
            continue;
        };
        out.entry(key as i64)
            .or_default()
            .push((text(r.get(1)), text(r.get(2))));
    }
    out
}

fn db_pair(row: &Canon) -> (String, String) {
    (
        row[1].clone().unwrap_or_default(),
        row[2].clone().unwrap_or_default(),
    )
}

async fn engine_for(db: &Db, table: &str, emu: &EmulatorHandle, id: &str) -> Engine {
    let sql = SqlTable::connect(&db.url, table, SqlOptions::default())
        .await
        .unwrap();
    sql.install().await.unwrap();
    let store = sql.state_store().await.unwrap();
    let schema = sql.schema().clone();
    let mut cfg = ClientConfig::emulator(&emu.base_url());
    cfg.reads_per_minute = 1_000_000;
    cfg.writes_per_minute = 1_000_000;
    let client = Arc::new(SheetsClient::new(cfg).await.unwrap());
    let mut opts = SheetOptions::new(id, 0);
    opts.use_drive_version = false;
    let sheet = Arc::new(SheetTable::new(client, opts, schema));
    let mut mapping = MappingConfig::new(format!("race_{table}"), &["id"]);
    mapping.timing.full_scan_interval_ms = 1; // every cycle reads both sides in full
    mapping.guard.max_share = 1.0;
    mapping.guard.stop_total_wipe = false;
    Engine::builder(mapping, sheet, Arc::new(sql))
        .state(store)
        .build()
        .await
        .unwrap()
}

async fn run_case(db: &Db, seed: u64) {
    if std::env::var_os("SHEETSYNC_RACE_DEBUG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("sheetsync_gsheets=debug,sheetsync_core=debug")
            .try_init();
    }
    let mut rng = Rng(seed | 1);
    let table = format!("race_{}", &random_hex()[..10]);
    db.exec(&db.create_table_sql(&table)).await;
    let n = 4 + rng.below(12) as i64;
    // What the program's SQL left for each key: the oracle for values.
    let mut program: BTreeMap<i64, (String, String)> = BTreeMap::new();
    for i in 1..=n {
        program.insert(i, (format!("n{i}"), format!("c{i}")));
        db.exec(&format!(
            "INSERT INTO {table} (id, name, code) VALUES ({i}, 'n{i}', 'c{i}')"
        ))
        .await;
    }
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = emu.create_spreadsheet("race").unwrap();
    let engine = engine_for(db, &table, &emu, &id).await;
    engine.run_once().await.unwrap(); // the initial sync writes the header and the rows
    assert_eq!(
        sheet_rows(&emu, &id).len() as i64,
        n,
        "seed {seed}: initial sync"
    );

    let mut person_deletes = 0usize;
    let mut next_id = 1000;
    for step in 0..(2 + rng.below(3)) {
        // The program writes the database.
        for _ in 0..(1 + rng.below(4)) {
            let k = 1 + rng.below(n as u64) as i64;
            let sql = match rng.below(5) {
                0 => {
                    program.remove(&k);
                    format!("DELETE FROM {table} WHERE id = {k}")
                }
                1 => {
                    next_id += 1;
                    program.insert(next_id, (format!("p{next_id}"), format!("c{next_id}")));
                    format!(
                        "INSERT INTO {table} (id, name, code) VALUES ({next_id}, 'p{next_id}', 'c{next_id}')"
                    )
                }
                _ => {
                    if let Some(v) = program.get_mut(&k) {
                        v.0 = format!("s{step}k{k}");
                    }
                    format!("UPDATE {table} SET name = 's{step}k{k}' WHERE id = {k}")
                }
            };
            db.exec(&sql).await;
        }
        // People restructure the tab at a point inside the engine's next cycle.
        let rows = sheet_rows(&emu, &id).len() as u32;
        let (edit, deletes) = person_edit(&mut rng, rows);
        person_deletes += deletes as usize;
        let trigger = match rng.below(3) {
            0 => EditTrigger::before("spreadsheets.batchUpdate"),
            1 => EditTrigger::after("values.batchGet"),
            _ => EditTrigger::after("values.batchGet").nth(2),
        };
        emu.schedule_edit(&id, trigger, edit).unwrap();
        if rng.below(4) == 0 {
            emu.inject_fault(FaultRule::drop_after_next(1).for_method("spreadsheets.batchUpdate"));
        }
        let _ = engine.run_once().await; // a lost answer may fail the cycle: the next retries
    }
    let fired = emu.fired_edits();
    assert!(
        fired.iter().all(|f| f.error.is_none()),
        "seed {seed}: a person edit failed: {fired:?}"
    );
    assert!(!fired.is_empty(), "seed {seed}: no person edit happened");
    if std::env::var_os("SHEETSYNC_RACE_DEBUG").is_some() {
        for f in &fired {
            eprintln!("RACE fired {:?} {:?} {:?}", f.method_id, f.when, f.edit);
        }
    }
    emu.clear_scheduled_edits();
    emu.clear_faults();
    for _ in 0..4 {
        engine.run_once().await.unwrap();
    }

    let sheet = sheet_rows(&emu, &id);
    let dbrows = db.try_rows(&table).await.unwrap();
    if std::env::var_os("SHEETSYNC_RACE_DEBUG").is_some() {
        eprintln!("RACE sheet {}", emu.read_values(&id, "Sheet1").unwrap());
        eprintln!("held {:?}", engine.held().await);
    }
    for (k, copies) in &sheet {
        assert_eq!(
            copies.len(),
            1,
            "seed {seed}: id {k} in {} Sheet rows",
            copies.len()
        );
    }
    let sheet: BTreeMap<i64, (String, String)> =
        sheet.into_iter().map(|(k, v)| (k, v[0].clone())).collect();
    let dbmap: BTreeMap<i64, (String, String)> =
        dbrows.iter().map(|(k, r)| (*k, db_pair(r))).collect();
    assert_eq!(sheet, dbmap, "seed {seed}: the sides disagree");
    // Every row holds what the program's SQL gave its key (people only restructured the tab),
    // no row appears from nowhere, and at most as many rows are gone as people deleted.
    for (k, v) in &dbmap {
        assert_eq!(
            program.get(k),
            Some(v),
            "seed {seed}: id {k}: {dbmap:?} vs {program:?}"
        );
    }
    let gone = program.keys().filter(|k| !dbmap.contains_key(k)).count();
    assert!(
        gone <= person_deletes,
        "seed {seed}: {gone} rows gone, people deleted {person_deletes}: {dbmap:?} vs {program:?}"
    );
    emu.shutdown().await;
    let _ = db.try_exec(&format!("DROP TABLE {table}")).await;
}

async fn suite(backend: Backend) {
    let dir = tempdir();
    let db = Db::create(backend, &dir).await;
    let cases: u64 = std::env::var("SHEETSYNC_RACE_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(12);
    let base: u64 = std::env::var("SHEETSYNC_RACE_SEED")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0x5eed_0001);
    let only: Option<u64> = std::env::var("SHEETSYNC_RACE_ONLY")
        .ok()
        .and_then(|c| c.parse().ok());
    for case in 0..cases {
        let seed = base.wrapping_mul(31).wrapping_add(case);
        if only.is_none_or(|o| o == seed) {
            run_case(&db, seed).await;
        }
    }
    db.drop_database();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sheetsync-race-{}", random_hex()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_sqlite() {
    suite(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_postgres() {
    suite(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_mysql() {
    suite(Backend::MySql).await;
}
