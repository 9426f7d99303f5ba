//! One introspected table: its columns, their sheetsync types, the key, and the checks a row
//! passes before it is written.

use sheetsync_core::{Column, ColumnType, Direction, Row, RowKey, TableSchema, Value};

use crate::codec::{parse_text, to_bind, Bind};
use crate::dialect::Dialect;

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

#[cfg(test)]
/// A two-column table with a name that needs quoting everywhere, for unit tests.
pub(crate) fn sample(dialect: Dialect) -> TableInfo {
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

impl TableInfo {
    /// The bind of `v` for column `i`.
    pub(crate) fn bind(&self, v: &Value) -> Bind {
        to_bind(self.dialect, v)
    }

    /// The binds of a key.
    pub(crate) fn key_binds(&self, key: &RowKey) -> Vec<Bind> {
        key.values().iter().map(|v| self.bind(v)).collect()
    }
}
