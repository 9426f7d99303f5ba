//! `values.append` table detection (spec §4.7, corrected): every row of the observation table as
//! a golden test on the raw wire JSON, the search that starts in the range but follows the block
//! over the whole sheet, and what `INSERT_ROWS` and `OVERWRITE` do to the rows below.

mod common;

use common::{emulator, enc, raw};
use serde_json::{json, Value};
use sheetsync_emulator::model::MetaLocation;
use sheetsync_emulator::EmulatorHandle;

/// A spreadsheet whose `Sheet1` holds `rows` from A1 (RAW; `""` leaves a cell empty).
async fn sheet_with(emu: &EmulatorHandle, rows: Value) -> String {
    let id = emu.create_spreadsheet("append").unwrap();
    if rows.as_array().is_some_and(|r| !r.is_empty()) {
        let r = raw(
            emu,
            "PUT",
            &format!("/v4/spreadsheets/{id}/values/Sheet1!A1?valueInputOption=RAW"),
            Some(json!({ "values": rows })),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    id
}

async fn append_with(
    emu: &EmulatorHandle,
    id: &str,
    range: &str,
    query: &str,
    values: Value,
) -> Value {
    let r = raw(
        emu,
        "POST",
        &format!(
            "/v4/spreadsheets/{id}/values/{}:append?valueInputOption=RAW{query}",
            enc(range)
        ),
        Some(json!({ "values": values })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn append(emu: &EmulatorHandle, id: &str, range: &str, values: Value) -> Value {
    append_with(emu, id, range, "", values).await
}

fn row(n: usize) -> Value {
    Value::Array((1..=n).map(|i| json!(i)).collect())
}

/// One case: sheet contents from A1, request range, appended row width, expected answer.
struct Case {
    what: &'static str,
    before: Value,
    range: &'static str,
    width: usize,
    table: Option<&'static str>,
    updated: &'static str,
}

async fn check(emu: &EmulatorHandle, c: Case) {
    let id = sheet_with(emu, c.before).await;
    let r = append(emu, &id, c.range, json!([row(c.width)])).await;
    assert_eq!(
        r.get("tableRange").and_then(Value::as_str),
        c.table,
        "tableRange of case {:?}: {r}",
        c.what
    );
    assert_eq!(
        r["updates"]["updatedRange"], c.updated,
        "updatedRange of case {:?}",
        c.what
    );
    if c.table.is_none() {
        assert!(r.get("tableRange").is_none(), "omitted, not empty: {r}");
    }
}

#[tokio::test]
async fn append_observation_table_of_spec_4_7() {
    let emu = emulator().await;
    let ten = row(10);
    let eight = row(8);
    let cases = [
        Case {
            what: "empty sheet",
            before: json!([]),
            range: "'Sheet1'",
            width: 10,
            table: None,
            updated: "Sheet1!A1:J1",
        },
        Case {
            what: "A1:J1 filled",
            before: json!([ten]),
            range: "'Sheet1'",
            width: 10,
            table: Some("Sheet1!A1:J1"),
            updated: "Sheet1!A2:J2",
        },
        Case {
            what: "A1:J4 filled",
            before: json!([ten, ten, ten, ten]),
            range: "'Sheet1'",
            width: 10,
            table: Some("Sheet1!A1:J4"),
            updated: "Sheet1!A5:J5",
        },
        Case {
            what: "row1 = x,\"\",y on the whole sheet",
            before: json!([["x", "", "y"]]),
            range: "'Sheet1'",
            width: 3,
            table: Some("Sheet1!C1"),
            updated: "Sheet1!C2:E2",
        },
        Case {
            what: "row1 = x,\"\",y at A1",
            before: json!([["x", "", "y"]]),
            range: "'Sheet1'!A1",
            width: 3,
            table: Some("Sheet1!A1"),
            updated: "Sheet1!A2:C2",
        },
        Case {
            what: "row 2 empty, rows 1 and 3..7 filled, at A2",
            before: json!([eight, [], eight, eight, eight, eight, eight]),
            range: "'Sheet1'!A2",
            width: 8,
            table: None,
            updated: "Sheet1!A2:H2",
        },
    ];
    for c in cases {
        check(&emu, c).await;
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn append_search_starts_in_the_range_and_follows_the_block_over_the_sheet() {
    let emu = emulator().await;
    let table = json!([
        ["id", "name", "qty", "note"],
        [1, "a", 10, "x"],
        [2, "b", 20, "y"]
    ]);
    let cases = [
        Case {
            what: "anchored on A1 of table A1:D3",
            before: table.clone(),
            range: "Sheet1!A1",
            width: 4,
            table: Some("Sheet1!A1:D3"),
            updated: "Sheet1!A4:D4",
        },
        Case {
            what: "anchored on the header row A1:D1",
            before: table.clone(),
            range: "Sheet1!A1:D1",
            width: 4,
            table: Some("Sheet1!A1:D3"),
            updated: "Sheet1!A4:D4",
        },
        Case {
            what: "a column range narrower than the table",
            before: table.clone(),
            range: "Sheet1!A:A",
            width: 4,
            table: Some("Sheet1!A1:D3"),
            updated: "Sheet1!A4:D4",
        },
        Case {
            what: "a cell in the middle of the table: the block's first column",
            before: table.clone(),
            range: "Sheet1!C2",
            width: 4,
            table: Some("Sheet1!A1:D3"),
            updated: "Sheet1!A4:D4",
        },
        Case {
            what: "a range that ends past the grid is clipped",
            before: table.clone(),
            range: "Sheet1!A1:D5000",
            width: 4,
            table: Some("Sheet1!A1:D3"),
            updated: "Sheet1!A4:D4",
        },
        Case {
            what: "an empty row ends the table (the header anchor lands in the gap)",
            before: json!([["id", "qty"], [1, 10], [2, 20], [], [3, 30], [4, 40]]),
            range: "Sheet1!A1:B1",
            width: 2,
            table: Some("Sheet1!A1:B3"),
            updated: "Sheet1!A4:B4",
        },
        Case {
            what: "4-connected only: a diagonal neighbour is another block",
            before: json!([["a", "b"], ["", "c"], ["", "d"], ["", "", "diag"]]),
            range: "'Sheet1'!A1",
            width: 1,
            table: Some("Sheet1!A1:B3"),
            updated: "Sheet1!A4",
        },
        Case {
            what: "the range's last cell picks the block, not its first",
            before: json!([["a"], [], ["b", "c"], ["d", ""]]),
            range: "Sheet1!A1:A4",
            width: 1,
            table: Some("Sheet1!A3:B4"),
            updated: "Sheet1!A5",
        },
    ];
    for c in cases {
        check(&emu, c).await;
    }
    emu.shutdown().await;
}

async fn create_row_meta(emu: &EmulatorHandle, id: &str, index: u32) {
    let r = raw(
        emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(
            json!({"requests": [{"createDeveloperMetadata": {"developerMetadata": {
            "metadataId": 7, "metadataKey": "row", "visibility": "DOCUMENT",
            "location": {"dimensionRange": {"sheetId": 0, "dimension": "ROWS",
                "startIndex": index, "endIndex": index + 1}}}}}]}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn meta_row(emu: &EmulatorHandle, id: &str) -> u32 {
    let ss = emu.spreadsheet(id).unwrap();
    match ss.metadata[0].location {
        MetaLocation::Dimension { index, .. } => index,
        ref other => panic!("row metadata expected, got {other:?}"),
    }
}

fn row_count(emu: &EmulatorHandle, id: &str) -> u32 {
    emu.spreadsheet(id).unwrap().sheets[0].props.row_count
}

#[tokio::test]
async fn insert_rows_moves_rows_and_metadata_and_overwrite_only_grows_the_grid() {
    let emu = emulator().await;
    let before = json!([["id", "qty"], [1, 10], [2, 20], [], [], ["below"]]);

    // INSERT_ROWS: two rows are inserted at A4; "below" (row 6) and its metadata move down 2.
    let id = sheet_with(&emu, before.clone()).await;
    create_row_meta(&emu, &id, 5).await;
    let r = append_with(
        &emu,
        &id,
        "Sheet1!A1",
        "&insertDataOption=INSERT_ROWS",
        json!([[3, 30], [4, 40]]),
    )
    .await;
    assert_eq!(r["tableRange"], "Sheet1!A1:B3");
    assert_eq!(r["updates"]["updatedRange"], "Sheet1!A4:B5");
    assert_eq!(
        emu.read_values(&id, "Sheet1!A1:B8").unwrap(),
        json!([
            ["id", "qty"],
            [1, 10],
            [2, 20],
            [3, 30],
            [4, 40],
            [],
            [],
            ["below"]
        ])
    );
    assert_eq!(meta_row(&emu, &id), 7);
    assert_eq!(row_count(&emu, &id), 1002);

    // OVERWRITE: the same append writes over rows 4-5; nothing moves, the grid keeps its size.
    let id = sheet_with(&emu, before).await;
    create_row_meta(&emu, &id, 5).await;
    let r = append(&emu, &id, "Sheet1!A1", json!([[3, 30], [4, 40]])).await;
    assert_eq!(r["updates"]["updatedRange"], "Sheet1!A4:B5");
    assert_eq!(
        emu.read_values(&id, "Sheet1!A1:B6").unwrap(),
        json!([["id", "qty"], [1, 10], [2, 20], [3, 30], [4, 40], ["below"]])
    );
    assert_eq!(meta_row(&emu, &id), 5);
    assert_eq!(row_count(&emu, &id), 1000);

    // OVERWRITE past the end of the grid grows it just enough (rows and columns).
    let id = emu.create_spreadsheet("grow").unwrap();
    let r = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(json!({"requests": [{"updateSheetProperties": {"properties": {"sheetId": 0, "gridProperties": {"rowCount": 2, "columnCount": 2}}, "fields": "gridProperties(rowCount,columnCount)"}}]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    raw(
        &emu,
        "PUT",
        &format!("/v4/spreadsheets/{id}/values/Sheet1!A1?valueInputOption=RAW"),
        Some(json!({"values": [[1, 2], [3, 4]]})),
    )
    .await;
    let r = append(&emu, &id, "Sheet1!A:B", json!([[5, 6, 7]])).await;
    assert_eq!(r["updates"]["updatedRange"], "Sheet1!A3:C3");
    let s = raw(
        &emu,
        "GET",
        &format!("/v4/spreadsheets/{id}?fields=sheets.properties.gridProperties"),
        None,
    )
    .await;
    assert_eq!(
        s.body,
        json!({"sheets": [{"properties": {"gridProperties": {"rowCount": 3, "columnCount": 3}}}]})
    );
    emu.shutdown().await;
}
