//! Person edits scheduled between two of a client's requests (before a request runs, or after
//! its effect and before its answer): the races the Sheets adapter must defend against.

mod common;

use std::time::Duration;

use common::{emulator, enc, hub, raw};
use google_sheets4::api::ValueRange;
use serde_json::{json, Value};
use sheetsync_emulator::{EditTrigger, EmulatorHandle, FaultRule, PersonEdit, TriggerSpec, When};

fn vr(values: Value) -> ValueRange {
    ValueRange {
        major_dimension: None,
        range: None,
        values: serde_json::from_value(values).expect("matrix"),
    }
}

/// A spreadsheet with `Sheet1!A1:C4` = id, name, qty and three rows out of key order, and a
/// webhook trigger (to a closed port: deliveries are logged as failures).
fn orders(emu: &EmulatorHandle) -> String {
    let id = emu.create_spreadsheet("orders").unwrap();
    emu.set_cells(
        &id,
        "Sheet1!A1",
        vec![
            vec![json!("id"), json!("name"), json!("qty")],
            vec![json!(3), json!("c"), json!(30)],
            vec![json!(1), json!("a"), json!(10)],
            vec![json!(2), json!("b"), json!(20)],
        ],
    )
    .unwrap();
    emu.add_trigger(
        &id,
        TriggerSpec {
            url: "http://127.0.0.1:1/hook".into(),
            secret: "s".into(),
            sheet_id: None,
        },
    )
    .unwrap();
    id
}

fn version(emu: &EmulatorHandle, id: &str) -> u64 {
    emu.spreadsheet(id).unwrap().version
}

#[tokio::test]
async fn a_sort_after_the_engines_read_moves_the_row_its_write_lands_on() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = orders(&emu);
    let v0 = version(&emu, &id);
    emu.schedule_edit(
        &id,
        EditTrigger::after("values.batchGet"),
        PersonEdit::SortRange {
            range: "Sheet1!A2:C4".into(),
            column: 1,
            ascending: true,
        },
    )
    .unwrap();

    // The engine reads: the answer was made before the sort, so id 3 is on row 2.
    let (_, bg) = h
        .spreadsheets()
        .values_batch_get(&id)
        .add_ranges("Sheet1!A1:C4")
        .value_render_option("UNFORMATTED_VALUE")
        .doit()
        .await
        .unwrap();
    let rows = serde_json::to_value(bg.value_ranges.unwrap()[0].values.clone().unwrap()).unwrap();
    assert_eq!(rows[1], json!([3, "c", 30]));
    let row_of_3 = rows
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r[0] == json!(3))
        .unwrap()
        + 1;
    assert!(emu.scheduled_edits().is_empty());
    let fired = emu.fired_edits();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].method_id, "sheets.spreadsheets.values.batchGet");
    assert_eq!(fired[0].when, When::After);
    assert_eq!(fired[0].error, None);

    // ... and writes id 3's new quantity at the row it learned: it lands on id 1.
    h.spreadsheets()
        .values_update(vr(json!([[99]])), &id, &enc(&format!("Sheet1!C{row_of_3}")))
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();
    assert_eq!(
        emu.read_values(&id, "Sheet1!A2:C4").unwrap(),
        json!([[1, "a", 99], [2, "b", 20], [3, "c", 30]])
    );
    // The sort was a person edit: a webhook delivery and a Drive version of its own.
    assert_eq!(version(&emu, &id), v0 + 2);
    let deliveries = emu.wait_for_deliveries(1, Duration::from_secs(10)).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].change_type, "EDIT");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_row_delete_before_the_nth_write_shifts_where_it_lands() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = orders(&emu);
    // Before the second values.update: the person deletes row 2 (id 3).
    emu.schedule_edit_as(
        &id,
        "alice@example.com",
        EditTrigger::before("values.update").nth(2),
        PersonEdit::DeleteRows {
            sheet: "Sheet1".into(),
            start: 2,
            count: 1,
        },
    )
    .unwrap();
    let write = |cell: &'static str, v: i64| {
        let h = h.clone();
        let id = id.clone();
        async move {
            h.spreadsheets()
                .values_update(vr(json!([[v]])), &id, &enc(cell))
                .value_input_option("RAW")
                .doit()
                .await
                .unwrap();
        }
    };
    // The engine's plan from its read: id 1 is on row 3, id 2 on row 4.
    write("Sheet1!C3", 11).await;
    assert_eq!(emu.scheduled_edits()[0].remaining, 1, "one to go");
    write("Sheet1!C4", 22).await;
    // Row 4 is now empty: the write made a new row under the table; id 2 kept its value.
    assert_eq!(
        emu.read_values(&id, "Sheet1!A2:C4").unwrap(),
        json!([[1, "a", 11], [2, "b", 20], ["", "", 22]])
    );
    let fired = emu.fired_edits();
    assert_eq!(fired[0].when, When::Before);
    assert_eq!(fired[0].method_id, "sheets.spreadsheets.values.update");
    let deliveries = emu.wait_for_deliveries(1, Duration::from_secs(10)).await;
    assert_eq!(deliveries[0].change_type, "REMOVE_ROW");
    emu.shutdown().await;
}

