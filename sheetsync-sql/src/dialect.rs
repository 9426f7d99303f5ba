//! What differs between the SQL dialects: identifier quoting, placeholders, how each
//! [`ColumnType`] is read and bound, and the statements built from introspected names.
//!
//! Table and column names only ever come from introspection and are always quoted here; values
//! are always bound, never pasted into SQL.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use sheetsync_core::{Column, ColumnType, Decimal, Direction, Row, RowKey, TableSchema, Value};

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

/// Restores what [`Dialect::wait_sql`] saved (a no-op when nothing was saved).
const MYSQL_RESTORE_WAITS: &str = "SET \
    SESSION innodb_lock_wait_timeout = COALESCE(@sheetsync_lock_wait, @@SESSION.innodb_lock_wait_timeout), \
    SESSION lock_wait_timeout = COALESCE(@sheetsync_mdl_wait, @@SESSION.lock_wait_timeout), \
    SESSION max_execution_time = COALESCE(@sheetsync_statement_time, @@SESSION.max_execution_time)";
const MYSQL_RESTORE_WAITS_MARIADB: &str = "SET \
    SESSION innodb_lock_wait_timeout = COALESCE(@sheetsync_lock_wait, @@SESSION.innodb_lock_wait_timeout), \
    SESSION lock_wait_timeout = COALESCE(@sheetsync_mdl_wait, @@SESSION.lock_wait_timeout), \
    SESSION max_statement_time = COALESCE(@sheetsync_statement_time, @@SESSION.max_statement_time)";

/// `PRAGMA busy_timeout = ms` for SQLite (which takes no parameters here: the milliseconds are
/// a number this crate computed or read from SQLite).
pub(crate) fn sqlite_busy_timeout_sql(ms: i64) -> String {
    format!("PRAGMA busy_timeout = {}", ms.clamp(0, i32::MAX.into()))
}

/// How a column's value is selected and decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAs {
    /// Selected as `bigint`, decoded as `i64`.
    Int,
    /// Selected as `double precision`, decoded as `f64`.
    Float,
    /// A boolean.
    Bool,
    /// Selected as text and parsed.
    Text,
    /// A date.
    Date,
    /// A time.
    Time,
    /// A timestamp.
    Timestamp,
    /// A timestamp with time zone.
    TimestampTz,
    /// Bytes.
    Bytes,
    /// Whatever the database holds (SQLite's dynamic typing).
    Dynamic,
}

/// One introspected column.
#[derive(Debug, Clone)]
pub(crate) struct SqlColumn {
    /// Its name.
    pub name: String,
    /// The sheetsync type.
    pub ty: ColumnType,
    /// The type to cast bound parameters to (PostgreSQL only), without modifiers.
    pub cast: String,
    /// Whether it may hold NULL.
    pub nullable: bool,
    /// How it is read.
    pub read: ReadAs,
    /// False for generated columns: never written.
    pub writable: bool,
    /// The database fills it in when an insert leaves it out (a `DEFAULT`, an identity or
    /// auto-increment).
    pub has_default: bool,
}

/// One introspected table, and the SQL built from it.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    /// The dialect.
    pub dialect: Dialect,
    /// The schema (PostgreSQL) or database (MySQL); `None` for SQLite's main schema.
    pub schema: Option<String>,
    /// The table's name.
    pub table: String,
    /// The columns in table order.
    pub columns: Vec<SqlColumn>,
    /// Indexes of the primary key columns, in key order.
    pub key: Vec<usize>,
    /// The key is one integer column the database fills in (identity, serial, auto_increment,
    /// SQLite's INTEGER PRIMARY KEY).
    pub generated_key: bool,
    /// PostgreSQL `GENERATED ALWAYS AS IDENTITY` key: writes need `OVERRIDING SYSTEM VALUE`.
    pub identity_always: bool,
}

