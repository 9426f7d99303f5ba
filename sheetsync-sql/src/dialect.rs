//! What differs between the SQL dialects: identifier quoting, string literals and how a write
//! transaction bounds its waits. Table information lives in [`crate::table`], the statements
//! built from it in [`crate::statements`], values in [`crate::codec`].
//!
//! Table and column names only ever come from introspection and are always quoted; values are
//! always bound, never pasted into SQL.

use std::time::Duration;

/// How one value is bound.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// Marks a statement built here as audited: it holds identifiers that came from introspection
/// and were quoted by [`Dialect::quote`], placeholders, and fixed SQL; never a value.
pub(crate) fn audited(sql: impl Into<String>) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.into())
}

/// The SQL dialect of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// The identifier quoted for this dialect: `"a""b"` for PostgreSQL and SQLite, `` `a``b` `` for
    /// MySQL.
    pub(crate) fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", ident.replace('"', "\"\"")),
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
        }
    }

    /// A string literal that survives every SQL mode: `'it''s'`, or for MySQL (where backslashes
    /// may or may not escape) a hex literal converted to utf8mb4.
    pub(crate) fn literal(self, s: &str) -> String {
        match self {
            Dialect::Postgres | Dialect::Sqlite => format!("'{}'", s.replace('\'', "''")),
            Dialect::MySql => {
                if s.is_empty() {
                    return "''".into();
                }
                let hex: String = s.bytes().map(|b| format!("{b:02X}")).collect();
                format!("CONVERT(X'{hex}' USING utf8mb4)")
            }
        }
    }
}

/// How long a write transaction waits for a lock and for one statement (zero: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waits {
    /// For a lock another transaction holds.
    pub lock: Duration,
    /// For one statement.
    pub statement: Duration,
}

/// The statement that bounds a write transaction's waits, run inside it before anything else,
/// and the one that gives the session its own settings back afterwards (`None` where the
/// settings end with the transaction).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WaitSql {
    pub set: String,
    pub binds: Vec<Bind>,
    pub restore: Option<&'static str>,
}

impl Dialect {
    /// How a write transaction bounds its waits: transaction-local settings on PostgreSQL,
    /// session variables on MySQL (`mariadb`: MariaDB's `max_statement_time` rather than
    /// MySQL's `max_execution_time`), saved and restored around the transaction. SQLite's busy
    /// timeout belongs to the connection and must be set before `BEGIN IMMEDIATE`, which is
    /// what waits: see [`sqlite_busy_timeout_sql`].
    pub(crate) fn wait_sql(self, mariadb: bool, w: Waits) -> WaitSql {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        // MySQL's lock waits are whole seconds, at least one; zero asks for the maximum.
        let secs = |d: Duration, max: i64| match ms(d) {
            0 => max,
            m => ((m + 999) / 1_000).min(max),
        };
        match self {
            Dialect::Postgres => WaitSql {
                set: "SELECT set_config('lock_timeout', $1, true), \
                      set_config('statement_timeout', $2, true)"
                    .into(),
                binds: vec![
                    Bind::Text(format!("{}ms", ms(w.lock))),
                    Bind::Text(format!("{}ms", ms(w.statement))),
                ],
                restore: None,
            },
            Dialect::MySql => {
                let (var, limit) = if mariadb {
                    ("max_statement_time", Bind::Float(w.statement.as_secs_f64()))
                } else {
                    ("max_execution_time", Bind::Int(ms(w.statement)))
                };
                WaitSql {
                    set: format!(
                        "SET @sheetsync_lock_wait = @@SESSION.innodb_lock_wait_timeout, \
                         @sheetsync_mdl_wait = @@SESSION.lock_wait_timeout, \
                         @sheetsync_statement_time = @@SESSION.{var}, \
                         SESSION innodb_lock_wait_timeout = ?, SESSION lock_wait_timeout = ?, \
                         SESSION {var} = ?"
                    ),
                    binds: vec![
                        Bind::Int(secs(w.lock, 1_073_741_824)),
                        Bind::Int(secs(w.lock, 31_536_000)),
                        limit,
                    ],
                    restore: Some(if mariadb {
                        MYSQL_RESTORE_WAITS_MARIADB
                    } else {
                        MYSQL_RESTORE_WAITS
                    }),
                }
            }
            Dialect::Sqlite => WaitSql {
                // Zero would mean "do not wait at all" to SQLite.
                set: sqlite_busy_timeout_sql(match ms(w.lock) {
                    0 => i32::MAX.into(),
                    m => m,
                }),
                binds: Vec::new(),
                restore: None,
            },
        }
    }
}

