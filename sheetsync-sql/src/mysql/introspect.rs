//! Reads a MySQL/MariaDB table's columns, types and primary key from `information_schema`.

use sheetsync_core::{ColumnType, Error, ErrorKind, Result};
use sqlx::{MySqlPool, Row as _};

use crate::dialect::Dialect;
use crate::error::db_error;
use crate::table::{ReadAs, SqlColumn, TableInfo};

/// The sheetsync type of a column (`DATA_TYPE`, `COLUMN_TYPE`).
pub(crate) fn map_type(data_type: &str, column_type: &str) -> Option<(ColumnType, ReadAs)> {
    let ct = column_type.to_ascii_lowercase();
    Some(match data_type.to_ascii_lowercase().as_str() {
        "tinyint" if ct.starts_with("tinyint(1)") => (ColumnType::Bool, ReadAs::Text),
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
            (ColumnType::Int, ReadAs::Text)
        }
        "decimal" | "numeric" => (ColumnType::Decimal, ReadAs::Text),
        "float" | "double" | "real" | "double precision" => (ColumnType::Float, ReadAs::Float),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => {
            (ColumnType::Text, ReadAs::Text)
        }
        "json" => (ColumnType::Json, ReadAs::Text),
        "date" => (ColumnType::Date, ReadAs::Text),
        "time" => (ColumnType::Time, ReadAs::Text),
        "datetime" => (ColumnType::Timestamp, ReadAs::Text),
        "timestamp" => (ColumnType::TimestampTz, ReadAs::Text),
        "uuid" => (ColumnType::Uuid, ReadAs::Text),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            (ColumnType::Bytes, ReadAs::Bytes)
        }
        _ => return None,
    })
}

/// The table `table` of the connection's current database.
pub(crate) async fn introspect(pool: &MySqlPool, table: &str) -> Result<TableInfo> {
    let err = |e| db_error(e, "introspect");
    let db = current_database(pool).await?;
    let cols = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(DATA_TYPE AS CHAR) AS data_type,
                CAST(COLUMN_TYPE AS CHAR) AS column_type, CAST(IS_NULLABLE AS CHAR) AS nullable,
                CAST(EXTRA AS CHAR) AS extra, CAST(COLUMN_COMMENT AS CHAR) AS comment,
                COLUMN_DEFAULT IS NOT NULL AS has_default
         FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
         ORDER BY ORDINAL_POSITION",
    )
    .bind(&db)
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(err)?;
    if cols.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("table {table:?} does not exist in database {db:?}"),
        ));
    }
    let key_names = primary_key(pool, &db, table).await?;
    // MariaDB's JSON is LONGTEXT with a json_valid() check; MySQL's CHECK_CONSTRAINTS has no
    // TABLE_NAME column, so this query fails there (and MySQL has a real JSON type).
    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS
         WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
    )
    .bind(&db)
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap_or_default();

    let mut columns = Vec::with_capacity(cols.len());
    let mut generated_key = false;
    for c in &cols {
        let name: String = c.get("name");
        let data_type: String = c.get("data_type");
        let column_type: String = c.get("column_type");
        let extra: String = c
            .get::<Option<String>, _>("extra")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let Some((mut ty, mut read)) = map_type(&data_type, &column_type) else {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!("column {name:?} of table \"{db}.{table}\" has type {column_type}, which sheetsync does not support"),
            ));
        };
        if data_type.eq_ignore_ascii_case("longtext") {
            let json_check = format!("json_valid({})", Dialect::MySql.quote(&name));
            if checks.iter().any(|c| c.contains(&json_check)) {
                (ty, read) = (ColumnType::Json, ReadAs::Text);
            }
        }
        // MySQL has no UUID type: a CHAR(36) column commented `sheetsync:uuid` holds UUIDs.
        let comment: String = c.get::<Option<String>, _>("comment").unwrap_or_default();
        if ty == ColumnType::Text && comment.contains("sheetsync:uuid") {
            ty = ColumnType::Uuid;
        }
        let nullable: String = c.get("nullable");
        // COLUMN_DEFAULT is NULL for a NOT NULL column without a default (MariaDB shows the
        // text `NULL` for nullable ones, which are never left to a default).
        let has_default = c.get::<i64, _>("has_default") != 0 || extra.contains("auto_increment");
        if extra.contains("auto_increment")
            && key_names.len() == 1
            && key_names[0] == name
            && ty == ColumnType::Int
        {
            generated_key = true;
        }
        columns.push(SqlColumn {
            name,
            ty,
            cast: column_type,
            nullable: nullable.eq_ignore_ascii_case("YES"),
            read,
            writable: !(extra.contains("virtual generated")
                || extra.contains("stored generated")
                || extra.contains("persistent")),
            has_default,
        });
    }
    let key = key_names
        .iter()
        .map(|k| {
            columns
                .iter()
                .position(|c| &c.name == k)
                .expect("key column is a column")
        })
        .collect();
    Ok(TableInfo {
        dialect: Dialect::MySql,
        schema: None,
        table: table.to_string(),
        columns,
        key,
        generated_key,
        identity_always: false,
    })
}

/// The connection's current database, which the URL must name.
async fn current_database(pool: &MySqlPool) -> Result<String> {
    let err = |e| db_error(e, "introspect");
    let db: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
        .fetch_one(pool)
        .await
        .map_err(err)?;
    let Some(db) = db else {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            "the MySQL connection has no current database; name one in the URL",
        ));
    };
    Ok(db)
}

/// The primary key's column names of `db.table`, in key order; a table without one cannot be
/// synced.
async fn primary_key(pool: &MySqlPool, db: &str, table: &str) -> Result<Vec<String>> {
    let err = |e| db_error(e, "introspect");
    let key_names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.KEY_COLUMN_USAGE
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'
         ORDER BY ORDINAL_POSITION",
    )
    .bind(db)
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(err)?;
    if key_names.is_empty() {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!("table \"{db}.{table}\" has no primary key; sheetsync identifies rows by their primary key"),
        ));
    }
    Ok(key_names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map() {
        assert_eq!(
            map_type("tinyint", "tinyint(1)").unwrap().0,
            ColumnType::Bool
        );
        assert_eq!(
            map_type("tinyint", "tinyint(4) unsigned").unwrap().0,
            ColumnType::Int
        );
        assert_eq!(
            map_type("decimal", "decimal(65,30)").unwrap().0,
            ColumnType::Decimal
        );
        assert_eq!(
            map_type("enum", "enum('a','b')").unwrap().0,
            ColumnType::Text
        );
        assert_eq!(
            map_type("timestamp", "timestamp(6)").unwrap().0,
            ColumnType::TimestampTz
        );
        assert_eq!(
            map_type("datetime", "datetime(6)").unwrap().0,
            ColumnType::Timestamp
        );
        assert_eq!(map_type("uuid", "uuid").unwrap().0, ColumnType::Uuid);
        assert!(map_type("geometry", "geometry").is_none());
        assert!(map_type("year", "year(4)").is_none());
    }
}
