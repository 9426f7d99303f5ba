//! Every endpoint through the `google-sheets4` crate (the client the Sheets adapter uses),
//! pointed at the emulator with `base_url`/`root_url`.

mod common;

use common::{bad_request, emulator, enc, hub, hub_with_token};
use google_sheets4::api::{
    BatchClearValuesRequest, BatchUpdateSpreadsheetRequest, BatchUpdateValuesRequest,
    ClearValuesRequest, SearchDeveloperMetadataRequest, Spreadsheet, SpreadsheetProperties,
    ValueRange,
};
use serde_json::{json, Value};
use sheetsync_emulator::{EmulatorHandle, FaultRule, QuotaConfig};

/// The typed client the tests use.
type Hub = google_sheets4::Sheets<common::HttpConnectorAlias>;

fn vr(range: Option<&str>, values: Value) -> ValueRange {
    ValueRange {
        major_dimension: None,
        range: range.map(str::to_string),
        values: serde_json::from_value(values).expect("matrix"),
    }
}

async fn new_sheet(h: &google_sheets4::Sheets<common::HttpConnectorAlias>, title: &str) -> String {
    let (_, ss) = h
        .spreadsheets()
        .create(Spreadsheet {
            properties: Some(SpreadsheetProperties {
                title: Some(title.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .doit()
        .await
        .expect("create");
    ss.spreadsheet_id.expect("id")
}

fn requests(v: Value) -> BatchUpdateSpreadsheetRequest {
    // FieldMask deserialises from borrowed strings only, so go through text.
    serde_json::from_str(&json!({ "requests": v }).to_string()).expect("typed requests")
}

/// One `updateCells` of typed rows at `(row, column)` of the tab with id 77.
async fn update_cells(
    h: &Hub,
    id: &str,
    (row, column): (i32, i32),
    rows: Value,
) -> Result<(), google_sheets4::Error> {
    let request = requests(json!([{"updateCells": {
        "start": {"sheetId": 77, "rowIndex": row, "columnIndex": column},
        "rows": rows,
        "fields": "userEnteredValue"}}]));
    h.spreadsheets()
        .batch_update(request, id)
        .doit()
        .await
        .map(drop)
}

/// `spreadsheets.get` through field masks: the engine's metadata read, and a typed read that
/// selects grid data without `includeGridData`.
async fn get_through_field_masks(h: &Hub, id: &str) {
    // Field mask (the sync engine's metadata read).
    let (resp, got) = h
        .spreadsheets()
        .get(id)
        .param(
            "fields",
            "spreadsheetId,properties(title,timeZone,locale),sheets(properties(sheetId,title,index,gridProperties(rowCount,columnCount,frozenRowCount)),developerMetadata)",
        )
        .doit()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(got.spreadsheet_url.is_none(), "masked out");
    let p = got.properties.unwrap();
    assert!(p.auto_recalc.is_none());
    assert_eq!(p.title.as_deref(), Some("Created"));
    assert!(got.sheets.unwrap()[0]
        .properties
        .as_ref()
        .unwrap()
        .sheet_type
        .is_none());

    // Typed read through a mask selects grid data even without includeGridData.
    let (_, got) = h
        .spreadsheets()
        .get(id)
        .add_ranges("Sheet1!A1")
        .param("fields", "sheets(data(startRow,startColumn,rowData(values(userEnteredValue,effectiveValue,formattedValue,userEnteredFormat.numberFormat))))")
        .doit()
        .await
        .unwrap();
    let sheets = got.sheets.unwrap();
    let cell = &sheets[0].data.as_ref().unwrap()[0]
        .row_data
        .as_ref()
        .unwrap()[0]
        .values
        .as_ref()
        .unwrap()[0];
    assert_eq!(cell.formatted_value.as_deref(), Some("2"));
}

#[tokio::test]
async fn create_and_get_with_ranges_grid_data_and_fields() {
    let emu = emulator().await;
    let h = hub(&emu);
    let (_, ss) = h
        .spreadsheets()
        .create(Spreadsheet {
            properties: Some(SpreadsheetProperties {
                title: Some("Created".into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .doit()
        .await
        .unwrap();
    let id = ss.spreadsheet_id.clone().unwrap();
    assert_eq!(id.len(), 44);
    assert_eq!(
        ss.spreadsheet_url.as_deref(),
        Some(format!("https://docs.google.com/spreadsheets/d/{id}/edit").as_str())
    );
    let props = ss.properties.unwrap();
    assert_eq!(props.title.as_deref(), Some("Created"));
    assert_eq!(props.locale.as_deref(), Some("en_US"));
    assert_eq!(props.time_zone.as_deref(), Some("Etc/GMT"));
    let sheet = &ss.sheets.as_ref().unwrap()[0];
    let sp = sheet.properties.as_ref().unwrap();
    assert_eq!(sp.sheet_id, Some(0));
    assert_eq!(sp.title.as_deref(), Some("Sheet1"));
    assert_eq!(sp.index, Some(0));
    let gp = sp.grid_properties.as_ref().unwrap();
    assert_eq!((gp.row_count, gp.column_count), (Some(1000), Some(26)));

    h.spreadsheets()
        .values_update(
            vr(None, json!([["=1+1", "x"], ["7", "=A1*3"]])),
            &id,
            &enc("Sheet1!A1"),
        )
        .value_input_option("USER_ENTERED")
        .doit()
        .await
        .unwrap();
    h.spreadsheets()
        .batch_update(
            requests(json!([{"addSheet": {"properties": {"title": "Other"}}}])),
            &id,
        )
        .doit()
        .await
        .unwrap();

    // ranges limit the sheets; includeGridData returns typed cells.
    let (_, got) = h
        .spreadsheets()
        .get(&id)
        .add_ranges("Sheet1!A1:B2")
        .include_grid_data(true)
        .doit()
        .await
        .unwrap();
    let sheets = got.sheets.unwrap();
    assert_eq!(sheets.len(), 1);
    let data = &sheets[0].data.as_ref().unwrap()[0];
    let rows = data.row_data.as_ref().unwrap();
    let a1 = &rows[0].values.as_ref().unwrap()[0];
    assert_eq!(
        a1.user_entered_value
            .as_ref()
            .unwrap()
            .formula_value
            .as_deref(),
        Some("=1+1")
    );
    assert_eq!(a1.effective_value.as_ref().unwrap().number_value, Some(2.0));
    assert_eq!(a1.formatted_value.as_deref(), Some("2"));
    let b2 = &rows[1].values.as_ref().unwrap()[1];
    assert_eq!(b2.effective_value.as_ref().unwrap().number_value, Some(6.0));

    // Without grid data: both sheets, no data.
    let (_, got) = h.spreadsheets().get(&id).doit().await.unwrap();
    let sheets = got.sheets.unwrap();
    assert_eq!(sheets.len(), 2);
    assert!(sheets.iter().all(|s| s.data.is_none()));
    let other = sheets[1].properties.as_ref().unwrap();
    assert_eq!(other.title.as_deref(), Some("Other"));
    assert_eq!(other.index, Some(1));
    assert!(other.sheet_id.unwrap() > 0);

    get_through_field_masks(&h, &id).await;
    emu.shutdown().await;
}

/// Spec §5.2 render matrix: a USER_ENTERED write read back with every value and date render
/// option.
async fn render_options_matrix(h: &Hub, id: &str) {
    h.spreadsheets()
        .values_update(
            vr(
                None,
                json!([
                    ["=4/2", "2020-01-01", "string", 53],
                    ["=3/2", 0.12, "1999-01-02", ""]
                ]),
            ),
            id,
            &enc("Sheet1!F1"),
        )
        .value_input_option("USER_ENTERED")
        .doit()
        .await
        .unwrap();
    let read = |render: &'static str, dt: Option<&'static str>| async move {
        let mut call = h
            .spreadsheets()
            .values_get(id, &enc("Sheet1!F1:I2"))
            .value_render_option(render);
        if let Some(dt) = dt {
            call = call.date_time_render_option(dt);
        }
        let (_, v) = call.doit().await.unwrap();
        serde_json::to_value(v.values.unwrap()).unwrap()
    };
    assert_eq!(
        read("FORMATTED_VALUE", None).await,
        json!([
            ["2", "2020-01-01", "string", "53"],
            ["1.5", "0.12", "1999-01-02"]
        ])
    );
    assert_eq!(
        read("UNFORMATTED_VALUE", Some("SERIAL_NUMBER")).await,
        json!([[2, 43831, "string", 53], [1.5, 0.12, 36162]])
    );
    assert_eq!(
        read("UNFORMATTED_VALUE", Some("FORMATTED_STRING")).await,
        json!([[2, "2020-01-01", "string", 53], [1.5, 0.12, "1999-01-02"]])
    );
    assert_eq!(
        read("FORMULA", None).await,
        json!([["=4/2", 43831, "string", 53], ["=3/2", 0.12, 36162]])
    );
}

#[tokio::test]
async fn values_update_get_trimming_and_render_options() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = new_sheet(&h, "values").await;
    // Spec §4.3 trimming example.
    let (_, up) = h
        .spreadsheets()
        .values_update(
            vr(
                None,
                json!([
                    ["A1", "B1", "", "D1"],
                    ["", "b2", "", ""],
                    ["", "", "", ""],
                    ["A4", "B4", "", "D4"]
                ]),
            ),
            &id,
            &enc("'Sheet1'!A1"),
        )
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();
    assert_eq!(up.updated_range.as_deref(), Some("Sheet1!A1:D4"));
    assert_eq!(
        (up.updated_rows, up.updated_columns, up.updated_cells),
        (Some(4), Some(4), Some(16))
    );
    let (_, got) = h
        .spreadsheets()
        .values_get(&id, &enc("'Sheet1'!A1:D4"))
        .doit()
        .await
        .unwrap();
    assert_eq!(got.range.as_deref(), Some("Sheet1!A1:D4"));
    assert_eq!(got.major_dimension.as_deref(), Some("ROWS"));
    assert_eq!(
        serde_json::to_value(got.values.unwrap()).unwrap(),
        json!([
            ["A1", "B1", "", "D1"],
            ["", "b2"],
            [],
            ["A4", "B4", "", "D4"]
        ])
    );
    // COLUMNS.
    let (_, got) = h
        .spreadsheets()
        .values_get(&id, &enc("Sheet1!A1:D4"))
        .major_dimension("COLUMNS")
        .doit()
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(got.values.unwrap()).unwrap(),
        json!([
            ["A1", "", "", "A4"],
            ["B1", "b2", "", "B4"],
            [],
            ["D1", "", "", "D4"]
        ])
    );
    render_options_matrix(&h, &id).await;
    // includeValuesInResponse.
    let (_, up) = h
        .spreadsheets()
        .values_update(
            vr(None, json!([["0042", "TRUE", "'007"]])),
            &id,
            &enc("Sheet1!A10"),
        )
        .value_input_option("USER_ENTERED")
        .include_values_in_response(true)
        .response_value_render_option("UNFORMATTED_VALUE")
        .doit()
        .await
        .unwrap();
    let data = up.updated_data.unwrap();
    assert_eq!(data.range.as_deref(), Some("Sheet1!A10:C10"));
    assert_eq!(
        serde_json::to_value(data.values.unwrap()).unwrap(),
        json!([[42, true, "007"]])
    );
    emu.shutdown().await;
}

/// `values.append` finds the table A1:D4 (rows 2-3 empty, but A4 is the last cell and block
/// A4:D4); `INSERT_ROWS` shifts what was below and grows the sheet.
async fn append_detects_the_table_and_inserts_rows(h: &Hub, id: &str) {
    let (_, ap) = h
        .spreadsheets()
        .values_append(vr(None, json!([["x", "y"]])), id, &enc("Sheet1"))
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();
    assert_eq!(ap.table_range.as_deref(), Some("Sheet1!A4:D4"));
    assert_eq!(
        ap.updates.unwrap().updated_range.as_deref(),
        Some("Sheet1!A5:B5")
    );

    // INSERT_ROWS shifts what was below.
    h.spreadsheets()
        .values_update(vr(None, json!([["below"]])), id, &enc("Sheet1!A7"))
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();
    let (_, ap) = h
        .spreadsheets()
        .values_append(vr(None, json!([["ins"]])), id, &enc("Sheet1!A4:D5"))
        .value_input_option("RAW")
        .insert_data_option("INSERT_ROWS")
        .doit()
        .await
        .unwrap();
    assert_eq!(
        ap.updates.unwrap().updated_range.as_deref(),
        Some("Sheet1!A6")
    );
    let (_, g) = h
        .spreadsheets()
        .values_get(id, "Sheet1!A6:A8")
        .doit()
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(g.values.unwrap()).unwrap(),
        json!([["ins"], [], ["below"]])
    );
    let (_, s) = h.spreadsheets().get(id).doit().await.unwrap();
    let rc = s.sheets.unwrap()[0]
        .properties
        .as_ref()
        .unwrap()
        .grid_properties
        .as_ref()
        .unwrap()
        .row_count;
    assert_eq!(rc, Some(1001));
}

/// `values.clear` of a whole sheet answers the grid's range; `values.batchClear` clears each
/// range.
async fn clear_and_batch_clear(h: &Hub, id: &str) {
    let (_, c) = h
        .spreadsheets()
        .values_clear(ClearValuesRequest::default(), id, &enc("'Sheet1'"))
        .doit()
        .await
        .unwrap();
    assert_eq!(c.cleared_range.as_deref(), Some("Sheet1!A1:Z1001"));
    let (_, g) = h
        .spreadsheets()
        .values_get(id, "Sheet1")
        .doit()
        .await
        .unwrap();
    assert!(g.values.is_none());

    h.spreadsheets()
        .values_update(
            vr(None, json!([["1", "2", "3"], ["4", "5", "6"]])),
            id,
            "Sheet1!A1",
        )
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();
    let (_, bc) = h
        .spreadsheets()
        .values_batch_clear(
            BatchClearValuesRequest {
                ranges: Some(vec!["Sheet1!A1:B1".into(), "Sheet1!C2:E2".into()]),
            },
            id,
        )
        .doit()
        .await
        .unwrap();
    assert_eq!(
        bc.cleared_ranges.unwrap(),
        vec!["Sheet1!A1:B1", "Sheet1!C2:E2"]
    );
    let (_, g) = h
        .spreadsheets()
        .values_get(id, "Sheet1!A1:C2")
        .doit()
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(g.values.unwrap()).unwrap(),
        json!([["", "", "3"], ["4", "5"]])
    );
}

#[tokio::test]
async fn batch_get_batch_update_append_clear_batch_clear() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = new_sheet(&h, "batch").await;
    let body: BatchUpdateValuesRequest = serde_json::from_value(json!({
        "valueInputOption": "RAW",
        "data": [
            {"range": "Sheet1!A1:D1", "values": [["a", "b", "c", "d"]]},
            {"range": "Sheet1!A4:D4", "values": [["e", "f", "g", "h"]]}
        ]
    }))
    .unwrap();
    let (_, r) = h
        .spreadsheets()
        .values_batch_update(body, &id)
        .doit()
        .await
        .unwrap();
    assert_eq!(r.total_updated_rows, Some(2));
    assert_eq!(r.total_updated_columns, Some(4));
    assert_eq!(r.total_updated_cells, Some(8));
    assert_eq!(r.total_updated_sheets, Some(1));
    let ranges: Vec<_> = r
        .responses
        .unwrap()
        .into_iter()
        .map(|x| x.updated_range.unwrap())
        .collect();
    assert_eq!(ranges, vec!["Sheet1!A1:D1", "Sheet1!A4:D4"]);

    let (_, bg) = h
        .spreadsheets()
        .values_batch_get(&id)
        .add_ranges("Sheet1!A:A")
        .add_ranges("'Sheet1'!A1:1")
        .add_ranges("Sheet1!B4")
        .doit()
        .await
        .unwrap();
    let vrs = bg.value_ranges.unwrap();
    assert_eq!(vrs[0].range.as_deref(), Some("Sheet1!A1:A1000"));
    assert_eq!(
        serde_json::to_value(vrs[0].values.clone().unwrap()).unwrap(),
        json!([["a"], [], [], ["e"]])
    );
    assert_eq!(vrs[1].range.as_deref(), Some("Sheet1!A1:Z1"));
    assert_eq!(vrs[2].range.as_deref(), Some("Sheet1!B4"));

    append_detects_the_table_and_inserts_rows(&h, &id).await;
    clear_and_batch_clear(&h, &id).await;
    emu.shutdown().await;
}

/// `addSheet` (id and size given) and `updateSpreadsheetProperties` in one batch.
async fn batch_adds_a_sheet_and_renames(h: &Hub, id: &str) {
    let (_, r) = h
        .spreadsheets()
        .batch_update(
            requests(json!([
                {"addSheet": {"properties": {"title": "Data Sheet", "sheetId": 77,
                  "gridProperties": {"rowCount": 5, "columnCount": 3}}}},
                {"updateSpreadsheetProperties": {"properties": {"title": "Renamed"}, "fields": "title"}}
            ])),
            id,
        )
        .doit()
        .await
        .unwrap();
    let replies = r.replies.unwrap();
    let added = replies[0]
        .add_sheet
        .as_ref()
        .unwrap()
        .properties
        .as_ref()
        .unwrap();
    assert_eq!(added.sheet_id, Some(77));
    assert_eq!(added.index, Some(1));
}

/// A duplicate title fails with Google's text; a batch whose second request fails applies nothing.
async fn batch_errors_are_prefixed_and_atomic(h: &Hub, id: &str) {
    // Duplicate title: Google's text, prefixed with the request.
    let err = bad_request(
        h.spreadsheets()
            .batch_update(
                requests(json!([{"addSheet": {"properties": {"title": "Data Sheet"}}}])),
                id,
            )
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(err["error"]["code"], 400);
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        err["error"]["message"],
        "Invalid requests[0].addSheet: A sheet with the name \"Data Sheet\" already exists. Please enter another name."
    );

    // Atomic: the first request would succeed, the second fails, nothing applies.
    let err = bad_request(
        h.spreadsheets()
            .batch_update(
                requests(json!([
                    {"appendDimension": {"sheetId": 77, "dimension": "ROWS", "length": 10}},
                    {"deleteDimension": {"range": {"sheetId": 77, "dimension": "ROWS", "startIndex": 0, "endIndex": 30}}}
                ])),
                id,
            )
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Invalid requests[1].deleteDimension: Cannot delete a row that doesn't exist. Tried to delete row index 29 but there are only 15 rows."
    );
    let (_, s) = h.spreadsheets().get(id).doit().await.unwrap();
    let p = s.sheets.as_ref().unwrap()[1].properties.clone().unwrap();
    assert_eq!(
        p.grid_properties.unwrap().row_count,
        Some(5),
        "batch was not applied"
    );
    assert_eq!(s.properties.unwrap().title.as_deref(), Some("Renamed"));
}

/// `updateCells` and `appendCells` write typed values; outside the grid they fail.
async fn batch_writes_typed_cells(h: &Hub, id: &str) {
    // updateCells writes typed values: a string that looks like a formula stays a string.
    let typed = json!([{"values": [{"userEnteredValue": {"stringValue": "=1+1"}},
                                   {"userEnteredValue": {"numberValue": 3}},
                                   {"userEnteredValue": {"boolValue": true}}]}]);
    update_cells(h, id, (0, 0), typed).await.unwrap();
    let (_, g) = h
        .spreadsheets()
        .values_get(id, &enc("'Data Sheet'!A1:C1"))
        .value_render_option("UNFORMATTED_VALUE")
        .doit()
        .await
        .unwrap();
    assert_eq!(g.range.as_deref(), Some("'Data Sheet'!A1:C1"));
    assert_eq!(
        serde_json::to_value(g.values.unwrap()).unwrap(),
        json!([["=1+1", 3, true]])
    );

    // appendCells: typed rows after the last row with data, growing the 5-row sheet.
    h.spreadsheets()
        .batch_update(
            requests(json!([{"appendCells": {
                "sheetId": 77,
                "rows": [{"values": [{"userEnteredValue": {"stringValue": "+cmd"}}]},
                         {"values": [{"userEnteredValue": {"numberValue": 2.5}}]}],
                "fields": "userEnteredValue"}}])),
            id,
        )
        .doit()
        .await
        .unwrap();
    let (_, g) = h
        .spreadsheets()
        .values_get(id, &enc("'Data Sheet'!A2:A3"))
        .value_render_option("UNFORMATTED_VALUE")
        .doit()
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(g.values.unwrap()).unwrap(),
        json!([["+cmd"], [2.5]])
    );
    h.spreadsheets()
        .values_clear(
            ClearValuesRequest::default(),
            id,
            &enc("'Data Sheet'!A2:A3"),
        )
        .doit()
        .await
        .unwrap();

    // With a start and no range, only the cells given are written: a row given no cells, and
    // the cells past a row's last, keep what they hold (sheetsync skips rows this way).
    let cells = |vs: &[&str]| json!({"values": vs.iter().map(|v| json!({"userEnteredValue": {"stringValue": v}})).collect::<Vec<_>>()});
    for (start, rows) in [
        (
            (1, 0),
            json!([
                cells(&["a2", "b2", "c2"]),
                cells(&["a3", "b3", "c3"]),
                cells(&["a4", "b4", "c4"])
            ]),
        ),
        ((1, 1), json!([cells(&["B2"]), {}, cells(&["B4", "C4"])])),
    ] {
        update_cells(h, id, start, rows).await.unwrap();
    }
    let (_, g) = h
        .spreadsheets()
        .values_get(id, &enc("'Data Sheet'!A2:C4"))
        .doit()
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(g.values.unwrap()).unwrap(),
        json!([["a2", "B2", "c2"], ["a3", "b3", "c3"], ["a4", "B4", "C4"]])
    );
    h.spreadsheets()
        .values_clear(
            ClearValuesRequest::default(),
            id,
            &enc("'Data Sheet'!A2:C4"),
        )
        .doit()
        .await
        .unwrap();

    // updateCells outside the grid.
    let err = bad_request(
        update_cells(h, id, (5, 0), json!([cells(&["x"])]))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Invalid requests[0].updateCells: Range ('Data Sheet'!A6:A6) exceeds grid limits. Max rows: 5, max columns: 3"
    );
}

/// `updateSheetProperties` (gspread's mask), `insertDimension`, `deleteDimension`, `deleteSheet`.
async fn batch_changes_structure(h: &Hub, id: &str) {
    // updateSheetProperties with gspread's slash-separated mask; insert/delete dimension.
    h.spreadsheets()
        .batch_update(
            requests(json!([
                {"updateSheetProperties": {"properties": {"sheetId": 77, "gridProperties": {"rowCount": 8, "columnCount": 4}},
                   "fields": "gridProperties/rowCount,gridProperties/columnCount"}},
                {"insertDimension": {"range": {"sheetId": 77, "dimension": "ROWS", "startIndex": 0, "endIndex": 2}}},
                {"deleteDimension": {"range": {"sheetId": 77, "dimension": "COLUMNS", "startIndex": 1, "endIndex": 2}}},
                {"deleteSheet": {"sheetId": 0}}
            ])),
            id,
        )
        .doit()
        .await
        .unwrap();
    let (_, s) = h.spreadsheets().get(id).doit().await.unwrap();
    let sheets = s.sheets.unwrap();
    assert_eq!(sheets.len(), 1);
    let gp = sheets[0]
        .properties
        .as_ref()
        .unwrap()
        .grid_properties
        .clone()
        .unwrap();
    assert_eq!((gp.row_count, gp.column_count), (Some(10), Some(3)));
    // A1 is now the first sheet's A1: "Data Sheet" (only sheet).
    let (_, g) = h
        .spreadsheets()
        .values_get(id, "A3:C3")
        .value_render_option("FORMULA")
        .doit()
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(g.values.unwrap()).unwrap(),
        json!([["=1+1", true]])
    );
}

/// Unknown request kinds fail like Google's JSON binding; known ones the emulator lacks, as unsupported.
async fn batch_rejects_unknown_and_unsupported_kinds(emu: &EmulatorHandle, h: &Hub, id: &str) {
    // Unknown request kind and unsupported kind.
    let raw = common::raw(
        emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(json!({"requests": [{"frobnicate": {}}]})),
    )
    .await;
    assert_eq!(raw.status, 400);
    assert_eq!(
        raw.body["error"]["message"],
        "Invalid JSON payload received. Unknown name \"frobnicate\" at 'requests[0]': Cannot find field."
    );
    let err = bad_request(
        h.spreadsheets()
            .batch_update(
                requests(
                    json!([{"mergeCells": {"range": {"sheetId": 77}, "mergeType": "MERGE_ALL"}}]),
                ),
                id,
            )
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Invalid requests[0].mergeCells: Unsupported request: mergeCells"
    );
}

#[tokio::test]
async fn spreadsheet_batch_update_requests_and_atomicity() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = new_sheet(&h, "structure").await;
    batch_adds_a_sheet_and_renames(&h, &id).await;
    batch_errors_are_prefixed_and_atomic(&h, &id).await;
    batch_writes_typed_cells(&h, &id).await;
    batch_changes_structure(&h, &id).await;
    batch_rejects_unknown_and_unsupported_kinds(&emu, &h, &id).await;
    emu.shutdown().await;
}

/// Search by key and range and by location type; `updateDeveloperMetadata` and
/// `deleteDeveloperMetadata` in one batch.
async fn search_update_and_delete_metadata(h: &Hub, id: &str) {
    let search: SearchDeveloperMetadataRequest = serde_json::from_value(json!({"dataFilters": [
        {"developerMetadataLookup": {"metadataKey": "row-id"}},
        {"a1Range": "Sheet1!A1:A3"}
    ]}))
    .unwrap();
    let (_, found) = h
        .spreadsheets()
        .developer_metadata_search(search, id)
        .doit()
        .await
        .unwrap();
    let found = found.matched_developer_metadata.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]
            .developer_metadata
            .as_ref()
            .unwrap()
            .metadata_value
            .as_deref(),
        Some("r-5")
    );

    let search: SearchDeveloperMetadataRequest = serde_json::from_value(json!({"dataFilters": [
        {"developerMetadataLookup": {"locationType": "SPREADSHEET"}}
    ]}))
    .unwrap();
    let (_, found) = h
        .spreadsheets()
        .developer_metadata_search(search, id)
        .doit()
        .await
        .unwrap();
    assert_eq!(
        found.matched_developer_metadata.unwrap()[0]
            .developer_metadata
            .as_ref()
            .unwrap()
            .metadata_key
            .as_deref(),
        Some("schema")
    );

    // update + delete.
    h.spreadsheets()
        .batch_update(
            requests(json!([
                {"updateDeveloperMetadata": {"dataFilters": [{"developerMetadataLookup": {"metadataId": 5}}],
                   "developerMetadata": {"metadataValue": "r-5b"}, "fields": "metadataValue"}},
                {"deleteDeveloperMetadata": {"dataFilter": {"developerMetadataLookup": {"metadataKey": "schema"}}}}
            ])),
            id,
        )
        .doit()
        .await
        .unwrap();
    let (_, m) = h
        .spreadsheets()
        .developer_metadata_get(id, 5)
        .doit()
        .await
        .unwrap();
    assert_eq!(m.metadata_value.as_deref(), Some("r-5b"));
    let (_, s) = h.spreadsheets().get(id).doit().await.unwrap();
    assert!(s.developer_metadata.is_none());
}

