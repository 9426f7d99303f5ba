//! The statements built from an introspected table: names quoted for the dialect,
//! placeholders for every value.

use crate::dialect::Dialect;
use crate::table::{ReadAs, TableInfo};

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

impl TableInfo {
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
        let non_key: Vec<usize> = cols
            .iter()
            .copied()
            .filter(|i| !self.key.contains(i))
            .collect();
        let keys: Vec<String> = self.key.iter().map(|&i| self.q(i)).collect();
        let head = self.insert_sql(n, cols);
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
        let mut p = 0;
        let tuples: Vec<String> = (0..n)
            .map(|_| {
                let t: Vec<String> = cols
                    .iter()
                    .map(|&i| {
                        p += 1;
                        self.param(i, p)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{sample as info, Insert};
    use sheetsync_core::{Row, Value};

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
}
