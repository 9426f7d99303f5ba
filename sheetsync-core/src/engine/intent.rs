//! Write intents: recorded before the engine writes a row, used when it merges the row again
//! before the new base is saved (after a crash, a failed write on the other side, or a write
//! whose answer was lost).
//!
//! A side that holds an intent's target holds the engine's own write. If every side the intent
//! was writing holds it, the writes all landed and only the new base was not saved: the target
//! *is* the base, and anything that differs from it is a change made since (a delete on the other
//! side propagates, instead of being taken for an update-vs-delete and undone). Otherwise the
//! writes that landed are merged as if they had not happened: those sides are seen as they were
//! before, while the engine knows what they hold for its conditional writes.

use super::idx;
use super::view::View;
use crate::merge::SideState;
use crate::model::{Row, RowKey, Side};
use crate::state::{SideBefore, WriteIntent};

/// The intent for writing `target` to row `key`: every side whose merge view differs from the
/// target, with that view. A side that already holds the target because of an earlier intent
/// that was not seen through is recorded too (its view is still the pre-write one), so the
/// substitution carries over from intent to intent.
pub(super) fn record(
    key: &RowKey,
    target: &Option<Row>,
    base: Option<&Row>,
    views: &[View<'_>; 2],
) -> WriteIntent {
    WriteIntent {
        key: key.clone(),
        target: target.clone(),
        base: base.map(Row::hash),
        sides: Side::BOTH
            .into_iter()
            .filter(|s| views[idx(*s)].merge.row != target.as_ref())
            .map(|side| {
                let v = views[idx(side)].merge;
                SideBefore {
                    side,
                    row: v.row.cloned(),
                    at: v.at,
                }
            })
            .collect(),
    }
}

/// True when `intent` was planned against the base the row has now.
pub(super) fn applies(intent: &WriteIntent, base: Option<&Row>) -> bool {
    intent.base == base.map(Row::hash)
}

/// How a pending intent shapes a row's merge.
pub(super) struct Recovered<'a> {
    /// The base to merge against.
    pub base: Option<&'a Row>,
    /// Every write of the intent landed: `base` is its target, the row's real base now.
    pub completed: bool,
}

/// Adjusts the views of a row with a pending intent and returns the base to merge against.
pub(super) fn recover<'a>(
    intent: &'a WriteIntent,
    views: &mut [View<'a>; 2],
    base: Option<&'a Row>,
) -> Recovered<'a> {
    let target = intent.target.as_ref();
    // A side that reported a person's edit overwritten by a write is merged with that edit:
    // its write did not simply land.
    let landed = |v: &View<'_>| v.observed && v.holds.is_none() && v.merge.row == target;
    let all_landed = intent.sides.iter().all(|b| landed(&views[idx(b.side)]));
    if all_landed {
        tracing::debug!(key = %intent.key, "write intent completed: its target is the base");
        return Recovered {
            base: target,
            completed: true,
        };
    }
    for b in &intent.sides {
        let v = &mut views[idx(b.side)];
        if landed(v) {
            tracing::debug!(key = %intent.key, side = %b.side, "engine's own unsaved write: merged as before it");
            *v = View {
                merge: SideState {
                    row: b.row.as_ref(),
                    at: b.at,
                },
                holds: Some(target),
                observed: true,
            };
        }
    }
    Recovered {
        base,
        completed: false,
    }
}
