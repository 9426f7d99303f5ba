//! The embedded default: `sheetsync run` without a configuration starts the Sheets emulator in
//! process, a SQLite file seeded with a sample table, a mapping between them, and a web page
//! where a person edits the emulated Sheet as a grid and watches the database follow.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sheetsync::emulator::{Config as EmulatorConfig, EmulatorHandle, TriggerSpec};
use sheetsync::{
    Error, ErrorKind, MappingConfig, MappingHandle, OnPanic, Result, SheetsConfig, SourceExt,
    SyncConfig, Table,
};

use crate::config::{Config, LogConfig, ServerConfig};

/// What the demo runs on.
pub struct Demo {
    /// The in-process emulator.
    pub emulator: EmulatorHandle,
    /// The demo spreadsheet.
    pub spreadsheet_id: String,
    /// The SQLite file.
    pub db_path: PathBuf,
    /// The webhook secret the emulator's trigger signs with.
    pub secret: String,
}

const SEED_SQL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS products (
        sku TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        qty INTEGER NOT NULL DEFAULT 0,
        price DECIMAL_TEXT,
        discontinued BOOLEAN NOT NULL DEFAULT 0
    )",
    "INSERT OR IGNORE INTO products VALUES ('A-100', 'Anchor bolt', 120, '0.35', 0)",
    "INSERT OR IGNORE INTO products VALUES ('B-200', 'Bracket, steel', 40, '4.90', 0)",
    "INSERT OR IGNORE INTO products VALUES ('C-300', 'Cable tie (100)', 15, '2.15', 0)",
    "INSERT OR IGNORE INTO products VALUES ('D-400', 'Drill bit 8mm', 7, '6.40', 1)",
];

impl Demo {
    /// Starts the emulator, seeds the database file in `dir`, and returns the configuration
    /// that syncs them (the webhook URL is registered by [`Demo::register_webhook`] once the
    /// server listens).
    pub async fn start(dir: &Path, listen: &str) -> Result<(Demo, Config)> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        let db_path = dir.join("demo.sqlite");
        seed(&db_path).await?;
        let emulator = EmulatorHandle::start(EmulatorConfig::default())
            .await
            .map_err(|e| Error::new(ErrorKind::Connection, format!("emulator: {e}")))?;
        let spreadsheet_id = emulator
            .create_spreadsheet("sheetsync demo")
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("emulator: {e:?}")))?;
        let secret = format!("{:032x}", rand_u128());
        let mut sync = MappingConfig::new("products", &["sku"]);
        sync.timing.poll_interval_ms = 1_000;
        sync.timing.full_scan_interval_ms = 5_000;
        let config = Config {
            sheets: SheetsConfig {
                base_url: emulator.base_url(),
                drive_url: None,
                credentials: None,
                reads_per_minute: 6_000,
                writes_per_minute: 6_000,
                // The demo's emulator posts person edits to the daemon's webhook.
                change_detection: sheetsync::gsheets::watch::ChangeDetection::Webhook,
                ..SheetsConfig::default()
            },
            server: ServerConfig {
                listen: listen.to_string(),
                webhook_secret: Some(secret.clone()),
                public_url: None,
                webhook_path: "/webhook".into(),
                ..ServerConfig::default()
            },
            log: LogConfig::default(),
            replicas: Default::default(),
            mappings: vec![SyncConfig {
                spreadsheet_id: spreadsheet_id.clone(),
                sheet_id: 0,
                header_row: 1,
                database_url: format!("sqlite://{}", db_path.display()),
                table: "products".into(),
                on_panic: OnPanic::Restart,
                sheet_status: Default::default(),
                status_column: None,
                sync,
            }],
        };
        Ok((
            Demo {
                emulator,
                spreadsheet_id,
                db_path,
                secret,
            },
            config,
        ))
    }

    /// Points the emulated Sheet's edit trigger at the daemon's webhook.
    pub fn register_webhook(&self, addr: std::net::SocketAddr) -> Result<()> {
        self.emulator
            .add_trigger(
                &self.spreadsheet_id,
                TriggerSpec {
                    url: format!("http://{addr}/webhook"),
                    secret: self.secret.clone(),
                    sheet_id: None,
                },
            )
            .map(|_| ())
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("emulator trigger: {e:?}")))
    }

    /// What to tell the person at the terminal.
    pub fn banner(&self, addr: std::net::SocketAddr) -> String {
        format!(
            "sheetsync demo\n\
             \n  open      http://{addr}/            edit the Sheet, watch the database\n  \
             emulator  {}  (Google Sheets API v4 on loopback)\n  \
             database  {}\n\
             \nChange the database from another terminal, and watch the Sheet follow:\n  \
             sqlite3 '{}' \"UPDATE products SET qty = qty + 1 WHERE sku = 'A-100'\"\n  \
             sqlite3 '{}' \"INSERT INTO products (sku, name, qty) VALUES ('E-500', 'Eye bolt', 3)\"\n\
             \nPress Ctrl-C to stop.",
            self.emulator.base_url(),
            self.db_path.display(),
            self.db_path.display(),
            self.db_path.display(),
        )
    }

    /// The demo page and its small API: the Sheet's values, a person's edit, the table's rows
    /// and the rows the mapping holds back.
    pub fn router(self: Arc<Self>, db: Arc<dyn Table>, mapping: Arc<MappingHandle>) -> Router {
        Router::new()
            .route("/", get(|| async { Html(include_str!("demo.html")) }))
            .route("/demo/api/sheet", get(sheet_values))
            .route("/demo/api/edit", post(edit_cell))
            .with_state((self.clone(), db.clone()))
            .route("/demo/api/db", get(db_rows).with_state(db))
            .route("/demo/api/held", get(held_rows).with_state(mapping))
    }
}

