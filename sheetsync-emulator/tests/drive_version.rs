//! The Drive `version` of a spreadsheet moves by exactly one for every successful change (API
//! write, person edit, scheduled edit, a write whose answer a fault lost) and never for reads,
//! failed writes or writes a fault refused.

mod common;

use common::{emulator, enc, raw, try_raw};
use serde_json::{json, Value};
use sheetsync_emulator::{EditTrigger, EmulatorHandle, FaultRule, PersonEdit};

/// The version as Drive `files.get` answers it.
async fn drive_version(emu: &EmulatorHandle, id: &str) -> u64 {
    let r = raw(
        emu,
        "GET",
        &format!("/drive/v3/files/{id}?fields=version,modifiedTime"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["version"].as_str().unwrap().parse().unwrap()
}

/// An API call over raw HTTP; returns the status (0 for a dropped connection).
async fn call(emu: &EmulatorHandle, method: &str, path: &str, body: Option<Value>) -> u16 {
    try_raw(emu, method, path, body)
        .await
        .map_or(0, |r| r.status)
}

struct Steps<'a> {
    emu: &'a EmulatorHandle,
    id: String,
    version: u64,
}

/// A `ValueRange` body with these values.
fn body(v: Value) -> Option<Value> {
    Some(json!({ "values": v }))
}

/// One person edit of every kind.
fn person_edits_of_every_kind() -> Vec<PersonEdit> {
    vec![
        PersonEdit::SetCells {
            range: "Sheet1!H1".into(),
            values: vec![vec![json!(1)], vec![json!(2)]],
        },
        PersonEdit::Clear {
            range: "Sheet1!H2".into(),
        },
        PersonEdit::InsertRows {
            sheet: "Sheet1".into(),
            before: 2,
            count: 1,
        },
        PersonEdit::DeleteRows {
            sheet: "Sheet1".into(),
            start: 2,
            count: 1,
        },
        PersonEdit::MoveRows {
            sheet: "Sheet1".into(),
            start: 2,
            count: 1,
            before: 5,
        },
        PersonEdit::SortRange {
            range: "Sheet1!A2:B4".into(),
            column: 1,
            ascending: false,
        },
    ]
}

impl Steps<'_> {
    /// The path of a values method on `range` (`suffix`: `:append?...`, `?valueInputOption=...`).
    fn values(&self, range: &str, suffix: &str) -> String {
        format!("/v4/spreadsheets/{}/values/{}{suffix}", self.id, enc(range))
    }

    /// Checks that the last step moved the version by `delta`.
    async fn expect(&mut self, delta: u64, what: &str) {
        let now = drive_version(self.emu, &self.id).await;
        assert_eq!(now, self.version + delta, "{what}");
        self.version = now;
    }

    /// Every kind of API write: one version each (a batch is one).
    async fn api_writes(&mut self) {
        let emu = self.emu;
        let id = self.id.clone();
        // API writes.
        assert_eq!(
            call(
                emu,
                "PUT",
                &self.values("Sheet1!A1", "?valueInputOption=RAW"),
                body(json!([["k", "v"], [1, 2]]))
            )
            .await,
            200
        );
        self.expect(1, "values.update").await;
        let batch = json!({"valueInputOption": "RAW", "data": [
            {"range": "Sheet1!A3", "values": [[3, 4]]}, {"range": "Sheet1!D1", "values": [["x"]]}]});
        assert_eq!(
            call(
                emu,
                "POST",
                &format!("/v4/spreadsheets/{id}/values:batchUpdate"),
                Some(batch)
            )
            .await,
            200
        );
        self.expect(1, "values.batchUpdate (two ranges, one version)")
            .await;
        assert_eq!(
            call(
                emu,
                "POST",
                &self.values("Sheet1!A1", ":append?valueInputOption=RAW"),
                body(json!([[5, 6]]))
            )
            .await,
            200
        );
        self.expect(1, "values.append").await;
        assert_eq!(
            call(
                emu,
                "POST",
                &self.values(
                    "Sheet1!A1",
                    ":append?valueInputOption=RAW&insertDataOption=INSERT_ROWS"
                ),
                body(json!([[7, 8]]))
            )
            .await,
            200
        );
        self.expect(1, "values.append INSERT_ROWS").await;
        assert_eq!(
            call(emu, "POST", &self.values("Sheet1!D1", ":clear"), None).await,
            200
        );
        self.expect(1, "values.clear").await;
        assert_eq!(
            call(
                emu,
                "POST",
                &format!("/v4/spreadsheets/{id}/values:batchClear"),
                Some(json!({"ranges": ["Sheet1!A5"]}))
            )
            .await,
            200
        );
        self.expect(1, "values.batchClear").await;
        let requests = json!({"requests": [
            {"copyPaste": {"source": {"sheetId": 0, "startRowIndex": 0, "endRowIndex": 1, "startColumnIndex": 0, "endColumnIndex": 2},
                           "destination": {"sheetId": 0, "startRowIndex": 9, "endRowIndex": 10, "startColumnIndex": 0, "endColumnIndex": 1}}},
            {"insertDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 0, "endIndex": 1}}}]});
        assert_eq!(
            call(
                emu,
                "POST",
                &format!("/v4/spreadsheets/{id}:batchUpdate"),
                Some(requests)
            )
            .await,
            200
        );
        self.expect(1, "spreadsheets.batchUpdate (two requests, one version)")
            .await;
        assert_eq!(
            call(
                emu,
                "PATCH",
                &format!("/drive/v3/files/{id}"),
                Some(json!({"name": "renamed"}))
            )
            .await,
            200
        );
        self.expect(1, "drive.files.update").await;
    }

    /// Reads, failed writes and writes a fault refused change nothing.
    async fn reads_failures_and_refusals(&mut self) {
        let emu = self.emu;
        let id = self.id.clone();
        // Reads, failed writes and writes a fault refused change nothing.
        assert_eq!(
            call(emu, "GET", &self.values("Sheet1!A1:B4", ""), None).await,
            200
        );
        assert_eq!(
            call(
                emu,
                "GET",
                &format!("/v4/spreadsheets/{id}/values:batchGet?ranges=A1"),
                None
            )
            .await,
            200
        );
        assert_eq!(
            call(emu, "GET", &format!("/v4/spreadsheets/{id}"), None).await,
            200
        );
        assert_eq!(
            call(
                emu,
                "PUT",
                &self.values("Sheet1!A5000", "?valueInputOption=RAW"),
                body(json!([[1]]))
            )
            .await,
            400
        );
        assert_eq!(call(emu, "POST", &format!("/v4/spreadsheets/{id}:batchUpdate"), Some(json!({"requests": [
            {"updateCells": {"start": {"sheetId": 0, "rowIndex": 0, "columnIndex": 0},
                "rows": [{"values": [{"userEnteredValue": {"stringValue": "lost"}}]}], "fields": "userEnteredValue"}},
            {"deleteDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 0, "endIndex": 5000}}}]}))).await, 400);
        emu.inject_fault(FaultRule::status_next(503, 1).for_method("values.update"));
        assert_eq!(
            call(
                emu,
                "PUT",
                &self.values("Sheet1!A1", "?valueInputOption=RAW"),
                body(json!([[1]]))
            )
            .await,
            503
        );
        emu.inject_fault(FaultRule::drop_next(1).for_method("values.update"));
        assert_eq!(
            call(
                emu,
                "PUT",
                &self.values("Sheet1!A1", "?valueInputOption=RAW"),
                body(json!([[1]]))
            )
            .await,
            0
        );
        emu.inject_fault(FaultRule::truncate_next(1, 1));
        assert_eq!(
            call(emu, "GET", &self.values("Sheet1!A1:B4", ""), None).await,
            200
        );
        self.expect(0, "reads, failures and refused writes").await;
    }

    /// Writes whose answer a fault lost were applied: one version each.
    async fn writes_whose_answer_was_lost(&mut self) {
        let emu = self.emu;
        // Writes whose answer a fault lost were applied: one version each.
        emu.inject_fault(FaultRule::drop_after_next(1).for_method("values.update"));
        assert_eq!(
            call(
                emu,
                "PUT",
                &self.values("Sheet1!F1", "?valueInputOption=RAW"),
                body(json!([[1]]))
            )
            .await,
            0
        );
        self.expect(1, "dropAfter values.update").await;
        emu.inject_fault(FaultRule::status_after_next(500, 1).for_method("values.append"));
        assert_eq!(
            call(
                emu,
                "POST",
                &self.values("Sheet1!F1", ":append?valueInputOption=RAW"),
                body(json!([[2]]))
            )
            .await,
            500
        );
        self.expect(1, "statusAfter values.append").await;
    }

    /// Person edits of every kind: one version each; a failed one none.
    async fn person_edits(&mut self, edits: &[PersonEdit]) {
        let emu = self.emu;
        let id = self.id.clone();
        for e in edits.iter().cloned() {
            let what = format!("person edit {e:?}");
            emu.edit(&id, e).unwrap();
            self.expect(1, &what).await;
        }
        // A person edit that fails (no such sheet) changes nothing.
        assert!(emu.delete_rows(&id, "Missing", 1, 1).is_err());
        self.expect(0, "failed person edit").await;
    }

    /// Scheduled edits: one version for the edit, plus the request's own if it writes.
    async fn scheduled_edits(&mut self, edits: Vec<PersonEdit>) {
        let emu = self.emu;
        let id = self.id.clone();
        // Scheduled edits: one version for the edit, plus the request's own if it writes.
        for e in edits {
            let what = format!("scheduled edit {e:?} before a read");
            emu.schedule_edit(&id, EditTrigger::before("values.get"), e)
                .unwrap();
            assert_eq!(
                call(emu, "GET", &self.values("Sheet1!A1", ""), None).await,
                200
            );
            self.expect(1, &what).await;
        }
        emu.schedule_edit(
            &id,
            EditTrigger::after("values.update"),
            PersonEdit::SetCells {
                range: "Sheet1!J1".into(),
                values: vec![vec![json!("p")]],
            },
        )
        .unwrap();
        assert_eq!(
            call(
                emu,
                "PUT",
                &self.values("Sheet1!K1", "?valueInputOption=RAW"),
                body(json!([["e"]]))
            )
            .await,
            200
        );
        self.expect(2, "a write with a scheduled edit after it")
            .await;
    }
}

#[tokio::test]
async fn every_successful_change_bumps_the_drive_version_once() {
    let emu = emulator().await;
    let id = emu.create_spreadsheet("versions").unwrap();
    let version = drive_version(&emu, &id).await;
    let mut s = Steps {
        emu: &emu,
        id: id.clone(),
        version,
    };
    s.api_writes().await;
    s.reads_failures_and_refusals().await;
    s.writes_whose_answer_was_lost().await;
    let edits = person_edits_of_every_kind();
    s.person_edits(&edits).await;
    s.scheduled_edits(edits).await;
    emu.shutdown().await;
}