/// Restores what [`Dialect::wait_sql`] saved (a no-op when nothing was saved), and clears the
/// origin tag.
const MYSQL_RESTORE_WAITS: &str = "SET @sheetsync_origin = NULL, \
    SESSION innodb_lock_wait_timeout = COALESCE(@sheetsync_lock_wait, @@SESSION.innodb_lock_wait_timeout), \
    SESSION lock_wait_timeout = COALESCE(@sheetsync_mdl_wait, @@SESSION.lock_wait_timeout), \
    SESSION max_execution_time = COALESCE(@sheetsync_statement_time, @@SESSION.max_execution_time)";
const MYSQL_RESTORE_WAITS_MARIADB: &str = "SET @sheetsync_origin = NULL, \
    SESSION innodb_lock_wait_timeout = COALESCE(@sheetsync_lock_wait, @@SESSION.innodb_lock_wait_timeout), \
    SESSION lock_wait_timeout = COALESCE(@sheetsync_mdl_wait, @@SESSION.lock_wait_timeout), \
    SESSION max_statement_time = COALESCE(@sheetsync_statement_time, @@SESSION.max_statement_time)";

/// `PRAGMA busy_timeout = ms` for SQLite (which takes no parameters here: the milliseconds are
/// a number this crate computed or read from SQLite).
pub(crate) fn sqlite_busy_timeout_sql(ms: i64) -> String {
    format!("PRAGMA busy_timeout = {}", ms.clamp(0, i32::MAX.into()))
}

/// A short, stable hexadecimal name for `s` (FNV-1a), for trigger and function names that must
/// stay within identifier length limits whatever the table is called.
pub(crate) fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_per_dialect() {
        assert_eq!(Dialect::Postgres.quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::Sqlite.quote("select"), "\"select\"");
        assert_eq!(Dialect::MySql.quote("a`b"), "`a``b`");
        assert_eq!(Dialect::MySql.quote("a\"b"), "`a\"b`");
        assert_eq!(Dialect::Postgres.literal("it's"), "'it''s'");
        assert_eq!(
            Dialect::MySql.literal("a'\\"),
            "CONVERT(X'61275C' USING utf8mb4)"
        );
    }

    #[test]
    fn waits_are_bounded_per_dialect() {
        let w = Waits {
            lock: Duration::from_millis(1_500),
            statement: Duration::from_secs(30),
        };
        let pg = Dialect::Postgres.wait_sql(false, w);
        assert_eq!(
            pg.binds,
            vec![Bind::Text("1500ms".into()), Bind::Text("30000ms".into())]
        );
        assert!(pg.restore.is_none(), "transaction-local");
        let maria = Dialect::MySql.wait_sql(true, w);
        assert!(maria.set.contains("SESSION max_statement_time = ?"));
        assert_eq!(
            maria.binds,
            vec![Bind::Int(2), Bind::Int(2), Bind::Float(30.0)],
            "whole seconds, rounded up"
        );
        assert!(maria.restore.unwrap().contains("max_statement_time"));
        let my = Dialect::MySql.wait_sql(false, w);
        assert!(my.set.contains("SESSION max_execution_time = ?"));
        assert_eq!(my.binds[2], Bind::Int(30_000));
        let none = Waits {
            lock: Duration::ZERO,
            statement: Duration::ZERO,
        };
        assert_eq!(
            Dialect::MySql.wait_sql(true, none).binds,
            vec![
                Bind::Int(1_073_741_824),
                Bind::Int(31_536_000),
                Bind::Float(0.0)
            ]
        );
        assert_eq!(
            Dialect::Sqlite.wait_sql(false, w).set,
            "PRAGMA busy_timeout = 1500"
        );
        assert_eq!(
            Dialect::Sqlite.wait_sql(false, none).set,
            "PRAGMA busy_timeout = 2147483647"
        );
    }

    #[test]
    fn short_hash_is_stable() {
        assert_eq!(short_hash("orders"), short_hash("orders"));
        assert_ne!(short_hash("orders"), short_hash("Orders"));
        assert_eq!(short_hash("x").len(), 16);
    }
}
