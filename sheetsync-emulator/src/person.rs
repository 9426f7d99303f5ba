//! Person edits applied: the edit changes the spreadsheet like the browser would, moves the
//! Drive version, and fires the registered triggers with the webhook payload: journal triggers
//! append it to the journal tab inside the edit's lock, webhooks are sent after. Edits of
//! sheetsync's own tabs (the journal, scratch tabs) fire nothing, as the script ignores them.
//! Scheduled edits are applied here when their request comes. Used by the control surface (an
//! edit made now) and by the API (an edit scheduled around a request), so it belongs to neither.

use serde_json::Value;

use crate::edit::PersonEdit;
use crate::error::ApiError;
use crate::journal;
use crate::model::{Cell, Spreadsheet};
use crate::schedule::{EditTrigger, FiredEdit, ScheduledEdit};
use crate::state::Shared;
use crate::triggers::{Payload, PayloadRange, PayloadRow};
use crate::values::dimension::{delete_dimension, insert_dimension, move_dimension, sort_rows};
use crate::values::ops::{self, Major, Resolved};
use crate::values::render::render_cell;
use crate::values::{DateRender, Evaluator, InputOption, RenderOpts, ValueRender};

/// What an applied edit changed: its sheet, the payload's change type, and for `EDIT` the
/// edited rectangle (0-based, inclusive).
struct Change {
    sheet: usize,
    kind: &'static str,
    rect: Option<Resolved>,
}

/// Applies a person edit and fires the triggers of the spreadsheet.
pub(crate) fn person_edit(
    shared: &Shared,
    id: &str,
    edit: PersonEdit,
    user: Option<&str>,
) -> Result<(), ApiError> {
    let (limit, follow, default_user) = {
        let c = shared.config.read();
        (
            c.cell_limit,
            c.metadata_follows_person_moves,
            c.default_editor.clone(),
        )
    };
    let user = user.map_or(default_user, str::to_string);
    let ss_lock = shared.open(id)?;
    let mut ss = ss_lock.write();
    let Some(change) = apply(&mut ss, &edit, limit, follow)? else {
        return Ok(());
    };
    shared.touch(&mut ss);
    if journal::is_own_tab(&ss.sheets[change.sheet].props.title) {
        return Ok(());
    }
    // Build the payload and journal it while the spreadsheet is locked, send after.
    let payload = payload(shared, &ss, &change, user);
    journal_event(shared, &mut ss, &payload, limit);
    drop(ss);
    shared.triggers.fire(&payload);
    Ok(())
}

/// Appends the event to the journal tab once per journal trigger it fires: an `EDIT` as its
/// payload, a structural change as one payload per tab (the script cannot tell which tab
/// changed), the changed tab's keeping the event id.
fn journal_event(shared: &Shared, ss: &mut Spreadsheet, payload: &Payload, limit: u64) {
    let specs = shared.triggers.journals(&ss.id, payload.sheet_id);
    if specs.is_empty() {
        return;
    }
    let payloads = if payload.change_type == "EDIT" {
        vec![payload.clone()]
    } else {
        tab_payloads(shared, ss, payload)
    };
    for spec in specs {
        let max_rows = spec.max_rows.unwrap_or(journal::DEFAULT_MAX_ROWS);
        let entries = journal::entries(&payloads, max_rows);
        journal::append(shared, ss, &entries, &spec, limit);
    }
}

/// A structural payload for every tab but sheetsync's own, in tab order.
fn tab_payloads(shared: &Shared, ss: &Spreadsheet, changed: &Payload) -> Vec<Payload> {
    let mut ev = Evaluator::new(ss);
    (0..ss.sheets.len())
        .filter(|&i| !journal::is_own_tab(&ss.sheets[i].props.title))
        .map(|i| {
            let props = &ss.sheets[i].props;
            let event_id = if props.sheet_id == changed.sheet_id {
                changed.event_id.clone()
            } else {
                event_id(shared)
            };
            Payload {
                sheet_id: props.sheet_id,
                sheet_name: props.title.clone(),
                event_id,
                header: header(ss, &mut ev, i),
                ..changed.clone()
            }
        })
        .collect()
}

