//! One cell: what was entered and how it is formatted.

use serde::{Deserialize, Serialize};

/// The value a user (or the API) entered, as Google's `ExtendedValue` stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CellValue {
    /// `numberValue` (dates and times are serial numbers).
    Number(f64),
    /// `stringValue`.
    Text(String),
    /// `boolValue`.
    Bool(bool),
    /// `formulaValue` (including the leading `=`).
    Formula(String),
}

/// Kind of a number format (`NumberFormat.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FormatKind {
    /// Plain text.
    Text,
    /// Number (possibly with grouping/decimals).
    Number,
    /// Percent.
    Percent,
    /// Currency.
    Currency,
    /// Date.
    Date,
    /// Time of day.
    Time,
    /// Date and time.
    DateTime,
    /// Scientific notation.
    Scientific,
}

impl FormatKind {
    /// The API name (`DATE_TIME`, ...).
    pub fn api_name(self) -> &'static str {
        match self {
            FormatKind::Text => "TEXT",
            FormatKind::Number => "NUMBER",
            FormatKind::Percent => "PERCENT",
            FormatKind::Currency => "CURRENCY",
            FormatKind::Date => "DATE",
            FormatKind::Time => "TIME",
            FormatKind::DateTime => "DATE_TIME",
            FormatKind::Scientific => "SCIENTIFIC",
        }
    }

    /// Parses an API name.
    pub fn from_api(s: &str) -> Option<Self> {
        Some(match s {
            "TEXT" => FormatKind::Text,
            "NUMBER" => FormatKind::Number,
            "PERCENT" => FormatKind::Percent,
            "CURRENCY" => FormatKind::Currency,
            "DATE" => FormatKind::Date,
            "TIME" => FormatKind::Time,
            "DATE_TIME" => FormatKind::DateTime,
            "SCIENTIFIC" => FormatKind::Scientific,
            _ => return None,
        })
    }

    /// Whether values of this kind are dates/times (affected by `dateTimeRenderOption`).
    pub fn is_temporal(self) -> bool {
        matches!(
            self,
            FormatKind::Date | FormatKind::Time | FormatKind::DateTime
        )
    }
}

/// `userEnteredFormat.numberFormat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberFormat {
    /// The type.
    pub kind: FormatKind,
    /// The pattern (may be empty: the locale default for the kind).
    pub pattern: String,
}

/// A stored cell. A cell without a value is empty for every values read, even if formatted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The entered value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<CellValue>,
    /// The number format, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Box<NumberFormat>>,
    /// A note attached to the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Cell {
    /// Whether the cell holds nothing at all (no value, format or note).
    pub fn is_blank(&self) -> bool {
        self.value.is_none() && self.format.is_none() && self.note.is_none()
    }

    /// Whether the cell has a value (what values reads see).
    pub fn has_value(&self) -> bool {
        self.value.is_some()
    }

    /// Number of characters of the entered value (for the 50,000-character limit).
    pub fn char_len(&self) -> usize {
        match &self.value {
            Some(CellValue::Text(s)) | Some(CellValue::Formula(s)) => s.chars().count(),
            _ => 0,
        }
    }
}
