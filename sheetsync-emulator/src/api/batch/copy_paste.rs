//! `copyPaste`: a source range (possibly on another sheet) pasted into a destination, repeated
//! when the destination is a multiple of the source; formulas move by the offset.

use serde_json::Value;

use crate::a1;
use crate::error::ApiError;
use crate::model::{Cell, CellValue, Spreadsheet};
use crate::values::ops::resolve_grid;
use crate::values::ops::{self, Resolved};
use crate::values::shift::offset_references;
use crate::values::{Eff, Evaluator};

/// What `copyPaste` takes from each source cell (`pasteType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasteType {
    /// `PASTE_NORMAL` / `PASTE_NO_BORDERS`: the whole cell (value, formula, format, note).
    Normal,
    /// `PASTE_VALUES`: the computed value only.
    Values,
    /// `PASTE_FORMAT`: the number format only.
    Format,
    /// `PASTE_FORMULA`: the entered value or formula only.
    Formula,
}

fn paste_type(v: Option<&Value>) -> Result<PasteType, ApiError> {
    match v.and_then(Value::as_str) {
        None | Some("PASTE_NORMAL") | Some("PASTE_NO_BORDERS") => Ok(PasteType::Normal),
        Some("PASTE_VALUES") => Ok(PasteType::Values),
        Some("PASTE_FORMAT") => Ok(PasteType::Format),
        Some("PASTE_FORMULA") => Ok(PasteType::Formula),
        Some(k @ ("PASTE_DATA_VALIDATION" | "PASTE_CONDITIONAL_FORMATTING")) => Err(
            ApiError::bad_request(format!("Unsupported pasteType: {k} (emulator)")),
        ),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid value at 'paste_type' (type.googleapis.com/google.apps.sheets.v4.PasteType), \"{other}\""
        ))),
    }
}

fn check_paste_orientation(v: Option<&Value>) -> Result<(), ApiError> {
    match v.and_then(Value::as_str) {
        None | Some("NORMAL") => Ok(()),
        Some("TRANSPOSE") => Err(ApiError::bad_request(
            "Unsupported pasteOrientation: TRANSPOSE (the emulator pastes NORMAL only)",
        )),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid value at 'paste_orientation' (type.googleapis.com/google.apps.sheets.v4.PasteOrientation), \"{other}\""
        ))),
    }
}

/// The span pasted along one dimension: a destination that is a multiple of the source repeats
/// the source to fill it; any other destination gets the source once from its start (beyond
/// its end if it is smaller).
fn paste_span(source: u32, destination: u32) -> u32 {
    if destination >= source && destination.is_multiple_of(source) {
        destination
    } else {
        source
    }
}

/// The computed value of a cell as an entered value (`PASTE_VALUES`); errors paste as text.
fn computed_value(e: Eff) -> Option<CellValue> {
    match e {
        Eff::Empty => None,
        Eff::Num(n) => Some(CellValue::Number(n)),
        Eff::Text(s) => Some(CellValue::Text(s)),
        Eff::Bool(b) => Some(CellValue::Bool(b)),
        Eff::Err(k) => Some(CellValue::Text(k.text().to_string())),
    }
}

/// A source cell as `copyPaste` reads it (before anything is pasted).
struct Copied {
    cell: Cell,
    computed: Option<CellValue>,
}

fn copy_source(ss: &Spreadsheet, src: &Resolved, want_computed: bool) -> Vec<Vec<Copied>> {
    let mut ev = Evaluator::new(ss);
    let grid = &ss.sheets[src.sheet].grid;
    (src.r0..=src.r1)
        .map(|r| {
            (src.c0..=src.c1)
                .map(|c| Copied {
                    cell: grid.get(r, c).cloned().unwrap_or_default(),
                    computed: if want_computed {
                        computed_value(ev.cell(src.sheet, r, c))
                    } else {
                        None
                    },
                })
                .collect()
        })
        .collect()
}

/// The destination cell after pasting `from` into `to`; formulas move by (`dr`, `dc`).
fn pasted_cell(kind: PasteType, from: &Copied, to: Option<&Cell>, dr: i64, dc: i64) -> Cell {
    let moved = || match &from.cell.value {
        Some(CellValue::Formula(f)) => Some(CellValue::Formula(offset_references(f, dr, dc))),
        other => other.clone(),
    };
    let mut cell = to.cloned().unwrap_or_default();
    match kind {
        PasteType::Normal => {
            cell = from.cell.clone();
            cell.value = moved();
        }
        PasteType::Values => cell.value = from.computed.clone(),
        PasteType::Format => cell.format = from.cell.format.clone(),
        PasteType::Formula => cell.value = moved(),
    }
    cell
}

/// `copyPaste`: copies a source range (possibly from another sheet) to a destination, repeated
/// when the destination is a multiple of the source. The pasted area must fit the grid.
pub(super) fn copy_paste(ss: &mut Spreadsheet, req: &Value) -> Result<(), ApiError> {
    let kind = paste_type(req.get("pasteType"))?;
    check_paste_orientation(req.get("pasteOrientation"))?;
    let (Some(source), Some(destination)) = (req.get("source"), req.get("destination")) else {
        return Err(ApiError::bad_request(
            "Both source and destination must be set.",
        ));
    };
    let src = resolve_grid(ss, source)?;
    let dst = resolve_grid(ss, destination)?;
    let (h, w) = (src.r1 - src.r0 + 1, src.c1 - src.c0 + 1);
    let rows = paste_span(h, dst.r1 - dst.r0 + 1);
    let cols = paste_span(w, dst.c1 - dst.c0 + 1);
    let (r1, c1) = (dst.r0 + rows - 1, dst.c0 + cols - 1);
    let props = &ss.sheets[dst.sheet].props;
    if r1 >= props.row_count || c1 >= props.column_count {
        let text = a1::format_range(&props.title, dst.r0, dst.c0, r1, c1, false);
        return Err(ops::grid_error(&text, props.row_count, props.column_count));
    }
    let copied = copy_source(ss, &src, kind == PasteType::Values);
    let grid = &mut ss.sheets[dst.sheet].grid;
    for i in 0..rows {
        for j in 0..cols {
            let (r, c) = (dst.r0 + i, dst.c0 + j);
            let (si, sj) = (i % h, j % w);
            let dr = i64::from(r) - i64::from(src.r0 + si);
            let dc = i64::from(c) - i64::from(src.c0 + sj);
            let from = &copied[si as usize][sj as usize];
            let cell = pasted_cell(kind, from, grid.get(r, c), dr, dc);
            grid.set(r, c, cell);
        }
    }
    Ok(())
}
