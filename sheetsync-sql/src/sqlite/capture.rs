//! SQLite change capture: row triggers write the keys of changed rows into an `AUTOINCREMENT`
//! change log. SQLite has one writer at a time, so id order is commit order and `id > cursor`
//! never skips an entry.
//!
//! Echo suppression: the engine's write transaction inserts its origin into `_sheetsync_ctx`
//! and deletes it before commit; the triggers copy it into the change log. No other connection
//! ever sees that row.

use sheetsync_core::{Error, ErrorKind, Result};
use sqlx::SqlitePool;

use crate::dialect::{audited, short_hash, Dialect};
use crate::error::db_error;
use crate::table::TableInfo;

/// The version of the objects `install` creates.
pub(crate) const CAPTURE_VERSION: i64 = 1;

const SHARED_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS _sheetsync_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _sheetsync_changelog (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        tbl    TEXT NOT NULL,
        op     TEXT NOT NULL,
        pk     TEXT NOT NULL,
        origin TEXT,
        at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    "CREATE INDEX IF NOT EXISTS _sheetsync_changelog_tbl ON _sheetsync_changelog (tbl, id)",
    "CREATE TABLE IF NOT EXISTS _sheetsync_ctx (name TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE IF NOT EXISTS _sheetsync_tables (tbl TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS _sheetsync_consumers (
        tbl TEXT NOT NULL, consumer TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (tbl, consumer))",
];

fn trigger_names(table: &str) -> [String; 3] {
    let h = short_hash(table);
    ["ins", "upd", "del"].map(|s| format!("\"_sheetsync_{h}_{s}\""))
}

fn trigger_sql(info: &TableInfo) -> [String; 3] {
    let d = Dialect::Sqlite;
    let table = info.quoted();
    let tbl = d.literal(&info.table);
    let key_expr = |alias: &str| -> String {
        info.key
            .iter()
            .map(|&i| {
                let c = format!("{alias}.{}", d.quote(&info.columns[i].name));
                if info.columns[i].ty == sheetsync_core::ColumnType::Bytes {
                    format!("hex({c})")
                } else {
                    c
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let same_key = info
        .key
        .iter()
        .map(|&i| {
            let c = d.quote(&info.columns[i].name);
            format!("OLD.{c} IS NEW.{c}")
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let origin = "(SELECT value FROM _sheetsync_ctx WHERE name = 'origin')";
    let [ins, upd, del] = trigger_names(&info.table);
    let insert = |op: &str, alias: &str| {
        format!(
            "INSERT INTO _sheetsync_changelog (tbl, op, pk, origin) VALUES ({tbl}, '{op}', json_array({}), {origin});",
            key_expr(alias)
        )
    };
    [
        format!("CREATE TRIGGER {ins} AFTER INSERT ON {table} BEGIN {} END", insert("I", "NEW")),
        format!(
            "CREATE TRIGGER {upd} AFTER UPDATE ON {table} BEGIN {} \
             INSERT INTO _sheetsync_changelog (tbl, op, pk, origin) SELECT {tbl}, 'D', json_array({}), {origin} WHERE NOT ({same_key}); END",
            insert("U", "NEW"),
            key_expr("OLD"),
        ),
        format!("CREATE TRIGGER {del} AFTER DELETE ON {table} BEGIN {} END", insert("D", "OLD")),
    ]
}

/// Creates the shared tables and this table's triggers. Idempotent.
pub(crate) async fn install(pool: &SqlitePool, info: &TableInfo) -> Result<()> {
    let err = |e| db_error(e, "install");
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
    for ddl in SHARED_DDL {
        sqlx::query(*ddl).execute(&mut *tx).await.map_err(err)?;
    }
    // A new change log gets a new epoch, so cursors into an earlier one are recognised.
    sqlx::query("INSERT OR IGNORE INTO _sheetsync_meta (name, value) VALUES ('log_epoch', ?)")
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    let installed: Option<String> =
        sqlx::query_scalar("SELECT value FROM _sheetsync_meta WHERE name = 'capture_version'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
    if let Some(v) = installed.and_then(|v| v.parse::<i64>().ok()) {
        if v > CAPTURE_VERSION {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("sheetsync change capture version {v} is installed; this adapter knows up to {CAPTURE_VERSION}"),
            ));
        }
    }
    sqlx::query(
        "INSERT INTO _sheetsync_meta (name, value) VALUES ('capture_version', ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(CAPTURE_VERSION.to_string())
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    for name in trigger_names(&info.table) {
        sqlx::query(audited(format!("DROP TRIGGER IF EXISTS {name}")))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    for ddl in trigger_sql(info) {
        sqlx::query(audited(ddl))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    sqlx::query(
        "INSERT INTO _sheetsync_tables (tbl, version) VALUES (?, ?) ON CONFLICT (tbl) DO UPDATE SET version = excluded.version",
    )
    .bind(&info.table)
    .bind(CAPTURE_VERSION)
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)
}

/// True when this table's triggers are installed.
pub(crate) async fn is_installed(pool: &SqlitePool, table: &str) -> Result<bool> {
    let err = |e| db_error(e, "install");
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sheetsync_tables')",
    )
    .fetch_one(pool)
    .await
    .map_err(err)?;
    if !exists {
        return Ok(false);
    }
    let v: Option<i64> = sqlx::query_scalar("SELECT version FROM _sheetsync_tables WHERE tbl = ?")
        .bind(table)
        .fetch_optional(pool)
        .await
        .map_err(err)?;
    Ok(v.is_some())
}

/// Removes this table's triggers and change-log entries; once no table is left, the shared
/// capture tables too (the state store's tables, if any, stay).
pub(crate) async fn uninstall(pool: &SqlitePool, info: &TableInfo) -> Result<()> {
    let err = |e| db_error(e, "uninstall");
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
    for name in trigger_names(&info.table) {
        sqlx::query(audited(format!("DROP TRIGGER IF EXISTS {name}")))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sheetsync_tables')",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(err)?;
    if exists {
        for sql in [
            "DELETE FROM _sheetsync_changelog WHERE tbl = ?",
            "DELETE FROM _sheetsync_consumers WHERE tbl = ?",
            "DELETE FROM _sheetsync_tables WHERE tbl = ?",
        ] {
            sqlx::query(sql)
                .bind(&info.table)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM _sheetsync_tables")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        if left == 0 {
            for t in [
                "_sheetsync_changelog",
                "_sheetsync_consumers",
                "_sheetsync_tables",
                "_sheetsync_ctx",
                "_sheetsync_meta",
            ] {
                sqlx::query(audited(format!("DROP TABLE IF EXISTS {t}")))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            }
        }
    }
    tx.commit().await.map_err(err)
}