async fn get(emu: &EmulatorHandle, id: &str) -> Value {
    let r = raw(
        emu,
        "GET",
        &format!("/v4/spreadsheets/{id}/values/Sheet1!A1:B5?valueRenderOption=UNFORMATTED_VALUE"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["values"].clone()
}

/// Cancel one scheduled edit, clear all; unknown ids and spreadsheets answer 404.
async fn cancel_clear_and_unknown_ids(emu: &EmulatorHandle, id: &str, edit: &Value) {
    let r = raw(
        emu,
        "POST",
        "/__emulator/scheduled-edits",
        Some(json!({"spreadsheetId": id, "method": "values.get", "edit": edit})),
    )
    .await;
    let sid = r.body["scheduledEditId"].as_str().unwrap().to_string();
    assert_eq!(
        emu.scheduled_edits()[0].trigger,
        EditTrigger::after("values.get")
    );
    let r = raw(
        emu,
        "DELETE",
        &format!("/__emulator/scheduled-edits/{sid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = raw(
        emu,
        "DELETE",
        &format!("/__emulator/scheduled-edits/{sid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = raw(
        emu,
        "POST",
        "/__emulator/scheduled-edits",
        Some(json!({"spreadsheetId": "nope", "method": "values.get", "edit": edit})),
    )
    .await;
    assert_eq!(r.status, 404);
    emu.schedule_edit(
        id,
        EditTrigger::after("values.get"),
        PersonEdit::Clear { range: "A1".into() },
    )
    .unwrap();
    let r = raw(emu, "DELETE", "/__emulator/scheduled-edits", None).await;
    assert_eq!(r.status, 200);
    assert!(emu.scheduled_edits().is_empty());
    assert!(emu.fired_edits().is_empty());
}

#[tokio::test]
async fn every_person_edit_kind_can_be_scheduled_over_http() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("kinds").unwrap();
    emu.set_cells(
        &id,
        "Sheet1!A1",
        vec![
            vec![json!("k"), json!("v")],
            vec![json!("b"), json!(2)],
            vec![json!("a"), json!(1)],
        ],
    )
    .unwrap();
    let edits = [
        json!({"op": "setCells", "range": "Sheet1!A4", "values": [["c", 3]]}),
        json!({"op": "sortRange", "range": "Sheet1!A2:B4", "column": 1, "ascending": true}),
        json!({"op": "insertRows", "sheet": "Sheet1", "before": 2, "count": 1}),
        json!({"op": "moveRows", "sheet": "Sheet1", "start": 5, "count": 1, "before": 2}),
        json!({"op": "deleteRows", "sheet": "Sheet1", "start": 3, "count": 1}),
        json!({"op": "clear", "range": "Sheet1!A4:B4"}),
    ];
    // Each fires just before one of the next six values.get, so each read sees its edit.
    for (i, edit) in edits.iter().enumerate() {
        let r = raw(
            &emu,
            "POST",
            "/__emulator/scheduled-edits",
            Some(
                json!({"spreadsheetId": id, "method": "values.get", "nth": i + 1,
                        "when": "before", "edit": edit, "user": "bob@example.com"}),
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.body["scheduledEditId"].is_string());
    }
    let listed = raw(&emu, "GET", "/__emulator/scheduled-edits", None).await;
    let pending = listed.body["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 6);
    assert_eq!(pending[1]["spreadsheetId"], json!(id));
    assert_eq!(pending[1]["method"], "values.get");
    assert_eq!(pending[1]["nth"], 2);
    assert_eq!(pending[1]["remaining"], 2);
    assert_eq!(pending[1]["when"], "before");
    assert_eq!(pending[1]["edit"], edits[1]);
    assert_eq!(pending[1]["user"], "bob@example.com");
    let v0 = version(&emu, &id);
    let expected = [
        json!([["k", "v"], ["b", 2], ["a", 1], ["c", 3]]),
        json!([["k", "v"], ["a", 1], ["b", 2], ["c", 3]]),
        json!([["k", "v"], [], ["a", 1], ["b", 2], ["c", 3]]),
        json!([["k", "v"], ["c", 3], [], ["a", 1], ["b", 2]]),
        json!([["k", "v"], ["c", 3], ["a", 1], ["b", 2]]),
        json!([["k", "v"], ["c", 3], ["a", 1]]),
    ];
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(
            &get(&emu, &id).await,
            want,
            "read after edit {i} ({})",
            edits[i]
        );
    }
    assert_eq!(
        version(&emu, &id),
        v0 + 6,
        "each edit a version, reads none"
    );
    let listed = raw(&emu, "GET", "/__emulator/scheduled-edits", None).await;
    assert_eq!(listed.body["pending"], json!([]));
    let fired = listed.body["fired"].as_array().unwrap();
    assert_eq!(fired.len(), 6);
    assert!(fired.iter().all(|f| f.get("error").is_none()), "{fired:?}");

    cancel_clear_and_unknown_ids(&emu, &id, &edits[5]).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn only_requests_that_run_on_that_spreadsheet_count_and_after_edits_follow_the_effect() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = orders(&emu);
    let other = emu.create_spreadsheet("other").unwrap();
    emu.schedule_edit(
        &id,
        EditTrigger::after("values.update"),
        PersonEdit::SetCells {
            range: "Sheet1!B2".into(),
            values: vec![vec![json!("person")]],
        },
    )
    .unwrap();
    let update = |sid: String, text: &'static str| {
        let h = h.clone();
        async move {
            h.spreadsheets()
                .values_update(vr(json!([[text]])), &sid, &enc("Sheet1!B2"))
                .value_input_option("RAW")
                .include_values_in_response(true)
                .doit()
                .await
        }
    };
    // Another spreadsheet's request and a request a fault answers before it runs do not count.
    update(other.clone(), "elsewhere").await.unwrap();
    emu.inject_fault(FaultRule::status_next(503, 1).for_method("values.update"));
    update(id.clone(), "refused").await.unwrap_err();
    assert_eq!(emu.scheduled_edits().len(), 1);
    assert_eq!(emu.read_values(&id, "Sheet1!B2").unwrap(), json!([["c"]]));

    // The engine's write runs, then the person's edit, then the answer (made before the edit).
    let (_, r) = update(id.clone(), "engine").await.unwrap();
    let data = r.updated_data.unwrap();
    assert_eq!(
        serde_json::to_value(data.values.unwrap()).unwrap(),
        json!([["engine"]])
    );
    assert_eq!(
        emu.read_values(&id, "Sheet1!B2").unwrap(),
        json!([["person"]])
    );

    // With a lost answer the scheduled edit still lands between the effect and the drop.
    emu.schedule_edit(
        &id,
        EditTrigger::after("values.update"),
        PersonEdit::SetCells {
            range: "Sheet1!B3".into(),
            values: vec![vec![json!("person again")]],
        },
    )
    .unwrap();
    emu.inject_fault(FaultRule::drop_after_next(1).for_method("values.update"));
    update(id.clone(), "engine again").await.unwrap_err();
    assert_eq!(
        emu.read_values(&id, "Sheet1!B2:B3").unwrap(),
        json!([["engine again"], ["person again"]])
    );

    // An edit that cannot be applied is recorded with its reason; the request goes on.
    emu.schedule_edit(
        &id,
        EditTrigger::before("values.get"),
        PersonEdit::DeleteRows {
            sheet: "Missing".into(),
            start: 1,
            count: 1,
        },
    )
    .unwrap();
    h.spreadsheets()
        .values_get(&id, &enc("Sheet1!A1"))
        .doit()
        .await
        .unwrap();
    let last = emu.fired_edits().pop().unwrap();
    assert_eq!(last.error.as_deref(), Some("No sheet named \"Missing\"."));
    emu.shutdown().await;
}
