//! A small formula evaluator: arithmetic, comparison, `&`, cell and range references (also on
//! other sheets) and a handful of common functions. Anything it does not know evaluates to the
//! error value Google would show (`#NAME?` for unknown functions, `#ERROR!` for parse errors).
//!
//! Text goes `lex` → `parse` → `eval`, which calls `functions`; `value` holds what they all
//! share. How references move when the grid changes is [`super::shift`].

mod eval;
mod functions;
mod lex;
mod parse;
mod value;

pub use eval::Evaluator;
pub use value::{Eff, ErrKind};
