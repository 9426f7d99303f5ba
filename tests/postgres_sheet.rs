//! `examples/postgres_sheet.rs`, the README's "use as a library" example, run as a process the
//! way its docs say, against PostgreSQL and the Sheets emulator: the table reaches the Sheet,
//! an `UPDATE` follows, and Ctrl-C stops it cleanly. So the example cannot rot.
//!
//! Cargo builds the example with the tests (`cargo test` builds every example); this test runs
//! `target/<profile>/examples/postgres_sheet`. PostgreSQL: `SHEETSYNC_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); the test makes its own database.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sheetsync::emulator::{Config, EmulatorHandle};
use sheetsync::sql::sqlx::{self, AssertSqlSafe, Connection, PgConnection};

fn admin_url() -> String {
    std::env::var("SHEETSYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let root = base.rsplit_once('/').map_or(base, |(r, _)| r);
    match query {
        "" => format!("{root}/{db}"),
        q => format!("{root}/{db}?{q}"),
    }
}

/// The example binary cargo built next to this test: `target/<profile>/examples/`.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = profile_dir.join("examples").join("postgres_sheet");
    assert!(
        bin.is_file(),
        "{} is missing: cargo builds it with the tests unless they are selected one by one \
         (`cargo build --example postgres_sheet --features postgres,gsheets` first)",
        bin.display()
    );
    bin
}

async fn sql(url: &str, statements: &[&str]) {
    let mut conn = PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url}: {e} (start it, or set SHEETSYNC_TEST_POSTGRES_URL)")
    });
    for s in statements {
        sqlx::query(AssertSqlSafe(s.to_string()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_example_syncs_a_postgres_table_with_a_sheet() {
    let db = format!("sheetsync_example_{}", std::process::id());
    let admin = admin_url();
    sql(
        &admin,
        &[
            &format!("DROP DATABASE IF EXISTS {db}"),
            &format!("CREATE DATABASE {db}"),
        ],
    )
    .await;
    let url = with_database(&admin, &db);
    sql(
        &url,
        &[
            "CREATE TABLE orders (id integer PRIMARY KEY, item text NOT NULL, qty integer)",
            "INSERT INTO orders VALUES (1, 'bolt', 10), (2, 'nut', 20)",
        ],
    )
    .await;
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = emu.create_spreadsheet("orders").unwrap();

    let mut child = Command::new(example_binary())
        .env("DATABASE_URL", &url)
        .env(
            "SHEET_URL",
            format!("https://docs.google.com/spreadsheets/d/{id}/edit#gid=0"),
        )
        .env("SHEETSYNC_SHEETS_URL", emu.base_url())
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let sheet = || emu.read_values(&id, "Sheet1").unwrap_or(json!([]));
    // The key (id) and the columns came from the table: the header names them all.
    until("the table reaches the Sheet", || {
        sheet() == json!([["id", "item", "qty"], [1, "bolt", 10], [2, "nut", 20]])
    })
    .await;
    sql(&url, &["UPDATE orders SET qty = 11 WHERE id = 1"]).await;
    until("the update reaches the Sheet", || {
        sheet()[1] == json!([1, "bolt", 11])
    })
    .await;

    // Ctrl-C: the example shuts the sync down and exits successfully.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the example did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    emu.shutdown().await;
    sql(
        &admin,
        &[&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")],
    )
    .await;
}
