//! Golden tests for the [OBS] facts of docs/sheets-api-v4.md, compared on the raw wire JSON
//! (field omission matters and typed clients cannot see it).

mod common;

use common::{emulator, raw, Raw};
use serde_json::{json, Value};
use sheetsync_emulator::EmulatorHandle;

async fn put(emu: &EmulatorHandle, id: &str, range: &str, opt: &str, values: Value) -> Raw {
    raw(
        emu,
        "PUT",
        &format!(
            "/v4/spreadsheets/{id}/values/{}?valueInputOption={opt}",
            common::enc(range)
        ),
        Some(json!({ "values": values })),
    )
    .await
}

async fn get(emu: &EmulatorHandle, id: &str, range: &str, query: &str) -> Raw {
    raw(
        emu,
        "GET",
        &format!(
            "/v4/spreadsheets/{id}/values/{}?alt=json{query}",
            common::enc(range)
        ),
        None,
    )
    .await
}

#[tokio::test]
async fn trimming_and_omitted_values() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("golden").unwrap();
    let empty = get(&emu, &id, "'Sheet1'!A1:D2", "").await;
    assert_eq!(empty.status, 200);
    assert_eq!(
        empty.content_type.as_deref(),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(
        empty.body,
        json!({"range": "Sheet1!A1:D2", "majorDimension": "ROWS"})
    );
    put(
        &emu,
        &id,
        "Sheet1!A1",
        "RAW",
        json!([
            ["A1", "B1", "", "D1"],
            ["", "b2", "", ""],
            ["", "", "", ""],
            ["A4", "B4", "", "D4"]
        ]),
    )
    .await;
    let r = get(&emu, &id, "'Sheet1'!A1:D4", "").await;
    assert_eq!(
        r.body,
        json!({"range": "Sheet1!A1:D4", "majorDimension": "ROWS",
               "values": [["A1", "B1", "", "D1"], ["", "b2"], [], ["A4", "B4", "", "D4"]]})
    );
    // Trailing empty rows of a bigger range are dropped too.
    let r = get(&emu, &id, "Sheet1!A1:Z10", "").await;
    assert_eq!(r.body["values"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn range_normalisation() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("norm").unwrap();
    let batch = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(json!({"requests": [
            {"addSheet": {"properties": {"title": "🌵 test_values_get 1", "gridProperties": {"rowCount": 10, "columnCount": 10}}}},
            {"addSheet": {"properties": {"title": "D3"}}},
            {"addSheet": {"properties": {"title": "Small", "gridProperties": {"rowCount": 2, "columnCount": 4}}}}
        ]})),
    )
    .await;
    assert_eq!(batch.status, 200, "{}", batch.text);
    let cases = [
        ("'Sheet1'!A1:1", "Sheet1!A1:Z1"),
        ("'Small'", "Small!A1:D2"),
        ("🌵 test_values_get 1", "'🌵 test_values_get 1'!A1:J10"),
        ("🌵 test_values_get 1!A:A", "'🌵 test_values_get 1'!A1:A10"),
        ("'Sheet1'!B1", "Sheet1!B1"),
        ("'D3'!A1:D1", "'D3'!A1:D1"),
        ("Sheet1!B3:A1", "Sheet1!A1:B3"),
        ("Sheet1!A5:A", "Sheet1!A5:A1000"),
        ("Sheet1!2:3", "Sheet1!A2:Z3"),
        ("C2:D3", "Sheet1!C2:D3"),
        ("sheet1!$A$1:$B$2", "Sheet1!A1:B2"),
    ];
    for (input, want) in cases {
        let r = get(&emu, &id, input, "").await;
        assert_eq!(r.status, 200, "{input}: {}", r.text);
        assert_eq!(r.body["range"], want, "{input}");
    }
    let r = raw(
        &emu,
        "POST",
        &format!(
            "/v4/spreadsheets/{id}/values/{}:clear",
            common::enc("'Sheet1'")
        ),
        None,
    )
    .await;
    assert_eq!(
        r.body,
        json!({"spreadsheetId": id, "clearedRange": "Sheet1!A1:Z1000"})
    );
    // PUT 'Sheet1'!A1 with 4x4 data → anchor + extent.
    let r = put(
        &emu,
        &id,
        "'Sheet1'!A1",
        "RAW",
        json!([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]]),
    )
    .await;
    assert_eq!(r.body["updatedRange"], "Sheet1!A1:D4");
    // Quoted names with doubled apostrophes, unquoted names with spaces.
    raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(json!({"requests": [{"addSheet": {"properties": {"title": "Jon's Data"}}}, {"addSheet": {"properties": {"title": "My Sheet"}}}]})),
    )
    .await;
    let r = put(&emu, &id, "'Jon''s Data'!B2", "RAW", json!([["x"]])).await;
    assert_eq!(r.body["updatedRange"], "'Jon''s Data'!B2");
    let r = get(&emu, &id, "My Sheet!A1:B2", "").await;
    assert_eq!(r.body["range"], "'My Sheet'!A1:B2");
}

