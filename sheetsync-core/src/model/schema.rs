//! Table schemas: columns, their types, the key, and which side may change each column.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Row, Value};

/// The type of a column, shared by both sides of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Booleans (`boolean`, MySQL `tinyint(1)`, Sheet `TRUE`/`FALSE`).
    Bool,
    /// 64-bit integers.
    Int,
    /// Exact decimals (`numeric`, `decimal`).
    Decimal,
    /// Doubles.
    Float,
    /// Text of any length, including enums.
    Text,
    /// Dates.
    Date,
    /// Times of day.
    Time,
    /// Timestamps without time zone.
    Timestamp,
    /// Instants (timestamps with time zone).
    TimestampTz,
    /// UUIDs.
    Uuid,
    /// JSON documents.
    Json,
    /// Raw bytes.
    Bytes,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Bool => "boolean",
            ColumnType::Int => "integer",
            ColumnType::Decimal => "decimal",
            ColumnType::Float => "float",
            ColumnType::Text => "text",
            ColumnType::Date => "date",
            ColumnType::Time => "time",
            ColumnType::Timestamp => "timestamp",
            ColumnType::TimestampTz => "timestamp with time zone",
            ColumnType::Uuid => "uuid",
            ColumnType::Json => "json",
            ColumnType::Bytes => "bytes",
        })
    }
}

/// Which side's changes to a column are synced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Both sides may change it; conflicts go to the resolver.
    #[default]
    Both,
    /// The Sheet owns it (a formula column, say): database edits are reverted to the Sheet's value.
    SheetToDb,
    /// The database owns it: Sheet edits are reverted to the database's value.
    DbToSheet,
}

/// One column of a mapped table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name: the SQL column name and the Sheet header text.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Whether it may be `NULL`.
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Which side's changes are synced.
    #[serde(default)]
    pub direction: Direction,
}

fn yes() -> bool {
    true
}

impl Column {
    /// A nullable, two-way column.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Column {
            name: name.into(),
            ty,
            nullable: true,
            direction: Direction::Both,
        }
    }

    /// Sets [`Column::nullable`].
    pub fn nullable(mut self, nullable: bool) -> Self {
        self.nullable = nullable;
        self
    }

    /// Sets [`Column::direction`].
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }
}

/// The columns of a mapped table, in the order rows carry their values, and its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// A name for messages and state (the mapping's name).
    pub name: String,
    /// The columns in row order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the key columns, in key order.
    pub key: Vec<usize>,
}

impl TableSchema {
    /// A schema whose key is the named columns. Fails when a key column is unknown, the key is
    /// empty, or two columns share a name.
    pub fn new(name: impl Into<String>, columns: Vec<Column>, key: &[&str]) -> Result<Self> {
        let name = name.into();
        let mut seen = std::collections::HashSet::new();
        for c in &columns {
            if !seen.insert(c.name.as_str()) {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("table {name:?} has two columns named {:?}", c.name),
                ));
            }
        }
        if key.is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("table {name:?} has no key column"),
            ));
        }
        let key = key
            .iter()
            .map(|k| {
                columns.iter().position(|c| c.name == *k).ok_or_else(|| {
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        format!("key column {k:?} is not a column of table {name:?}"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TableSchema { name, columns, key })
    }

    /// The index of the column named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// True when `i` is a key column.
    pub fn is_key(&self, i: usize) -> bool {
        self.key.contains(&i)
    }

    /// The key columns' names.
    pub fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect()
    }

    /// Brings a row to the form both sides agree on: an empty cell and an empty text are one
    /// value. In a nullable text column `""` becomes `NULL`; in a `NOT NULL` text column that is
    /// not part of the key, `NULL` becomes `""` (so a database constraint never refuses an empty
    /// Sheet cell).
    pub fn normalize(&self, row: &mut Row) {
        for (i, (v, c)) in row.0.iter_mut().zip(&self.columns).enumerate() {
            if c.ty != ColumnType::Text {
                continue;
            }
            match v {
                Value::Text(s) if s.is_empty() && c.nullable => *v = Value::Null,
                Value::Null if !c.nullable && !self.key.contains(&i) => {
                    *v = Value::Text(String::new())
                }
                _ => {}
            }
        }
    }

    /// Checks that `other` has the same columns (names and types, in order) and key, naming the
    /// first difference. The engine requires both sides of a mapping to agree.
    pub fn check_compatible(&self, other: &TableSchema) -> Result<()> {
        let mismatch = |msg: String| Err(Error::new(ErrorKind::SchemaMismatch, msg));
        if self.columns.len() != other.columns.len() {
            return mismatch(format!(
                "{:?} has {} columns but {:?} has {}",
                self.name,
                self.columns.len(),
                other.name,
                other.columns.len()
            ));
        }
        for (a, b) in self.columns.iter().zip(&other.columns) {
            if a.name != b.name || a.ty != b.ty {
                return mismatch(format!(
                    "column {:?} ({}) of {:?} does not match column {:?} ({}) of {:?}",
                    a.name, a.ty, self.name, b.name, b.ty, other.name
                ));
            }
        }
        if self.key != other.key {
            return mismatch(format!(
                "key {:?} of {:?} differs from key {:?} of {:?}",
                self.key_names(),
                self.name,
                other.key_names(),
                other.name
            ));
        }
        Ok(())
    }
}
