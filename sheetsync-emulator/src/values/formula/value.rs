//! What a formula computes to: Sheets' error values, the effective value, and the coercions
//! between them that operators and functions share.

use crate::model::CellValue;
use crate::values::format::auto_number;
use crate::values::input::parse_user_entered;

/// Sheets error values (`ErrorValue.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// `#DIV/0!`
    Div0,
    /// `#VALUE!`
    Value,
    /// `#REF!`
    Ref,
    /// `#NAME?`
    Name,
    /// `#N/A`
    Na,
    /// `#NUM!`
    Num,
    /// `#NULL!`
    Null,
    /// `#ERROR!`
    Error,
}

impl ErrKind {
    /// The text a cell shows.
    pub fn text(self) -> &'static str {
        match self {
            ErrKind::Div0 => "#DIV/0!",
            ErrKind::Value => "#VALUE!",
            ErrKind::Ref => "#REF!",
            ErrKind::Name => "#NAME?",
            ErrKind::Na => "#N/A",
            ErrKind::Num => "#NUM!",
            ErrKind::Null => "#NULL!",
            ErrKind::Error => "#ERROR!",
        }
    }

    /// `ErrorValue.type`.
    pub fn api_type(self) -> &'static str {
        match self {
            ErrKind::Div0 => "DIVIDE_BY_ZERO",
            ErrKind::Value => "VALUE",
            ErrKind::Ref => "REF",
            ErrKind::Name => "NAME",
            ErrKind::Na => "N_A",
            ErrKind::Num => "NUM",
            ErrKind::Null => "NULL_VALUE",
            ErrKind::Error => "ERROR",
        }
    }

    /// `ErrorValue.message`.
    pub fn message(self) -> &'static str {
        match self {
            ErrKind::Div0 => "Function DIVIDE parameter 2 cannot be zero.",
            ErrKind::Value => "A value used in the formula is of the wrong type.",
            ErrKind::Ref => "Reference does not exist or circular dependency detected.",
            ErrKind::Name => "Unknown function or named range.",
            ErrKind::Na => "Value not available.",
            ErrKind::Num => "Invalid numeric value.",
            ErrKind::Null => "Null value.",
            ErrKind::Error => "Formula parse error.",
        }
    }
}

/// A calculated (effective) value.
#[derive(Debug, Clone, PartialEq)]
pub enum Eff {
    /// Nothing.
    Empty,
    /// A number.
    Num(f64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// An error.
    Err(ErrKind),
}

/// A value as a number: empty is 0, booleans 1/0, text only if it reads as a number.
pub(super) fn num(v: &Eff) -> Result<f64, ErrKind> {
    match v {
        Eff::Empty => Ok(0.0),
        Eff::Num(n) => Ok(*n),
        Eff::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Eff::Text(s) => match parse_user_entered(s).0 {
            Some(CellValue::Number(n)) => Ok(n),
            _ => Err(ErrKind::Value),
        },
        Eff::Err(e) => Err(*e),
    }
}

/// A value as text: numbers in the automatic format, booleans `TRUE`/`FALSE`.
pub(super) fn text(v: &Eff) -> Result<String, ErrKind> {
    match v {
        Eff::Empty => Ok(String::new()),
        Eff::Num(n) => Ok(auto_number(*n)),
        Eff::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.to_string()),
        Eff::Text(s) => Ok(s.clone()),
        Eff::Err(e) => Err(*e),
    }
}

/// A value as a condition: `"true"`/`"false"` text (any case) or a non-zero number.
pub(super) fn truthy(v: &Eff) -> Result<bool, ErrKind> {
    match v {
        Eff::Text(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Eff::Text(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Eff::Text(_) => Err(ErrKind::Value),
        other => Ok(num(other)? != 0.0),
    }
}
