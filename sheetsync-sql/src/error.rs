//! The one place where sqlx errors become sheetsync errors.
//!
//! * connection trouble (I/O, TLS, pool time-outs, SQLSTATE class `08`), serialization failures
//!   (`40001`), deadlocks (`40P01`, MySQL 1213) and lock time-outs (`55P03`, MySQL 1205) are
//!   [temporary](sheetsync_core::ErrorStatus::Temporary): the engine retries the batch;
//! * errors about one row's data (integrity class `23`, data class `22`, SQLite constraint and
//!   type errors, MySQL conversion errors) are [`RowError::Held`]: that row is held and the rest
//!   of the batch goes on;
//! * everything else is permanent.
//!
//! A statement that writes or locks rows and gives up waiting (PostgreSQL `55P03` lock
//! time-out and `57014` statement time-out, MySQL 1205 and 3572, MariaDB 1969, MySQL 3024) is
//! [`RowError::Busy`]: its rows are held for now and retried, the rest of the batch goes on.

use std::time::Duration;

use sheetsync_core::{Error, ErrorKind};

/// How long opening a connection to a database server may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (and closes) one connection to the server of `url` within [`CONNECT_TIMEOUT`], so a
/// server that is down or unreachable fails at once with its host, port and the system's
/// error, rather than as a pool time-out half a minute later.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) async fn probe_server<C: sqlx::Connection>(
    url: &str,
    default_port: u16,
) -> Result<(), Error> {
    let server = server_address(url, default_port);
    match tokio::time::timeout(CONNECT_TIMEOUT, C::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => {
            let e = db_error(e, "connect");
            let message = format!("cannot connect to {server}: {}", e.message());
            Err(Error::new(e.kind(), message).with_operation("connect"))
        }
        Err(_) => Err(Error::new(
            ErrorKind::Connection,
            format!(
                "cannot connect to {server}: no answer within {} s (is the server running, and is the address right?)",
                CONNECT_TIMEOUT.as_secs()
            ),
        )
        .with_operation("connect")
        .temporary()),
    }
}

/// `host:port` of a database URL, without credentials, `default_port` filled in.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn server_address(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if authority.is_empty() {
        "localhost"
    } else {
        authority
    };
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']')
    });
    if has_port {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    }
}

/// The outcome of a statement that wrote one or more rows.
#[derive(Debug)]
pub(crate) enum RowError {
    /// The database refused the row(s) for their data: a constraint, a type, a range.
    Held(String),
    /// The statement gave up waiting for a lock another transaction holds, or ran out of its
    /// time: the row(s) are held with this reason and retried next cycle.
    Busy(String),
    /// The statement failed for a reason that has nothing to do with the rows.
    Fatal(Error),
}

impl From<Error> for RowError {
    fn from(e: Error) -> Self {
        RowError::Fatal(e)
    }
}

/// MySQL/MariaDB error numbers that concern the data of a row.
#[cfg(feature = "mysql")]
const MYSQL_ROW_ERRORS: &[u16] = &[
    1048, // column cannot be null
    1062, // duplicate entry
    1216, 1217, 1451, 1452, // foreign keys
    1264, // out of range
    1265, // data truncated
    1292, // incorrect datetime/date value
    1364, // no default value
    1366, // incorrect value for column
    1406, // data too long
    1411, // incorrect value for function
    3140, // invalid JSON text (MySQL)
    3819, // check constraint violated (MySQL)
    4025, // check constraint failed (MariaDB)
    4038, // syntax error in JSON text (MariaDB)
];

fn sqlstate_class(code: &str) -> &str {
    code.get(..2).unwrap_or("")
}

/// The database-specific error number: MySQL's error number, SQLite's extended result code.
fn native_number(db: &dyn sqlx::error::DatabaseError) -> Option<(Native, u32)> {
    #[cfg(feature = "mysql")]
    if let Some(m) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some((Native::MySql, m.number().into()));
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return db
            .code()
            .and_then(|c| c.parse().ok())
            .map(|n| (Native::Sqlite, n));
    }
    let _ = db;
    None
}

#[allow(dead_code)] // a variant per enabled database feature
enum Native {
    MySql,
    Sqlite,
}

/// True when the database refused a row because of its data.
pub(crate) fn is_row_error(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    if !matches!(db.kind(), sqlx::error::ErrorKind::Other) {
        return true; // unique, foreign key, not null, check
    }
    match native_number(db.as_ref()) {
        #[cfg(feature = "mysql")]
        Some((Native::MySql, n)) if MYSQL_ROW_ERRORS.iter().any(|&m| u32::from(m) == n) => {
            return true
        }
        // SQLite: SQLITE_CONSTRAINT (19), SQLITE_MISMATCH (20), SQLITE_TOOBIG (18), with extended codes.
        Some((Native::Sqlite, n)) => return matches!(n & 0xff, 18..=20),
        _ => {}
    }
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    matches!(sqlstate_class(&code), "22" | "23")
}

/// What a statement that gave up waiting waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeout {
    Lock,
    Statement,
}

