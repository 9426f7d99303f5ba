//! MySQL/MariaDB change capture: row triggers write the keys of changed rows into
//! `_sheetsync_changelog`, which the adapter consumes as a queue. `AUTO_INCREMENT` ids are
//! handed out at insert time, not at commit, so a reader that remembered "the highest id seen"
//! would skip a transaction that commits late; instead the adapter deletes exactly the ids it
//! handed out once the engine has acknowledged them, and reads the queue from its start again.
//!
//! Echo suppression: the engine sets `@sheetsync_origin` in its write transaction (and clears
//! it before the connection goes back to the pool); the triggers copy it into the change log.

use sheetsync_core::{ColumnType, Error, ErrorKind, Result};
use sqlx::{MySqlPool, Row as _};

use crate::dialect::{audited, short_hash, Dialect};
use crate::error::db_error;
use crate::table::TableInfo;

/// The version of the objects `install` creates.
pub(crate) const CAPTURE_VERSION: i64 = 1;

const SHARED_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS `_sheetsync_meta` (
        name VARCHAR(64) NOT NULL PRIMARY KEY, value TEXT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS `_sheetsync_changelog` (
        id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        tbl    VARCHAR(64) NOT NULL,
        op     CHAR(1) NOT NULL,
        pk     TEXT NOT NULL,
        origin VARCHAR(255) NULL,
        at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        KEY `_sheetsync_changelog_tbl` (tbl, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS `_sheetsync_tables` (
        tbl VARCHAR(64) NOT NULL PRIMARY KEY, version INT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
];

fn trigger_names(table: &str) -> [String; 3] {
    let h = short_hash(table);
    ["ai", "au", "ad"].map(|s| format!("_ss_{h}_{s}"))
}

fn trigger_sql(info: &TableInfo) -> [String; 3] {
    let d = Dialect::MySql;
    let table = info.quoted();
    let tbl = d.literal(&info.table);
    let key_json = |alias: &str| -> String {
        let parts: Vec<String> = info
            .key
            .iter()
            .map(|&i| {
                let c = format!("{alias}.{}", d.quote(&info.columns[i].name));
                if info.columns[i].ty == ColumnType::Bytes {
                    format!("HEX({c})")
                } else {
                    format!("CAST({c} AS CHAR)")
                }
            })
            .collect();
        format!("JSON_ARRAY({})", parts.join(", "))
    };
    let same_key = info
        .key
        .iter()
        .map(|&i| {
            let c = d.quote(&info.columns[i].name);
            format!("NEW.{c} <=> OLD.{c}")
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let insert = |op: &str, alias: &str| {
        format!(
            "INSERT INTO `_sheetsync_changelog` (tbl, op, pk, origin) VALUES ({tbl}, '{op}', {}, @sheetsync_origin)",
            key_json(alias)
        )
    };
    let [ai, au, ad] = trigger_names(&info.table).map(|n| d.quote(&n));
    [
        format!("CREATE TRIGGER {ai} AFTER INSERT ON {table} FOR EACH ROW {}", insert("I", "NEW")),
        format!(
            "CREATE TRIGGER {au} AFTER UPDATE ON {table} FOR EACH ROW BEGIN {}; IF NOT ({same_key}) THEN {}; END IF; END",
            insert("U", "NEW"),
            insert("D", "OLD"),
        ),
        format!("CREATE TRIGGER {ad} AFTER DELETE ON {table} FOR EACH ROW {}", insert("D", "OLD")),
    ]
}

/// Creates the shared tables and this table's triggers. Idempotent: triggers that exist at the
/// current version are left alone, so a running capture never has a gap.
pub(crate) async fn install(pool: &MySqlPool, info: &TableInfo) -> Result<()> {
    let err = |e| db_error(e, "install");
    let mut conn = pool.acquire().await.map_err(err)?;
    let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('sheetsync.install', 60)")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    if locked != Some(1) {
        return Err(Error::new(
            ErrorKind::Unexpected,
            "could not take the sheetsync install lock",
        )
        .temporary());
    }
    let result = async {
        for ddl in SHARED_DDL {
            sqlx::query(*ddl).execute(&mut *conn).await.map_err(err)?;
        }
        let installed: Option<String> = sqlx::query_scalar("SELECT value FROM `_sheetsync_meta` WHERE name = 'capture_version'")
            .fetch_optional(&mut *conn)
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
        sqlx::query("REPLACE INTO `_sheetsync_meta` (name, value) VALUES ('capture_version', ?)")
            .bind(CAPTURE_VERSION.to_string())
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        let version: Option<i64> = sqlx::query_scalar("SELECT CAST(version AS SIGNED) FROM `_sheetsync_tables` WHERE tbl = ?")
            .bind(&info.table)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
        let names = trigger_names(&info.table);
        let present: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME IN (?, ?, ?)",
        )
        .bind(&names[0])
        .bind(&names[1])
        .bind(&names[2])
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
        if version != Some(CAPTURE_VERSION) || present != 3 {
            for name in &names {
                sqlx::query(audited(format!("DROP TRIGGER IF EXISTS {}", Dialect::MySql.quote(name))))
                    .execute(&mut *conn)
                    .await
                    .map_err(err)?;
            }
            for ddl in trigger_sql(info) {
                sqlx::query(audited(ddl)).execute(&mut *conn).await.map_err(err)?;
            }
        }
        sqlx::query("REPLACE INTO `_sheetsync_tables` (tbl, version) VALUES (?, ?)")
            .bind(&info.table)
            .bind(CAPTURE_VERSION)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        Ok(())
    }
    .await;
    let _ = sqlx::query("SELECT RELEASE_LOCK('sheetsync.install')")
        .execute(&mut *conn)
        .await;
    result
}

async fn shared_exists(conn: &mut sqlx::MySqlConnection) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_sheetsync_tables'",
    )
    .fetch_one(conn)
    .await
    .map_err(|e| db_error(e, "install"))?;
    Ok(n > 0)
}

/// True when this table's triggers are installed.
pub(crate) async fn is_installed(pool: &MySqlPool, table: &str) -> Result<bool> {
    let mut conn = pool.acquire().await.map_err(|e| db_error(e, "install"))?;
    if !shared_exists(&mut conn).await? {
        return Ok(false);
    }
    let row = sqlx::query("SELECT 1 FROM `_sheetsync_tables` WHERE tbl = ?")
        .bind(table)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| db_error(e, "install"))?;
    Ok(row.is_some_and(|r| r.len() == 1))
}

/// Removes this table's triggers and queue entries; once no table is left, the shared capture
/// tables too (the state store's tables, if any, stay).
pub(crate) async fn uninstall(pool: &MySqlPool, info: &TableInfo) -> Result<()> {
    let err = |e| db_error(e, "uninstall");
    let mut conn = pool.acquire().await.map_err(err)?;
    for name in trigger_names(&info.table) {
        sqlx::query(audited(format!(
            "DROP TRIGGER IF EXISTS {}",
            Dialect::MySql.quote(&name)
        )))
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    }
    if shared_exists(&mut conn).await? {
        for sql in [
            "DELETE FROM `_sheetsync_changelog` WHERE tbl = ?",
            "DELETE FROM `_sheetsync_tables` WHERE tbl = ?",
        ] {
            sqlx::query(sql)
                .bind(&info.table)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
        }
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM `_sheetsync_tables`")
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
        if left == 0 {
            sqlx::query("DROP TABLE IF EXISTS `_sheetsync_changelog`, `_sheetsync_tables`, `_sheetsync_meta`")
                .execute(&mut *conn)
                .await
                .map_err(err)?;
        }
    }
    Ok(())
}