#[tokio::test]
async fn update_counts_null_skips_and_empty_strings() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("counts").unwrap();
    let r = put(
        &emu,
        &id,
        "Sheet1!A1:D6",
        "RAW",
        json!([
            ["x", null, null, null],
            [null, null, null, null],
            [null, null, null, null],
            [null, null, null, null],
            [null, null, null, null],
            [null, null, null, "y"]
        ]),
    )
    .await;
    assert_eq!(
        r.body,
        json!({"spreadsheetId": id, "updatedRange": "Sheet1!A1:D6", "updatedRows": 2, "updatedColumns": 2, "updatedCells": 2})
    );
    let r = put(
        &emu,
        &id,
        "Sheet1!A1",
        "RAW",
        json!([
            ["", "", "a", ""],
            ["", "", "", ""],
            ["b", "", "", ""],
            ["", "", "", "c"]
        ]),
    )
    .await;
    assert_eq!(r.body["updatedCells"], 16);
    assert_eq!(r.body["updatedRange"], "Sheet1!A1:D4");
    let r = get(&emu, &id, "Sheet1!A1:D6", "").await;
    assert_eq!(
        r.body["values"],
        json!([
            ["", "", "a"],
            [],
            ["b"],
            ["", "", "", "c"],
            [],
            ["", "", "", "y"]
        ]),
        "\"\" cleared x, null kept y"
    );
    // y at D6 survived the null.
    let r = get(&emu, &id, "Sheet1!D6", "").await;
    assert_eq!(r.body["values"], json!([["y"]]));
    // Nested values are rejected.
    let r = put(&emu, &id, "Sheet1!A1", "RAW", json!([[["nested"]]])).await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid values[0][0]: list_value"));
    let r = put(&emu, &id, "Sheet1!A1", "RAW", json!(["A"])).await;
    assert_eq!(
        r.body["error"]["message"],
        "Invalid value at 'data.values[0]' (type.googleapis.com/google.protobuf.ListValue), \"A\""
    );
}