fn timeout(e: &sqlx::Error) -> Option<Timeout> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    match native_number(db.as_ref()) {
        // Lock wait time-out (MariaDB's NOWAIT too), MySQL's NOWAIT.
        Some((Native::MySql, 1205 | 3572)) => return Some(Timeout::Lock),
        // MariaDB max_statement_time, MySQL max_execution_time.
        Some((Native::MySql, 1969 | 3024)) => return Some(Timeout::Statement),
        Some(_) => return None,
        None => {}
    }
    match db.code().as_deref() {
        Some("55P03") => Some(Timeout::Lock),
        Some("57014") => Some(Timeout::Statement),
        _ => None,
    }
}

/// The statement gave up waiting for a lock another transaction holds (or lost a deadlock):
/// another writer is in the way, and trying again later may succeed.
fn is_lock_wait(e: &sqlx::Error) -> bool {
    if timeout(e) == Some(Timeout::Lock) {
        return true;
    }
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    match native_number(db.as_ref()) {
        Some((Native::MySql, n)) => n == 1213,
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with extended codes.
        Some((Native::Sqlite, n)) => matches!(n & 0xff, 5 | 6),
        None => false,
    }
}

fn is_temporary(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            match native_number(db.as_ref()) {
                Some((Native::MySql, n)) => return matches!(n, 1205 | 1213 | 1927 | 2006 | 2013),
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with extended codes.
                Some((Native::Sqlite, n)) => return matches!(n & 0xff, 5 | 6),
                None => {}
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            matches!(
                code.as_str(),
                "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03"
            ) || sqlstate_class(&code) == "08"
        }
        _ => false,
    }
}

/// Maps a sqlx error to a sheetsync error, naming the operation.
pub(crate) fn db_error(e: sqlx::Error, operation: &'static str) -> Error {
    let kind = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => ErrorKind::Connection,
        sqlx::Error::Configuration(_) => ErrorKind::ConfigInvalid,
        sqlx::Error::RowNotFound => ErrorKind::NotFound,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => ErrorKind::InvalidData,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if sqlstate_class(&code) == "08" || matches!(code.as_str(), "57P01" | "57P02" | "57P03")
            {
                ErrorKind::Connection
            } else if code == "42501" {
                ErrorKind::PermissionDenied
            } else if code == "28000" || code == "28P01" {
                ErrorKind::Unauthenticated
            } else if matches!(code.as_str(), "40001" | "40P01") || is_lock_wait(&e) {
                ErrorKind::Conflict
            } else if is_row_error(&e) {
                ErrorKind::InvalidData
            } else {
                ErrorKind::Unexpected
            }
        }
        _ => ErrorKind::Unexpected,
    };
    let temporary = is_temporary(&e);
    let message = e.to_string();
    let err = Error::new(kind, message)
        .with_operation(operation)
        .with_source(e);
    if temporary {
        err.temporary()
    } else {
        err.permanent()
    }
}

/// Maps a sqlx error from a statement that locked rows of `table`: a time-out makes them busy.
pub(crate) fn lock_error(e: sqlx::Error, operation: &'static str, table: &str) -> RowError {
    let message = || match &e {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    };
    match timeout(&e) {
        Some(Timeout::Lock) => RowError::Busy(format!(
            "another transaction holds a lock on the row in {table} ({}); the write is retried next cycle",
            message()
        )),
        Some(Timeout::Statement) => RowError::Busy(format!(
            "the write to {table} ran out of its statement time-out ({}); it is retried next cycle",
            message()
        )),
        None => RowError::Fatal(db_error(e, operation)),
    }
}

/// Maps a sqlx error from a statement that wrote rows of `table`: a data error holds the
/// row(s), a time-out makes them busy.
pub(crate) fn row_error(e: sqlx::Error, operation: &'static str, table: &str) -> RowError {
    if timeout(&e).is_some() {
        return lock_error(e, operation, table);
    }
    if is_row_error(&e) {
        let msg = match &e {
            sqlx::Error::Database(db) => db.message().to_string(),
            other => other.to_string(),
        };
        RowError::Held(msg)
    } else {
        RowError::Fatal(db_error(e, operation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_leave_out_credentials() {
        assert_eq!(
            server_address("postgres://u:pw@db.internal/shop", 5432),
            "db.internal:5432"
        );
        assert_eq!(
            server_address("mysql://root@127.0.0.1:3307/t?x=1", 3306),
            "127.0.0.1:3307"
        );
        assert_eq!(server_address("postgres:///shop", 5432), "localhost:5432");
    }

    #[test]
    fn io_errors_are_temporary_connection_errors() {
        let e = db_error(
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )),
            "scan",
        );
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.is_temporary());
        assert_eq!(e.operation(), "scan");
        let e = db_error(sqlx::Error::PoolTimedOut, "apply");
        assert!(e.is_temporary());
        let e = db_error(sqlx::Error::Configuration("bad url".into()), "connect");
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(!e.is_temporary());
    }

    #[test]
    fn non_database_errors_never_hold_rows() {
        assert!(!is_row_error(&sqlx::Error::PoolTimedOut));
        assert!(matches!(
            row_error(sqlx::Error::PoolTimedOut, "apply", "items"),
            RowError::Fatal(_)
        ));
    }
}