impl TableInfo {
    /// The same table restricted to `names`, in that order. Every name must be a column and
    /// every key column must be kept.
    pub(crate) fn with_columns(mut self, names: &[String]) -> sheetsync_core::Result<TableInfo> {
        use sheetsync_core::{Error, ErrorKind};
        let mut picked = Vec::with_capacity(names.len());
        for n in names {
            let i = self
                .columns
                .iter()
                .position(|c| &c.name == n)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        format!("table {} has no column {n:?}", self.display()),
                    )
                })?;
            if picked.contains(&i) {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("column {n:?} is listed twice"),
                ));
            }
            picked.push(i);
        }
        let mut key = Vec::with_capacity(self.key.len());
        for &k in &self.key {
            let at = picked.iter().position(|&i| i == k).ok_or_else(|| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "the key column {:?} of {} must be among the synced columns",
                        self.columns[k].name,
                        self.display()
                    ),
                )
            })?;
            key.push(at);
        }
        self.columns = picked.iter().map(|&i| self.columns[i].clone()).collect();
        self.key = key;
        Ok(self)
    }
}

/// How a read of rows by key locks them (PostgreSQL and MySQL; SQLite's write transaction
/// excludes every other writer anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// No lock.
    None,
    /// `FOR UPDATE`: waits up to the lock time-out for a row another transaction holds.
    Wait,
    /// `FOR UPDATE NOWAIT`: gives up at once on such a row.
    NoWait,
}

/// Whether a row is written as a new row, for [`TableInfo::check_row`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// An update, or an upsert that may update.
    No,
    /// A new row with its key.
    New,
    /// A new row whose key the database generates.
    GeneratedKey,
}

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

