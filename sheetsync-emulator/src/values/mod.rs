//! Cell values: input parsing, number formatting, formulas, rendering, reference shifting,
//! and the operations on a spreadsheet's grid (values-API reads and writes, structural
//! changes).
//!
//! Layers, lowest first: `dates`, `input`, `format`; `formula` (evaluates, uses those);
//! `render` (cells for the API, evaluates formulas); `shift` (formula text only); `ops` and
//! `dimension` (change a spreadsheet, use all of them).

pub mod dates;
pub mod dimension;
pub mod format;
pub mod formula;
pub mod input;
pub mod ops;
pub mod render;
pub mod shift;

pub use formula::{Eff, ErrKind, Evaluator};
pub use input::InputOption;
pub use render::{DateRender, RenderOpts, ValueRender};
