//! Faults that let the request run and then lose its answer (`dropAfter`, `statusAfter`) and
//! short reads (`truncate`), seen through the google-sheets4 client the Sheets adapter uses.

mod common;

use common::{bad_request, emulator, enc, hub, raw};
use google_sheets4::api::{
    BatchClearValuesRequest, BatchUpdateSpreadsheetRequest, BatchUpdateValuesRequest,
    ClearValuesRequest, ValueRange,
};
use google_sheets4::hyper_util::client::legacy::connect::HttpConnector;
use google_sheets4::Sheets;
use serde_json::{json, Value};
use sheetsync_emulator::{EmulatorHandle, FaultKind, FaultRule};

type Hub = Sheets<HttpConnector>;

fn vr(values: Value) -> ValueRange {
    ValueRange {
        major_dimension: None,
        range: None,
        values: serde_json::from_value(values).expect("matrix"),
    }
}

/// The write methods of the Sheets API, each with a call whose effect is easy to see.
#[derive(Debug, Clone, Copy)]
enum Write {
    Update,
    BatchUpdate,
    Append,
    Clear,
    BatchClear,
    SpreadsheetBatchUpdate,
}

const WRITES: [Write; 6] = [
    Write::Update,
    Write::BatchUpdate,
    Write::Append,
    Write::Clear,
    Write::BatchClear,
    Write::SpreadsheetBatchUpdate,
];

impl Write {
    fn method(self) -> &'static str {
        match self {
            Write::Update => "sheets.spreadsheets.values.update",
            Write::BatchUpdate => "sheets.spreadsheets.values.batchUpdate",
            Write::Append => "sheets.spreadsheets.values.append",
            Write::Clear => "sheets.spreadsheets.values.clear",
            Write::BatchClear => "sheets.spreadsheets.values.batchClear",
            Write::SpreadsheetBatchUpdate => "sheets.spreadsheets.batchUpdate",
        }
    }

    /// The cell the call changes, in row `n` (a column per method; appends go to column D,
    /// whose neighbours C and E stay empty so the table is column D alone).
    fn cell(self, n: u32) -> String {
        let col = match self {
            Write::Update => "A",
            Write::BatchUpdate => "B",
            Write::Append => "D",
            Write::Clear => "F",
            Write::BatchClear => "G",
            Write::SpreadsheetBatchUpdate => "J",
        };
        format!("Sheet1!{col}{n}")
    }

    /// What the cell holds once the call was applied (`None`: cleared).
    fn expected(self, n: u32) -> Option<String> {
        match self {
            Write::Clear | Write::BatchClear => None,
            _ => Some(format!("{self:?}-{n}")),
        }
    }

    /// Prepares the sheet (clears need something to clear).
    fn prepare(self, emu: &EmulatorHandle, id: &str, n: u32) {
        if matches!(self, Write::Clear | Write::BatchClear) {
            emu.set_cells(id, &self.cell(n), vec![vec![json!("to clear")]])
                .unwrap();
        }
    }

    async fn call(self, h: &Hub, id: &str, n: u32) -> Result<(), google_sheets4::Error> {
        let text = format!("{self:?}-{n}");
        let cell = self.cell(n);
        let s = h.spreadsheets();
        match self {
            Write::Update => s
                .values_update(vr(json!([[text]])), id, &enc(&cell))
                .value_input_option("RAW")
                .doit()
                .await
                .map(drop),
            Write::BatchUpdate => {
                let body: BatchUpdateValuesRequest = serde_json::from_value(json!({
                    "valueInputOption": "RAW", "data": [{"range": cell, "values": [[text]]}]
                }))
                .unwrap();
                s.values_batch_update(body, id).doit().await.map(drop)
            }
            // Appends find the table in column D and add one row under it: row n when the
            // rows 1..n-1 of column D are filled.
            Write::Append => s
                .values_append(vr(json!([[text]])), id, &enc("Sheet1!D1"))
                .value_input_option("RAW")
                .doit()
                .await
                .map(drop),
            Write::Clear => s
                .values_clear(ClearValuesRequest::default(), id, &enc(&cell))
                .doit()
                .await
                .map(drop),
            Write::BatchClear => s
                .values_batch_clear(
                    BatchClearValuesRequest {
                        ranges: Some(vec![cell]),
                    },
                    id,
                )
                .doit()
                .await
                .map(drop),
            Write::SpreadsheetBatchUpdate => {
                let body: BatchUpdateSpreadsheetRequest = serde_json::from_str(
                    &json!({"requests": [{"updateCells": {
                        "start": {"sheetId": 0, "rowIndex": n - 1, "columnIndex": 9},
                        "rows": [{"values": [{"userEnteredValue": {"stringValue": text}}]}],
                        "fields": "userEnteredValue"}}]})
                    .to_string(),
                )
                .unwrap();
                s.batch_update(body, id).doit().await.map(drop)
            }
        }
    }
}