/// Changes the spreadsheet; `None` when the edit changes nothing (an empty paste).
fn apply(
    ss: &mut Spreadsheet,
    edit: &PersonEdit,
    limit: u64,
    follow: bool,
) -> Result<Option<Change>, ApiError> {
    let change = |sheet, kind, rect| Some(Change { sheet, kind, rect });
    Ok(match edit {
        PersonEdit::SetCells { range, values } => return set_cells(ss, range, values, limit),
        PersonEdit::Clear { range } => {
            let res = ops::resolve(ss, range, true)?;
            ops::clear(ss, &res);
            change(res.sheet, "EDIT", Some(res))
        }
        PersonEdit::InsertRows {
            sheet,
            before,
            count,
        } => {
            let si = sheet_by_title(ss, sheet)?;
            let at = before.saturating_sub(1);
            insert_dimension(ss, si, true, at, at + count, limit)?;
            change(si, "INSERT_ROW", None)
        }
        PersonEdit::DeleteRows {
            sheet,
            start,
            count,
        } => {
            let si = sheet_by_title(ss, sheet)?;
            let at = start.saturating_sub(1);
            delete_dimension(ss, si, true, at, at + count)?;
            change(si, "REMOVE_ROW", None)
        }
        PersonEdit::MoveRows {
            sheet,
            start,
            count,
            before,
        } => {
            let si = sheet_by_title(ss, sheet)?;
            let (s, n, d) = (start.saturating_sub(1), *count, before.saturating_sub(1));
            if d >= s && d <= s + n {
                return Err(ApiError::bad_request("Invalid row move."));
            }
            move_dimension(ss, si, true, s, n, d, follow)?;
            change(si, "OTHER", None)
        }
        PersonEdit::SortRange {
            range,
            column,
            ascending,
        } => {
            let res = ops::resolve(ss, range, true)?;
            sort_rows(ss, &res, &[(column.saturating_sub(1), *ascending)], follow)?;
            change(res.sheet, "EDIT", Some(res))
        }
    })
}

/// Types a block at the range's top-left (USER_ENTERED), growing the grid to fit it.
fn set_cells(
    ss: &mut Spreadsheet,
    range: &str,
    values: &[Vec<Value>],
    limit: u64,
) -> Result<Option<Change>, ApiError> {
    let res = ops::resolve(ss, range, true)?;
    let arr = Value::Array(values.iter().map(|r| Value::Array(r.clone())).collect());
    let m = ops::parse_matrix(Some(&arr), Major::Rows, InputOption::UserEntered, "values")?;
    let h = m.len() as u32;
    let w = m.iter().map(Vec::len).max().unwrap_or(0) as u32;
    if h == 0 || w == 0 {
        return Ok(None);
    }
    let sh = &ss.sheets[res.sheet];
    let (rows0, cols0) = (sh.props.row_count, sh.props.column_count);
    let (rows1, cols1) = (rows0.max(res.r0 + h), cols0.max(res.c0 + w));
    let extra = u64::from(rows1) * u64::from(cols1) - u64::from(rows0) * u64::from(cols0);
    if ss.total_cells() + extra > limit {
        return Err(ApiError::over_cell_limit(limit));
    }
    ss.sheets[res.sheet].props.row_count = rows1;
    ss.sheets[res.sheet].props.column_count = cols1;
    let anchor = Resolved {
        r1: res.r0,
        c1: res.c0,
        single: true,
        ..res
    };
    let wr = ops::write(ss, &anchor, &m);
    Ok(Some(Change {
        sheet: res.sheet,
        kind: "EDIT",
        rect: wr.written,
    }))
}

