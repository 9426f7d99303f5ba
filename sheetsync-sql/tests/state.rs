//! The SQL state stores keep write intents, the mapping identity, pending deletes and the log of
//! recent deletes exactly, commit them atomically, and reset a mapping: the state-store
//! conformance check of `sheetsync_core::testkit` on SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! PostgreSQL: `SHEETSYNC_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! MySQL/MariaDB: `SHEETSYNC_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/`). Each test
//! creates its own database and drops it.
#![cfg(all(feature = "postgres", feature = "mysql", feature = "sqlite"))]

use sheetsync_core::testkit::run_state_store_conformance;
use sheetsync_sql::{MySqlStateStore, PostgresStateStore, SqliteStateStore};
use sqlx::{AssertSqlSafe, Connection};

/// Drops a test database when the test ends, passed or not.
struct DropDatabase {
    admin_url: String,
    sql: String,
    postgres: bool,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (url, sql, postgres) = (self.admin_url.clone(), self.sql.clone(), self.postgres);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if postgres {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                        let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut c).await;
                    }
                } else if let Ok(mut c) = sqlx::MySqlConnection::connect(&url).await {
                    let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut c).await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

fn database_name() -> String {
    format!("sheetsync_state_{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn sqlite_state_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("state.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    run_state_store_conformance(&SqliteStateStore::new(pool).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_state_store_conformance() {
    let admin_url = std::env::var("SHEETSYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url}: {e}; set SHEETSYNC_TEST_POSTGRES_URL"
            )
        });
    let name = database_name();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let _drop = DropDatabase {
        admin_url: admin_url.clone(),
        sql: format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        postgres: true,
    };
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("{admin_url} names no database"),
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    run_state_store_conformance(&PostgresStateStore::new(pool.clone()).await.unwrap()).await;
    pool.close().await;
}

#[tokio::test]
async fn mysql_state_store_conformance() {
    let admin_url = std::env::var("SHEETSYNC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into());
    let mut admin = sqlx::MySqlConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "MySQL/MariaDB is not reachable at {admin_url}: {e}; set SHEETSYNC_TEST_MYSQL_URL"
            )
        });
    let name = database_name();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
        .execute(&mut admin)
        .await
        .unwrap();
    let _drop = DropDatabase {
        admin_url: admin_url.clone(),
        sql: format!("DROP DATABASE IF EXISTS `{name}`"),
        postgres: false,
    };
    let url = format!("{}/{name}", admin_url.trim_end_matches('/'));
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    run_state_store_conformance(&MySqlStateStore::new(pool.clone()).await.unwrap()).await;
    pool.close().await;
}
