//! `sheet_status = "note"`: the Sheet itself shows which rows wait for a person, as a note on
//! the row's key cell, gone once the row syncs again; people's own notes are never touched, a
//! sorted row keeps its note, and the notes echo nothing.

use serde_json::json;

use crate::harness::{row, rows_map, wait_until, Backend, Canon, World, COLUMNS};

/// Notes by (1-based row, column name).
type Notes = std::collections::BTreeMap<(u32, String), String>;

fn seed() -> Vec<(i64, Canon)> {
    (1..=4)
        .map(|i| {
            let id = i.to_string();
            let name = format!("item {i}");
            (i, row([&id, &name, "C", "1.5", "2024-01-31", "true"]))
        })
        .collect()
}

impl World {
    /// The notes of mapping `m`'s tab: (1-based row, column name) → text.
    fn notes(&self, m: usize) -> Notes {
        let ss = self
            .emu
            .spreadsheet(&self.mappings[m].spreadsheet_id)
            .unwrap();
        let sheet = ss.sheets.iter().find(|s| s.props.sheet_id == 0).unwrap();
        let header = &self.sheet_values(m)[0];
        let mut out = std::collections::BTreeMap::new();
        for r in 0..sheet.props.row_count {
            for (c, cell) in sheet.grid.row(r).unwrap_or_default().iter().enumerate() {
                if let Some(n) = &cell.note {
                    let column = header[c].as_str().unwrap_or("").to_string();
                    out.insert((r + 1, column), n.clone());
                }
            }
        }
        out
    }

    /// Notes as [`World::notes`] has them, from (id of the row, column, text).
    fn notes_at(&self, m: usize, notes: &[(i64, &str, &str)]) -> Notes {
        notes
            .iter()
            .map(|(id, c, t)| ((self.sheet_row_of(m, *id), c.to_string()), t.to_string()))
            .collect()
    }

    /// Waits until the tab's notes are exactly `want`: (id of the row, column) → text.
    async fn wait_for_notes(&self, m: usize, want: &[(i64, &str, &str)], what: &str) {
        wait_until(what, || async {
            let want = self.notes_at(m, want);
            match self.notes(m) {
                got if got == want => Ok(()),
                got => Err(format!("notes {got:?}, not {want:?}")),
            }
        })
        .await;
    }

    /// Waits until row 2's key cell carries the note of its hold (a bad price, "abc") and
    /// the other notes are exactly `others`.
    async fn wait_for_held_note(&self, m: usize, others: &[(i64, &str, &str)], what: &str) {
        wait_until(what, || async {
            let mut notes = self.notes(m);
            let r = self.sheet_row_of(m, 2);
            match notes.remove(&(r, "id".to_string())) {
                Some(n)
                    if n.starts_with("sheetsync: held — column \"price\"") && n.contains("abc") =>
                {
                    Ok(())
                }
                other => Err(format!("row {r}'s key cell has {other:?}")),
            }?;
            let others = self.notes_at(m, others);
            match notes == others {
                true => Ok(()),
                false => Err(format!("other notes {notes:?}, not {others:?}")),
            }
        })
        .await;
    }

    /// A person resolves the conflict of row `key` of mapping `items` with the CLI, taking the
    /// Sheet's row.
    async fn resolve_taking_the_sheet(&self, key: &str) {
        let args = [
            "conflicts",
            "resolve",
            "--mapping",
            "items",
            "--key",
            key,
            "--side",
            "sheet",
        ];
        let out = self.cli(&self.cfg_path, &args).await;
        assert_eq!(out.code, Some(0), "conflicts resolve: {out:?}");
    }

    /// A person's own note on a cell (through the API: notes fire no trigger).
    async fn person_note(&self, m: usize, id: i64, column: &str, note: &str) {
        let col = COLUMNS.iter().position(|c| *c == column).unwrap();
        let req = json!({"requests": [{"updateCells": {
            "start": {"sheetId": 0, "rowIndex": self.sheet_row_of(m, id) - 1, "columnIndex": col},
            "rows": [{"values": [{"note": note}]}],
            "fields": "note"
        }}]});
        let req = serde_json::from_str(&req.to_string()).unwrap();
        self.other_program()
            .await
            .batch_update(&self.mappings[m].spreadsheet_id, req)
            .await
            .unwrap();
    }
}

