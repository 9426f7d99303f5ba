//! `valueRenderOption` / `dateTimeRenderOption` (spec §5.2).

use serde_json::Value;

use super::format::{format_number, json_number};
use super::formula::{Eff, Evaluator};
use crate::model::{Cell, CellValue, NumberFormat};

/// `ValueRenderOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRender {
    /// Calculated and formatted (strings).
    Formatted,
    /// Calculated, not formatted.
    Unformatted,
    /// Formulas as text; other cells as unformatted.
    Formula,
}

impl ValueRender {
    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FORMATTED_VALUE" => Some(ValueRender::Formatted),
            "UNFORMATTED_VALUE" => Some(ValueRender::Unformatted),
            "FORMULA" => Some(ValueRender::Formula),
            _ => None,
        }
    }
}

/// `DateTimeRenderOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRender {
    /// Serial numbers.
    Serial,
    /// Strings in the cell's date format.
    FormattedString,
}

impl DateRender {
    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SERIAL_NUMBER" => Some(DateRender::Serial),
            "FORMATTED_STRING" => Some(DateRender::FormattedString),
            _ => None,
        }
    }
}

/// Both render options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOpts {
    /// Value render option.
    pub value: ValueRender,
    /// Date-time render option.
    pub date: DateRender,
}

impl Default for RenderOpts {
    fn default() -> Self {
        RenderOpts {
            value: ValueRender::Formatted,
            date: DateRender::Serial,
        }
    }
}

/// Renders a calculated value as FORMATTED_VALUE text.
pub fn formatted(eff: &Eff, fmt: Option<&NumberFormat>) -> String {
    match eff {
        Eff::Empty => String::new(),
        Eff::Num(n) => format_number(*n, fmt),
        Eff::Text(s) => s.clone(),
        Eff::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Eff::Err(e) => e.text().into(),
    }
}

/// Renders a calculated value per the options (not FORMULA).
fn render_eff(eff: &Eff, fmt: Option<&NumberFormat>, opts: RenderOpts) -> Value {
    match opts.value {
        ValueRender::Formatted => Value::String(formatted(eff, fmt)),
        _ => match eff {
            Eff::Empty => Value::String(String::new()),
            Eff::Num(n) => {
                if opts.date == DateRender::FormattedString
                    && fmt.is_some_and(|f| f.kind.is_temporal())
                {
                    Value::String(format_number(*n, fmt))
                } else {
                    json_number(*n)
                }
            }
            Eff::Text(s) => Value::String(s.clone()),
            Eff::Bool(b) => Value::Bool(*b),
            Eff::Err(e) => Value::String(e.text().into()),
        },
    }
}

/// Renders one stored cell as a values-API JSON value; `None` if the cell is empty.
pub fn render_cell(
    ev: &mut Evaluator<'_>,
    sheet: usize,
    r: u32,
    c: u32,
    cell: &Cell,
    opts: RenderOpts,
) -> Option<Value> {
    let fmt = cell.format.as_deref();
    let v = cell.value.as_ref()?;
    Some(match v {
        CellValue::Formula(f) if opts.value == ValueRender::Formula => Value::String(f.clone()),
        CellValue::Formula(_) => {
            let eff = ev.cell(sheet, r, c);
            render_eff(&eff, fmt, opts)
        }
        CellValue::Text(s) => Value::String(s.clone()),
        CellValue::Bool(b) => match opts.value {
            ValueRender::Formatted => Value::String(if *b { "TRUE" } else { "FALSE" }.to_string()),
            _ => Value::Bool(*b),
        },
        CellValue::Number(n) => render_eff(&Eff::Num(*n), fmt, opts),
    })
}
