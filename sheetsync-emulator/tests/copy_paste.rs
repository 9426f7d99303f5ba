//! `copyPaste` in `spreadsheets.batchUpdate`: paste types, formulas that move with the paste,
//! repetition over a destination that is a multiple of the source, other sheets, grid limits
//! and atomicity of the batch.

mod common;

use common::{bad_request, emulator, hub, raw};
use google_sheets4::api::BatchUpdateSpreadsheetRequest;
use serde_json::{json, Value};
use sheetsync_emulator::model::CellValue;
use sheetsync_emulator::{Config, EmulatorHandle};

fn requests(v: Value) -> BatchUpdateSpreadsheetRequest {
    serde_json::from_str(&json!({ "requests": v }).to_string()).expect("typed requests")
}

/// `spreadsheets.batchUpdate` over raw HTTP; returns (status, body).
async fn batch(emu: &EmulatorHandle, id: &str, requests: Value) -> (u16, Value) {
    let r = raw(
        emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(json!({ "requests": requests })),
    )
    .await;
    (r.status, r.body)
}

async fn put(emu: &EmulatorHandle, id: &str, range: &str, values: Value) {
    let r = raw(
        emu,
        "PUT",
        &format!(
            "/v4/spreadsheets/{id}/values/{}?valueInputOption=USER_ENTERED",
            common::enc(range)
        ),
        Some(json!({ "values": values })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn grid(sheet: i32, r0: u32, r1: u32, c0: u32, c1: u32) -> Value {
    json!({"sheetId": sheet, "startRowIndex": r0, "endRowIndex": r1,
           "startColumnIndex": c0, "endColumnIndex": c1})
}

fn copy(source: Value, destination: Value, paste_type: &str) -> Value {
    json!({"copyPaste": {"source": source, "destination": destination,
                         "pasteType": paste_type, "pasteOrientation": "NORMAL"}})
}

/// The stored cell of sheet `sheet` (index) at zero-based (r, c).
fn cell(
    emu: &EmulatorHandle,
    id: &str,
    sheet: usize,
    r: u32,
    c: u32,
) -> sheetsync_emulator::model::Cell {
    emu.spreadsheet(id).unwrap().sheets[sheet]
        .grid
        .get(r, c)
        .cloned()
        .unwrap_or_default()
}

fn formula(emu: &EmulatorHandle, id: &str, sheet: usize, r: u32, c: u32) -> Option<String> {
    match cell(emu, id, sheet, r, c).value {
        Some(CellValue::Formula(f)) => Some(f),
        _ => None,
    }
}

/// A sheet with A1:B2 = [1, =A1*2+$A$1], [3, =A2*2+$A$1]; B1 has a number format and a note.
async fn seeded(emu: &EmulatorHandle) -> String {
    let id = emu.create_spreadsheet("copy").unwrap();
    put(
        emu,
        &id,
        "Sheet1!A1",
        json!([[1, "=A1*2+$A$1"], [3, "=A2*2+$A$1"]]),
    )
    .await;
    let (status, body) = batch(
        emu,
        &id,
        json!([
            {"updateCells": {"start": {"sheetId": 0, "rowIndex": 0, "columnIndex": 1},
                "rows": [{"values": [{"userEnteredFormat": {"numberFormat": {"type": "NUMBER", "pattern": "0.00"}}, "note": "n"}]}],
                "fields": "userEnteredFormat.numberFormat,note"}},
            {"addSheet": {"properties": {"sheetId": 5, "title": "Other"}}}
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test]
async fn paste_normal_to_another_sheet_moves_relative_references_through_google_sheets4() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = seeded(&emu).await;
    // Destination given as its top-left cell only: the source's size is pasted from there.
    h.spreadsheets()
        .batch_update(
            requests(json!([copy(
                grid(0, 0, 2, 0, 2),
                grid(5, 2, 3, 2, 3),
                "PASTE_NORMAL"
            )])),
            &id,
        )
        .doit()
        .await
        .expect("copyPaste");
    assert_eq!(formula(&emu, &id, 1, 2, 3).as_deref(), Some("=C3*2+$A$1"));
    assert_eq!(formula(&emu, &id, 1, 3, 3).as_deref(), Some("=C4*2+$A$1"));
    let d3 = cell(&emu, &id, 1, 2, 3);
    assert_eq!(d3.format.as_ref().map(|f| f.pattern.as_str()), Some("0.00"));
    assert_eq!(d3.note.as_deref(), Some("n"));
    // Unqualified references now point at the destination sheet; $A$1 there is empty.
    assert_eq!(
        emu.read_values(&id, "Other!C3:D4").unwrap(),
        json!([[1, 2], [3, 6]])
    );
    // The source is untouched.
    assert_eq!(formula(&emu, &id, 0, 0, 1).as_deref(), Some("=A1*2+$A$1"));
    emu.shutdown().await;
}

#[tokio::test]
async fn destination_multiple_of_the_source_repeats_it_and_others_get_it_once() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("repeat").unwrap();
    put(&emu, &id, "Sheet1!A1", json!([["x", "=A1&\"!\""]])).await;
    let (status, body) = batch(
        &emu,
        &id,
        json!([
            // 2 rows x 6 columns: the 1x2 source three times across, twice down.
            copy(grid(0, 0, 1, 0, 2), grid(0, 2, 4, 0, 6), "PASTE_NORMAL"),
            // 3 columns is not a multiple of 2: pasted once (A6:B6).
            copy(grid(0, 0, 1, 0, 2), grid(0, 5, 6, 0, 3), "PASTE_NORMAL"),
            // A 1-column destination narrower than the source: the whole source (A8:B8).
            copy(grid(0, 0, 1, 0, 2), grid(0, 7, 8, 0, 1), "PASTE_NORMAL"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        emu.read_values(&id, "Sheet1!A3:G8").unwrap(),
        json!([
            ["x", "x!", "x", "x!", "x", "x!"],
            ["x", "x!", "x", "x!", "x", "x!"],
            [],
            ["x", "x!"],
            [],
            ["x", "x!"]
        ])
    );
    assert_eq!(formula(&emu, &id, 0, 3, 5).as_deref(), Some("=E4&\"!\""));
    // Unbounded destination rows: a whole column H repeats the one-cell source to the grid's end.
    let (status, body) = batch(
        &emu,
        &id,
        json!([{"copyPaste": {"source": grid(0, 0, 1, 0, 1),
            "destination": {"sheetId": 0, "startColumnIndex": 7, "endColumnIndex": 8}}}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let col = emu.read_values(&id, "Sheet1!H:H").unwrap();
    assert_eq!(col.as_array().unwrap().len(), 1000);
    assert_eq!(col[999], json!(["x"]));
    emu.shutdown().await;
}

#[tokio::test]
async fn paste_values_formula_and_format_take_only_their_part() {
    let emu = emulator().await;
    let id = seeded(&emu).await;
    // Destinations carry their own format, which only PASTE_FORMAT replaces.
    let (status, body) = batch(
        &emu,
        &id,
        json!([{"updateCells": {"range": grid(0, 4, 7, 1, 2),
            "rows": [{"values": [{"userEnteredValue": {"stringValue": "old"}, "userEnteredFormat": {"numberFormat": {"type": "PERCENT", "pattern": "0%"}}}]},
                     {"values": [{"userEnteredValue": {"stringValue": "old"}, "userEnteredFormat": {"numberFormat": {"type": "PERCENT", "pattern": "0%"}}}]},
                     {"values": [{"userEnteredValue": {"stringValue": "old"}, "userEnteredFormat": {"numberFormat": {"type": "PERCENT", "pattern": "0%"}}}]}],
            "fields": "userEnteredValue,userEnteredFormat.numberFormat"}}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = batch(
        &emu,
        &id,
        json!([
            copy(grid(0, 0, 1, 1, 2), grid(0, 4, 5, 1, 2), "PASTE_VALUES"),
            copy(grid(0, 0, 1, 1, 2), grid(0, 5, 6, 1, 2), "PASTE_FORMULA"),
            copy(grid(0, 0, 1, 1, 2), grid(0, 6, 7, 1, 2), "PASTE_FORMAT"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let values = cell(&emu, &id, 0, 4, 1);
    assert_eq!(
        values.value,
        Some(CellValue::Number(3.0)),
        "computed, no formula"
    );
    assert_eq!(values.format.as_ref().unwrap().pattern, "0%");
    assert_eq!(values.note, None);
    let formula_cell = cell(&emu, &id, 0, 5, 1);
    assert_eq!(
        formula_cell.value,
        Some(CellValue::Formula("=A6*2+$A$1".into()))
    );
    assert_eq!(formula_cell.format.as_ref().unwrap().pattern, "0%");
    let format = cell(&emu, &id, 0, 6, 1);
    assert_eq!(format.value, Some(CellValue::Text("old".into())));
    assert_eq!(format.format.as_ref().unwrap().pattern, "0.00");
    emu.shutdown().await;
}

/// Argument errors answer 400 with Google's text: a destination or source past the grid, an
/// empty destination, `TRANSPOSE` (not emulated), an unknown paste type.
async fn copy_paste_argument_errors(emu: &EmulatorHandle, id: &str) {
    let (status, body) = batch(
        emu,
        id,
        json!([copy(
            grid(0, 0, 1, 0, 1),
            grid(5, 0, 1001, 0, 1),
            "PASTE_NORMAL"
        )]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Invalid requests[0].copyPaste: Range (Other!A1:A1001) exceeds grid limits. Max rows: 1000, max columns: 26"
    );
    let (status, body) = batch(
        emu,
        id,
        json!([copy(
            grid(0, 0, 1, 26, 27),
            grid(0, 0, 1, 0, 1),
            "PASTE_NORMAL"
        )]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Invalid requests[0].copyPaste: Range (Sheet1!AA1:AA1) exceeds grid limits. Max rows: 1000, max columns: 26"
    );
    // An empty destination (end == start) is a 400, not a crash.
    let (status, body) = batch(
        emu,
        id,
        json!([copy(
            grid(0, 0, 1, 0, 1),
            grid(0, 0, 0, 0, 1),
            "PASTE_NORMAL"
        )]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // TRANSPOSE is not emulated; unknown enum values are rejected.
    let mut t = copy(grid(0, 0, 1, 0, 1), grid(0, 0, 1, 3, 4), "PASTE_NORMAL");
    t["copyPaste"]["pasteOrientation"] = json!("TRANSPOSE");
    let (status, body) = batch(emu, id, json!([t])).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Invalid requests[0].copyPaste: Unsupported pasteOrientation: TRANSPOSE (the emulator pastes NORMAL only)"
    );
    let (status, body) = batch(
        emu,
        id,
        json!([copy(
            grid(0, 0, 1, 0, 1),
            grid(0, 0, 1, 3, 4),
            "PASTE_EVERYTHING"
        )]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PasteType"),
        "{body}"
    );
}

#[tokio::test]
async fn copy_paste_applies_in_order_inside_the_atomic_batch_and_errors_like_google() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = seeded(&emu).await;
    let version = emu.spreadsheet(&id).unwrap().version;

    // Requests apply in order: the copy sees the cell written by the request before it.
    let (status, body) = batch(
        &emu,
        &id,
        json!([
            {"updateCells": {"start": {"sheetId": 0, "rowIndex": 9, "columnIndex": 0},
                "rows": [{"values": [{"userEnteredValue": {"stringValue": "fresh"}}]}],
                "fields": "userEnteredValue"}},
            copy(grid(0, 9, 10, 0, 1), grid(0, 9, 10, 1, 2), "PASTE_NORMAL")
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replies"], json!([{}, {}]));
    assert_eq!(
        emu.read_values(&id, "Sheet1!A10:B10").unwrap(),
        json!([["fresh", "fresh"]])
    );
    let version = {
        let v = emu.spreadsheet(&id).unwrap().version;
        assert_eq!(v, version + 1);
        v
    };

    // The pasted area passes the grid's last row: Google's grid error, and the earlier request
    // of the batch is not applied either.
    let err = bad_request(
        h.spreadsheets()
            .batch_update(
                requests(json!([
                    {"updateCells": {"start": {"sheetId": 0, "rowIndex": 20, "columnIndex": 0},
                        "rows": [{"values": [{"userEnteredValue": {"stringValue": "lost"}}]}],
                        "fields": "userEnteredValue"}},
                    copy(grid(0, 0, 2, 0, 2), grid(0, 999, 1000, 0, 1), "PASTE_NORMAL")
                ])),
                &id,
            )
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Invalid requests[1].copyPaste: Range (Sheet1!A1000:B1001) exceeds grid limits. Max rows: 1000, max columns: 26"
    );
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(emu.read_values(&id, "Sheet1!A21").unwrap(), json!([]));
    let ss = emu.spreadsheet(&id).unwrap();
    assert_eq!(ss.version, version, "nothing applied, no new version");
    assert_eq!(
        ss.sheets[0].props.row_count, 1000,
        "a paste never grows the grid"
    );

    copy_paste_argument_errors(&emu, &id).await;
    assert_eq!(emu.spreadsheet(&id).unwrap().version, version);
    emu.shutdown().await;
}

#[tokio::test]
async fn copy_paste_keeps_the_cell_cap() {
    // A cap of exactly one 1000x26 sheet: pastes inside the grid work, nothing can grow it.
    let emu = EmulatorHandle::start(Config {
        cell_limit: 26_000,
        ..Config::default()
    })
    .await
    .unwrap();
    let id = emu.create_spreadsheet("cap").unwrap();
    put(&emu, &id, "Sheet1!A1", json!([[1, 2]])).await;
    let (status, body) = batch(
        &emu,
        &id,
        json!([copy(
            grid(0, 0, 1, 0, 2),
            grid(0, 0, 1000, 0, 26),
            "PASTE_NORMAL"
        )]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        emu.read_values(&id, "Sheet1!Y1000:Z1000").unwrap(),
        json!([[1, 2]])
    );
    let (status, body) = batch(
        &emu,
        &id,
        json!([
            {"appendDimension": {"sheetId": 0, "dimension": "ROWS", "length": 1}},
            copy(grid(0, 0, 1, 0, 2), grid(0, 1000, 1001, 0, 2), "PASTE_NORMAL")
        ]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Invalid requests[0].appendDimension: This action would increase the number of cells in the workbook above the limit of 26000 cells."
    );
    assert_eq!(emu.spreadsheet(&id).unwrap().total_cells(), 26_000);
    emu.shutdown().await;
}
