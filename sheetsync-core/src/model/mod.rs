//! The data model: values, schemas, rows, keys and changes.

mod change;
mod decimal;
mod row;
mod schema;
mod value;

pub use change::{Change, ChangeBatch, Cursor, InvalidRow, Observation, Side, UnkeyedRow};
pub use decimal::{Decimal, ParseDecimalError};
pub use row::{KeyHashBuilder, KeyHasher, KeyMap, Row, RowHash, RowKey};
pub use schema::{Column, ColumnType, Direction, TableSchema};
pub use value::{ConvertError, Value};
