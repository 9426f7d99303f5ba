//! PostgreSQL change capture: statement-level triggers with transition tables write the keys of
//! changed rows into `sheetsync.changelog`, stamped with the writing transaction's `xid8`.
//!
//! The feed reads only entries below the snapshot horizon
//! (`xid < pg_snapshot_xmin(pg_current_snapshot())`), ordered by `(xid, seq)`: every transaction
//! below the horizon has finished, so no entry can ever appear behind the cursor, and a
//! transaction that commits late holds the horizon back until it does.

use sheetsync_core::{Error, ErrorKind, Result};
use sqlx::{Connection, PgPool};

use crate::dialect::{audited, Dialect};
use crate::error::db_error;
use crate::table::TableInfo;

/// The version of the objects `install` creates.
pub(crate) const CAPTURE_VERSION: i32 = 1;

const SHARED_DDL: &[&str] = &[
    "CREATE SCHEMA IF NOT EXISTS sheetsync",
    "CREATE TABLE IF NOT EXISTS sheetsync.meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sheetsync.changelog (
        xid    xid8        NOT NULL DEFAULT pg_current_xact_id(),
        seq    bigint      GENERATED ALWAYS AS IDENTITY,
        tbl    bigint      NOT NULL,
        op     \"char\"    NOT NULL,
        pk     text[]      NOT NULL,
        origin text        NULL DEFAULT NULLIF(current_setting('sheetsync.origin', true), ''),
        at     timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (xid, seq))",
    "CREATE INDEX IF NOT EXISTS changelog_tbl_xid_seq ON sheetsync.changelog (tbl, xid, seq)",
    "CREATE TABLE IF NOT EXISTS sheetsync.tables (
        tbl bigint PRIMARY KEY, name text NOT NULL, version int NOT NULL,
        installed_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS sheetsync.consumers (
        tbl bigint NOT NULL, consumer text NOT NULL, xid xid8 NOT NULL, seq bigint NOT NULL,
        acked_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tbl, consumer))",
];

fn function_name(oid: i64) -> String {
    format!("sheetsync.\"capture_{oid}\"")
}

const TRIGGERS: [&str; 4] = [
    "sheetsync_capture_insert",
    "sheetsync_capture_update",
    "sheetsync_capture_delete",
    "sheetsync_capture_truncate",
];

/// The per-table trigger function: key columns are compiled in, quoted.
fn function_sql(info: &TableInfo, oid: i64) -> String {
    let q = |i: &usize| Dialect::Postgres.quote(&info.columns[*i].name);
    let pk = |alias: &str| -> String {
        info.key
            .iter()
            .map(|i| format!("{alias}.{}::text", q(i)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let body = format!(
        "BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO sheetsync.changelog (tbl, op, pk) SELECT TG_RELID::int8, 'I', ARRAY[{new}] FROM new_rows n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO sheetsync.changelog (tbl, op, pk) SELECT TG_RELID::int8, 'U', ARRAY[{new}] FROM new_rows n;
    -- A changed key: the old key is gone (a hashed set difference, linear in the rows).
    INSERT INTO sheetsync.changelog (tbl, op, pk)
      SELECT TG_RELID::int8, 'D', gone.pk FROM (
        SELECT ARRAY[{old}] AS pk FROM old_rows o EXCEPT SELECT ARRAY[{new}] FROM new_rows n) gone;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO sheetsync.changelog (tbl, op, pk) SELECT TG_RELID::int8, 'D', ARRAY[{old}] FROM old_rows o;
  ELSE
    -- TRUNCATE names no rows: the reader asks the engine for a full read.
    INSERT INTO sheetsync.changelog (tbl, op, pk) VALUES (TG_RELID::int8, 'T', '{{}}');
  END IF;
  IF NULLIF(current_setting('sheetsync.origin', true), '') IS NULL THEN
    PERFORM pg_notify('sheetsync', TG_RELID::text);
  END IF;
  RETURN NULL;
END",
        new = pk("n"),
        old = pk("o"),
    );
    // A dollar-quote tag that the body (which holds column names) does not contain.
    let mut tag = "$sheetsync$".to_string();
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$sheetsync{n}$");
    }
    format!(
        "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {tag}{body}{tag}",
        function_name(oid)
    )
}

/// Creates the shared objects (once per database) and this table's triggers. Idempotent.
pub(crate) async fn install(pool: &PgPool, info: &TableInfo, oid: i64) -> Result<()> {
    let err = |e| db_error(e, "install");
    let mut conn = pool.acquire().await.map_err(err)?;
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    if version < 130_000 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("change capture needs PostgreSQL 13 or later (xid8); the server is version {version}"),
        )
        .with_operation("install"));
    }
    let mut tx = conn.begin().await.map_err(err)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sheetsync.install'))")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    for ddl in SHARED_DDL {
        sqlx::query(*ddl).execute(&mut *tx).await.map_err(err)?;
    }
    let installed: Option<String> =
        sqlx::query_scalar("SELECT value FROM sheetsync.meta WHERE key = 'capture_version'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
    if let Some(v) = installed.and_then(|v| v.parse::<i32>().ok()) {
        if v > CAPTURE_VERSION {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("sheetsync change capture version {v} is installed; this adapter knows up to {CAPTURE_VERSION}"),
            ));
        }
    }
    sqlx::query(
        "INSERT INTO sheetsync.meta (key, value) VALUES ('capture_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(CAPTURE_VERSION.to_string())
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    sqlx::query(audited(function_sql(info, oid)))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    let table = info.quoted();
    let f = function_name(oid);
    let defs = [
        ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
        (
            "UPDATE",
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ),
        ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ("TRUNCATE", ""),
    ];
    for (name, (event, referencing)) in TRIGGERS.iter().zip(defs) {
        sqlx::query(audited(format!("DROP TRIGGER IF EXISTS {name} ON {table}")))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query(audited(format!(
            "CREATE TRIGGER {name} AFTER {event} ON {table} {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {f}()"
        )))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    }
    sqlx::query(
        "INSERT INTO sheetsync.tables (tbl, name, version) VALUES ($1, $2, $3)
         ON CONFLICT (tbl) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version",
    )
    .bind(oid)
    .bind(info.display())
    .bind(CAPTURE_VERSION)
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)
}

