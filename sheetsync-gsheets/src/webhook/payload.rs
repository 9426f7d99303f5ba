//! The version 1 webhook payload (`docs/webhook-payload.md`), also the body of an edit-journal
//! entry (`docs/journal.md`): serde types and validation.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The only payload version this crate understands.
pub const PAYLOAD_VERSION: u32 = 1;

/// Most rows one `EDIT` payload may carry (a 1 MiB body cannot hold more anyway).
pub const MAX_ROWS: usize = 100_000;

/// Most columns a header or row may carry (Google Sheets' column limit).
pub const MAX_COLUMNS: usize = 18_278;

/// Highest row number accepted (Google's 10 million cell cap allows no more rows).
pub const MAX_ROW_NUMBER: u32 = 10_000_000;

/// Longest `spreadsheetId`, `sheetName`, `eventId` or `user` accepted, in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// Prefix of the signature header value.
pub const SIGNATURE_PREFIX: &str = "v1=";

/// What happened in the sheet (`changeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// A person typed, pasted, cleared or sorted a range; `range` and `rows` say where and what.
    Edit,
    /// A person inserted rows; the receiver must re-read the sheet.
    InsertRow,
    /// A person deleted rows; the receiver must re-read the sheet.
    RemoveRow,
    /// Any other structural change (moved rows, inserted columns, ...); re-read the sheet.
    Other,
}

impl ChangeType {
    /// The wire name (`EDIT`, `INSERT_ROW`, `REMOVE_ROW`, `OTHER`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Edit => "EDIT",
            ChangeType::InsertRow => "INSERT_ROW",
            ChangeType::RemoveRow => "REMOVE_ROW",
            ChangeType::Other => "OTHER",
        }
    }

    /// Parses a wire name; `None` for anything else (names are case-sensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "EDIT" => ChangeType::Edit,
            "INSERT_ROW" => ChangeType::InsertRow,
            "REMOVE_ROW" => ChangeType::RemoveRow,
            "OTHER" => ChangeType::Other,
            _ => return None,
        })
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ChangeType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ChangeType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChangeType::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown changeType {s:?} (expected EDIT, INSERT_ROW, REMOVE_ROW or OTHER)"
            ))
        })
    }
}

/// The edited rectangle of an `EDIT`, 1-based and inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditRange {
    /// First edited row.
    pub start_row: u32,
    /// Last edited row.
    pub end_row: u32,
    /// First edited column.
    pub start_column: u32,
    /// Last edited column.
    pub end_column: u32,
}

impl EditRange {
    /// Number of rows of the rectangle (0 if it is inverted).
    pub fn height(&self) -> u32 {
        (self.end_row + 1).saturating_sub(self.start_row)
    }
}

/// One edited row: its 1-based number and its whole contents from column 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadRow {
    /// 1-based row number.
    pub row: u32,
    /// The row from column 1 to `max(header.len(), range.end_column)`, rendered like the values
    /// API with `UNFORMATTED_VALUE` and `SERIAL_NUMBER` (empty cells are `""`).
    pub values: Vec<Value>,
}

/// The body of a webhook delivery, version 1. Field order is the wire order.
///
/// Unknown fields are ignored; a different `version` is rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Always [`PAYLOAD_VERSION`].
    pub version: u32,
    /// The spreadsheet.
    pub spreadsheet_id: String,
    /// The sheet (tab) id.
    pub sheet_id: i32,
    /// The sheet title at the time of the edit.
    pub sheet_name: String,
    /// What happened.
    pub change_type: ChangeType,
    /// Unique per event; duplicates carry the same id.
    pub event_id: String,
    /// Unix time of the edit, milliseconds.
    pub timestamp: u64,
    /// Who edited (may be empty when Google withholds it).
    pub user: String,
    /// The edited rectangle (`EDIT` only; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<EditRange>,
    /// Row 1 from column 1 to its last non-empty cell.
    pub header: Vec<Value>,
    /// The edited rows in ascending order (`EDIT` only; empty otherwise).
    pub rows: Vec<PayloadRow>,
}

