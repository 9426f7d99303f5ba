//! `values.batchGetByDataFilter` through google-sheets4: ranges named by `sheetId` (unbounded
//! where a bound is left out) or A1, answered in order with the filter that matched each, and
//! the errors a bad filter gets.

mod common;

use common::{bad_request, emulator, hub, raw};
use google_sheets4::api::{BatchGetValuesByDataFilterRequest, DataFilter, GridRange};
use serde_json::{json, Value};
use sheetsync_emulator::{EmulatorHandle, FaultRule};

fn grid(sheet_id: i32, rows: (i32, Option<i32>), cols: (i32, Option<i32>)) -> DataFilter {
    DataFilter {
        grid_range: Some(GridRange {
            sheet_id: Some(sheet_id),
            start_row_index: Some(rows.0),
            end_row_index: rows.1,
            start_column_index: Some(cols.0),
            end_column_index: cols.1,
        }),
        ..Default::default()
    }
}

fn a1(range: &str) -> DataFilter {
    DataFilter {
        a1_range: Some(range.into()),
        ..Default::default()
    }
}

/// The matched ranges as `(range, values)`, or the error's body.
async fn read(
    emu: &EmulatorHandle,
    id: &str,
    filters: Vec<DataFilter>,
) -> Result<Vec<(String, Value)>, Value> {
    let req = BatchGetValuesByDataFilterRequest {
        data_filters: Some(filters),
        value_render_option: Some("UNFORMATTED_VALUE".into()),
        ..Default::default()
    };
    let got = hub(emu)
        .spreadsheets()
        .values_batch_get_by_data_filter(req, id)
        .doit()
        .await
        .map_err(bad_request)?
        .1;
    Ok(got
        .value_ranges
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let vr = m.value_range.expect("a matched range has its values");
            let values = serde_json::to_value(vr.values.unwrap_or_default()).unwrap();
            (vr.range.unwrap_or_default(), values)
        })
        .collect())
}

async fn rename_tab(emu: &EmulatorHandle, id: &str, sheet_id: i32, title: &str) {
    let req = json!({"requests": [{"updateSheetProperties": {
        "properties": {"sheetId": sheet_id, "title": title}, "fields": "title"}}]});
    let r = raw(
        emu,
        "POST",
        &format!("/v4/spreadsheets/{id}:batchUpdate"),
        Some(req),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

fn filled(emu: &EmulatorHandle) -> String {
    let id = emu.create_spreadsheet("filters").unwrap();
    let rows: Vec<Vec<Value>> = (1..=4).map(|i| vec![json!(i), json!(i * 10)]).collect();
    emu.set_cells(&id, "Sheet1!A1", rows).unwrap();
    id
}

#[tokio::test]
async fn grid_ranges_name_the_tab_by_id_and_reach_the_grid_edge_when_unbounded() {
    let emu = emulator().await;
    let id = filled(&emu);
    rename_tab(&emu, &id, 0, "Renamed").await;
    let got = read(
        &emu,
        &id,
        vec![
            grid(0, (1, None), (0, None)),
            grid(0, (0, Some(2)), (1, Some(2))),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        got[0],
        (
            "Renamed!A2:Z1000".to_string(),
            json!([[2, 20], [3, 30], [4, 40]])
        ),
        "unbounded: to the last row and column of the grid, under the tab's current title"
    );
    assert_eq!(got[1], ("Renamed!B1:B2".to_string(), json!([[10], [20]])));
}

#[tokio::test]
async fn each_range_comes_back_with_the_filter_that_matched_it_in_order() {
    let emu = emulator().await;
    let id = filled(&emu);
    let req = json!({
        "dataFilters": [
            {"a1Range": "Sheet1!B3:B4"},
            {"gridRange": {"sheetId": 0, "startRowIndex": 0, "endRowIndex": 1}}
        ],
        "valueRenderOption": "UNFORMATTED_VALUE",
        "majorDimension": "COLUMNS"
    });
    let r = raw(
        &emu,
        "POST",
        &format!("/v4/spreadsheets/{id}/values:batchGetByDataFilter"),
        Some(req.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["spreadsheetId"], json!(id));
    let ranges = r.body["valueRanges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2);
    for (i, m) in ranges.iter().enumerate() {
        assert_eq!(m["dataFilters"], json!([req["dataFilters"][i]]));
        assert_eq!(m["valueRange"]["majorDimension"], "COLUMNS");
    }
    assert_eq!(ranges[0]["valueRange"]["values"], json!([[30, 40]]));
    assert_eq!(ranges[1]["valueRange"]["values"], json!([[1], [10]]));
}

#[tokio::test]
async fn a_filter_naming_no_tab_or_cells_outside_the_grid_fails_the_call() {
    let emu = emulator().await;
    let id = filled(&emu);
    let e = read(
        &emu,
        &id,
        vec![a1("Sheet1!A1"), grid(7, (0, None), (0, None))],
    )
    .await
    .unwrap_err();
    assert_eq!(e["error"]["code"], 400);
    assert_eq!(
        e["error"]["message"],
        "Invalid dataFilters[1]: No grid with id: 7"
    );
    let e = read(&emu, &id, vec![grid(0, (1000, None), (0, None))])
        .await
        .unwrap_err();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("exceeds grid limits. Max rows: 1000"), "{msg}");
    let e = read(&emu, &id, vec![]).await.unwrap_err();
    assert_eq!(
        e["error"]["message"],
        "Must specify at least one data filter."
    );
    let e = read(&emu, &id, vec![DataFilter::default()])
        .await
        .unwrap_err();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("must set one of"), "{msg}");
}

#[tokio::test]
async fn unknown_fields_and_metadata_lookups_are_refused_by_name() {
    let emu = emulator().await;
    let id = filled(&emu);
    let path = format!("/v4/spreadsheets/{id}/values:batchGetByDataFilter");
    let r = raw(
        &emu,
        "POST",
        &path,
        Some(json!({"dataFilters": [{"a1Range": "A1"}], "ranges": ["A1"]})),
    )
    .await;
    assert_eq!(r.status, 400);
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Unknown name \"ranges\""), "{msg}");
    let lookup = json!({"dataFilters": [{"developerMetadataLookup": {"metadataKey": "k"}}]});
    let r = raw(&emu, "POST", &path, Some(lookup)).await;
    assert_eq!(r.status, 501, "{:?}", r.body);
    let r = raw(&emu, "GET", &path, None).await;
    assert_eq!(r.status, 404, "only POST is routed");
}

#[tokio::test]
async fn reads_by_filter_count_as_reads_and_take_truncate_faults() {
    let emu = emulator().await;
    let id = filled(&emu);
    emu.inject_fault(FaultRule::truncate_next(2, 1).for_method("values.batchGet"));
    let got = read(
        &emu,
        &id,
        vec![
            grid(0, (0, None), (0, Some(1))),
            grid(0, (0, None), (0, None)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(got[0].1, json!([[1], [2], [3], [4]]), "first range whole");
    assert_eq!(got[1].1, json!([[1, 10], [2, 20]]), "last 2 rows lost");
    assert_eq!(
        emu.request_count("sheets.spreadsheets.values.batchGetByDataFilter"),
        1
    );
}
