//! One side's row as the merge sees it, shared by planning, write intents and pending deletes,
//! which each adjust it.

use crate::merge::SideState;
use crate::model::Row;

/// One side's row as the merge sees it, and what the side really holds when that differs: a
/// person's edit that a concurrent write overwrote, the engine's own unsaved write, a rejected
/// delete.
#[derive(Debug, Clone, Copy)]
pub(super) struct View<'a> {
    /// What the merge sees.
    pub merge: SideState<'a>,
    /// What the side holds, when it is not `merge.row` (`Some(None)`: absent).
    pub holds: Option<Option<&'a Row>>,
    /// The side's read showed the row (or its absence); otherwise it is assumed from the base.
    pub observed: bool,
}

impl<'a> View<'a> {
    /// What the side holds.
    pub fn holds(&self) -> Option<&'a Row> {
        self.holds.unwrap_or(self.merge.row)
    }
}