#[tokio::test]
async fn developer_metadata_create_search_get_and_row_tracking() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = new_sheet(&h, "meta").await;
    let (_, r) = h
        .spreadsheets()
        .batch_update(
            requests(json!([
                {"createDeveloperMetadata": {"developerMetadata": {"metadataId": 5, "metadataKey": "row-id", "metadataValue": "r-5",
                  "location": {"dimensionRange": {"sheetId": 0, "dimension": "ROWS", "startIndex": 4, "endIndex": 5}},
                  "visibility": "DOCUMENT"}}},
                {"createDeveloperMetadata": {"developerMetadata": {"metadataKey": "schema", "metadataValue": "v1",
                  "location": {"spreadsheet": true}, "visibility": "PROJECT"}}},
                {"createDeveloperMetadata": {"developerMetadata": {"metadataId": 9, "metadataKey": "row-id", "metadataValue": "r-9",
                  "location": {"dimensionRange": {"sheetId": 0, "dimension": "ROWS", "startIndex": 8, "endIndex": 9}},
                  "visibility": "DOCUMENT"}}}
            ])),
            &id,
        )
        .doit()
        .await
        .unwrap();
    let created = r.replies.unwrap()[0]
        .create_developer_metadata
        .clone()
        .unwrap()
        .developer_metadata
        .unwrap();
    assert_eq!(created.metadata_id, Some(5));
    assert_eq!(
        created.location.unwrap().location_type.as_deref(),
        Some("ROW")
    );

    // Insert two rows above row 5 and delete row 9's new position: metadata moves / goes.
    h.spreadsheets()
        .batch_update(
            requests(json!([
                {"insertDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 1, "endIndex": 3}}},
                {"deleteDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 10, "endIndex": 11}}}
            ])),
            &id,
        )
        .doit()
        .await
        .unwrap();
    let (_, m) = h
        .spreadsheets()
        .developer_metadata_get(&id, 5)
        .doit()
        .await
        .unwrap();
    let dr = m.location.unwrap().dimension_range.unwrap();
    assert_eq!((dr.start_index, dr.end_index), (Some(6), Some(7)));
    let err = bad_request(
        h.spreadsheets()
            .developer_metadata_get(&id, 9)
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(err["error"]["code"], 404);
    assert_eq!(err["error"]["message"], "Requested entity was not found.");

    search_update_and_delete_metadata(&h, &id).await;
    emu.shutdown().await;
}

/// The 50,000-character cell limit; a `values.batchUpdate` error names its item and applies
/// nothing.
async fn cell_size_and_batch_item_errors(h: &Hub, id: &str) {
    let long = "x".repeat(50_001);
    let err = bad_request(
        h.spreadsheets()
            .values_update(vr(None, json!([[long]])), id, "Sheet1!A1")
            .value_input_option("RAW")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Your input contains more than the maximum of 50000 characters in a single cell."
    );
    let ok_len = "y".repeat(50_000);
    h.spreadsheets()
        .values_update(vr(None, json!([[ok_len]])), id, "Sheet1!A1")
        .value_input_option("RAW")
        .doit()
        .await
        .expect("50,000 characters fit");
    // batchUpdate errors name the item.
    let body: BatchUpdateValuesRequest = serde_json::from_value(json!({
        "valueInputOption": "RAW",
        "data": [{"range": "Sheet1!A1", "values": [["ok"]]}, {"range": "Nope!A1", "values": [["x"]]}]
    }))
    .unwrap();
    let err = bad_request(
        h.spreadsheets()
            .values_batch_update(body, id)
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Invalid data[1]: Unable to parse range: Nope!A1"
    );
    let (_, g) = h
        .spreadsheets()
        .values_get(id, "Sheet1!A1")
        .doit()
        .await
        .unwrap();
    assert_ne!(
        serde_json::to_value(g.values.unwrap()).unwrap(),
        json!([["ok"]]),
        "atomic"
    );
}

#[tokio::test]
async fn errors_have_google_bodies() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = new_sheet(&h, "errors").await;
    let err = bad_request(
        h.spreadsheets()
            .values_get("nope", "A1")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err,
        json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})
    );
    let err = bad_request(
        h.spreadsheets()
            .values_get(&id, &enc("Class Data!A2:E"))
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Unable to parse range: Class Data!A2:E"
    );
    let err = bad_request(
        h.spreadsheets()
            .values_get(&id, "Sheet1!Y1001")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Range (Sheet1!Y1001) exceeds grid limits. Max rows: 1000, max columns: 26"
    );
    let err = bad_request(
        h.spreadsheets()
            .values_update(vr(None, json!([["x"]])), &id, "Sheet1!A1")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "'valueInputOption' is required but not specified"
    );
    let rows: Vec<Value> = (0..1001).map(|i| json!([i])).collect();
    let err = bad_request(
        h.spreadsheets()
            .values_update(vr(None, Value::Array(rows)), &id, "Sheet1!A1:G1000")
            .value_input_option("RAW")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Requested writing within range [Sheet1!A1:G1000], but tried writing to row [1001]"
    );
    let err = bad_request(
        h.spreadsheets()
            .values_update(vr(None, json!([[1, 2, 3]])), &id, "Sheet1!A1:B1")
            .value_input_option("RAW")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        "Requested writing within range [Sheet1!A1:B1], but tried writing to column [C]"
    );
    cell_size_and_batch_item_errors(&h, &id).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn quotas_are_per_token_and_answer_429() {
    let emu = emulator().await;
    emu.set_quota(QuotaConfig {
        enabled: true,
        read_per_user: 2,
        project_number: 42,
        ..QuotaConfig::google()
    });
    let alice = hub_with_token(&emu, "alice-token");
    let bob = hub_with_token(&emu, "bob-token");
    let id = emu.create_spreadsheet("quota").unwrap();
    alice
        .spreadsheets()
        .values_get(&id, "A1")
        .doit()
        .await
        .unwrap();
    alice
        .spreadsheets()
        .values_get(&id, "A1")
        .doit()
        .await
        .unwrap();
    let err = bad_request(
        alice
            .spreadsheets()
            .values_get(&id, "A1")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(err["error"]["code"], 429);
    assert_eq!(err["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        err["error"]["message"],
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:42'."
    );
    assert_eq!(
        err["error"]["details"][0]["metadata"]["quota_limit"],
        "ReadRequestsPerMinutePerUser"
    );
    // Another user still has quota; writes are counted separately.
    bob.spreadsheets()
        .values_get(&id, "A1")
        .doit()
        .await
        .unwrap();
    alice
        .spreadsheets()
        .values_update(vr(None, json!([["w"]])), &id, "A1")
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();
    // A new minute refills.
    emu.advance_clock(std::time::Duration::from_secs(60));
    alice
        .spreadsheets()
        .values_get(&id, "A1")
        .doit()
        .await
        .unwrap();
    assert_eq!(emu.request_count("sheets.spreadsheets.values.get"), 5);
    emu.shutdown().await;
}

#[tokio::test]
async fn injected_faults_reach_the_client() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = emu.create_spreadsheet("faults").unwrap();
    emu.inject_fault(FaultRule::status_next(503, 1).for_method("values.get"));
    let err = bad_request(
        h.spreadsheets()
            .values_get(&id, "A1")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err,
        json!({"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}})
    );
    h.spreadsheets()
        .values_get(&id, "A1")
        .doit()
        .await
        .expect("only the next one failed");
    emu.inject_fault(FaultRule::status_next(429, 1));
    let err = bad_request(h.spreadsheets().get(&id).doit().await.unwrap_err());
    assert_eq!(err["error"]["status"], "RESOURCE_EXHAUSTED");
    emu.inject_fault(FaultRule::drop_next(1));
    match h.spreadsheets().get(&id).doit().await {
        Err(google_sheets4::Error::HttpError(_)) => {}
        other => panic!("expected a transport error, got {other:?}"),
    }
    h.spreadsheets()
        .get(&id)
        .doit()
        .await
        .expect("connection faults are one-shot");
    emu.inject_fault(FaultRule::status_rate(500, 1.0).for_method("values.batchGet"));
    let err = bad_request(
        h.spreadsheets()
            .values_batch_get(&id)
            .add_ranges("A1")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(err["error"]["message"], "Internal error encountered.");
    emu.clear_faults();
    h.spreadsheets()
        .values_batch_get(&id)
        .add_ranges("A1")
        .doit()
        .await
        .unwrap();
    emu.shutdown().await;
}

#[tokio::test]
async fn ten_million_cell_cap() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = new_sheet(&h, "cap").await;
    // 500,000 x 20 = exactly 10,000,000 cells: accepted.
    h.spreadsheets()
        .batch_update(
            requests(
                json!([{"updateSheetProperties": {"properties": {"sheetId": 0,
                "gridProperties": {"rowCount": 500000, "columnCount": 20}},
                "fields": "gridProperties.rowCount,gridProperties.columnCount"}}]),
            ),
            &id,
        )
        .doit()
        .await
        .expect("10M cells fit");
    h.spreadsheets()
        .values_update(vr(None, json!([["last"]])), &id, "Sheet1!T500000")
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap();
    let (_, g) = h
        .spreadsheets()
        .values_get(&id, "Sheet1!T499999:T500000")
        .doit()
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(g.values.unwrap()).unwrap(),
        json!([[], ["last"]])
    );
    let cap = "This action would increase the number of cells in the workbook above the limit of 10000000 cells.";
    let err = bad_request(
        h.spreadsheets()
            .batch_update(
                requests(
                    json!([{"appendDimension": {"sheetId": 0, "dimension": "ROWS", "length": 1}}]),
                ),
                &id,
            )
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        format!("Invalid requests[0].appendDimension: {cap}")
    );
    let err = bad_request(
        h.spreadsheets()
            .values_append(vr(None, json!([["one more"]])), &id, "Sheet1!T:T")
            .value_input_option("RAW")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(err["error"]["message"], cap);
    let err = bad_request(
        h.spreadsheets()
            .batch_update(
                requests(json!([{"addSheet": {"properties": {"title": "More"}}}])),
                &id,
            )
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err["error"]["message"],
        format!("Invalid requests[0].addSheet: {cap}")
    );
    let ss = emu.spreadsheet(&id).unwrap();
    assert_eq!(ss.total_cells(), 10_000_000);
    assert_eq!(
        ss.sheets[0].grid.stored_cells(),
        20,
        "sparse store holds only written cells"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn auth_modes_permission_errors_and_request_log() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("auth").unwrap();
    let anonymous = hub(&emu);
    let carol = hub_with_token(&emu, "carol");
    anonymous
        .spreadsheets()
        .get(&id)
        .doit()
        .await
        .expect("any token or none by default");
    emu.set_require_credentials(true);
    let err = bad_request(anonymous.spreadsheets().get(&id).doit().await.unwrap_err());
    assert_eq!(err["error"]["code"], 401);
    assert_eq!(err["error"]["status"], "UNAUTHENTICATED");
    carol
        .spreadsheets()
        .get(&id)
        .doit()
        .await
        .expect("a bearer token is enough");
    emu.deny_access(&id, "carol");
    let err = bad_request(
        carol
            .spreadsheets()
            .values_get(&id, "A1")
            .doit()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err,
        json!({"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}})
    );
    emu.allow_access(&id, "carol");
    carol
        .spreadsheets()
        .values_get(&id, "A1")
        .doit()
        .await
        .unwrap();
    let log = emu.request_log();
    let statuses: Vec<(String, u16, String)> = log
        .iter()
        .map(|r| (r.method_id.clone(), r.status, r.user.clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (
                "sheets.spreadsheets.get".to_string(),
                200,
                "anonymous".to_string()
            ),
            (
                "sheets.spreadsheets.get".to_string(),
                401,
                "anonymous".to_string()
            ),
            (
                "sheets.spreadsheets.get".to_string(),
                200,
                "carol".to_string()
            ),
            (
                "sheets.spreadsheets.values.get".to_string(),
                403,
                "carol".to_string()
            ),
            (
                "sheets.spreadsheets.values.get".to_string(),
                200,
                "carol".to_string()
            ),
        ]
    );
    assert!(
        log[0].query.contains("alt=json"),
        "google-sheets4 always sends alt=json"
    );
    emu.shutdown().await;
}
