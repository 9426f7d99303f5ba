//! Cell values: input parsing, rendering, formulas, and the values-API operations on a
//! spreadsheet (read a range, write a matrix, append, clear).

pub mod dates;
pub mod formula;
pub mod input;
pub mod ops;
pub mod render;

pub use formula::{Eff, ErrKind, Evaluator};
pub use input::InputOption;
pub use render::{DateRender, RenderOpts, ValueRender};