/// Why a body is not a valid version 1 payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// The body is not JSON (or not UTF-8).
    MalformedJson(String),
    /// `version` is missing, not a number, or not [`PAYLOAD_VERSION`].
    UnsupportedVersion(String),
    /// The JSON does not have the version 1 shape or breaks one of its rules.
    Invalid(String),
}

impl PayloadError {
    /// The stable reason code used in error bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::MalformedJson(_) => "malformed_json",
            PayloadError::UnsupportedVersion(_) => "unsupported_version",
            PayloadError::Invalid(_) => "invalid_payload",
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        match self {
            PayloadError::MalformedJson(m)
            | PayloadError::UnsupportedVersion(m)
            | PayloadError::Invalid(m) => m,
        }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for PayloadError {}

fn invalid(msg: impl Into<String>) -> PayloadError {
    PayloadError::Invalid(msg.into())
}

impl WebhookPayload {
    /// Parses and [validates](WebhookPayload::validate) a body.
    pub fn from_json(body: &[u8]) -> Result<Self, PayloadError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| PayloadError::MalformedJson(format!("body is not valid JSON: {e}")))?;
        let Value::Object(obj) = &v else {
            return Err(invalid("body must be a JSON object"));
        };
        match obj.get("version") {
            None => {
                return Err(PayloadError::UnsupportedVersion(
                    "missing \"version\" (expected 1)".into(),
                ))
            }
            Some(ver) if ver.as_u64() != Some(u64::from(PAYLOAD_VERSION)) => {
                return Err(PayloadError::UnsupportedVersion(format!(
                    "unsupported payload version {ver} (this receiver understands version 1)"
                )))
            }
            Some(_) => {}
        }
        let p: WebhookPayload = serde_json::from_value(v)
            .map_err(|e| invalid(format!("payload does not match version 1: {e}")))?;
        p.validate()?;
        Ok(p)
    }

    /// Checks the rules of the contract that serde cannot: version, ids, `range`/`rows` only
    /// for `EDIT`, row numbers ≥ 1, ascending, one per row of `range`, row widths, and sizes.
    pub fn validate(&self) -> Result<(), PayloadError> {
        if self.version != PAYLOAD_VERSION {
            return Err(PayloadError::UnsupportedVersion(format!(
                "unsupported payload version {} (this receiver understands version 1)",
                self.version
            )));
        }
        for (name, value) in [
            ("spreadsheetId", &self.spreadsheet_id),
            ("eventId", &self.event_id),
        ] {
            if value.is_empty() {
                return Err(invalid(format!("\"{name}\" must not be empty")));
            }
        }
        for (name, value) in [
            ("spreadsheetId", &self.spreadsheet_id),
            ("sheetName", &self.sheet_name),
            ("eventId", &self.event_id),
            ("user", &self.user),
        ] {
            if value.len() > MAX_ID_LEN {
                return Err(invalid(format!(
                    "\"{name}\" is {} bytes long (at most {MAX_ID_LEN})",
                    value.len()
                )));
            }
        }
        if self.sheet_id < 0 {
            return Err(invalid(format!(
                "\"sheetId\" must not be negative (got {})",
                self.sheet_id
            )));
        }
        if self.header.len() > MAX_COLUMNS {
            return Err(invalid(format!(
                "\"header\" has {} cells (at most {MAX_COLUMNS})",
                self.header.len()
            )));
        }
        check_cells("header", &self.header)?;
        if self.change_type != ChangeType::Edit {
            if self.range.is_some() {
                return Err(invalid(format!(
                    "\"range\" is only allowed for EDIT, not {}",
                    self.change_type
                )));
            }
            if !self.rows.is_empty() {
                return Err(invalid(format!(
                    "\"rows\" must be empty for {} (got {} rows)",
                    self.change_type,
                    self.rows.len()
                )));
            }
            return Ok(());
        }
        let Some(r) = self.range else {
            return Err(invalid("\"range\" is required for EDIT"));
        };
        self.check_edit(r)
    }

    /// The rules of an `EDIT`'s range and rows: 1-based, not inverted, within the limits, one
    /// row per row of the range in ascending order, each as wide as the header or the range.
    fn check_edit(&self, r: EditRange) -> Result<(), PayloadError> {
        if r.start_row < 1 || r.start_column < 1 {
            return Err(invalid(format!(
                "\"range\" is 1-based: startRow {} and startColumn {} must be at least 1",
                r.start_row, r.start_column
            )));
        }
        if r.end_row < r.start_row || r.end_column < r.start_column {
            return Err(invalid(format!(
                "\"range\" is inverted: rows {}..={}, columns {}..={}",
                r.start_row, r.end_row, r.start_column, r.end_column
            )));
        }
        if r.end_row > MAX_ROW_NUMBER {
            return Err(invalid(format!(
                "\"range\" ends at row {} (at most {MAX_ROW_NUMBER})",
                r.end_row
            )));
        }
        if r.end_column as usize > MAX_COLUMNS {
            return Err(invalid(format!(
                "\"range\" ends at column {} (at most {MAX_COLUMNS})",
                r.end_column
            )));
        }
        if self.rows.len() > MAX_ROWS {
            return Err(invalid(format!(
                "\"rows\" has {} entries (at most {MAX_ROWS})",
                self.rows.len()
            )));
        }
        if self.rows.len() != r.height() as usize {
            return Err(invalid(format!(
                "\"rows\" must hold one entry per row of the range ({} rows), got {}",
                r.height(),
                self.rows.len()
            )));
        }
        let width = self.header.len().max(r.end_column as usize);
        for (i, row) in self.rows.iter().enumerate() {
            let expected = r.start_row + i as u32;
            if row.row < 1 {
                return Err(invalid("row numbers are 1-based (got row 0)"));
            }
            if row.row < r.start_row || row.row > r.end_row {
                return Err(invalid(format!(
                    "row {} is outside the edited range (rows {}..={})",
                    row.row, r.start_row, r.end_row
                )));
            }
            if row.row != expected {
                return Err(invalid(format!(
                    "rows must be in ascending order without gaps: entry {i} is row {}, expected {expected}",
                    row.row
                )));
            }
            if row.values.len() != width {
                return Err(invalid(format!(
                    "row {} has {} values, expected {width} (max of header length {} and endColumn {})",
                    row.row,
                    row.values.len(),
                    self.header.len(),
                    r.end_column
                )));
            }
            check_cells("rows[].values", &row.values)?;
        }
        Ok(())
    }

    /// The body as sent on the wire: compact JSON with the contract's key order.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a payload always serialises")
    }

    /// `floor(timestamp / 1000)`: the value of the `X-Sheetsync-Timestamp` header.
    pub fn timestamp_secs(&self) -> u64 {
        self.timestamp / 1000
    }
}

