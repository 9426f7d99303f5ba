//! What operators and status pages see and decide: held rows, conflicts and pending deletes.
//!
//! Reading never waits for a running cycle: it reads a copy of the state published at the end of
//! every cycle and after every decision. A decision (resolve a conflict, approve or reject
//! deletes) is applied and committed at once when no cycle runs; while one runs, it is checked
//! against the published copy, kept in an inbox, and applied first thing by the next cycle,
//! which the decision wakes.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};

use chrono::Utc;

use super::deletes::{waiting, DeleteSelection};
use super::{Engine, EngineState, Event, QueueChange};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{RowKey, Side};
use crate::state::{Choice, ConflictRecord, DeleteDecision, HeldRow, PendingDelete, StateDelta};

/// The state as status callers see it.
#[derive(Debug, Clone, Default)]
pub(super) struct Published {
    held: Vec<HeldRow>,
    conflicts: Vec<ConflictRecord>,
    /// Oldest first.
    queue: Vec<PendingDelete>,
}

/// A decision made while a cycle was running.
pub(super) enum Decision {
    Resolve(RowKey, Choice),
    Deletes(DeleteSelection, DeleteDecision),
    AllowDeletes,
}

impl Engine {
    /// Rows held back now.
    pub async fn held(&self) -> Vec<HeldRow> {
        self.published().held.clone()
    }

    /// Conflicts kept for people now.
    pub async fn conflicts(&self) -> Vec<ConflictRecord> {
        self.published().conflicts.clone()
    }

    /// The pending deletes, oldest first.
    pub async fn pending_deletes(&self) -> Vec<PendingDelete> {
        self.published().queue.clone()
    }

    /// Approves every delete waiting in the queue and lets the next cycle's deletes through the
    /// mass-delete guard. Prefer [`Engine::approve_deletes`], which names what it approves.
    pub async fn allow_deletes_once(&self) {
        match self.state.try_lock() {
            Ok(mut st) => st.allow_deletes = true,
            Err(_) => self.defer(Decision::AllowDeletes),
        }
        self.wake();
    }