pub async fn held_rows_and_conflicts_get_notes_until_they_sync(backend: Backend) {
    let mut w = World::new(backend, "sheetstatus").await;
    let extra = "sheet_status = \"note\"\nresolvers = [{ strategy = \"manual\" }]";
    let m = w.add_mapping("items", &seed(), extra).await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    w.converge(m, &rows_map(&seed())).await;
    w.person_note(m, 3, "name", "call Ann").await;
    w.person_note(m, 4, "id", "my own note").await;

    // A held row gets its note, a person's notes stay.
    w.type_cell(m, 2, "price", json!("abc"));
    let people = [(3, "name", "call Ann"), (4, "id", "my own note")];
    w.wait_for_held_note(m, &people, "row 2 held").await;

    // Sorted by a person (id descending): the note stays on row 2 (its locator is updated).
    w.emu
        .sort_range(&w.mappings[m].spreadsheet_id, "Sheet1!A2:F5", 1, false)
        .unwrap();
    w.cycles_more(m, 3).await;
    w.wait_for_held_note(m, &people, "row 2 held after the sort")
        .await;

    // Fixed: the note goes.
    w.type_cell(m, 2, "price", json!(2.5));
    w.wait_for_notes(m, &people, "row 2 synced again").await;

    // A conflict gets its note until a person resolves it.
    w.db.exec(&format!("UPDATE {t} SET name = 'db name' WHERE id = 1"))
        .await;
    w.type_cell(m, 1, "name", json!("sheet name"));
    let conflict = "sheetsync: conflict on name — resolve with `sheetsync conflicts resolve \
                    --mapping items --key 1 --side sheet|db` or on the status page";
    let with_conflict = [people[0], people[1], (1, "id", conflict)];
    w.wait_for_notes(m, &with_conflict, "row 1's conflict note")
        .await;
    w.resolve_taking_the_sheet("1").await;
    w.wait_for_notes(m, &people, "row 1 resolved").await;

    // Nothing echoes: no writes to either side, and no more Sheets writes at all.
    w.assert_quiet(m).await;
    let sheet_writes = w.emu.request_count("spreadsheets.batchUpdate");
    w.cycles_more(m, 6).await;
    assert_eq!(
        w.emu.request_count("spreadsheets.batchUpdate"),
        sheet_writes,
        "the notes' writes came back as edits"
    );
}

pub async fn held_rows_and_conflicts_fill_a_status_column_until_they_sync(backend: Backend) {
    let mut w = World::new(backend, "statuscolumn").await;
    let extra = "sheet_status = \"column\"\nstatus_column = \"sync status\"\n\
                 resolvers = [{ strategy = \"manual\" }]";
    let m = w.add_mapping("items", &seed(), extra).await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    w.converge(m, &rows_map(&seed())).await;
    let status_of = |w: &World, id: i64| -> Result<String, String> {
        let values = w.sheet_values(m);
        let col = values[0]
            .iter()
            .position(|h| h == "sync status")
            .ok_or_else(|| format!("no status column in {:?}", values[0]))?;
        let cells = &values[w.sheet_row_of(m, id) as usize - 1];
        Ok(cells
            .get(col)
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string())
    };
    let wait_status = |id: i64, want: &'static str, what: &'static str| {
        let w = &w;
        async move {
            wait_until(what, || async {
                match status_of(w, id)? {
                    s if s.starts_with(want) && (want.is_empty() == s.is_empty()) => Ok(()),
                    s => Err(format!("row {id}'s status is {s:?}")),
                }
            })
            .await
        }
    };

    // A held row: the status column is added at the header's end and says why.
    w.type_cell(m, 2, "price", json!("abc"));
    wait_status(2, "held — column \"price\"", "row 2's status").await;
    assert_eq!(
        w.sheet_values(m)[0].len(),
        COLUMNS.len() + 1,
        "one column added"
    );
    // A person types into the status column: nothing syncs, nothing counts as an edit.
    w.type_cell(m, 3, "sync status", json!("looks fine"));
    w.cycles_more(m, 3).await;
    w.type_cell(m, 2, "price", json!(2.5));
    wait_status(2, "", "row 2 synced again").await;

    // A conflict, until a person resolves it.
    w.db.exec(&format!("UPDATE {t} SET name = 'db name' WHERE id = 1"))
        .await;
    w.type_cell(m, 1, "name", json!("sheet name"));
    wait_status(1, "conflict on name — resolve with", "row 1's conflict").await;
    w.resolve_taking_the_sheet("1").await;
    wait_status(1, "", "row 1 resolved").await;

    let mut want = rows_map(&seed());
    want.get_mut(&1).unwrap()[1] = Some("sheet name".into());
    want.get_mut(&2).unwrap()[3] = Some("2.5".into());
    w.converge(m, &want).await;
    w.assert_quiet(m).await;
}