/// Cells are scalars: numbers, strings, booleans (`""` for empty). Arrays, objects and `null`
/// are not values the Sheets API renders.
fn check_cells(what: &str, cells: &[Value]) -> Result<(), PayloadError> {
    for (i, c) in cells.iter().enumerate() {
        if matches!(c, Value::Null | Value::Array(_) | Value::Object(_)) {
            return Err(invalid(format!(
                "{what}[{i}] must be a number, string or boolean (got {c})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_type_round_trip() {
        for c in [
            ChangeType::Edit,
            ChangeType::InsertRow,
            ChangeType::RemoveRow,
            ChangeType::Other,
        ] {
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<ChangeType>(&j).unwrap(), c);
        }
        let e = serde_json::from_str::<ChangeType>("\"FORMAT\"").unwrap_err();
        assert!(
            e.to_string().contains("unknown changeType \"FORMAT\""),
            "{e}"
        );
    }

    #[test]
    fn wire_order_is_the_contract_order() {
        let body = br##"{"version":1,"spreadsheetId":"s","sheetId":0,"sheetName":"Sheet1","changeType":"EDIT","eventId":"e","timestamp":1767225600123,"user":"a@example.com","range":{"startRow":2,"endRow":3,"startColumn":1,"endColumn":4},"header":["id","name","qty","when"],"rows":[{"row":2,"values":[42,"Widget","#DIV/0!",43831]},{"row":3,"values":["","","",""]}]}"##;
        let p = WebhookPayload::from_json(body).unwrap();
        assert_eq!(p.to_json(), body.to_vec());
        assert_eq!(p.timestamp_secs(), 1_767_225_600);
    }
}