    /// Resolves a kept conflict: the next cycle makes both sides hold `choice`.
    ///
    /// While a cycle runs, the choice is checked against the conflicts it started with and
    /// applied when it ends.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    ///     .resolver(Manual) // every conflict waits for a person
    ///     .build()
    ///     .await?;
    /// db.upsert(row("A-1", 5));
    /// engine.run_once().await?;
    /// // Both sides change the same row.
    /// sheet.upsert(row("A-1", 7));
    /// db.upsert(row("A-1", 9));
    /// engine.run_once().await?;
    /// let kept = engine.conflicts().await;
    /// assert_eq!(kept.len(), 1);
    /// engine.resolve_conflict(&kept[0].key, Choice::Side(Side::Sheet)).await?;
    /// engine.run_once().await?;
    /// assert_eq!(db.rows(), vec![row("A-1", 7)]);
    /// assert!(engine.conflicts().await.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn resolve_conflict(&self, key: &RowKey, choice: Choice) -> Result<()> {
        match self.state.try_lock() {
            Ok(mut st) => {
                self.resolve_now(&mut st, key, choice).await?;
                self.publish(&st);
            }
            Err(_) => {
                let kept = self.published().conflicts.iter().any(|c| &c.key == key);
                self.check_choice(kept, key, &choice)?;
                self.defer(Decision::Resolve(key.clone(), choice));
            }
        }
        self.wake();
        Ok(())
    }

    /// Approves the selected pending deletes: the next cycle deletes those rows on the other
    /// side too (approved deletes do not count against the guard's window). Returns how many
    /// were approved.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// # let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    /// #     .build()
    /// #     .await?;
    /// for sku in ["A-1", "A-2", "A-3"] {
    ///     db.upsert(row(sku, 1));
    /// }
    /// engine.run_once().await?;
    /// // Someone deletes two of the three rows in the Sheet: more than the guard's half.
    /// for sku in ["A-1", "A-2"] {
    ///     sheet.delete(&RowKey::from_values(&[sku.into()]));
    /// }
    /// engine.run_once().await?;
    /// assert_eq!(engine.pending_deletes().await.len(), 2);
    /// assert_eq!(db.rows().len(), 3, "parked, not applied");
    /// assert_eq!(engine.approve_deletes(&DeleteSelection::All).await?, 2);
    /// engine.run_once().await?;
    /// assert_eq!(db.rows(), vec![row("A-3", 1)]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn approve_deletes(&self, which: &DeleteSelection) -> Result<usize> {
        self.decide_deletes(which, DeleteDecision::Approve).await
    }

    /// Rejects the selected pending deletes: the next cycle restores those rows on the side
    /// that deleted them, as they are on the other side. Returns how many were rejected.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use sheetsync_core::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<()> {
    /// # let schema = TableSchema::new(
    /// #     "stock",
    /// #     vec![Column::new("sku", ColumnType::Text).nullable(false), Column::new("qty", ColumnType::Int)],
    /// #     &["sku"],
    /// # )?;
    /// # let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
    /// # let db = Arc::new(MemoryTable::new("db", schema.clone()));
    /// # let row = |sku: &str, qty: i64| Row::new(vec![sku.into(), qty.into()]);
    /// # let engine = Engine::builder(MappingConfig::new("stock", &["sku"]), sheet.clone(), db.clone())
    /// #     .build()
    /// #     .await?;
    /// for sku in ["A-1", "A-2", "A-3"] {
    ///     db.upsert(row(sku, 1));
    /// }
    /// engine.run_once().await?;
    /// for sku in ["A-1", "A-2"] {
    ///     sheet.delete(&RowKey::from_values(&[sku.into()]));
    /// }
    /// engine.run_once().await?;
    /// let which = DeleteSelection::Keys(vec![RowKey::from_values(&["A-1".into()])]);
    /// assert_eq!(engine.reject_deletes(&which).await?, 1);
    /// engine.run_once().await?;
    /// assert_eq!(sheet.rows(), vec![row("A-1", 1), row("A-3", 1)], "A-1 is back in the Sheet");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reject_deletes(&self, which: &DeleteSelection) -> Result<usize> {
        self.decide_deletes(which, DeleteDecision::Reject).await
    }

    async fn decide_deletes(
        &self,
        which: &DeleteSelection,
        decision: DeleteDecision,
    ) -> Result<usize> {
        let decided = match self.state.try_lock() {
            Ok(mut st) => {
                let decided = self.decide_now(&mut st, which, decision).await?;
                self.publish(&st);
                decided
            }
            Err(_) => {
                let published = self.published();
                let queue: BTreeMap<RowKey, PendingDelete> = published
                    .queue
                    .iter()
                    .map(|p| (p.key.clone(), p.clone()))
                    .collect();
                let decided = selected(&queue, which, decision)?.len();
                if decided > 0 {
                    self.defer(Decision::Deletes(which.clone(), decision));
                }
                decided
            }
        };
        if decided > 0 {
            self.wake();
        }
        Ok(decided)
    }

    /// Copies what status callers see out of `st`.
    pub(super) fn publish(&self, st: &EngineState) {
        let mut queue: Vec<PendingDelete> = st.queue.values().cloned().collect();
        queue.sort_by(|a, b| a.queued_at.cmp(&b.queued_at).then(a.key.cmp(&b.key)));
        let view = Published {
            held: st.held.clone(),
            conflicts: st.conflicts.values().cloned().collect(),
            queue,
        };
        *self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    fn published(&self) -> Arc<Published> {
        self.published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn defer(&self, d: Decision) {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(d);
    }

    /// Applies the decisions made while the last cycle ran. One that no longer applies (its
    /// conflict settled meanwhile) is reported and dropped; one whose commit failed waits for
    /// the next cycle.
    pub(super) async fn apply_deferred(&self, st: &mut EngineState) {
        let decisions =
            std::mem::take(&mut *self.inbox.lock().unwrap_or_else(PoisonError::into_inner));
        for d in decisions {
            let result = match &d {
                Decision::Resolve(k, choice) => self.resolve_now(st, k, choice.clone()).await,
                Decision::Deletes(which, decision) => {
                    self.decide_now(st, which, *decision).await.map(|_| ())
                }
                Decision::AllowDeletes => {
                    st.allow_deletes = true;
                    Ok(())
                }
            };
            let Err(e) = result else { continue };
            let gone = matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidData);
            tracing::warn!(mapping = %self.mapping.name, error = %e, "a decision made during the last cycle was not applied");
            self.emit(Event::Error {
                side: None,
                kind: e.kind(),
                status: e.status(),
                message: format!("a decision made during the last cycle was not applied: {e}"),
            });
            if !gone {
                self.defer(d);
            }
        }
    }

    /// Checks that a conflict is kept for `key` and that a chosen row fits it.
    fn check_choice(&self, kept: bool, key: &RowKey, choice: &Choice) -> Result<()> {
        if !kept {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no conflict is kept for row {key}"),
            ));
        }
        if let Choice::Row(row) = choice {
            if row.0.len() != self.schema.columns.len()
                || row.key(&self.schema).as_ref() != Some(key)
            {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "the chosen row must have {} values and key {key}",
                        self.schema.columns.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn resolve_now(&self, st: &mut EngineState, key: &RowKey, choice: Choice) -> Result<()> {
        self.check_choice(st.conflicts.contains_key(key), key, &choice)?;
        let mut choices = st.choices.clone();
        choices.insert(key.clone(), choice);
        let delta = StateDelta {
            fence: self.fence,
            choices: Some(choices.clone().into_iter().collect()),
            clock: self.clock.last(),
            ..Default::default()
        };
        self.store.commit(&self.mapping.name, &delta).await?;
        st.choices = choices;
        st.pending.insert(key.clone());
        Ok(())
    }

    async fn decide_now(
        &self,
        st: &mut EngineState,
        which: &DeleteSelection,
        decision: DeleteDecision,
    ) -> Result<usize> {
        let chosen = selected(&st.queue, which, decision)?;
        if chosen.is_empty() {
            return Ok(0);
        }
        let mut queue = st.queue.clone();
        let mut per_side: BTreeMap<Side, usize> = BTreeMap::new();
        for k in &chosen {
            if let Some(p) = queue.get_mut(k) {
                p.decision = Some(decision);
                *per_side.entry(p.deleted_on).or_default() += 1;
            }
        }
        let delta = StateDelta {
            fence: self.fence,
            pending_deletes: Some(queue.values().cloned().collect()),
            clock: self.clock.last(),
            ..StateDelta::default()
        };
        if let Err(e) = self.store.commit(&self.mapping.name, &delta).await {
            st.reload = true;
            return Err(e.with_operation("state.commit"));
        }
        st.queue = queue;
        let change = match decision {
            DeleteDecision::Approve => QueueChange::Approved,
            DeleteDecision::Reject => QueueChange::Rejected,
        };
        let waiting = waiting(&st.queue);
        self.announce(
            per_side
                .into_iter()
                .map(|(deleted_on, rows)| Event::DeleteQueue {
                    change,
                    deleted_on,
                    rows,
                    waiting,
                })
                .collect(),
        );
        Ok(chosen.len())
    }
}

/// The keys of the pending deletes `which` selects that are not already so decided; an error
/// names the keys that have no pending delete.
fn selected(
    queue: &BTreeMap<RowKey, PendingDelete>,
    which: &DeleteSelection,
    decision: DeleteDecision,
) -> Result<Vec<RowKey>> {
    if let DeleteSelection::Keys(keys) = which {
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !queue.contains_key(*k))
            .map(|k| k.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no pending delete for row(s) {}", missing.join(", ")),
            ));
        }
    }
    let now = Utc::now();
    Ok(queue
        .values()
        .filter(|p| which.matches(p, now) && p.decision != Some(decision))
        .map(|p| p.key.clone())
        .collect())
}