fn cell_text(emu: &EmulatorHandle, id: &str, range: &str) -> Option<String> {
    let v = emu.read_values(id, range).unwrap();
    v.get(0)
        .and_then(|r| r.get(0))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[tokio::test]
async fn drop_after_and_status_after_apply_the_request_then_lose_the_answer() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = emu.create_spreadsheet("lost answers").unwrap();
    let mut n = 0;
    for kind in [FaultKind::DropAfter, FaultKind::StatusAfter { status: 503 }] {
        for w in WRITES {
            n += 1;
            w.prepare(&emu, &id, n);
            // Rows of the column-D table stay contiguous: every earlier row gets a value.
            if !matches!(w, Write::Append) {
                emu.set_cells(&id, &format!("Sheet1!D{n}"), vec![vec![json!("pad")]])
                    .unwrap();
            }
            let before = emu.spreadsheet(&id).unwrap().version;
            let count = emu.request_count(w.method());
            emu.inject_fault(FaultRule::next(kind, 1).for_method(w.method()));
            let err = w.call(&h, &id, n).await.expect_err("the answer is lost");
            match kind {
                FaultKind::DropAfter => assert!(
                    matches!(err, google_sheets4::Error::HttpError(_)),
                    "{w:?}: a dropped connection, got {err:?}"
                ),
                _ => assert_eq!(
                    bad_request(err),
                    json!({"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}}),
                    "{w:?}"
                ),
            }
            assert_eq!(
                cell_text(&emu, &id, &w.cell(n)),
                w.expected(n),
                "{kind:?} {w:?}: the effect is in the sheet"
            );
            assert_eq!(
                emu.request_count(w.method()),
                count + 1,
                "{w:?}: sent once, not retried"
            );
            assert_eq!(
                emu.spreadsheet(&id).unwrap().version,
                before + 1,
                "{kind:?} {w:?}: one new Drive version"
            );
            assert!(emu
                .request_log()
                .last()
                .is_some_and(|r| r.method_id == w.method()));
        }
    }
    // Each append added exactly one row to column D.
    let d = emu.read_values(&id, "Sheet1!D:D").unwrap();
    let appended: Vec<&Value> = d
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[0].as_str().is_some_and(|s| s.starts_with("Append")))
        .collect();
    assert_eq!(appended.len(), 2, "{d}");
    // The rules were one-shot: the next calls answer normally.
    for w in WRITES {
        n += 1;
        w.prepare(&emu, &id, n);
        w.call(&h, &id, n).await.expect("no fault left");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn after_faults_follow_rate_and_method_matching() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = emu.create_spreadsheet("rate").unwrap();
    emu.inject_fault(FaultRule::at_rate(FaultKind::DropAfter, 1.0).for_method("values.update"));
    for n in 1..=2 {
        assert!(Write::Update.call(&h, &id, n).await.is_err());
        assert_eq!(
            cell_text(&emu, &id, &Write::Update.cell(n)),
            Write::Update.expected(n)
        );
    }
    // Another method is not affected.
    Write::BatchUpdate
        .call(&h, &id, 1)
        .await
        .expect("not matched");
    // Over HTTP, with the same shape as the other kinds.
    emu.clear_faults();
    for rule in [
        json!({"kind": "dropAfter", "times": 1, "method": "values.batchUpdate"}),
        json!({"kind": "statusAfter", "status": 500, "times": 1, "method": "spreadsheets.batchUpdate"}),
        json!({"kind": "truncate", "rows": 2, "rate": 0.5, "method": "values.batchGet"}),
    ] {
        let r = raw(&emu, "POST", "/__emulator/faults", Some(rule)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let listed = raw(&emu, "GET", "/__emulator/faults", None).await;
    assert_eq!(
        listed.body,
        json!([
            {"kind": "dropAfter", "times": 1, "method": "values.batchUpdate"},
            {"kind": "statusAfter", "status": 500, "times": 1, "method": "spreadsheets.batchUpdate"},
            {"kind": "truncate", "rows": 2, "rate": 0.5, "method": "values.batchGet"}
        ])
    );
    assert!(Write::BatchUpdate.call(&h, &id, 2).await.is_err());
    assert_eq!(
        cell_text(&emu, &id, &Write::BatchUpdate.cell(2)),
        Write::BatchUpdate.expected(2)
    );
    let err = bad_request(
        Write::SpreadsheetBatchUpdate
            .call(&h, &id, 3)
            .await
            .unwrap_err(),
    );
    assert_eq!(err["error"]["code"], 500);
    assert_eq!(
        cell_text(&emu, &id, &Write::SpreadsheetBatchUpdate.cell(3)),
        Write::SpreadsheetBatchUpdate.expected(3)
    );
    // A request that fails on its own still fails (nothing applied), and the answer is lost.
    emu.clear_faults();
    emu.inject_fault(FaultRule::drop_after_next(1));
    let err = h
        .spreadsheets()
        .values_update(vr(json!([["x"]])), &id, &enc("Sheet1!A2000"))
        .value_input_option("RAW")
        .doit()
        .await
        .unwrap_err();
    assert!(
        matches!(err, google_sheets4::Error::HttpError(_)),
        "{err:?}"
    );
    emu.shutdown().await;
}

fn rows_of(v: &ValueRange) -> Value {
    serde_json::to_value(v.values.clone().unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn truncate_answers_a_short_well_formed_read() {
    let emu = emulator().await;
    let h = hub(&emu);
    let id = emu.create_spreadsheet("short").unwrap();
    let rows: Vec<Vec<Value>> = (1..=5).map(|i| vec![json!(i), json!(i * 10)]).collect();
    emu.set_cells(&id, "Sheet1!A1", rows).unwrap();

    // A rule without a method is not used up by writes or other reads.
    emu.inject_fault(FaultRule::truncate_next(2, 2));
    emu.set_cells(&id, "Sheet1!D1", vec![vec![json!("x")]])
        .unwrap();
    Write::Update.call(&h, &id, 10).await.unwrap();
    h.spreadsheets().get(&id).doit().await.unwrap();

    let (_, bg) = h
        .spreadsheets()
        .values_batch_get(&id)
        .add_ranges("Sheet1!A1:A5")
        .add_ranges("Sheet1!A1:B5")
        .value_render_option("UNFORMATTED_VALUE")
        .doit()
        .await
        .unwrap();
    let vrs = bg.value_ranges.unwrap();
    assert_eq!(
        rows_of(&vrs[0]),
        json!([[1], [2], [3], [4], [5]]),
        "first range whole"
    );
    assert_eq!(
        vrs[1].range.as_deref(),
        Some("Sheet1!A1:B5"),
        "range as asked"
    );
    assert_eq!(
        rows_of(&vrs[1]),
        json!([[1, 10], [2, 20], [3, 30]]),
        "last 2 rows lost"
    );

    let (_, g) = h
        .spreadsheets()
        .values_get(&id, &enc("Sheet1!A1:B5"))
        .value_render_option("UNFORMATTED_VALUE")
        .doit()
        .await
        .unwrap();
    assert_eq!(rows_of(&g), json!([[1, 10], [2, 20], [3, 30]]));

    // Used up: the next read is whole.
    let (_, g) = h
        .spreadsheets()
        .values_get(&id, &enc("Sheet1!A1:B5"))
        .value_render_option("UNFORMATTED_VALUE")
        .doit()
        .await
        .unwrap();
    assert_eq!(rows_of(&g).as_array().unwrap().len(), 5);
    emu.shutdown().await;
}
