//! Two in-memory tables kept in sync by the engine: a "sheet" and a "database".
//!
//! `cargo run --example memory_sync`
//!
//! Edits both sides the way people and programs do (inserts, updates, a conflicting edit, a
//! delete, a row typed without a key), lets the engine run in the background, and prints what it
//! reports. No credentials, no services.

use std::sync::Arc;
use std::time::Duration;

use sheetsync::*;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let schema = TableSchema::new(
        "contacts",
        vec![
            Column::new("id", ColumnType::Text).nullable(false),
            Column::new("name", ColumnType::Text),
            Column::new("phone", ColumnType::Text),
            Column::new("vip", ColumnType::Bool),
        ],
        &["id"],
    )?;
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    let db = Arc::new(MemoryTable::new("db", schema));
    let contact = |id: &str, name: &str, phone: &str, vip: bool| {
        Row::new(vec![id.into(), name.into(), phone.into(), vip.into()])
    };
    db.upsert(contact("c1", "Ada", "0049 30 1234", true));
    db.upsert(contact("c2", "Grace", "007", false));
    sheet.upsert(contact("c3", "Linus", "+1 555 0100", false));

    let mut mapping = MappingConfig::new("contacts", &["id"]);
    mapping.timing.poll_interval_ms = 100;
    let engine = Arc::new(
        Engine::builder(mapping, sheet.clone(), db.clone())
            .build()
            .await?,
    );
    let mut events = engine.subscribe();
    tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            match e {
                Event::Cycle(r) if r.writes.total() == 0 => {}
                e => println!("event: {}", serde_json::to_string(&e).unwrap_or_default()),
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    settle().await;

    println!("\n-- a person edits the sheet, a service edits the database, at the same time");
    sheet.upsert(contact("c1", "Ada Lovelace", "0049 30 1234", true));
    db.upsert(contact("c1", "Ada", "0049 30 9999", true));
    settle().await;

    println!("\n-- a new sheet row without a key, and a delete in the database");
    sheet.insert_unkeyed(Row::new(vec![
        Value::Null,
        "Barbara".into(),
        "".into(),
        false.into(),
    ]));
    db.delete(&key_of("c2"));
    settle().await;

    stop.send(()).ok();
    runner.await.ok();
    let show = |name: &str, rows: Vec<Row>| {
        println!("\n{name}:");
        for r in rows {
            let cells: Vec<String> = r.values().iter().map(|v| v.to_string()).collect();
            println!("  {}", cells.join(" | "));
        }
    };
    show("sheet", sheet.rows());
    show("database", db.rows());
    assert_eq!(sheet.rows(), db.rows(), "both sides agree");
    println!("\nboth sides hold the same {} rows", db.rows().len());
    Ok(())
}