/// The webhook payload of an applied change (values as the sheet shows them now).
fn payload(shared: &Shared, ss: &Spreadsheet, change: &Change, user: String) -> Payload {
    let sheet = change.sheet;
    let mut ev = Evaluator::new(ss);
    let header = header(ss, &mut ev, sheet);
    let (range, rows) = match change.rect {
        Some(r) if change.kind == "EDIT" => {
            let width = (header.len() as u32).max(r.c1 + 1);
            let rows = (r.r0..=r.r1)
                .map(|row| PayloadRow {
                    row: row + 1,
                    values: row_values(ss, &mut ev, sheet, row, width),
                })
                .collect();
            let range = PayloadRange {
                start_row: r.r0 + 1,
                end_row: r.r1 + 1,
                start_column: r.c0 + 1,
                end_column: r.c1 + 1,
            };
            (Some(range), rows)
        }
        _ => (None, Vec::new()),
    };
    Payload {
        version: 1,
        spreadsheet_id: ss.id.clone(),
        sheet_id: ss.sheets[sheet].props.sheet_id,
        sheet_name: ss.sheets[sheet].props.title.clone(),
        change_type: change.kind.to_string(),
        event_id: event_id(shared),
        timestamp: ss.modified_ms,
        user,
        range,
        header,
        rows,
    }
}

/// A new event id: 32 lowercase hex digits.
fn event_id(shared: &Shared) -> String {
    let mut rng = shared.rng.lock();
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

fn unformatted() -> RenderOpts {
    RenderOpts {
        value: ValueRender::Unformatted,
        date: DateRender::Serial,
    }
}

/// Renders row `r` of a sheet across `width` columns (UNFORMATTED, SERIAL; empty = "").
fn row_values(
    ss: &Spreadsheet,
    ev: &mut Evaluator<'_>,
    sheet: usize,
    r: u32,
    width: u32,
) -> Vec<Value> {
    let grid = &ss.sheets[sheet].grid;
    (0..width)
        .map(|c| {
            grid.get(r, c)
                .and_then(|cell| render_cell(ev, sheet, r, c, cell, unformatted()))
                .unwrap_or_else(|| Value::String(String::new()))
        })
        .collect()
}

/// The first row up to its last non-empty cell.
fn header(ss: &Spreadsheet, ev: &mut Evaluator<'_>, sheet: usize) -> Vec<Value> {
    let len = ss.sheets[sheet].grid.row(0).map_or(0, |r| {
        r.iter().rposition(Cell::has_value).map_or(0, |p| p + 1)
    });
    row_values(ss, ev, sheet, 0, len as u32)
}

fn sheet_by_title(ss: &Spreadsheet, title: &str) -> Result<usize, ApiError> {
    ss.sheet_index_by_title(title)
        .ok_or_else(|| ApiError::bad_request(format!("No sheet named \"{title}\".")))
}

/// Schedules a person edit (checks that the spreadsheet exists).
pub(crate) fn schedule_edit(
    shared: &Shared,
    id: &str,
    trigger: EditTrigger,
    edit: PersonEdit,
    user: Option<String>,
) -> Result<String, ApiError> {
    shared.open(id)?;
    Ok(shared.schedule.lock().add(id, trigger, edit, user))
}

/// Applies the scheduled edits due on a request, recording each outcome.
pub(crate) fn run_scheduled(shared: &Shared, due: Vec<ScheduledEdit>, method_id: &str) {
    for s in due {
        let result = person_edit(shared, &s.spreadsheet_id, s.edit.clone(), s.user.as_deref());
        shared.schedule.lock().record(FiredEdit {
            scheduled_edit_id: s.scheduled_edit_id,
            spreadsheet_id: s.spreadsheet_id,
            method_id: method_id.to_string(),
            when: s.trigger.when,
            edit: s.edit,
            error: result.err().map(|e| e.message),
        });
    }
}
