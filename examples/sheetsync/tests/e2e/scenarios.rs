//! The scenarios; each runs on every backend (see `main.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sheetsync::emulator::{FaultRule, Latency};

use crate::harness::*;

fn seed() -> Vec<(i64, Canon)> {
    vec![
        (
            1,
            row(["1", "Widget", "007", "12.50", "2024-01-31", "true"]),
        ),
        (2, row(["2", "Gadget", "", "", "", "false"])),
    ]
}

fn set(map: &mut BTreeMap<i64, Canon>, id: i64, column: &str, value: &str) {
    let i = COLUMNS.iter().position(|c| *c == column).unwrap();
    let mut v = [""; 6];
    v[i] = value;
    let canon = row(v);
    map.get_mut(&id).unwrap()[i] = canon[i].clone();
}

/// Scenario 1: Inserts, updates and deletes in SQL reach the Sheet; a person's edits, new rows and row
/// deletes reach the database; values stay exact.
pub async fn crud_both_ways(backend: Backend) {
    let mut w = World::new(backend, "crud").await;
    let m = w.add_mapping("items", &seed(), "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&seed());
    w.converge(m, &want).await;

    // Another program changes the database.
    w.db.exec(&insert_sql(
        &t,
        &[(
            3,
            row(["3", "Gizmo", "000123", "0.10", "2023-12-25", "false"]),
        )],
    ))
    .await;
    w.db.exec(&format!(
        "UPDATE {t} SET name = 'Widget v2', price = '13.99', code = '0070' WHERE id = 1"
    ))
    .await;
    w.db.exec(&format!(
        "UPDATE {t} SET code = '42', due = '2025-06-01', price = '1234567890.12' WHERE id = 2"
    ))
    .await;
    want.insert(
        3,
        row(["3", "Gizmo", "000123", "0.10", "2023-12-25", "false"]),
    );
    set(&mut want, 1, "name", "Widget v2");
    set(&mut want, 1, "price", "13.99");
    set(&mut want, 1, "code", "0070");
    set(&mut want, 2, "code", "42");
    set(&mut want, 2, "due", "2025-06-01");
    set(&mut want, 2, "price", "1234567890.12");
    w.converge(m, &want).await;
    // The Sheet holds text with leading zeros as text.
    let code_cell = w
        .sheet_values(m)
        .iter()
        .find(|r| r.first() == Some(&json!(3)))
        .map(|r| r[2].clone());
    assert_eq!(code_cell, Some(json!("000123")));

    w.db.exec(&format!("DELETE FROM {t} WHERE id = 2")).await;
    want.remove(&2);
    w.converge(m, &want).await;

    // A person edits the Sheet.
    w.type_cell(m, 1, "name", json!("Widget v3"));
    w.type_cell(m, 1, "price", json!("14.25"));
    w.type_cell(m, 1, "code", json!("'0099"));
    w.type_cell(m, 3, "due", json!("2024-02-29"));
    w.type_cell(m, 3, "active", json!("TRUE"));
    w.type_cell(m, 3, "price", json!(""));
    set(&mut want, 1, "name", "Widget v3");
    set(&mut want, 1, "price", "14.25");
    set(&mut want, 1, "code", "0099");
    set(&mut want, 3, "due", "2024-02-29");
    set(&mut want, 3, "active", "true");
    set(&mut want, 3, "price", "");
    w.converge(m, &want).await;

    // New rows typed into the Sheet.
    let new_rows = vec![
        (
            5,
            row(["5", "Sprocket", "0005", "7.5", "2024-07-04", "false"]),
        ),
        (6, row(["6", "Nut", "", "0.01", "", "true"])),
    ];
    w.type_rows(m, &new_rows);
    want.extend(new_rows);
    w.converge(m, &want).await;

    // A row deleted in the Sheet.
    w.delete_sheet_row(m, 1);
    want.remove(&1);
    w.converge(m, &want).await;

    // Nothing echoes or ping-pongs (numeric(12,2) gives back 7.50 for 7.5, and so on).
    w.assert_quiet(m).await;
    assert_eq!(w.db.rows(&t).await, want);
    assert!(w.daemon_running(), "the daemon exited");
}

/// Scenario 2: Conflicting edits made while the daemon is down, under each resolver.
pub async fn conflicts_under_each_resolver(backend: Backend) {
    let mut w = World::new(backend, "conflicts").await;
    let lww = w
        .add_mapping(
            "lww",
            &seed(),
            "resolvers = [{ strategy = \"last_write_wins\", granularity = \"field\" }]",
        )
        .await;
    let sw = w
        .add_mapping(
            "sheetwins",
            &seed(),
            "resolvers = [{ strategy = \"sheet_wins\" }]",
        )
        .await;
    let dw = w
        .add_mapping(
            "dbwins",
            &seed(),
            "resolvers = [{ strategy = \"db_wins\" }]",
        )
        .await;
    let own = w
        .add_mapping(
            "owner",
            &seed(),
            "resolvers = [{ strategy = \"column_owner\", owners = { name = \"sheet\", price = \"db\" } }]",
        )
        .await;
    let man = w
        .add_mapping("manual", &seed(), "resolvers = [{ strategy = \"manual\" }]")
        .await;
    w.start().await;
    for m in [lww, sw, dw, own, man] {
        w.converge(m, &rows_map(&seed())).await;
    }
    w.kill9_at_rest().await;

    let tables: Vec<String> = w.mappings.iter().map(|m| m.table.clone()).collect();
    let tbl = |m: usize| tables[m].clone();
    // last_write_wins: the Sheet first, the database later: the database's name wins (its
    // change log knows when it changed; the Sheet's edit, made while the daemon was down, is
    // older); fields changed on one side only merge.
    w.type_cell(lww, 1, "name", json!("sheet name"));
    w.type_cell(lww, 1, "code", json!("'0123"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.db.exec(&format!(
        "UPDATE {} SET name = 'db name', price = '99.90' WHERE id = 1",
        tbl(lww)
    ))
    .await;
    let mut want_lww = rows_map(&seed());
    set(&mut want_lww, 1, "name", "db name");
    set(&mut want_lww, 1, "price", "99.90");
    set(&mut want_lww, 1, "code", "0123");

    // sheet_wins: the Sheet's value; the Sheet's update beats the database's delete.
    w.db.exec(&format!(
        "UPDATE {} SET name = 'db name' WHERE id = 1",
        tbl(sw)
    ))
    .await;
    w.type_cell(sw, 1, "name", json!("sheet name"));
    w.db.exec(&format!("DELETE FROM {} WHERE id = 2", tbl(sw)))
        .await;
    w.type_cell(sw, 2, "name", json!("kept by the sheet"));
    let mut want_sw = rows_map(&seed());
    set(&mut want_sw, 1, "name", "sheet name");
    set(&mut want_sw, 2, "name", "kept by the sheet");

    // db_wins: the database's value; the database's update beats the Sheet's delete.
    w.db.exec(&format!(
        "UPDATE {} SET name = 'db name', active = FALSE WHERE id = 1",
        tbl(dw)
    ))
    .await;
    w.type_cell(dw, 1, "name", json!("sheet name"));
    w.type_cell(dw, 1, "active", json!("TRUE"));
    w.db.exec(&format!(
        "UPDATE {} SET name = 'kept by the database' WHERE id = 2",
        tbl(dw)
    ))
    .await;
    w.delete_sheet_row(dw, 2);
    let mut want_dw = rows_map(&seed());
    set(&mut want_dw, 1, "name", "db name");
    set(&mut want_dw, 1, "active", "false");
    set(&mut want_dw, 2, "name", "kept by the database");

    // column_owner: name belongs to the Sheet, price to the database.
    w.db.exec(&format!(
        "UPDATE {} SET name = 'db name', price = '9.99' WHERE id = 1",
        tbl(own)
    ))
    .await;
    w.type_cell(own, 1, "name", json!("sheet name"));
    w.type_cell(own, 1, "price", json!("1.11"));
    let mut want_own = rows_map(&seed());
    set(&mut want_own, 1, "name", "sheet name");
    set(&mut want_own, 1, "price", "9.99");

    // manual: kept for a person; another row changed on one side only still syncs.
    w.db.exec(&format!(
        "UPDATE {} SET name = 'db name' WHERE id = 1",
        tbl(man)
    ))
    .await;
    w.type_cell(man, 1, "name", json!("sheet name"));
    w.db.exec(&format!(
        "UPDATE {} SET code = 'X-2' WHERE id = 2",
        tbl(man)
    ))
    .await;

    w.start().await;
    w.converge(lww, &want_lww).await;
    w.converge(sw, &want_sw).await;
    w.converge(dw, &want_dw).await;
    w.converge(own, &want_own).await;

    // The manual conflict is listed, the other row synced, each side keeps its value.
    wait_until("the manual conflict is listed", || async {
        let list = w.conflicts_list(man).await?;
        let conflicts = list[0]["conflicts"].as_array().cloned().unwrap_or_default();
        let found = conflicts.iter().any(|c| {
            c["key"][0]["value"] == json!(1)
                && c["fields"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["column"] == "name"))
        });
        if found {
            Ok(())
        } else {
            Err(format!("not listed yet: {list}"))
        }
    })
    .await;
    let mut want_man_sheet = rows_map(&seed());
    set(&mut want_man_sheet, 2, "code", "X-2");
    let mut want_man_db = want_man_sheet.clone();
    set(&mut want_man_sheet, 1, "name", "sheet name");
    set(&mut want_man_db, 1, "name", "db name");
    wait_until("the manual mapping syncs its other row", || async {
        let db = w.db.try_rows(&tbl(man)).await?;
        let sheet = w.sheet_rows(man)?;
        if db == want_man_db && sheet == want_man_sheet {
            Ok(())
        } else {
            Err(format!(
                "database: {}; sheet: {}",
                diff(&want_man_db, &db),
                diff(&want_man_sheet, &sheet)
            ))
        }
    })
    .await;

    // A person resolves it with the CLI, taking the Sheet's row.
    let out = w
        .cli(
            &w.cfg_path,
            &[
                "conflicts",
                "resolve",
                "--mapping",
                "manual",
                "--key",
                "1",
                "--side",
                "sheet",
            ],
        )
        .await;
    assert_eq!(out.code, Some(0), "conflicts resolve: {out:?}");
    w.converge(man, &want_man_sheet).await;
    wait_until("no conflict is left", || async {
        let list = w.conflicts_list(man).await?;
        if list[0]["conflicts"].as_array().is_some_and(Vec::is_empty) {
            Ok(())
        } else {
            Err(format!("still listed: {list}"))
        }
    })
    .await;

    assert!(w.daemon_running(), "the daemon exited");
}

/// Scenario 3: Deletes both ways; deleting most of the Sheet trips the mass-delete guard.
pub async fn deletes_and_mass_delete_guard(backend: Backend) {
    let mut w = World::new(backend, "deletes").await;
    let rows: Vec<(i64, Canon)> = (1..=20)
        .map(|i| {
            let id = i.to_string();
            let name = format!("item {i}");
            let price = format!("{i}.25");
            (i, row([&id, &name, "", &price, "2024-05-01", "true"]))
        })
        .collect();
    let m = w
        .add_mapping("items", &rows, "guard = { max_share = 0.5, min_rows = 10 }")
        .await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&rows);
    w.converge(m, &want).await;

    w.db.exec(&format!("DELETE FROM {t} WHERE id IN (20, 3)"))
        .await;
    want.remove(&20);
    want.remove(&3);
    w.converge(m, &want).await;
    w.delete_sheet_row(m, 19);
    w.delete_sheet_row(m, 7);
    want.remove(&19);
    want.remove(&7);
    w.converge(m, &want).await;
    assert_eq!(
        w.metric("sheetsync_guard_trips_total", "mapping=\"items\"")
            .await
            .unwrap(),
        0.0
    );

    // A person deletes 12 of the 16 rows: more than half.
    let first = w.sheet_list(m).unwrap()[0].0;
    w.emu
        .delete_rows(&w.mappings[m].spreadsheet_id, "Sheet1", first, 12)
        .unwrap();
    wait_until("the guard trips", || async {
        let trips = w
            .metric("sheetsync_guard_trips_total", "mapping=\"items\"")
            .await?;
        if trips > 0.0 {
            Ok(())
        } else {
            Err(format!("sheetsync_guard_trips_total = {trips}"))
        }
    })
    .await;
    // A few more cycles later the database still has every row.
    w.cycles_more(m, 3).await;
    let db = w.db.rows(&t).await;
    assert_eq!(
        db,
        want,
        "the guard let deletes through: {}",
        diff(&want, &db)
    );
    assert!(w.daemon_running(), "the daemon exited");

    // The deletes wait in the queue, listed through the CLI, with the rows they would delete.
    let pending = w.pending_deletes(m).await.unwrap();
    assert_eq!(pending.len(), 12, "{pending:?}");
    assert!(
        pending.iter().all(|p| p["deleted_on"] == "sheet"),
        "{pending:?}"
    );
    let first: i64 = pending[0]["key"][0].as_str().unwrap().parse().unwrap();
    assert_eq!(
        pending[0]["row"]["name"].as_str(),
        Some(format!("item {first}").as_str()),
        "{pending:?}"
    );
    // The two Sheet deletes before count too: they are within the guard's window.
    assert!(
        pending[0]["reason"]
            .as_str()
            .unwrap()
            .contains("14 deletes of 18 rows (78%) exceed the limit of 50%"),
        "{pending:?}"
    );
    assert_eq!(
        w.metric("sheetsync_pending_deletes", "mapping=\"items\"")
            .await
            .unwrap(),
        12.0
    );
    // Approve one by key: it is deleted in the database too.
    let out = w
        .cli(
            &w.cfg_path,
            &[
                "deletes",
                "approve",
                "--mapping",
                "items",
                "--key",
                &first.to_string(),
            ],
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("\"approved\": 1"), "{out:?}");
    want.remove(&first);
    wait_until("the approved delete reaches the database", || async {
        let db = w.db.try_rows(&t).await?;
        if db.contains_key(&first) {
            Err("still there".into())
        } else {
            Ok(())
        }
    })
    .await;
    // Reject the rest: the rows come back in the Sheet.
    let out = w
        .cli(
            &w.cfg_path,
            &["deletes", "reject", "--mapping", "items", "--all"],
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("\"rejected\": 11"), "{out:?}");
    w.converge(m, &want).await;
    assert!(w.pending_deletes(m).await.unwrap().is_empty());
    let restored = w
        .metric(
            "sheetsync_pending_delete_changes_total",
            "mapping=\"items\",change=\"restored\"",
        )
        .await
        .unwrap();
    assert_eq!(restored, 11.0);
    let bad = w
        .cli(
            &w.cfg_path,
            &["deletes", "approve", "--mapping", "items", "--key", "999"],
        )
        .await;
    assert_eq!(bad.code, Some(1), "no pending delete for 999: {bad:?}");
}

/// Scenario: `kill -9` between the Sheet write and the state commit of a burst of SQL updates;
/// another program then deletes some of the updated rows. After the restart the deleted rows
/// stay deleted: the Sheet's content is the daemon's own unsaved write, not a person's update.
pub async fn kill_9_between_sheet_write_and_state_commit(backend: Backend) {
    let mut w = World::new(backend, "kill9-commit").await;
    let base: Vec<(i64, Canon)> = (1..=20)
        .map(|i| {
            let id = i.to_string();
            (i, row([&id, &format!("base {i}"), "", "1.50", "", "true"]))
        })
        .collect();
    let m = w.add_mapping("items", &base, "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&base);
    w.converge(m, &want).await;

    // The Sheet answers slowly, so there is time to take the state store's lock after the
    // write was sent and before the daemon commits.
    w.emu.set_latency(Latency {
        fixed_ms: 500,
        jitter_ms: 0,
    });
    let writes_before = write_requests(&w);
    w.db.exec(&format!("UPDATE {t} SET name = 'burst' WHERE id <= 10"))
        .await;
    wait_until("the daemon writes the burst to the Sheet", || async {
        if write_requests(&w) > writes_before {
            Ok(())
        } else {
            Err("no write yet".into())
        }
    })
    .await;
    let lock = w.db.hold_state_lock("items").await;
    // The write lands after the latency; then the daemon waits for the lock to commit.
    wait_until("the burst is in the Sheet", || async {
        let sheet = w.sheet_rows(m)?;
        if (1..=10).all(|i| sheet[&i][1].as_deref() == Some("burst")) {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.kill9();
    lock.release().await;
    w.emu.set_latency(Latency::default());
    // Another program deletes half of the updated rows while the daemon is down.
    w.db.exec(&format!("DELETE FROM {t} WHERE id <= 5")).await;
    for i in 1..=5 {
        want.remove(&i);
    }
    for i in 6..=10 {
        set(&mut want, i, "name", "burst");
    }
    w.start().await;
    w.converge(m, &want).await;
    w.assert_quiet(m).await;
}

/// Scenario: the mapping is pointed at a new, empty spreadsheet (the demo's case). The daemon
/// refuses to start, saying what changed and what to do; the database keeps every row.
/// `sheetsync reset` then merges both sides without deleting anything.
pub async fn repointed_mapping_refused_until_reset(backend: Backend) {
    let mut w = World::new(backend, "repoint").await;
    let rows: Vec<(i64, Canon)> = (1..=6)
        .map(|i| {
            let id = i.to_string();
            (i, row([&id, &format!("item {i}"), "", "", "", "true"]))
        })
        .collect();
    let m = w.add_mapping("items", &rows, "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let want = rows_map(&rows);
    w.converge(m, &want).await;
    w.kill9_at_rest().await;

    let new_sheet = w.emu.create_spreadsheet("items, again").unwrap();
    w.emu
        .add_trigger(
            &new_sheet,
            sheetsync::emulator::TriggerSpec {
                url: format!("http://127.0.0.1:{}/webhook", w.port),
                secret: w.secret.clone(),
                sheet_id: Some(0),
            },
        )
        .unwrap();
    let old_sheet = std::mem::replace(&mut w.mappings[m].spreadsheet_id, new_sheet.clone());
    w.write_config();
    let out = w.cli_within(Duration::from_secs(60), &["run"]).await;
    assert_eq!(
        out.code,
        Some(2),
        "the daemon must refuse the moved mapping: {out:?}"
    );
    assert!(out.stderr.contains("identity_mismatch"), "{out:?}");
    assert!(
        out.stderr.contains(&old_sheet) && out.stderr.contains(&new_sheet),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("sheetsync reset --mapping items"),
        "{out:?}"
    );
    assert_eq!(w.db.rows(&t).await, want, "nothing was deleted");

    let out = w.cli(&w.cfg_path, &["reset", "--mapping", "items"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("started afresh"), "{out:?}");
    assert_eq!(w.db.rows(&t).await, want, "the union deleted nothing");
    assert_eq!(
        w.sheet_rows(m).unwrap(),
        want,
        "the new Sheet has every row"
    );

    // From now on the mapping runs normally on the new spreadsheet.
    w.start().await;
    let mut want = want;
    w.delete_sheet_row(m, 6);
    want.remove(&6);
    w.converge(m, &want).await;
}

/// Scenario 4: A bad cell holds its row; the rest syncs; fixing the cell releases it.
pub async fn bad_cells_held_and_released(backend: Backend) {
    let mut w = World::new(backend, "held").await;
    let mut seed = seed();
    seed.push((
        3,
        row(["3", "Doohickey", "C3", "3.00", "2024-03-03", "false"]),
    ));
    let m = w.add_mapping("items", &seed, "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&seed);
    w.converge(m, &want).await;

    w.type_cell(m, 2, "price", json!("abc"));
    // Other rows keep syncing both ways.
    w.db.exec(&format!("UPDATE {t} SET name = 'Widget (db)' WHERE id = 1"))
        .await;
    w.type_cell(m, 3, "name", json!("Doohickey (sheet)"));
    set(&mut want, 1, "name", "Widget (db)");
    set(&mut want, 3, "name", "Doohickey (sheet)");
    let mut want_sheet = want.clone();
    set(&mut want_sheet, 2, "price", "abc");
    wait_until("the good rows sync while row 2 is held", || async {
        let db = w.db.try_rows(&t).await?;
        let sheet = w.sheet_rows(m)?;
        if db == want && sheet == want_sheet {
            Ok(())
        } else {
            Err(format!(
                "database: {}; sheet: {}",
                diff(&want, &db),
                diff(&want_sheet, &sheet)
            ))
        }
    })
    .await;
    wait_until("row 2 is listed as held", || async {
        let list = w.conflicts_list(m).await?;
        let held = list[0]["held"].as_array().cloned().unwrap_or_default();
        if held.iter().any(|h| h.to_string().contains("abc")) {
            Ok(())
        } else {
            Err(format!("held: {list}"))
        }
    })
    .await;
    let (status, body) = w.http_get("/api/conflicts").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("abc"), "{body}");

    // Fixed: it syncs and is no longer held.
    w.type_cell(m, 2, "price", json!("5.25"));
    set(&mut want, 2, "price", "5.25");
    w.converge(m, &want).await;
    wait_until("nothing is held", || async {
        let list = w.conflicts_list(m).await?;
        if list[0]["held"].as_array().is_some_and(Vec::is_empty) {
            Ok(())
        } else {
            Err(format!("held: {list}"))
        }
    })
    .await;
}

/// Scenario 5: `kill -9` in the middle of a cycle with a large batch of changes on both sides; after a
/// restart, no row is lost or duplicated.
pub async fn kill_9_mid_cycle(backend: Backend) {
    let mut w = World::new(backend, "kill9").await;
    let base: Vec<(i64, Canon)> = (1..=10)
        .map(|i| {
            let id = i.to_string();
            (i, row([&id, &format!("base {i}"), "", "1.50", "", "true"]))
        })
        .collect();
    let m = w.add_mapping("items", &base, "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&base);
    w.converge(m, &want).await;

    for round in 0..2i64 {
        w.kill9();
        // A large batch in the database...
        let db_rows: Vec<(i64, Canon)> = (0..300)
            .map(|i| {
                let id = 1000 * (round + 1) + i;
                let ids = id.to_string();
                let code = format!("{i:05}");
                (
                    id,
                    row([
                        &ids,
                        &format!("db {id}"),
                        &code,
                        "2.75",
                        "2024-12-31",
                        "false",
                    ]),
                )
            })
            .collect();
        w.db.exec(&insert_sql(&t, &db_rows)).await;
        w.db.exec(&format!(
            "UPDATE {t} SET name = 'updated {round}' WHERE id <= 10"
        ))
        .await;
        want.extend(db_rows);
        for i in 1..=10 {
            set(&mut want, i, "name", &format!("updated {round}"));
        }
        // ...and in the Sheet.
        let sheet_rows: Vec<(i64, Canon)> = (0..40)
            .map(|i| {
                let id = 100_000 * (round + 1) + i;
                let ids = id.to_string();
                (
                    id,
                    row([&ids, &format!("sheet {id}"), "", "", "2025-01-01", "true"]),
                )
            })
            .collect();
        w.type_rows(m, &sheet_rows);
        want.extend(sheet_rows);

        // Slow the Sheet down so the cycle is long, start, and kill as soon as the first
        // write reaches the Sheet (round 0) or right after startup (round 1).
        w.emu.set_latency(Latency {
            fixed_ms: 30,
            jitter_ms: 30,
        });
        let writes_before = write_requests(&w);
        w.start().await;
        if round == 0 {
            wait_until("the daemon writes to the Sheet", || async {
                if write_requests(&w) > writes_before {
                    Ok(())
                } else {
                    Err("no write yet".into())
                }
            })
            .await;
        } else {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        w.kill9();
        w.emu.set_latency(Latency::default());
        w.start().await;
        w.converge(m, &want).await;
        let db = w.db.rows(&t).await;
        assert_eq!(db.len(), want.len());
        assert_eq!(
            w.sheet_list(m).unwrap().len(),
            want.len(),
            "duplicate rows in the sheet"
        );
    }
}

fn write_requests(w: &World) -> u64 {
    w.emu
        .request_counts()
        .iter()
        .filter(|(k, _)| k.contains("append") || k.contains("batchUpdate") || k.contains("update"))
        .map(|(_, v)| *v)
        .sum()
}

/// Scenario 6: Storms of 429 and 5xx answers: the daemon survives and converges once they stop.
pub async fn api_error_storms(backend: Backend) {
    let mut w = World::new(backend, "storms").await;
    let m = w.add_mapping("items", &seed(), "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&seed());
    w.converge(m, &want).await;

    // Roughly half of the requests fail (429, 503, dropped connections) for a while.
    w.emu.inject_fault(FaultRule::drop_next(2));
    w.emu.inject_fault(FaultRule::status_rate(429, 0.3));
    w.emu.inject_fault(FaultRule::status_rate(503, 0.3));
    for i in 10..20i64 {
        let id = i.to_string();
        w.db.exec(&insert_sql(
            &t,
            &[(i, row([&id, &format!("db {i}"), "", "0.5", "", "false"]))],
        ))
        .await;
        want.insert(i, row([&id, &format!("db {i}"), "", "0.5", "", "false"]));
    }
    w.type_cell(m, 1, "name", json!("edited in the storm"));
    set(&mut want, 1, "name", "edited in the storm");
    w.type_rows(
        m,
        &[(50, row(["50", "typed in the storm", "", "", "", ""]))],
    );
    want.insert(50, row(["50", "typed in the storm", "", "", "", ""]));
    wait_until("the storm hits the daemon", || async {
        let faulted = w
            .emu
            .request_log()
            .iter()
            .filter(|r| r.status == 429 || r.status >= 500)
            .count();
        if faulted >= 5 {
            Ok(())
        } else {
            Err(format!("{faulted} failed requests"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(w.daemon_running(), "the daemon died in the storm");
    w.emu.clear_faults();
    w.converge(m, &want).await;
    let retries = w
        .metric("sheetsync_api_retries_total", "method=")
        .await
        .unwrap();
    assert!(retries > 0.0, "no retry counted in /metrics");
    assert!(w.daemon_running(), "the daemon exited");
}

/// Scenario 7: The daemon's database connections are killed; changes made meanwhile are not lost.
pub async fn database_connections_killed(backend: Backend) {
    let mut w = World::new(backend, "dbkill").await;
    let m = w.add_mapping("items", &seed(), "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&seed());
    w.converge(m, &want).await;

    for round in 0..3i64 {
        let lock = outage(&w).await;
        // Changes on both sides while the connections are gone (or the file is locked).
        w.type_cell(m, 1, "name", json!(format!("sheet {round}")));
        set(&mut want, 1, "name", &format!("sheet {round}"));
        let id = 100 + round;
        let ids = id.to_string();
        w.type_rows(m, &[(id, row([&ids, "typed", "", "", "", "true"]))]);
        want.insert(id, row([&ids, "typed", "", "", "", "true"]));
        if let Some(tx) = lock {
            tokio::time::sleep(Duration::from_secs(2)).await;
            tx.send(()).unwrap();
        }
        let id = 200 + round;
        let ids = id.to_string();
        w.db.exec(&insert_sql(
            &t,
            &[(id, row([&ids, "inserted", "", "9.99", "", ""]))],
        ))
        .await;
        w.db.exec(&format!("UPDATE {t} SET code = 'r{round}' WHERE id = 2"))
            .await;
        want.insert(id, row([&ids, "inserted", "", "9.99", "", ""]));
        set(&mut want, 2, "code", &format!("r{round}"));
        w.converge(m, &want).await;
    }
    assert!(w.daemon_running(), "the daemon exited");
}

/// Takes the database away from the daemon: kills its connections (PostgreSQL, MariaDB), or
/// holds SQLite's write lock until the returned sender is used.
async fn outage(w: &World) -> Option<std::sync::mpsc::Sender<()>> {
    match w.backend {
        Backend::Sqlite => {
            let path = w.db.name.clone();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    use sheetsync::sql::sqlx::{self, Connection};
                    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                        .await
                        .unwrap();
                    sqlx::query("BEGIN EXCLUSIVE")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    let _ = locked_tx.send(());
                    let _ = tokio::task::spawn_blocking(move || rx.recv()).await;
                    sqlx::query("COMMIT").execute(&mut c).await.unwrap();
                });
            });
            locked_rx.await.unwrap();
            Some(tx)
        }
        _ => {
            let n = w.db.kill_connections().await;
            assert!(n > 0, "no connection of the daemon to kill");
            None
        }
    }
}

/// `sheetsync check` on good and broken configurations, and `sheetsync plan --json`.
pub async fn check_and_plan(backend: Backend) {
    let mut w = World::new(backend, "cli").await;
    let m = w.add_mapping("items", &seed(), "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let want = rows_map(&seed());
    w.converge(m, &want).await;
    w.kill9_at_rest().await;

    let good = w.cli(&w.cfg_path, &["check"]).await;
    assert_eq!(
        good.code,
        Some(0),
        "check of a good configuration: {good:?}"
    );
    assert!(!good.stdout.contains("FAIL"), "{good:?}");

    // A wrong table name.
    let bad_table = w.dir.join("bad-table.toml");
    std::fs::write(
        &bad_table,
        w.config_text()
            .replace(&format!("table = \"{t}\""), "table = \"no_such_table\""),
    )
    .unwrap();
    let out = w.cli(&bad_table, &["check"]).await;
    assert_eq!(out.code, Some(1), "check with a wrong table: {out:?}");
    assert!(
        out.stdout.contains("FAIL") && out.stdout.contains("no_such_table"),
        "the message names the table: {out:?}"
    );

    // A Sheet whose header lacks a column.
    let other = w.emu.create_spreadsheet("no price").unwrap();
    w.emu
        .set_cells(
            &other,
            "Sheet1!A1",
            vec![vec![
                json!("id"),
                json!("name"),
                json!("code"),
                json!("due"),
                json!("active"),
            ]],
        )
        .unwrap();
    let bad_header = w.dir.join("bad-header.toml");
    std::fs::write(
        &bad_header,
        w.config_text()
            .replace(&w.mappings[m].spreadsheet_id, &other),
    )
    .unwrap();
    let out = w.cli(&bad_header, &["check"]).await;
    assert_eq!(
        out.code,
        Some(1),
        "check with a header lacking price: {out:?}"
    );
    assert!(
        out.stdout.contains("FAIL") && out.stdout.contains("price"),
        "the message names the missing column: {out:?}"
    );

    // plan --json lists the pending writes and writes nothing.
    w.db.exec(&insert_sql(
        &t,
        &[(3, row(["3", "planned", "", "", "", ""]))],
    ))
    .await;
    w.type_cell(m, 1, "name", json!("renamed in the sheet"));
    let requests_before = write_requests(&w);
    let out = w.cli(&w.cfg_path, &["plan", "--json"]).await;
    assert_eq!(out.code, Some(0), "plan: {out:?}");
    let plan: Json =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(plan["mapping"], "items");
    let has = |side: &str, id: i64| {
        plan["plan"][side]
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o["key"][0]["value"] == json!(id)))
    };
    assert!(
        has("sheet", 3),
        "the new database row is planned for the Sheet: {plan}"
    );
    assert!(
        has("db", 1),
        "the Sheet edit is planned for the database: {plan}"
    );
    assert_eq!(
        write_requests(&w),
        requests_before,
        "plan wrote to the Sheet"
    );
    assert!(!w.sheet_rows(m).unwrap().contains_key(&3));
    let db = w.db.rows(&t).await;
    assert_eq!(
        db[&1][1].as_deref(),
        Some("Widget"),
        "plan wrote to the database"
    );

    // Running it does what the plan said.
    let mut want = want;
    want.insert(3, row(["3", "planned", "", "", "", ""]));
    set(&mut want, 1, "name", "renamed in the sheet");
    w.start().await;
    w.converge(m, &want).await;
}

/// Scenario 2b: A resolver chain decides what it can and keeps the rest for a person: with
/// `[column_owner, manual]`, a conflict on an owned column goes to its owner, and only the
/// unowned column waits for a person.
pub async fn column_owner_then_manual(backend: Backend) {
    let mut w = World::new(backend, "ownerchain").await;
    let m = w
        .add_mapping(
            "owner",
            &seed(),
            "resolvers = [{ strategy = \"column_owner\", owners = { name = \"sheet\" } }, { strategy = \"manual\" }]",
        )
        .await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    w.converge(m, &rows_map(&seed())).await;
    w.kill9();
    w.db.exec(&format!(
        "UPDATE {t} SET name = 'db name', code = 'db code' WHERE id = 1"
    ))
    .await;
    w.type_cell(m, 1, "name", json!("sheet name"));
    w.type_cell(m, 1, "code", json!("sheet code"));
    w.start().await;
    wait_until("the conflict on code is listed", || async {
        let list = w.conflicts_list(m).await?;
        let conflicts = list[0]["conflicts"].as_array().cloned().unwrap_or_default();
        if conflicts.iter().any(|c| c["key"][0]["value"] == json!(1)) {
            Ok(())
        } else {
            Err(format!("not listed yet: {list}"))
        }
    })
    .await;
    let list = w.conflicts_list(m).await.unwrap();
    let columns: Vec<Json> = list[0]["conflicts"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["column"].clone())
        .collect();
    // The owner decided the name; only code waits for a person. The row is held as a whole
    // until then (the manual strategy holds rows): nothing of it is written yet.
    assert_eq!(columns, vec![json!("code")], "only code waits for a person");
    let db = w.db.rows(&t).await;
    assert_eq!(
        db[&1][1],
        Some("db name".into()),
        "a held row is not written"
    );
    let out = w
        .cli(
            &w.cfg_path,
            &[
                "conflicts",
                "resolve",
                "--mapping",
                "owner",
                "--key",
                "1",
                "--side",
                "sheet",
            ],
        )
        .await;
    assert_eq!(out.code, Some(0), "conflicts resolve: {out:?}");
    wait_until("the resolved row syncs", || async {
        let db = w.db.try_rows(&t).await?;
        let sheet = w.sheet_rows(m)?;
        let got = (
            db[&1][1].clone(),
            db[&1][2].clone(),
            sheet[&1][1].clone(),
            sheet[&1][2].clone(),
        );
        let want = (
            Some("sheet name".into()),
            Some("sheet code".into()),
            Some("sheet name".into()),
            Some("sheet code".into()),
        );
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "(db name, db code, sheet name, sheet code) = {got:?}"
            ))
        }
    })
    .await;
}

/// Scenario 2c: last_write_wins keeps the later of two conflicting edits while the daemon runs:
/// the person's edit comes with its time (webhook), the database's with its change-log time.
/// A slow Sheets API (1.5 s per request, as Google can be) leaves a cycle's Sheet write in flight
/// while the person types; the person's later edit must neither be overwritten in the Sheet nor
/// leave the two sides disagreeing. Full reads are off (every 10 minutes, as by default) so that
/// only the change feeds decide.
pub async fn last_write_wins_keeps_the_later_edit(backend: Backend) {
    let mut w = World::new(backend, "lww").await;
    let m = w
        .add_mapping(
            "lww",
            &seed(),
            "resolvers = [{ strategy = \"last_write_wins\", granularity = \"field\" }]\ntiming = { poll_interval_ms = 200, full_scan_interval_ms = 600000 }",
        )
        .await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    w.converge(m, &rows_map(&seed())).await;

    w.emu.set_latency(Latency {
        fixed_ms: 1500,
        jitter_ms: 0,
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deliveries = w.emu.deliveries().len();
    // Row 2: the Sheet first, the database later. Row 1: the database first, the Sheet later.
    w.type_cell(m, 2, "name", json!("sheet (earlier)"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.db.exec(&format!(
        "UPDATE {t} SET name = CASE WHEN id = 1 THEN 'db (earlier)' ELSE 'db (later)' END \
         WHERE id IN (1, 2)"
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.type_cell(m, 1, "name", json!("sheet (later)"));
    wait_until("the webhook delivered both edits", || async {
        let log = w.emu.deliveries();
        let ok = log.iter().skip(deliveries).filter(|d| d.ok).count();
        if ok >= 2 {
            Ok(())
        } else {
            Err(format!("{:?}", &log[deliveries..]))
        }
    })
    .await;
    w.emu.set_latency(Latency::default());
    // The two sides agree again on the later edit of each row. (For a moment they may agree on
    // row 1's earlier value: the slow write lands on top of the person's edit, and the next
    // cycle writes the edit back. Only the state they settle in counts.)
    let mut want = rows_map(&seed());
    set(&mut want, 1, "name", "sheet (later)");
    set(&mut want, 2, "name", "db (later)");
    w.converge(m, &want).await;
    w.assert_quiet(m).await;
}

/// `kill -9` many times, at seeded random points, while another program runs a burst of SQL
/// updates and deletes; after the last restart both sides equal the program's final state
/// (the oracle): no deleted row comes back, no update is lost, nothing is duplicated.
pub async fn kill_9_during_a_burst_of_updates_and_deletes(backend: Backend) {
    let mut w = World::new(backend, "kill9-burst").await;
    let base: Vec<(i64, Canon)> = (1..=120)
        .map(|i| {
            let id = i.to_string();
            (i, row([&id, &format!("base {i}"), "", "1.50", "", "true"]))
        })
        .collect();
    // The program deletes most rows over the run: the guard must not park them.
    let m = w
        .add_mapping(
            "items",
            &base,
            "guard = { max_share = 1.0, stop_total_wipe = false }",
        )
        .await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&base);
    w.converge(m, &want).await;

    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n.max(1)
    };
    for round in 0..6 {
        // A burst: updates and deletes of random rows, each its own statement.
        for _ in 0..25 {
            let id = 1 + next(120) as i64;
            if !want.contains_key(&id) {
                continue;
            }
            if next(3) == 0 {
                w.db.exec(&format!("DELETE FROM {t} WHERE id = {id}")).await;
                want.remove(&id);
            } else {
                let name = format!("r{round} {id}");
                w.db.exec(&format!("UPDATE {t} SET name = '{name}' WHERE id = {id}"))
                    .await;
                set(&mut want, id, "name", &name);
            }
        }
        // Kill at a random point of the daemon's work on the burst.
        tokio::time::sleep(Duration::from_millis(next(700))).await;
        w.kill9();
        w.start().await;
    }
    w.converge(m, &want).await;
}

/// A person types a new row in the Sheet and leaves `code` empty; the column is `NOT NULL` with
/// a default: the database row takes the default, and the Sheet then shows it (finding: the
/// insert was refused, or the Sheet kept an empty cell that no longer matched the database).
pub async fn new_sheet_rows_take_database_defaults(backend: Backend) {
    let mut w = World::new(backend, "defaults").await;
    let create = w.db.create_table_sql("t_defaults");
    let not_null_default = match backend {
        Backend::Postgres => "code text NOT NULL DEFAULT 'C-new'",
        Backend::MySql => "code VARCHAR(50) NOT NULL DEFAULT 'C-new'",
        Backend::Sqlite => "code TEXT NOT NULL DEFAULT 'C-new'",
    };
    let create = create
        .replace("code text,", &format!("{not_null_default},"))
        .replace("code VARCHAR(50),", &format!("{not_null_default},"))
        .replace("code TEXT,", &format!("{not_null_default},"));
    assert!(create.contains("DEFAULT"), "{create}");
    // No scheduled full read within the test: only the engine's own follow-up shows the default.
    let timing = "timing = { poll_interval_ms = 200, full_scan_interval_ms = 600000 }";
    let m = w.add_mapping_sql("defaults", &[create], timing).await;
    w.start().await;
    w.wait_for_tab_rows(m, 1, "the header").await;
    w.type_rows(m, &[(1, row(["1", "typed", "", "2.5", "", ""]))]);
    let want: BTreeMap<i64, Canon> = [(1, row(["1", "typed", "C-new", "2.5", "", ""]))].into();
    w.converge(m, &want).await;
    w.assert_quiet(m).await;
}
