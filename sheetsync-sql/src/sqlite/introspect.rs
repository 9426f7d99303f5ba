//! Reads a SQLite table's columns, declared types and primary key.

use sheetsync_core::{ColumnType, Error, ErrorKind, Result};
use sqlx::{Row as _, SqlitePool};

use crate::dialect::Dialect;
use crate::error::db_error;
use crate::table::{ReadAs, SqlColumn, TableInfo};

/// The sheetsync type of a declared SQLite column type. SQLite stores any value in any column;
/// the declared type says what the application means.
pub(crate) fn map_type(declared: &str) -> Option<ColumnType> {
    let t = declared.to_ascii_uppercase();
    let has = |s: &str| t.contains(s);
    Some(if has("BOOL") {
        ColumnType::Bool
    } else if has("DECIMAL") || has("NUMERIC") || has("MONEY") {
        ColumnType::Decimal
    } else if has("INT") {
        ColumnType::Int
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        ColumnType::Float
    } else if has("UUID") || has("GUID") {
        ColumnType::Uuid
    } else if has("JSON") {
        ColumnType::Json
    } else if has("TIMESTAMPTZ") || has("WITH TIME ZONE") || has("DATETIMETZ") || has("INSTANT") {
        ColumnType::TimestampTz
    } else if has("TIMESTAMP") || has("DATETIME") {
        ColumnType::Timestamp
    } else if has("DATE") {
        ColumnType::Date
    } else if has("TIME") {
        ColumnType::Time
    } else if has("CHAR") || has("CLOB") || has("TEXT") || has("ENUM") || has("STRING") {
        ColumnType::Text
    } else if has("BLOB") || has("BINARY") || has("BYTES") {
        ColumnType::Bytes
    } else {
        return None;
    })
}

/// The affinity SQLite gives a column of a declared type (the rules of
/// <https://www.sqlite.org/datatype3.html#determination_of_column_affinity>, in their order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

pub(crate) fn affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    let has = |s: &str| t.contains(s);
    if has("INT") {
        Affinity::Integer
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        Affinity::Text
    } else if has("BLOB") || t.is_empty() {
        Affinity::Blob
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// What SQLite's typing will do to the values of `info`'s columns that sheetsync cannot undo:
/// a column whose values are text to sheetsync but whose declared type has numeric affinity
/// stores text that looks like a number as a number, before sheetsync sees it.
pub(crate) fn warnings(info: &TableInfo) -> Vec<String> {
    info.columns
        .iter()
        .filter(|c| {
            matches!(
                affinity(&c.cast),
                Affinity::Integer | Affinity::Real | Affinity::Numeric
            )
        })
        .filter_map(|c| {
            let (what, example, exact) = match c.ty {
                ColumnType::Decimal => (
                    "a decimal as a double (about 16 significant digits)",
                    "12345678901234.123456 becomes 12345678901234.123",
                    "DECIMAL_TEXT",
                ),
                ColumnType::Text => (
                    "text that looks like a number as a number",
                    "'007' becomes 7",
                    "TEXT",
                ),
                ColumnType::Json => (
                    "a JSON document that is a bare number as a number",
                    "1.50 becomes 1.5",
                    "JSON_TEXT",
                ),
                _ => return None,
            };
            let given = format!("{:?}", affinity(&c.cast)).to_ascii_lowercase();
            Some(format!(
                "column {:?} of table {:?} is declared {}, which SQLite gives {given} affinity: \
                 it stores {what} before sheetsync reads it ({example}); declare the column \
                 {exact} (text affinity) to keep values exactly",
                c.name, info.table, c.cast,
            ))
        })
        .collect()
}

/// The table `table` of the main schema.
pub(crate) async fn introspect(pool: &SqlitePool, table: &str) -> Result<TableInfo> {
    let err = |e| db_error(e, "introspect");
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_optional(pool)
            .await
            .map_err(err)?;
    if exists.is_none() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("table {table:?} does not exist"),
        ));
    }
    let cols = sqlx::query(
        "SELECT name, type, \"notnull\" AS nn, pk, hidden, dflt_value IS NOT NULL AS has_default
         FROM pragma_table_xinfo(?) ORDER BY cid",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(err)?;
    let mut columns = Vec::new();
    let mut pk: Vec<(i64, usize)> = Vec::new();
    let mut integer_pk = false;
    for c in &cols {
        let hidden: i64 = c.get("hidden");
        if hidden == 1 {
            continue; // hidden columns of virtual tables
        }
        let name: String = c.get("name");
        let declared: String = c.get("type");
        let Some(ty) = map_type(&declared) else {
            let shown = if declared.is_empty() {
                "no declared type".to_string()
            } else {
                format!("type {declared}")
            };
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!("column {name:?} of table {table:?} has {shown}, which sheetsync does not support"),
            ));
        };
        let key_pos: i64 = c.get("pk");
        let nn: i64 = c.get("nn");
        if key_pos > 0 {
            pk.push((key_pos, columns.len()));
            integer_pk = declared.eq_ignore_ascii_case("INTEGER");
        }
        columns.push(SqlColumn {
            name,
            ty,
            cast: declared,
            nullable: nn == 0 && key_pos == 0,
            read: ReadAs::Dynamic,
            writable: hidden == 0,
            has_default: c.get::<i64, _>("has_default") != 0,
        });
    }
    if pk.is_empty() {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!("table {table:?} has no primary key; sheetsync identifies rows by their primary key"),
        ));
    }
    pk.sort();
    let key: Vec<usize> = pk.into_iter().map(|(_, i)| i).collect();
    let generated_key = key.len() == 1 && integer_pk;
    Ok(TableInfo {
        dialect: Dialect::Sqlite,
        schema: None,
        table: table.to_string(),
        columns,
        key,
        generated_key,
        identity_always: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinities_follow_sqlite_rules() {
        assert_eq!(affinity("DECIMAL(20,6)"), Affinity::Numeric);
        assert_eq!(affinity("NUMERIC"), Affinity::Numeric);
        assert_eq!(affinity("DECIMAL_TEXT"), Affinity::Text);
        assert_eq!(affinity("NUMERIC_INT"), Affinity::Integer);
        assert_eq!(affinity("STRING"), Affinity::Numeric);
        assert_eq!(affinity("varchar(20)"), Affinity::Text);
        assert_eq!(affinity("DOUBLE"), Affinity::Real);
        assert_eq!(affinity("BLOB"), Affinity::Blob);
        assert_eq!(affinity(""), Affinity::Blob);
    }

    #[test]
    fn declared_types_map() {
        assert_eq!(map_type("INTEGER"), Some(ColumnType::Int));
        assert_eq!(map_type("boolean"), Some(ColumnType::Bool));
        assert_eq!(map_type("DECIMAL(10,2)"), Some(ColumnType::Decimal));
        assert_eq!(map_type("DECIMAL_TEXT"), Some(ColumnType::Decimal));
        assert_eq!(map_type("varchar(20)"), Some(ColumnType::Text));
        assert_eq!(map_type("DATETIME"), Some(ColumnType::Timestamp));
        assert_eq!(map_type("TIMESTAMPTZ"), Some(ColumnType::TimestampTz));
        assert_eq!(map_type("DATE"), Some(ColumnType::Date));
        assert_eq!(map_type("TIME"), Some(ColumnType::Time));
        assert_eq!(map_type("JSON"), Some(ColumnType::Json));
        assert_eq!(map_type("BLOB"), Some(ColumnType::Bytes));
        assert_eq!(map_type(""), None);
        assert_eq!(map_type("GEOMETRY"), None);
    }
}
