//! Mapping identity (finding: re-pointing a mapping at a new, empty spreadsheet deleted every
//! database row).

use super::*;

/// A memory table that says it is `identity` (a spreadsheet and tab, a database table).
fn pointed(inner: &Arc<MemoryTable>, identity: &str) -> Arc<Wrapped> {
    Arc::new(Wrapped {
        identity: Some(identity.into()),
        ..Wrapped::new(inner)
    })
}

fn builder(rig: &Rig, sheet: Arc<Wrapped>, db: Arc<Wrapped>) -> EngineBuilder {
    Engine::builder(rig.mapping.clone(), sheet, db).state(rig.store.clone())
}

const SHEET: &str = "sheet:1AbC#0";
const DB: &str = "postgres://db.internal:5432/shop/public.items";

/// Synced once through `SHEET` and `DB`, with rows 1 to 4.
async fn synced_rig() -> Rig {
    let rig = Rig::new();
    for i in 1..=4 {
        rig.db.upsert(r(i, "x", i));
    }
    let e = builder(&rig, pointed(&rig.sheet, SHEET), pointed(&rig.db, DB))
        .build()
        .await
        .unwrap();
    e.run_once().await.unwrap();
    let id = rig.store.snapshot("items").identity.unwrap();
    assert_eq!((id.sheet.as_str(), id.db.as_str()), (SHEET, DB));
    rig
}

async fn refused(rig: &Rig, sheet: Arc<Wrapped>, db: Arc<Wrapped>) -> Error {
    match builder(rig, sheet, db).build().await {
        Ok(_) => panic!("the engine accepted state that belongs to other tables"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_new_spreadsheet_is_refused() {
    let rig = synced_rig().await;
    let new_sheet = Arc::new(MemoryTable::sheet_like("sheet", schema(ColumnType::Int)));
    let e = refused(
        &rig,
        pointed(&new_sheet, "sheet:9XyZ#0"),
        pointed(&rig.db, DB),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::IdentityMismatch);
    let msg = e.to_string();
    assert!(msg.contains(SHEET) && msg.contains("sheet:9XyZ#0"), "{msg}");
    assert!(msg.contains("sheetsync reset --mapping items"), "{msg}");
    assert!(
        !msg.contains("database side was"),
        "only what changed: {msg}"
    );
    assert_eq!(rig.db.rows().len(), 4, "nothing was deleted");
}

#[tokio::test]
async fn a_recreated_tab_is_refused() {
    let rig = synced_rig().await;
    // The same spreadsheet, a tab of the same name created anew (a new sheetId).
    let e = refused(
        &rig,
        pointed(&rig.sheet, "sheet:1AbC#172"),
        pointed(&rig.db, DB),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::IdentityMismatch);
}

#[tokio::test]
async fn another_table_is_refused() {
    let rig = synced_rig().await;
    let other = Arc::new(MemoryTable::new("db", schema(ColumnType::Int)));
    let e = refused(
        &rig,
        pointed(&rig.sheet, SHEET),
        pointed(&other, "postgres://db.internal:5432/shop/public.items_v2"),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::IdentityMismatch);
    assert!(e.to_string().contains("items_v2"), "{e}");
    assert_eq!(rig.sheet.rows().len(), 4);
}

/// After a reset the first sync is a union of both sides: rows only on one side are copied to
/// the other, nothing is deleted on either side.
#[tokio::test]
async fn a_reset_mapping_merges_both_sides_without_deleting() {
    let rig = synced_rig().await;
    // A new spreadsheet with some of the rows, a changed one, and a row of its own.
    let new_sheet = Arc::new(MemoryTable::sheet_like("sheet", schema(ColumnType::Int)));
    new_sheet.upsert(r(1, "x", 1));
    new_sheet.upsert(r(2, "changed in the new sheet", 2));
    new_sheet.upsert(r(9, "only in the new sheet", 9));
    let e = builder(
        &rig,
        pointed(&new_sheet, "sheet:9XyZ#0"),
        pointed(&rig.db, DB),
    )
    .start_afresh()
    .build()
    .await
    .unwrap();
    let rep = e.run_once().await.unwrap();
    assert!(rep.guard_tripped.is_empty());
    let ids = |rows: Vec<Row>| -> Vec<i64> {
        rows.iter()
            .map(|r| match r.0[0] {
                Value::Int(i) => i,
                _ => unreachable!(),
            })
            .collect()
    };
    assert_eq!(
        ids(rig.db.rows()),
        vec![1, 2, 3, 4, 9],
        "nothing deleted in the database"
    );
    assert_eq!(
        ids(new_sheet.rows()),
        vec![1, 2, 3, 4, 9],
        "nothing deleted in the sheet"
    );
    assert_eq!(new_sheet.rows(), rig.db.rows());
    let id = rig.store.snapshot("items").identity.unwrap();
    assert_eq!(id.sheet, "sheet:9XyZ#0");
    // From now on the mapping belongs to the new spreadsheet, and deletes propagate again.
    drop(e);
    let e = builder(
        &rig,
        pointed(&new_sheet, "sheet:9XyZ#0"),
        pointed(&rig.db, DB),
    )
    .build()
    .await
    .unwrap();
    new_sheet.delete(&key_of(9));
    e.run_once().await.unwrap();
    assert_eq!(ids(rig.db.rows()), vec![1, 2, 3, 4]);
}

/// State saved before identities were recorded is adopted (and recorded) on the first cycle.
#[tokio::test]
async fn state_without_an_identity_is_adopted() {
    let rig = Rig::new();
    rig.db.upsert(r(1, "x", 1));
    rig.engine().await.run_once().await.unwrap();
    // What an older version saved: no identity.
    let mut snap = rig.store.snapshot("items");
    snap.identity = None;
    let legacy = Arc::new(MemoryStateStore::new());
    legacy
        .commit(
            "items",
            &crate::state::StateDelta {
                upsert: snap.bases.clone().into_iter().collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let e = Engine::builder(rig.mapping.clone(), rig.sheet.clone(), rig.db.clone())
        .state(legacy.clone())
        .build()
        .await
        .unwrap();
    rig.db.upsert(r(2, "x", 2));
    e.run_once().await.unwrap();
    let id = legacy.snapshot("items").identity.expect("recorded");
    assert_eq!((id.sheet.as_str(), id.db.as_str()), ("sheet", "db"));
}