impl TableInfo {
    /// The table's name, quoted and qualified.
    pub(crate) fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!(
                "{}.{}",
                self.dialect.quote(s),
                self.dialect.quote(&self.table)
            ),
            None => self.dialect.quote(&self.table),
        }
    }

    /// A display name: `schema.table` or `table`.
    pub(crate) fn display(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.table),
            None => self.table.clone(),
        }
    }

    /// The sheetsync schema: every column, the primary key as key.
    pub(crate) fn table_schema(&self) -> sheetsync_core::Result<TableSchema> {
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let col = Column::new(c.name.clone(), c.ty).nullable(c.nullable);
                if c.writable {
                    col
                } else {
                    col.direction(Direction::DbToSheet)
                }
            })
            .collect();
        let key: Vec<&str> = self
            .key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect();
        TableSchema::new(self.table.clone(), columns, &key)
    }

    fn q(&self, i: usize) -> String {
        self.dialect.quote(&self.columns[i].name)
    }

    /// The expression selecting column `i`.
    pub(crate) fn read_expr(&self, i: usize, prefix: &str) -> String {
        let c = &self.columns[i];
        let col = format!("{prefix}{}", self.q(i));
        match (self.dialect, c.read) {
            (Dialect::Postgres, ReadAs::Int) => format!("{col}::int8"),
            (Dialect::Postgres, ReadAs::Float) => format!("{col}::float8"),
            (Dialect::Postgres, ReadAs::Text) => format!("{col}::text"),
            (Dialect::MySql, ReadAs::Text) => format!("CAST({col} AS CHAR)"),
            _ => col,
        }
    }

    /// The select list of every column, in order.
    pub(crate) fn select_list(&self, prefix: &str) -> String {
        (0..self.columns.len())
            .map(|i| self.read_expr(i, prefix))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The parameter placeholder for column `i`, parameter number `n` (1-based).
    fn param(&self, i: usize, n: usize) -> String {
        match self.dialect {
            Dialect::Postgres => format!("${n}::{}", self.columns[i].cast),
            Dialect::MySql | Dialect::Sqlite => "?".into(),
        }
    }

    /// The columns an upsert writes: every writable column.
    pub(crate) fn write_columns(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| self.columns[i].writable)
            .collect()
    }

    /// The columns an insert of `row` leaves to the database's default: the `NOT NULL`
    /// columns with a default that `row` leaves empty (key columns aside). An empty text is an
    /// empty cell too: the engine turns an empty cell of a `NOT NULL` text column into `""`.
    pub(crate) fn defaulted(&self, row: &Row) -> Vec<usize> {
        let empty = |v: &Value| v.is_null() || matches!(v, Value::Text(s) if s.is_empty());
        self.columns
            .iter()
            .zip(&row.0)
            .enumerate()
            .filter(|(i, (c, v))| {
                empty(v) && !c.nullable && c.has_default && c.writable && !self.key.contains(i)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The write columns without `skip`.
    pub(crate) fn write_columns_except(&self, skip: &[usize]) -> Vec<usize> {
        self.write_columns()
            .into_iter()
            .filter(|i| !skip.contains(i))
            .collect()
    }

    /// Every row, in key order.
    pub(crate) fn select_all_sql(&self) -> String {
        let order: Vec<String> = self.key.iter().map(|&i| self.q(i)).collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            self.select_list(""),
            self.quoted(),
            order.join(", ")
        )
    }

    /// `<key> IN (...)` for `n` keys, parameters starting at `first`.
    fn key_in(&self, n: usize, first: usize) -> String {
        let mut p = first;
        let cols: Vec<String> = self.key.iter().map(|&i| self.q(i)).collect();
        let mut tuples = Vec::with_capacity(n);
        for _ in 0..n {
            let t: Vec<String> = self
                .key
                .iter()
                .map(|&i| {
                    let s = self.param(i, p);
                    p += 1;
                    s
                })
                .collect();
            tuples.push(if t.len() == 1 {
                t[0].clone()
            } else {
                format!("({})", t.join(", "))
            });
        }
        if cols.len() == 1 {
            format!("{} IN ({})", cols[0], tuples.join(", "))
        } else {
            format!("({}) IN ({})", cols.join(", "), tuples.join(", "))
        }
    }

    /// The rows with these `n` keys (binds: the key values of each key in turn).
    pub(crate) fn select_keys_sql(&self, n: usize, lock: Lock) -> String {
        let lock = match (lock, self.dialect) {
            (_, Dialect::Sqlite) | (Lock::None, _) => "",
            (Lock::Wait, _) => " FOR UPDATE",
            (Lock::NoWait, _) => " FOR UPDATE NOWAIT",
        };
        format!(
            "SELECT {} FROM {} WHERE {}{lock}",
            self.select_list(""),
            self.quoted(),
            self.key_in(n, 1)
        )
    }

    /// Deletes the rows with these `n` keys.
    pub(crate) fn delete_sql(&self, n: usize) -> String {
        format!("DELETE FROM {} WHERE {}", self.quoted(), self.key_in(n, 1))
    }

    /// Inserts or updates `n` rows (binds: the columns `cols` of each row in turn). PostgreSQL
    /// and SQLite only.
    pub(crate) fn upsert_sql(&self, n: usize, cols: &[usize]) -> String {
        let names: Vec<String> = cols.iter().map(|&i| self.q(i)).collect();
        let mut p = 1;
        let mut tuples = Vec::with_capacity(n);
        for _ in 0..n {
            let t: Vec<String> = cols
                .iter()
                .map(|&i| {
                    let s = self.param(i, p);
                    p += 1;
                    s
                })
                .collect();
            tuples.push(format!("({})", t.join(", ")));
        }
        let non_key: Vec<usize> = cols
            .iter()
            .copied()
            .filter(|i| !self.key.contains(i))
            .collect();
        let keys: Vec<String> = self.key.iter().map(|&i| self.q(i)).collect();
        let overriding = if self.identity_always {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let head = format!(
            "INSERT INTO {} ({}){overriding} VALUES {}",
            self.quoted(),
            names.join(", "),
            tuples.join(", ")
        );
        match self.dialect {
            Dialect::Postgres | Dialect::Sqlite => {
                let excluded = if self.dialect == Dialect::Postgres {
                    "EXCLUDED"
                } else {
                    "excluded"
                };
                if non_key.is_empty() {
                    format!("{head} ON CONFLICT ({}) DO NOTHING", keys.join(", "))
                } else {
                    let set: Vec<String> = non_key
                        .iter()
                        .map(|&i| format!("{} = {excluded}.{}", self.q(i), self.q(i)))
                        .collect();
                    format!(
                        "{head} ON CONFLICT ({}) DO UPDATE SET {}",
                        keys.join(", "),
                        set.join(", ")
                    )
                }
            }
            // ON DUPLICATE KEY UPDATE fires on every unique index, not only the primary key, and
            // would update whichever row collided: the MySQL adapter inserts and updates apart
            // (`insert_sql`, `update_join_sql`).
            Dialect::MySql => unreachable!("the MySQL adapter never builds an upsert statement"),
        }
    }

    /// Inserts `n` rows (binds: the columns `cols` of each row in turn); no upsert. Columns
    /// left out get their defaults.
    pub(crate) fn insert_sql(&self, n: usize, cols: &[usize]) -> String {
        let names: Vec<String> = cols.iter().map(|&i| self.q(i)).collect();
        let mut p = 1;
        let tuples: Vec<String> = (0..n)
            .map(|_| {
                let t: Vec<String> = cols
                    .iter()
                    .map(|&i| {
                        let s = self.param(i, p);
                        p += 1;
                        s
                    })
                    .collect();
                format!("({})", t.join(", "))
            })
            .collect();
        let overriding = if self.identity_always {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        format!(
            "INSERT INTO {} ({}){overriding} VALUES {}",
            self.quoted(),
            names.join(", "),
            tuples.join(", ")
        )
    }

    /// PostgreSQL: inserts `n` rows (the columns `cols`) unless their key exists, returning the
    /// rows inserted.
    pub(crate) fn create_sql(&self, n: usize, cols: &[usize]) -> String {
        let keys: Vec<String> = self.key.iter().map(|&i| self.q(i)).collect();
        format!(
            "{} ON CONFLICT ({}) DO NOTHING RETURNING {}",
            self.insert_sql(n, cols),
            keys.join(", "),
            self.select_list("")
        )
    }

    /// MySQL: updates `n` existing rows from a derived table of bound values joined on the
    /// primary key (binds: the columns `cols` of each row in turn). `None` when every column is
    /// a key column (nothing to update).
    pub(crate) fn update_join_sql(&self, n: usize, cols: &[usize]) -> Option<String> {
        let non_key: Vec<(usize, usize)> = cols
            .iter()
            .enumerate()
            .filter(|(_, i)| !self.key.contains(i))
            .map(|(pos, &i)| (pos, i))
            .collect();
        if non_key.is_empty() {
            return None;
        }
        let first: Vec<String> = (0..cols.len())
            .map(|pos| format!("? AS `c{pos}`"))
            .collect();
        let rest =
            vec![format!("SELECT {}", vec!["?"; cols.len()].join(", ")); n.saturating_sub(1)];
        let mut derived = format!("SELECT {}", first.join(", "));
        for r in rest {
            derived.push_str(" UNION ALL ");
            derived.push_str(&r);
        }
        let on: Vec<String> = self
            .key
            .iter()
            .map(|k| {
                let pos = cols
                    .iter()
                    .position(|c| c == k)
                    .expect("key columns are written");
                format!("t.{} = v.`c{pos}`", self.q(*k))
            })
            .collect();
        let set: Vec<String> = non_key
            .iter()
            .map(|(pos, i)| format!("t.{} = v.`c{pos}`", self.q(*i)))
            .collect();
        Some(format!(
            "UPDATE {} AS t JOIN ({derived}) AS v ON {} SET {}",
            self.quoted(),
            on.join(" AND "),
            set.join(", ")
        ))
    }

    /// Inserts one row without its key (the database generates it), writing the columns
    /// `cols` (binds: those columns of the row); the others get their defaults. PostgreSQL and
    /// SQLite return the stored row.
    pub(crate) fn insert_generated_sql(&self, cols: &[usize]) -> String {
        let names: Vec<String> = cols.iter().map(|&i| self.q(i)).collect();
        let params: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(n, &i)| self.param(i, n + 1))
            .collect();
        let body = if cols.is_empty() {
            match self.dialect {
                Dialect::MySql => "() VALUES ()".to_string(),
                _ => "DEFAULT VALUES".to_string(),
            }
        } else {
            format!("({}) VALUES ({})", names.join(", "), params.join(", "))
        };
        let returning = match self.dialect {
            Dialect::Postgres | Dialect::Sqlite => format!(" RETURNING {}", self.select_list("")),
            Dialect::MySql => String::new(),
        };
        format!("INSERT INTO {} {body}{returning}", self.quoted())
    }

    /// The bind of `v` for column `i`.
    pub(crate) fn bind(&self, v: &Value) -> Bind {
        to_bind(self.dialect, v)
    }

    /// The binds of a key.
    pub(crate) fn key_binds(&self, key: &RowKey) -> Vec<Bind> {
        key.values().iter().map(|v| self.bind(v)).collect()
    }

    /// Why `row` cannot be written to this table, if it cannot: the same checks as the
    /// reference [`sheetsync_core::MemoryTable`] (arity, NULL in a NOT NULL column, value type).
    /// With `insert`, an empty `NOT NULL` column with a default is fine (the database fills it
    /// in), and so are empty key columns (the database generates the key).
    pub(crate) fn check_row(&self, row: &Row, insert: Insert) -> Option<String> {
        if row.0.len() != self.columns.len() {
            return Some(format!(
                "row has {} values but table {} has {} columns",
                row.0.len(),
                self.display(),
                self.columns.len()
            ));
        }
        for (i, (v, c)) in row.0.iter().zip(&self.columns).enumerate() {
            if insert == Insert::GeneratedKey && self.key.contains(&i) {
                continue;
            }
            let defaulted = insert != Insert::No && c.has_default && !self.key.contains(&i);
            if v.is_null() && !c.nullable && c.writable && !defaulted {
                return Some(format!("column {:?} may not be empty", c.name));
            }
            if let Some(t) = v.column_type() {
                if t != c.ty {
                    return Some(format!("column {:?} holds {t}, not {}", c.name, c.ty));
                }
            }
        }
        None
    }

    /// The key of a row from the key columns' texts as the change log recorded them.
    pub(crate) fn key_from_texts(&self, texts: &[Option<String>]) -> Result<RowKey, String> {
        if texts.len() != self.key.len() {
            return Err(format!(
                "change log key has {} values, expected {}",
                texts.len(),
                self.key.len()
            ));
        }
        let mut vals = Vec::with_capacity(texts.len());
        for (t, &i) in texts.iter().zip(&self.key) {
            let c = &self.columns[i];
            match t {
                None => return Err(format!("change log key column {:?} is NULL", c.name)),
                Some(s) => {
                    vals.push(parse_text(c.ty, s).map_err(|e| format!("column {:?}: {e}", c.name))?)
                }
            }
        }
        Ok(RowKey::from_values(&vals))
    }
}

/// The bind of a value in a dialect.
pub(crate) fn to_bind(dialect: Dialect, v: &Value) -> Bind {
    match v {
        Value::Null => Bind::Null,
        Value::Bool(b) => Bind::Bool(*b),
        Value::Int(i) => Bind::Int(*i),
        Value::Float(f) => Bind::Float(*f),
        Value::Decimal(d) => Bind::Text(d.as_str().to_string()),
        Value::Text(s) => Bind::Text(s.clone()),
        Value::Date(d) => Bind::Text(d.format("%Y-%m-%d").to_string()),
        Value::Time(t) => Bind::Text(t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(t) => Bind::Text(t.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
        Value::TimestampTz(t) => Bind::Text(match dialect {
            // The adapter's MySQL sessions run with time_zone = '+00:00'.
            Dialect::MySql => t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            _ => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        }),
        Value::Uuid(u) => Bind::Text(u.hyphenated().to_string()),
        Value::Json(j) => Bind::Text(j.to_string()),
        Value::Bytes(b) => Bind::Bytes(b.clone()),
    }
}

/// Parses a database's text form of a value of type `ty` (PostgreSQL's and MySQL's output
/// formats, SQLite's stored text).
pub(crate) fn parse_text(ty: ColumnType, s: &str) -> Result<Value, String> {
    let bad = || format!("{:?} is not a valid {ty}", shorten(s));
    Ok(match ty {
        ColumnType::Bool => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "y" | "yes" | "on" => Value::Bool(true),
            "f" | "false" | "0" | "n" | "no" | "off" => Value::Bool(false),
            _ => return Err(bad()),
        },
        ColumnType::Int => Value::Int(s.trim().parse().map_err(|_| bad())?),
        ColumnType::Decimal => Value::Decimal(s.parse::<Decimal>().map_err(|_| bad())?),
        ColumnType::Float => Value::Float(s.trim().parse().map_err(|_| bad())?),
        ColumnType::Text => Value::Text(s.to_string()),
        ColumnType::Date => {
            Value::Date(NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad())?)
        }
        ColumnType::Time => {
            Value::Time(NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f").map_err(|_| bad())?)
        }
        ColumnType::Timestamp => Value::Timestamp(parse_naive_timestamp(s).ok_or_else(bad)?),
        ColumnType::TimestampTz => {
            let t = s.trim();
            let dt = DateTime::parse_from_rfc3339(t)
                .ok()
                .or_else(|| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z").ok())
                .map(|d| d.with_timezone(&Utc))
                // No offset: the adapter's sessions store and read instants in UTC.
                .or_else(|| parse_naive_timestamp(t).map(|n| n.and_utc()))
                .ok_or_else(bad)?;
            Value::TimestampTz(dt)
        }
        ColumnType::Uuid => Value::Uuid(s.trim().parse().map_err(|_| bad())?),
        ColumnType::Json => Value::Json(serde_json::from_str(s).map_err(|_| bad())?),
        ColumnType::Bytes => Value::Bytes(parse_hex(s.trim()).ok_or_else(bad)?),
    })
}

fn parse_naive_timestamp(s: &str) -> Option<NaiveDateTime> {
    let t = s.trim();
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("\\x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A value of `ty` from an integer the database holds.
pub(crate) fn from_int(ty: ColumnType, i: i64) -> Result<Value, String> {
    Ok(match ty {
        ColumnType::Int => Value::Int(i),
        ColumnType::Bool if i == 0 || i == 1 => Value::Bool(i == 1),
        ColumnType::Decimal => Value::Decimal(Decimal::from_i64(i)),
        ColumnType::Float => Value::Float(i as f64),
        ColumnType::Text => Value::Text(i.to_string()),
        // SQLite stores a JSON number in a column declared JSON (numeric affinity) as a number.
        ColumnType::Json => Value::Json(i.into()),
        _ => return Err(format!("the integer {i} is not a valid {ty}")),
    })
}

/// A value of `ty` from a double the database holds.
pub(crate) fn from_float(ty: ColumnType, f: f64) -> Result<Value, String> {
    Ok(match ty {
        ColumnType::Float => Value::Float(f),
        ColumnType::Decimal => Value::Decimal(
            Decimal::from_f64(f).ok_or_else(|| format!("{f} is not a valid decimal"))?,
        ),
        ColumnType::Int if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
            Value::Int(f as i64)
        }
        ColumnType::Text => Value::Text(f.to_string()),
        ColumnType::Json => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Json(n.into()),
            None => return Err(format!("the number {f} is not a valid {ty}")),
        },
        _ => return Err(format!("the number {f} is not a valid {ty}")),
    })
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}...")
    }
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

    fn info(dialect: Dialect) -> TableInfo {
        let col = |name: &str, ty, cast: &str| SqlColumn {
            name: name.into(),
            ty,
            cast: cast.into(),
            nullable: true,
            read: ReadAs::Text,
            writable: true,
            has_default: false,
        };
        TableInfo {
            dialect,
            schema: None,
            table: "we\"ird`; DROP TABLE x;--".into(),
            columns: vec![
                col("id", ColumnType::Int, "bigint"),
                col("na\"me`", ColumnType::Text, "text"),
            ],
            key: vec![0],
            generated_key: false,
            identity_always: false,
        }
    }

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
    fn statements_quote_names_and_bind_values() {
        let all = info(Dialect::Postgres).write_columns();
        let pg = info(Dialect::Postgres).upsert_sql(2, &all);
        assert_eq!(
            pg,
            "INSERT INTO \"we\"\"ird`; DROP TABLE x;--\" (\"id\", \"na\"\"me`\") VALUES ($1::bigint, $2::text), ($3::bigint, $4::text) \
             ON CONFLICT (\"id\") DO UPDATE SET \"na\"\"me`\" = EXCLUDED.\"na\"\"me`\""
        );
        let my = info(Dialect::MySql).update_join_sql(2, &all).unwrap();
        assert_eq!(
            my,
            "UPDATE `we\"ird``; DROP TABLE x;--` AS t JOIN (SELECT ? AS `c0`, ? AS `c1` UNION ALL SELECT ?, ?) AS v \
             ON t.`id` = v.`c0` SET t.`na\"me``` = v.`c1`"
        );
        assert_eq!(
            info(Dialect::MySql).insert_sql(2, &all),
            "INSERT INTO `we\"ird``; DROP TABLE x;--` (`id`, `na\"me```) VALUES (?, ?), (?, ?)"
        );
        assert!(info(Dialect::MySql)
            .select_keys_sql(1, Lock::NoWait)
            .ends_with("WHERE `id` IN (?) FOR UPDATE NOWAIT"));
        assert!(!info(Dialect::Sqlite)
            .select_keys_sql(1, Lock::Wait)
            .contains("FOR UPDATE"));
        let del = info(Dialect::Sqlite).delete_sql(3);
        assert_eq!(
            del,
            "DELETE FROM \"we\"\"ird`; DROP TABLE x;--\" WHERE \"id\" IN (?, ?, ?)"
        );
    }

    #[test]
    fn json_numbers_stored_as_numbers_read_back() {
        assert_eq!(
            from_int(ColumnType::Json, 915_767_238),
            Ok(Value::Json(serde_json::json!(915_767_238)))
        );
        assert_eq!(
            from_float(ColumnType::Json, -2.5),
            Ok(Value::Json(serde_json::json!(-2.5)))
        );
        assert!(from_float(ColumnType::Json, f64::NAN).is_err());
    }

    #[test]
    fn inserts_leave_empty_defaulted_columns_to_the_database() {
        let mut i = info(Dialect::Sqlite);
        i.columns[1].nullable = false;
        i.columns[1].has_default = true;
        let row = Row::new(vec![Value::Int(1), Value::Null]);
        assert_eq!(i.defaulted(&row), vec![1]);
        let typed_empty = Row::new(vec![Value::Int(1), Value::Text(String::new())]);
        assert_eq!(
            i.defaulted(&typed_empty),
            vec![1],
            "an empty cell of a text column"
        );
        assert_eq!(i.check_row(&row, Insert::New), None);
        assert_eq!(
            i.check_row(&row, Insert::No),
            Some("column \"na\\\"me`\" may not be empty".into())
        );
        let cols = i.write_columns_except(&i.defaulted(&row));
        assert_eq!(
            i.insert_sql(1, &cols),
            "INSERT INTO \"we\"\"ird`; DROP TABLE x;--\" (\"id\") VALUES (?)"
        );
    }

    #[test]
    fn composite_keys_use_row_values() {
        let mut i = info(Dialect::Postgres);
        i.key = vec![0, 1];
        assert_eq!(
            i.delete_sql(2),
            "DELETE FROM \"we\"\"ird`; DROP TABLE x;--\" WHERE (\"id\", \"na\"\"me`\") IN (($1::bigint, $2::text), ($3::bigint, $4::text))"
        );
        // All columns are key columns: nothing to update.
        assert!(i
            .upsert_sql(1, &[0, 1])
            .ends_with("ON CONFLICT (\"id\", \"na\"\"me`\") DO NOTHING"));
    }

    #[test]
    fn text_forms_parse_exactly() {
        assert_eq!(
            parse_text(ColumnType::Decimal, "12345678901234567890.1250").unwrap(),
            Value::Decimal("12345678901234567890.125".parse().unwrap())
        );
        assert_eq!(
            parse_text(ColumnType::Bool, "t").unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            parse_text(ColumnType::Bool, "0").unwrap(),
            Value::Bool(false)
        );
        let ts = parse_text(ColumnType::TimestampTz, "2024-03-01 10:00:00+01").unwrap();
        assert_eq!(
            ts,
            parse_text(ColumnType::TimestampTz, "2024-03-01T09:00:00Z").unwrap()
        );
        assert_eq!(
            parse_text(ColumnType::Timestamp, "2024-02-29 13:45:10.123456").unwrap(),
            parse_text(ColumnType::Timestamp, "2024-02-29T13:45:10.123456").unwrap()
        );
        assert_eq!(
            parse_text(ColumnType::Bytes, "\\x00ff").unwrap(),
            Value::Bytes(vec![0, 255])
        );
        assert!(parse_text(ColumnType::Int, "12x")
            .unwrap_err()
            .contains("12x"));
        assert!(parse_text(ColumnType::Decimal, "NaN").is_err());
        assert_eq!(
            parse_text(ColumnType::Text, " 007 ").unwrap(),
            Value::Text(" 007 ".into())
        );
    }

    #[test]
    fn values_bind_as_text_where_exactness_needs_it() {
        let d: Decimal = "-0.000000000000000000000000000001".parse().unwrap();
        assert_eq!(
            to_bind(Dialect::Postgres, &Value::Decimal(d)),
            Bind::Text("-0.000000000000000000000000000001".into())
        );
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap();
        assert_eq!(
            to_bind(Dialect::Postgres, &Value::TimestampTz(t)),
            Bind::Text("2024-03-01T09:00:00Z".into())
        );
        assert_eq!(
            to_bind(Dialect::MySql, &Value::TimestampTz(t)),
            Bind::Text("2024-03-01 09:00:00".into())
        );
    }

    use chrono::TimeZone;

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