type DemoState = (Arc<Demo>, Arc<dyn Table>);

async fn sheet_values(State((demo, _)): State<DemoState>) -> impl IntoResponse {
    match demo.emulator.read_values(&demo.spreadsheet_id, "Sheet1") {
        Ok(v) => (StatusCode::OK, Json(json!({ "values": v }))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": format!("{e:?}") })),
        ),
    }
}

#[derive(Deserialize)]
struct Edit {
    /// 1-based row.
    row: u32,
    /// 1-based column.
    col: u32,
    /// What the person typed.
    value: String,
}

async fn edit_cell(State((demo, _)): State<DemoState>, Json(e): Json<Edit>) -> impl IntoResponse {
    if e.row < 2 || e.col < 1 || e.col > 26 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "edit a data cell (row 2 and below, columns A to Z)"})),
        );
    }
    let range = format!(
        "Sheet1!{}{}",
        sheetsync::gsheets::col_letters(e.col - 1),
        e.row
    );
    // A person typing into the browser: parsed like Google (numbers, TRUE/FALSE, dates), and
    // the edit trigger fires.
    match demo
        .emulator
        .set_cells(&demo.spreadsheet_id, &range, vec![vec![json!(e.value)]])
    {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))),
        Err(err) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("{err:?}")})),
        ),
    }
}

/// The held rows, each with its key (as text), where it is and why it is held.
async fn held_rows(State(m): State<Arc<MappingHandle>>) -> Json<serde_json::Value> {
    let held: Vec<serde_json::Value> = m
        .held()
        .await
        .iter()
        .map(|h| {
            json!({
                "key": h.key.as_ref().map(|k| k.to_string()),
                "side": h.side,
                "locator": h.locator,
                "reason": h.reason,
            })
        })
        .collect();
    Json(json!({ "held": held }))
}

async fn db_rows(State(db): State<Arc<dyn Table>>) -> impl IntoResponse {
    let rows = match db.scan_rows().await {
        Ok(rows) => rows,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": e.to_string()})),
            )
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.values().iter().map(|v| v.to_string()).collect())
        .collect();
    let columns: Vec<&str> = db
        .schema()
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    (
        StatusCode::OK,
        Json(json!({ "columns": columns, "rows": rows })),
    )
}

async fn seed(path: &Path) -> Result<()> {
    use sheetsync::sql::sqlx::{self, sqlite::SqliteConnectOptions, ConnectOptions};
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut conn = opts
        .connect()
        .await
        .map_err(|e| Error::new(ErrorKind::Connection, format!("{}: {e}", path.display())))?;
    for sql in SEED_SQL {
        sqlx::query(*sql).execute(&mut conn).await.map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("seeding the demo database: {e}"),
            )
        })?;
    }
    Ok(())
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(1u8) as u128;
    let b = RandomState::new().hash_one(2u8) as u128;
    (a << 64) | b
}

#[cfg(test)]
mod tests {
    use sheetsync::{Column, ColumnType, MemoryTable, Row, TableSchema, Value};

    use super::*;

    async fn answer(db: Arc<dyn Table>) -> (StatusCode, serde_json::Value) {
        let resp = db_rows(State(db)).await.into_response();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// The page's database pane: every row, in key order (2 before 10), values as text; a
    /// failed read is the error, not an empty table.
    #[tokio::test]
    async fn the_database_pane_lists_every_row_in_key_order() {
        let schema = TableSchema::new(
            "t",
            vec![
                Column::new("id", ColumnType::Int),
                Column::new("name", ColumnType::Text),
            ],
            &["id"],
        )
        .unwrap();
        let db = Arc::new(MemoryTable::new("db", schema));
        for (id, name) in [(10, "ten"), (2, "two")] {
            db.upsert(Row::new(vec![Value::Int(id), name.into()]));
        }
        let (status, body) = answer(db.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"columns": ["id", "name"], "rows": [["2", "two"], ["10", "ten"]]})
        );
        db.fail_next_scans(1);
        let (status, body) = answer(db).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
}
