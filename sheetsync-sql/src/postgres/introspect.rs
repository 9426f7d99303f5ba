//! Reads a PostgreSQL table's columns, types and primary key from the catalog.

use sheetsync_core::{ColumnType, Error, ErrorKind, Result};
use sqlx::{PgPool, Row as _};

use crate::dialect::Dialect;
use crate::error::db_error;
use crate::table::{ReadAs, SqlColumn, TableInfo};

/// The sheetsync type of a PostgreSQL base type (`typname`, `typtype`).
fn map_type(typname: &str, typtype: &str) -> Option<(ColumnType, ReadAs)> {
    if typtype == "e" {
        return Some((ColumnType::Text, ReadAs::Text));
    }
    Some(match typname {
        "int2" | "int4" | "int8" => (ColumnType::Int, ReadAs::Int),
        "numeric" => (ColumnType::Decimal, ReadAs::Text),
        "float4" | "float8" => (ColumnType::Float, ReadAs::Float),
        "bool" => (ColumnType::Bool, ReadAs::Bool),
        "text" | "varchar" | "bpchar" | "name" | "citext" => (ColumnType::Text, ReadAs::Text),
        "date" => (ColumnType::Date, ReadAs::Date),
        "time" => (ColumnType::Time, ReadAs::Time),
        "timestamp" => (ColumnType::Timestamp, ReadAs::Timestamp),
        "timestamptz" => (ColumnType::TimestampTz, ReadAs::TimestampTz),
        "uuid" => (ColumnType::Uuid, ReadAs::Text),
        "json" | "jsonb" => (ColumnType::Json, ReadAs::Text),
        "bytea" => (ColumnType::Bytes, ReadAs::Bytes),
        _ => return None,
    })
}

/// The table `schema.table` (`schema` defaults to `current_schema()`) and its oid.
pub(crate) async fn introspect(
    pool: &PgPool,
    schema: Option<&str>,
    table: &str,
) -> Result<(TableInfo, i64)> {
    let (oid, nspname) = find_table(pool, schema, table).await?;
    let display = format!("{nspname}.{table}");

    let cols = sqlx::query(
        "SELECT a.attname::text AS name,
                format_type(a.atttypid, NULL) AS cast_type,
                COALESCE(bt.typname, t.typname)::text AS base,
                COALESCE(bt.typtype, t.typtype)::text AS typtype,
                NOT a.attnotnull AS nullable,
                a.attidentity::text AS identity,
                a.attgenerated::text AS generated,
                COALESCE(pg_get_expr(d.adbin, d.adrelid), '') AS default_expr
         FROM pg_attribute a
         JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(oid)
    .fetch_all(pool)
    .await
    .map_err(|e| db_error(e, "introspect"))?;

    let key_names = primary_key(pool, oid, &display).await?;

    let mut columns = Vec::with_capacity(cols.len());
    let mut identity_always = false;
    let mut generated_key = false;
    for c in &cols {
        let name: String = c.get("name");
        let base: String = c.get("base");
        let typtype: String = c.get("typtype");
        let cast: String = c.get("cast_type");
        let Some((ty, read)) = map_type(&base, &typtype) else {
            return Err(Error::new(
                ErrorKind::SchemaMismatch,
                format!("column {name:?} of table {display:?} has type {cast}, which sheetsync does not support"),
            ));
        };
        let identity: String = c.get("identity");
        let generated: String = c.get("generated");
        let default_expr: String = c.get("default_expr");
        let is_key = key_names.contains(&name);
        if is_key
            && key_names.len() == 1
            && ty == ColumnType::Int
            && (!identity.is_empty() || default_expr.starts_with("nextval("))
        {
            generated_key = true;
            identity_always = identity == "a";
        }
        columns.push(SqlColumn {
            name,
            ty,
            cast,
            nullable: c.get("nullable"),
            read,
            writable: generated.is_empty(),
            has_default: !default_expr.is_empty() || !identity.is_empty(),
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
    Ok((
        TableInfo {
            dialect: Dialect::Postgres,
            schema: Some(nspname),
            table: table.to_string(),
            columns,
            key,
            generated_key,
            identity_always,
        },
        oid,
    ))
}

/// The oid and schema of table `schema.table` (`schema` defaults to `current_schema()`).
async fn find_table(pool: &PgPool, schema: Option<&str>, table: &str) -> Result<(i64, String)> {
    let found = sqlx::query(
        "SELECT c.oid::int8 AS oid, n.nspname::text AS nspname
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relname = $2 AND n.nspname = COALESCE($1, current_schema()) AND c.relkind IN ('r', 'p')",
    )
    .bind(schema)
    .bind(table)
    .fetch_optional(pool)
    .await
    .map_err(|e| db_error(e, "introspect"))?;
    let Some(found) = found else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "table {:?} does not exist in schema {}",
                table,
                schema.map_or("current_schema()".to_string(), |s| format!("{s:?}"))
            ),
        ));
    };
    Ok((found.get("oid"), found.get("nspname")))
}

/// The primary key's column names, in key order; a table without one cannot be synced.
async fn primary_key(pool: &PgPool, oid: i64, display: &str) -> Result<Vec<String>> {
    let key_names: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text
         FROM pg_index i
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = $1::int8::oid AND i.indisprimary
         ORDER BY k.ord",
    )
    .bind(oid)
    .fetch_all(pool)
    .await
    .map_err(|e| db_error(e, "introspect"))?;
    if key_names.is_empty() {
        return Err(Error::new(
            ErrorKind::SchemaMismatch,
            format!("table {display:?} has no primary key; sheetsync identifies rows by their primary key"),
        ));
    }
    Ok(key_names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_to_sheetsync_types() {
        assert_eq!(map_type("int4", "b"), Some((ColumnType::Int, ReadAs::Int)));
        assert_eq!(
            map_type("numeric", "b"),
            Some((ColumnType::Decimal, ReadAs::Text))
        );
        assert_eq!(
            map_type("mood", "e"),
            Some((ColumnType::Text, ReadAs::Text))
        );
        assert_eq!(
            map_type("jsonb", "b"),
            Some((ColumnType::Json, ReadAs::Text))
        );
        assert_eq!(map_type("interval", "b"), None);
    }
}
