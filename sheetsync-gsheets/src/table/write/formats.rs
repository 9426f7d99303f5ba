//! Number formats for the rows the engine adds: a date, a timestamp or a time arrives in the
//! Sheet as a serial number (what the values API takes and gives back exactly), which people
//! would see as `45352.5730324074` unless the cell carries a date format. New rows get the
//! format with their values; cells that already exist keep whatever format a person gave them.

use google_sheets4::api::{
    BatchUpdateSpreadsheetRequest, CellFormat, NumberFormat, Request, RowData,
};
use google_sheets4::FieldMask;
use sheetsync_core::{ColumnType, TableSchema};

use crate::layout::Layout;

/// The number format a column of `ty` is shown with, if it is one of the date-like types.
fn format_of(ty: ColumnType) -> Option<NumberFormat> {
    let (kind, pattern) = match ty {
        ColumnType::Date => ("DATE", "yyyy-mm-dd"),
        ColumnType::Timestamp | ColumnType::TimestampTz => ("DATE_TIME", "yyyy-mm-dd hh:mm:ss"),
        ColumnType::Time => ("TIME", "hh:mm:ss"),
        _ => return None,
    };
    Some(NumberFormat {
        type_: Some(kind.into()),
        pattern: Some(pattern.into()),
    })
}

/// `(sheet column, format)` of the mapping's date-like columns.
pub(crate) fn date_columns(l: &Layout, schema: &TableSchema) -> Vec<(usize, NumberFormat)> {
    schema
        .columns
        .iter()
        .zip(&l.columns)
        .filter_map(|(c, &at)| Some((at as usize, format_of(c.ty)?)))
        .collect()
}

/// What the formats of `columns` add to one new row of a request, in bytes of JSON.
pub(crate) fn format_bytes(columns: &[(usize, NumberFormat)]) -> usize {
    columns
        .iter()
        .map(|(_, f)| {
            let cell = CellFormat {
                number_format: Some(f.clone()),
                ..Default::default()
            };
            serde_json::to_vec(&cell).map_or(0, |v| v.len()) + r#"{"userEnteredFormat":},"#.len()
        })
        .sum()
}

/// Gives the new rows of `req` (its `appendCells`) the formats of `columns`.
pub(crate) fn format_appended_rows(
    req: &mut BatchUpdateSpreadsheetRequest,
    columns: &[(usize, NumberFormat)],
) {
    if columns.is_empty() {
        return;
    }
    let appends = req.requests.iter_mut().flatten();
    for append in appends.filter_map(|r: &mut Request| r.append_cells.as_mut()) {
        append.fields = Some(FieldMask::new(&[
            "userEnteredValue",
            "userEnteredFormat.numberFormat",
        ]));
        for row in append.rows.iter_mut().flatten() {
            format_row(row, columns);
        }
    }
}

fn format_row(row: &mut RowData, columns: &[(usize, NumberFormat)]) {
    let cells = row.values.get_or_insert_with(Vec::new);
    for (at, format) in columns {
        if cells.len() <= *at {
            cells.resize_with(at + 1, Default::default);
        }
        cells[*at].user_entered_format = Some(CellFormat {
            number_format: Some(format.clone()),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sheetsync_core::Column;

    #[test]
    fn only_date_like_columns_get_a_format_at_their_sheet_position() {
        let schema = TableSchema::new(
            "t",
            vec![
                Column::new("id", ColumnType::Int),
                Column::new("due", ColumnType::Date),
                Column::new("at", ColumnType::TimestampTz),
                Column::new("note", ColumnType::Text),
            ],
            &["id"],
        )
        .unwrap();
        let mut l = crate::table::tests::layout();
        l.columns = vec![3, 0, 2, 1];
        let cols = date_columns(&l, &schema);
        let kinds: Vec<(usize, Option<String>)> =
            cols.iter().map(|(at, f)| (*at, f.type_.clone())).collect();
        assert_eq!(
            kinds,
            vec![(0, Some("DATE".into())), (2, Some("DATE_TIME".into()))]
        );
        let mut row = RowData {
            values: Some(vec![Default::default()]),
        };
        format_row(&mut row, &cols);
        let cells = row.values.unwrap();
        assert_eq!(
            cells.len(),
            3,
            "short rows are padded to the formatted column"
        );
        assert!(cells[1].user_entered_format.is_none());
        assert!(cells[2].user_entered_format.is_some());
    }
}