#[tokio::test]
async fn error_texts_and_shapes() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("err").unwrap();
    let r = raw(&emu, "GET", "/v4/spreadsheets/doesnotexist?alt=json", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(
        r.body,
        json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})
    );
    // `+` in the path is a space (Google decodes it).
    let r = raw(
        &emu,
        "GET",
        &format!("/v4/spreadsheets/{id}/values/Users+!1:101"),
        None,
    )
    .await;
    assert_eq!(
        r.body["error"]["message"],
        "Unable to parse range: Users !1:101"
    );
    let r = get(&emu, &id, "Sheet1!A1001", "").await;
    assert_eq!(
        r.body["error"]["message"],
        "Range (Sheet1!A1001) exceeds grid limits. Max rows: 1000, max columns: 26"
    );
    let r = get(&emu, &id, "'Sheet1'!AA1", "").await;
    assert_eq!(
        r.body["error"]["message"],
        "Range (Sheet1!AA1) exceeds grid limits. Max rows: 1000, max columns: 26"
    );
    let r = get(&emu, &id, "A1", "&valueRenderOption=PRETTY").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["status"], "INVALID_ARGUMENT");
    let r = raw(
        &emu,
        "GET",
        &format!("/v4/spreadsheets/{id}/values/A1?alt=proto"),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = raw(
        &emu,
        "PUT",
        &format!("/v4/spreadsheets/{id}/values/A1?valueInputOption=INPUT_VALUE_OPTION_UNSPECIFIED"),
        Some(json!({"values": [[1]]})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}/values/A1"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["status"], "NOT_FOUND");
    let r = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:getByDataFilter"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.body["error"]["code"], 501);
    let e = &r.body["error"];
    assert!(e["code"].is_number() && e["message"].is_string() && e["status"].is_string());
}

/// RAW input is stored as typed; formula results and errors as Google shows them (FORMULA
/// render gives the text back).
async fn raw_input_and_formula_results(emu: &EmulatorHandle, id: &str) {
    put(
        emu,
        id,
        "Sheet1!A1",
        "RAW",
        json!([["12345", "=1+1", "TRUE"]]),
    )
    .await;
    let u = get(
        emu,
        id,
        "Sheet1!A1:C1",
        "&valueRenderOption=UNFORMATTED_VALUE",
    )
    .await;
    assert_eq!(u.body["values"], json!([["12345", "=1+1", "TRUE"]]));
    put(
        emu,
        id,
        "Sheet1!A2",
        "USER_ENTERED",
        json!([[
            1,
            2,
            "=SUM(A2:B2)",
            "=CONCATENATE(\"a\",A2)",
            "=A2/0",
            "=NOSUCH(1)",
            "=Sheet1!A2+B2*2",
            "=1+"
        ]]),
    )
    .await;
    let f = get(emu, id, "Sheet1!A2:H2", "").await;
    assert_eq!(
        f.body["values"],
        json!([["1", "2", "3", "a1", "#DIV/0!", "#NAME?", "5", "#ERROR!"]])
    );
    let u = get(emu, id, "Sheet1!A2:H2", "&valueRenderOption=FORMULA").await;
    assert_eq!(
        u.body["values"],
        json!([[
            1,
            2,
            "=SUM(A2:B2)",
            "=CONCATENATE(\"a\",A2)",
            "=A2/0",
            "=NOSUCH(1)",
            "=Sheet1!A2+B2*2",
            "=1+"
        ]])
    );
}

#[tokio::test]
async fn user_entered_parsing_and_formulas() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("parse").unwrap();
    put(
        &emu,
        &id,
        "Sheet1!A1",
        "USER_ENTERED",
        json!([[
            "0042",
            "2,000,000.01",
            "= 1 / 1024",
            "'007",
            "TRUE",
            "12%",
            "$1,234.50",
            "1/2/2024",
            "13:45",
            "hello"
        ]]),
    )
    .await;
    let f = get(&emu, &id, "Sheet1!A1:J1", "").await;
    assert_eq!(
        f.body["values"],
        json!([[
            "42",
            "2,000,000.01",
            "0.0009765625",
            "007",
            "TRUE",
            "12%",
            "$1,234.50",
            "1/2/2024",
            "13:45:00",
            "hello"
        ]])
    );
    let u = get(
        &emu,
        &id,
        "Sheet1!A1:J1",
        "&valueRenderOption=UNFORMATTED_VALUE",
    )
    .await;
    assert_eq!(
        u.body["values"],
        json!([[
            42,
            2000000.01,
            0.0009765625,
            "007",
            true,
            0.12,
            1234.5,
            45293,
            0.5729166666666666,
            "hello"
        ]])
    );
    raw_input_and_formula_results(&emu, &id).await;
}

