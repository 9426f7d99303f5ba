//! Which sides a mapping's state belongs to: checked when the engine starts, so that state saved
//! for one spreadsheet, tab or table is never used with another (where every base would look
//! deleted, and the rows on the other side would be deleted to match).

use crate::error::{Error, ErrorKind, Result};
use crate::state::{MappingIdentity, StateDelta, StateSnapshot, StateStore};

/// Checks the stored identity against the sides' `current` one. Returns the identity to record
/// with the next commit when none is stored yet.
pub(super) fn check(
    mapping: &str,
    snap: &StateSnapshot,
    current: &MappingIdentity,
) -> Result<Option<MappingIdentity>> {
    match &snap.identity {
        Some(stored) if stored == current => Ok(None),
        Some(stored) => Err(mismatch(mapping, stored, current, snap.bases.len())),
        None => {
            if !snap.bases.is_empty() {
                // State from before identities were recorded: it is most likely this pair's,
                // and the mass-delete guard still stands between a mistake and the rows.
                tracing::warn!(
                    mapping,
                    sheet = %current.sheet,
                    db = %current.db,
                    bases = snap.bases.len(),
                    "the saved state does not say which sheet and table it belongs to; recording the current ones"
                );
            }
            Ok(Some(current.clone()))
        }
    }
}

fn mismatch(
    mapping: &str,
    stored: &MappingIdentity,
    current: &MappingIdentity,
    bases: usize,
) -> Error {
    let mut changed = Vec::new();
    if stored.sheet != current.sheet {
        changed.push(format!(
            "the Sheet side was {} and is now {}",
            stored.sheet, current.sheet
        ));
    }
    if stored.db != current.db {
        changed.push(format!(
            "the database side was {} and is now {}",
            stored.db, current.db
        ));
    }
    Error::new(
        ErrorKind::IdentityMismatch,
        format!(
            "mapping {mapping:?} points at other tables than its saved state belongs to: {}. \
             The state remembers {bases} rows; used with other tables they would all look deleted \
             and be deleted on the other side, so the engine refuses to run. If the configuration \
             is wrong, fix it. If the mapping was moved on purpose, start it afresh \
             (`sheetsync reset --mapping {mapping}`, or `EngineBuilder::start_afresh`): the next \
             sync merges both sides as they are and deletes nothing.",
            changed.join("; ")
        ),
    )
    .with_operation("state.load")
}

/// Forgets the mapping's saved state and records `current` in one commit; returns the empty
/// state that now stands (the clock is kept, so it never runs backwards).
pub(super) async fn start_afresh(
    store: &dyn StateStore,
    mapping: &str,
    current: &MappingIdentity,
    fence: Option<u64>,
) -> Result<StateSnapshot> {
    let old = store.load(mapping).await?;
    tracing::warn!(
        mapping,
        sheet = %current.sheet,
        db = %current.db,
        forgotten_bases = old.bases.len(),
        forgotten_pending_deletes = old.pending_deletes.len(),
        "starting the mapping afresh: the next sync merges both sides and deletes nothing"
    );
    let delta = StateDelta {
        fence,
        reset: true,
        identity: Some(current.clone()),
        clock: old.clock,
        ..StateDelta::default()
    };
    store
        .commit(mapping, &delta)
        .await
        .map_err(|e| e.with_operation("state.reset"))?;
    let mut fresh = StateSnapshot {
        clock: old.clock,
        ..StateSnapshot::default()
    };
    delta.apply_to(&mut fresh);
    Ok(fresh)
}