/// True when this table's triggers are installed.
pub(crate) async fn is_installed(pool: &PgPool, oid: i64) -> Result<bool> {
    let err = |e| db_error(e, "install");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('sheetsync.tables') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(err)?;
    if !exists {
        return Ok(false);
    }
    let v: Option<i32> = sqlx::query_scalar("SELECT version FROM sheetsync.tables WHERE tbl = $1")
        .bind(oid)
        .fetch_optional(pool)
        .await
        .map_err(err)?;
    Ok(v.is_some())
}

/// Removes this table's triggers, function and change-log entries; when no table is left, the
/// shared capture objects too (the state store's tables, if any, stay).
pub(crate) async fn uninstall(pool: &PgPool, info: &TableInfo, oid: i64) -> Result<()> {
    let err = |e| db_error(e, "uninstall");
    let mut conn = pool.acquire().await.map_err(err)?;
    let mut tx = conn.begin().await.map_err(err)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sheetsync.install'))")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    let table = info.quoted();
    for name in TRIGGERS {
        sqlx::query(audited(format!("DROP TRIGGER IF EXISTS {name} ON {table}")))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    sqlx::query(audited(format!(
        "DROP FUNCTION IF EXISTS {}()",
        function_name(oid)
    )))
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('sheetsync.tables') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
    if exists {
        for sql in [
            "DELETE FROM sheetsync.changelog WHERE tbl = $1",
            "DELETE FROM sheetsync.consumers WHERE tbl = $1",
            "DELETE FROM sheetsync.tables WHERE tbl = $1",
        ] {
            sqlx::query(sql)
                .bind(oid)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sheetsync.tables")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        if left == 0 {
            for sql in [
                "DROP TABLE IF EXISTS sheetsync.changelog",
                "DROP TABLE IF EXISTS sheetsync.consumers",
                "DROP TABLE IF EXISTS sheetsync.tables",
                "DROP TABLE IF EXISTS sheetsync.meta",
            ] {
                sqlx::query(sql).execute(&mut *tx).await.map_err(err)?;
            }
            // The schema goes too unless something else (the state store) lives there.
            sqlx::query(
                "DO $$ BEGIN DROP SCHEMA IF EXISTS sheetsync; EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$",
            )
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
    }
    tx.commit().await.map_err(err)
}

/// The feed position: the last `(xid, seq)` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgCursor {
    pub xid: u64,
    pub seq: i64,
}

impl PgCursor {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::new(
                ErrorKind::InvalidData,
                format!("{s:?} is not a PostgreSQL change cursor"),
            )
        };
        let rest = s.strip_prefix("pg:").ok_or_else(bad)?;
        let (x, q) = rest.split_once(':').ok_or_else(bad)?;
        Ok(PgCursor {
            xid: x.parse().map_err(|_| bad())?,
            seq: q.parse().map_err(|_| bad())?,
        })
    }

    pub(crate) fn render(self) -> String {
        format!("pg:{}:{}", self.xid, self.seq)
    }
}

/// The next transaction id to be assigned: a cursor at or beyond it comes from another
/// history (a logical restore, a new cluster).
pub(crate) async fn next_xid(pool: &PgPool) -> Result<u64> {
    let xmax: String = sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        .fetch_one(pool)
        .await
        .map_err(|e| db_error(e, "changes"))?;
    xmax.parse()
        .map_err(|_| Error::new(ErrorKind::Unexpected, format!("unexpected xid8 {xmax:?}")))
}

/// The position before every transaction that has not finished yet.
pub(crate) async fn horizon(pool: &PgPool) -> Result<PgCursor> {
    let xmin: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(pool)
        .await
        .map_err(|e| db_error(e, "cursor"))?;
    let xmin: u64 = xmin
        .parse()
        .map_err(|_| Error::new(ErrorKind::Unexpected, format!("unexpected xid8 {xmin:?}")))?;
    Ok(PgCursor {
        xid: xmin.saturating_sub(1),
        seq: i64::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{ReadAs, SqlColumn};
    use sheetsync_core::ColumnType;

    #[test]
    fn cursor_roundtrips() {
        let c = PgCursor { xid: 12345, seq: 7 };
        assert_eq!(PgCursor::parse(&c.render()).unwrap(), c);
        assert!(PgCursor::parse("12:3").is_err());
    }

    #[test]
    fn function_quotes_key_columns_and_avoids_its_dollar_tag() {
        let info = TableInfo {
            dialect: Dialect::Postgres,
            schema: Some("public".into()),
            table: "t".into(),
            columns: vec![SqlColumn {
                name: "a\"$sheetsync$".into(),
                ty: ColumnType::Int,
                cast: "integer".into(),
                nullable: false,
                read: ReadAs::Int,
                writable: true,
                has_default: false,
            }],
            key: vec![0],
            generated_key: false,
            identity_always: false,
        };
        let sql = function_sql(&info, 42);
        assert!(sql.contains("n.\"a\"\"$sheetsync$\"::text"));
        assert!(sql.contains("AS $sheetsync1$BEGIN"));
        assert!(sql.ends_with("END$sheetsync1$"));
    }
}