#[tokio::test]
async fn unknown_request_fields_are_rejected_like_google() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("unknown").unwrap();
    let r = raw(
        &emu,
        "PUT",
        &format!("/v4/spreadsheets/{id}/values/A1?valueInputOption=RAW"),
        Some(json!({"values": [[1]], "valuez": 2})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["message"],
        "Invalid JSON payload received. Unknown name \"valuez\": Cannot find field."
    );
    assert_eq!(
        r.body["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    let r = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}/values:batchUpdate"),
        Some(json!({"valueInputOption": "RAW", "data": [{"range": "A1", "values": [[1]], "extra": true}]})),
    )
    .await;
    assert_eq!(
        r.body["error"]["message"],
        "Invalid JSON payload received. Unknown name \"extra\" at 'data[0]': Cannot find field."
    );
    // Injected 429s read like quota errors of the right kind.
    emu.inject_fault(sheetsync_emulator::FaultRule::status_next(429, 1));
    let r = get(&emu, &id, "A1", "").await;
    assert_eq!(r.status, 429);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Quota exceeded for quota metric 'Read requests'"));
}

#[tokio::test]
async fn formulas_follow_inserted_and_deleted_rows() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("refs").unwrap();
    put(
        &emu,
        &id,
        "Sheet1!A1",
        "USER_ENTERED",
        json!([[1], [2], [3], ["=SUM(A1:A3)"], ["=A2*10"]]),
    )
    .await;
    let batch = |requests: Value| {
        let emu = emu.clone();
        let id = id.clone();
        async move {
            let r = raw(
                &emu,
                "POST",
                &format!("/v4/spreadsheets/{id}:batchUpdate"),
                Some(json!({"requests": requests})),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    batch(json!([{"insertDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 1, "endIndex": 2}}}])).await;
    let f = get(&emu, &id, "Sheet1!A5:A6", "&valueRenderOption=FORMULA").await;
    assert_eq!(f.body["values"], json!([["=SUM(A1:A4)"], ["=A3*10"]]));
    let v = get(&emu, &id, "Sheet1!A5:A6", "").await;
    assert_eq!(v.body["values"], json!([["6"], ["20"]]));
    batch(json!([{"deleteDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 2, "endIndex": 3}}}])).await;
    let f = get(&emu, &id, "Sheet1!A4:A5", "&valueRenderOption=FORMULA").await;
    assert_eq!(f.body["values"], json!([["=SUM(A1:A3)"], ["=#REF!*10"]]));
    let v = get(&emu, &id, "Sheet1!A4:A5", "").await;
    assert_eq!(v.body["values"], json!([["4"], ["#REF!"]]));
}

#[tokio::test]
async fn columns_writes_and_values_in_responses() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("cols").unwrap();
    let r = raw(
        &emu,
        "PUT",
        &format!("/v4/spreadsheets/{id}/values/Sheet1!A1?valueInputOption=RAW&includeValuesInResponse=True&responseValueRenderOption=UNFORMATTED_VALUE"),
        Some(json!({"majorDimension": "COLUMNS", "values": [[1, 2, 3], ["a", "b"]]})),
    )
    .await;
    assert_eq!(r.body["updatedRange"], "Sheet1!A1:B3");
    assert_eq!(
        (
            r.body["updatedRows"].clone(),
            r.body["updatedColumns"].clone(),
            r.body["updatedCells"].clone()
        ),
        (json!(3), json!(2), json!(5))
    );
    assert_eq!(
        r.body["updatedData"],
        json!({"range": "Sheet1!A1:B3", "majorDimension": "COLUMNS", "values": [[1, 2, 3], ["a", "b"]]})
    );
    let g = get(&emu, &id, "Sheet1!A1:B3", "").await;
    assert_eq!(g.body["values"], json!([["1", "a"], ["2", "b"], ["3"]]));
    let b = raw(
        &emu,
        "GET",
        &format!("/v4/spreadsheets/{id}/values:batchGet"),
        None,
    )
    .await;
    assert_eq!(b.body, json!({"spreadsheetId": id}));
    let a = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}/values/Sheet1!A:B:append?valueInputOption=USER_ENTERED&includeValuesInResponse=true"),
        Some(json!({"values": [["=A1+A2", "c"]]})),
    )
    .await;
    assert_eq!(a.body["tableRange"], "Sheet1!A1:B3");
    assert_eq!(
        a.body["updates"]["updatedData"],
        json!({"range": "Sheet1!A4:B4", "majorDimension": "ROWS", "values": [["3", "c"]]})
    );
    let u = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}/values:batchUpdate"),
        Some(json!({"valueInputOption": "RAW", "includeValuesInResponse": true, "responseValueRenderOption": "FORMULA",
                    "data": [{"range": "Sheet1!C1", "values": [["=1"]]}]})),
    )
    .await;
    assert_eq!(
        u.body["responses"][0]["updatedData"]["values"],
        json!([["=1"]])
    );
    assert_eq!(u.body["totalUpdatedSheets"], 1);
}

#[tokio::test]
async fn append_cells_grows_the_sheet() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("appendCells").unwrap();
    let r = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(json!({"requests": [
            {"updateSheetProperties": {"properties": {"sheetId": 0, "gridProperties": {"rowCount": 2, "columnCount": 2}}, "fields": "gridProperties"}},
            {"updateCells": {"start": {"sheetId": 0}, "rows": [{"values": [{"userEnteredValue": {"stringValue": "h"}}]}], "fields": "*"}},
            {"appendCells": {"sheetId": 0, "rows": [
                {"values": [{"userEnteredValue": {"stringValue": "=not a formula"}}]},
                {"values": [{"userEnteredValue": {"numberValue": 1}}, {"userEnteredValue": {"boolValue": false}}, {"userEnteredValue": {"stringValue": "c"}}]}
            ], "fields": "userEnteredValue"}}
        ], "includeSpreadsheetInResponse": true}))
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["replies"], json!([{}, {}, {}]));
    assert_eq!(
        r.body["updatedSpreadsheet"]["sheets"][0]["properties"]["gridProperties"],
        json!({"rowCount": 3, "columnCount": 3})
    );
    let g = get(&emu, &id, "Sheet1", "&valueRenderOption=UNFORMATTED_VALUE").await;
    assert_eq!(
        g.body["values"],
        json!([["h"], ["=not a formula"], [1, false, "c"]])
    );
}

#[tokio::test]
async fn move_dimension_and_sort_range_requests() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("moves").unwrap();
    put(
        &emu,
        &id,
        "Sheet1!A1",
        "RAW",
        json!([["b", 2, "x"], ["a", 2, "y"], ["c", 1, "z"], ["", 0, "w"]]),
    )
    .await;
    let batch = |requests: Value| {
        let emu = emu.clone();
        let id = id.clone();
        async move {
            let r = raw(
                &emu,
                "POST",
                &format!("/v4/spreadsheets/{id}:batchUpdate"),
                Some(json!({"requests": requests})),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    // Sort by B ascending, then A descending; the empty A sorts last only within equal B.
    batch(json!([{"sortRange": {"range": {"sheetId": 0, "startRowIndex": 0, "endRowIndex": 4, "startColumnIndex": 0, "endColumnIndex": 3},
        "sortSpecs": [{"dimensionIndex": 1, "sortOrder": "ASCENDING"}, {"dimensionIndex": 0, "sortOrder": "DESCENDING"}]}}]))
    .await;
    let g = get(
        &emu,
        &id,
        "Sheet1!A1:C4",
        "&valueRenderOption=UNFORMATTED_VALUE",
    )
    .await;
    assert_eq!(
        g.body["values"],
        json!([["", 0, "w"], ["c", 1, "z"], ["b", 2, "x"], ["a", 2, "y"]])
    );
    // Move row 1 to the end; move column C to the front.
    batch(json!([
        {"moveDimension": {"source": {"sheetId": 0, "dimension": "ROWS", "startIndex": 0, "endIndex": 1}, "destinationIndex": 4}},
        {"moveDimension": {"source": {"sheetId": 0, "dimension": "COLUMNS", "startIndex": 2, "endIndex": 3}, "destinationIndex": 0}}
    ]))
    .await;
    let g = get(
        &emu,
        &id,
        "Sheet1!A1:C4",
        "&valueRenderOption=UNFORMATTED_VALUE",
    )
    .await;
    assert_eq!(
        g.body["values"],
        json!([["z", "c", 1], ["x", "b", 2], ["y", "a", 2], ["w", "", 0]])
    );
}
