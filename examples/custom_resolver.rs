//! A user-defined conflict resolver wired into the same engine the daemon runs: a Google Sheet
//! (here the in-process emulator) and a SQLite table, with a resolver of our own in front of
//! the configured chain.
//!
//! `cargo run --example custom_resolver --features full`
//!
//! The business rule: stock counts (`qty`) are only ever lowered by the warehouse, so when the
//! Sheet and the database both change `qty`, the lower count wins; any other conflict falls
//! back to last-write-wins.

use std::sync::Arc;

use sheetsync::emulator::{Config as EmulatorConfig, EmulatorHandle};
use sheetsync::gsheets::{ClientConfig, SheetOptions, SheetTable, SheetsClient};
use sheetsync::sql::{sqlx, SqliteStateStore, SqliteTable};
use sheetsync::*;

/// Lower stock wins; everything else is someone else's decision.
struct LowerStockWins;

impl ConflictResolver for LowerStockWins {
    fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
        match (c.column.name.as_str(), c.sheet, c.db) {
            ("qty", Value::Int(sheet), Value::Int(db)) => {
                if sheet <= db {
                    Resolution::Sheet
                } else {
                    Resolution::Db
                }
            }
            _ => Resolution::Fallback,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // The two sides.
    let emulator = EmulatorHandle::start(EmulatorConfig::default()).await?;
    let spreadsheet = emulator
        .create_spreadsheet("stock")
        .map_err(|e| format!("{e:?}"))?;
    let dir =
        std::env::temp_dir().join(format!("sheetsync-custom-resolver-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db_path = dir.join("stock.sqlite");
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db_path.display())).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY NOT NULL, qty INTEGER NOT NULL, note TEXT)")
        .execute(&pool)
        .await?;
    sqlx::query("INSERT OR REPLACE INTO stock VALUES ('A-1', 10, NULL)")
        .execute(&pool)
        .await?;
    let db = Arc::new(SqliteTable::open(pool.clone(), "stock", Default::default()).await?);
    db.install().await?;
    let client = Arc::new(SheetsClient::new(ClientConfig::emulator(&emulator.base_url())).await?);
    let sheet = Arc::new(SheetTable::new(
        client,
        SheetOptions::new(&spreadsheet, 0),
        db.schema().clone(),
    ));

    // Our resolver first, then the mapping's configured chain as the fallback.
    let mut mapping = MappingConfig::new("stock", &["sku"]);
    mapping.timing.full_scan_interval_ms = 0;
    let fallback = ResolverSpec::build_chain(&mapping.resolver_specs(), db.schema())?;
    let engine = Engine::builder(mapping, sheet.clone(), db.clone())
        .state(Arc::new(SqliteStateStore::new(pool.clone()).await?))
        .resolver(Chain::new().then(LowerStockWins).then(fallback))
        .build()
        .await?;
    engine.run_once().await?;
    println!(
        "initial sync: {:?}",
        emulator
            .read_values(&spreadsheet, "Sheet1")
            .map_err(|e| format!("{e:?}"))?
    );

    // Both sides change qty at once: the Sheet says 7, the database says 4. Lower wins.
    emulator
        .set_cells(&spreadsheet, "Sheet1!B2", vec![vec![serde_json::json!(7)]])
        .map_err(|e| format!("{e:?}"))?;
    sqlx::query("UPDATE stock SET qty = 4, note = 'recounted' WHERE sku = 'A-1'")
        .execute(&pool)
        .await?;
    engine.run_once().await?;

    let sheet_now = emulator
        .read_values(&spreadsheet, "Sheet1")
        .map_err(|e| format!("{e:?}"))?;
    let (qty, note): (i64, Option<String>) =
        sqlx::query_as("SELECT qty, note FROM stock WHERE sku = 'A-1'")
            .fetch_one(&pool)
            .await?;
    println!("after the conflict: sheet {sheet_now}, database qty={qty} note={note:?}");
    assert_eq!(qty, 4, "the lower count wins");
    assert_eq!(sheet_now[1][1], serde_json::json!(4));
    assert_eq!(
        sheet_now[1][2],
        serde_json::json!("recounted"),
        "the one-sided note change merges"
    );
    println!("the lower stock count won on both sides");
    emulator.shutdown().await;
    Ok(())
}
