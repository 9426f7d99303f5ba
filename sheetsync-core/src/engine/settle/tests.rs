//! The settle step alone: state, work and outcomes in, state delta and events out.

use super::*;
use crate::memory::key_of;
use crate::model::Value;
use crate::state::WriteIntent;

fn row(id: i64, name: &str) -> Row {
    Row::new(vec![Value::Int(id), Value::Text(name.into())])
}

fn cx() -> Context<'static> {
    Context {
        mapping: "items",
        tables: ["sheet items", "db items"],
        guard_window: Duration::from_secs(60),
        now: 1000,
        clock: 1001,
        wall_ms: 5_000_000,
        instant: Instant::now(),
    }
}

fn conflict(id: i64, sheet: &str) -> ConflictRecord {
    ConflictRecord {
        key: key_of(id),
        fields: Vec::new(),
        deleted_on: None,
        sheet: Some(row(id, sheet)),
        db: Some(row(id, "db")),
        at: 7,
        reason: None,
    }
}

fn intent(id: i64, target: Option<Row>) -> WriteIntent {
    WriteIntent {
        key: key_of(id),
        target,
        base: None,
        sides: Vec::new(),
    }
}

fn settle_with(st: &EngineState, work: &Work, outcomes: &Outcomes) -> Settled {
    settle(st, &Default::default(), work, outcomes, &cx())
}

#[test]
fn a_row_written_on_both_sides_gets_its_target_as_base_and_its_intent_is_done() {
    let mut st = EngineState::default();
    st.pending.insert(key_of(1));
    st.intents.insert(key_of(1), intent(1, Some(row(1, "new"))));
    let mut work = Work::default();
    work.targets.insert(key_of(1), Some(row(1, "new")));
    let s = settle_with(&st, &work, &Outcomes::default());
    assert_eq!(
        s.delta.upsert,
        vec![(key_of(1), RowBase::agreed(Some(row(1, "new")), 1000))]
    );
    assert!(s.pending.is_empty());
    assert_eq!(s.delta.pending, Some(Vec::new()), "the retry is over");
    assert_eq!(s.delta.intents_done, vec![key_of(1)]);
    assert!(s.delta.intents_cleared);
    assert_eq!(s.delta.clock, 1001);
    assert!(s.events.is_empty(), "{:?}", s.events);
}

#[test]
fn a_failed_write_keeps_the_row_to_retry_without_a_base() {
    let st = EngineState::default();
    let mut work = Work::default();
    work.targets.insert(key_of(1), Some(row(1, "new")));
    work.agreed.insert(key_of(2), Some(row(2, "same")));
    let mut outcomes = Outcomes::default();
    outcomes.failed.insert(key_of(1), Failure::Batch);
    let s = settle_with(&st, &work, &outcomes);
    assert_eq!(
        s.delta.upsert,
        vec![(key_of(2), RowBase::agreed(Some(row(2, "same")), 1000))]
    );
    assert_eq!(s.pending, BTreeSet::from([key_of(1)]));
    assert!(s.held.is_empty(), "a failed batch is not the row's fault");
    assert!(s.stuck.is_empty());
}

#[test]
fn a_refused_row_is_held_with_the_refusing_table_and_counts_towards_parking() {
    let st = EngineState::default();
    let mut work = Work::default();
    work.targets.insert(key_of(1), Some(row(1, "new")));
    let mut outcomes = Outcomes::default();
    outcomes
        .failed
        .insert(key_of(1), Failure::Refused(Side::Db, "too long".into()));
    let s = settle_with(&st, &work, &outcomes);
    assert_eq!(s.held.len(), 1);
    assert_eq!(s.held[0].reason, "db items refused the row: too long");
    assert_eq!(s.held[0].side, Some(Side::Db));
    assert_eq!(s.stuck.get(&key_of(1)).map(|s| s.attempts), Some(1));
    assert!(matches!(&s.events[..], [Event::Held(h)] if h == &s.held[0]));
    assert_eq!(s.delta.held, Some(s.held.clone()));
}

#[test]
fn a_held_row_that_moved_is_not_announced_again() {
    let held_at = |cell: &str| HeldRow {
        key: Some(key_of(1)),
        side: Some(Side::Sheet),
        locator: Some(format!("'Sheet1'!A{cell}")),
        reason: format!("column \"qty\" ({cell}): \"abc\" is not a valid integer"),
    };
    let st = EngineState {
        held: vec![held_at("D3")],
        ..Default::default()
    };
    let mut work = Work::default();
    work.plan.held = vec![held_at("D2")];
    work.targets.insert(key_of(2), Some(row(2, "fine")));
    let s = settle_with(&st, &work, &Outcomes::default());
    assert_eq!(s.held, vec![held_at("D2")], "the state follows the row");
    assert!(
        !s.events.iter().any(|e| matches!(e, Event::Held(_))),
        "{:?}",
        s.events
    );
}

#[test]
fn only_new_or_changed_conflicts_are_announced() {
    let mut st = EngineState::default();
    st.conflicts.insert(key_of(1), conflict(1, "sheet"));
    let mut work = Work::default();
    work.plan.conflicts = vec![conflict(1, "sheet"), conflict(2, "sheet")];
    let s = settle_with(&st, &work, &Outcomes::default());
    let announced: Vec<&RowKey> = s
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Conflict(c) => Some(&c.key),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec![&key_of(2)]);
    assert_eq!(s.conflicts.len(), 2);
    assert_eq!(s.pending, BTreeSet::from([key_of(1), key_of(2)]));
    // The same conflict with other content is news.
    work.plan.conflicts = vec![conflict(1, "edited again")];
    let s = settle_with(&st, &work, &Outcomes::default());
    assert!(matches!(&s.events[..], [Event::Conflict(c)] if c.key == key_of(1)));
}

#[test]
fn a_new_base_releases_a_conflict_and_its_choice_and_a_row_no_longer_held_is_released() {
    let mut st = EngineState::default();
    st.conflicts.insert(key_of(1), conflict(1, "sheet"));
    st.choices.insert(key_of(1), Choice::Side(Side::Sheet));
    st.held.push(HeldRow {
        key: Some(key_of(2)),
        side: Some(Side::Sheet),
        locator: None,
        reason: "bad".into(),
    });
    let mut work = Work::default();
    work.targets.insert(key_of(1), Some(row(1, "sheet")));
    let s = settle_with(&st, &work, &Outcomes::default());
    assert!(s.conflicts.is_empty() && s.choices.is_empty() && s.held.is_empty());
    let released: Vec<&RowKey> = s
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Released { key } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![&key_of(1), &key_of(2)]);
    assert_eq!(s.delta.conflicts, Some(Vec::new()));
    assert_eq!(s.delta.choices, Some(Vec::new()));
}

#[test]
fn tombstones_are_pruned_only_after_two_full_reads() {
    let mut st = EngineState::default();
    st.set_base(key_of(1), RowBase::tombstone(3));
    st.set_base(key_of(2), RowBase::live(row(2, "kept"), 3));
    let work = Work::default();
    let partial = settle_with(&st, &work, &Outcomes::default());
    assert!(partial.delta.remove.is_empty());
    let mut reads: [SideRead; 2] = Default::default();
    reads[0].full = true;
    let one = settle(&st, &reads, &work, &Outcomes::default(), &cx());
    assert!(one.delta.remove.is_empty());
    reads[1].full = true;
    let both = settle(&st, &reads, &work, &Outcomes::default(), &cx());
    assert_eq!(both.delta.remove, vec![key_of(1)]);
}

#[test]
fn queued_deletes_and_tripped_guards_are_announced_after_the_rest() {
    let st = EngineState::default();
    let mut work = Work::default();
    work.plan.guard.push((Side::Db, 3, 4));
    for id in 1..=3 {
        work.queued.push(PendingDelete {
            key: key_of(id),
            deleted_on: Side::Sheet,
            row: row(id, "gone"),
            queued_at: chrono::Utc::now(),
            reason: "too many".into(),
            decision: None,
        });
    }
    work.plan.conflicts.push(conflict(9, "sheet"));
    let s = settle_with(&st, &work, &Outcomes::default());
    assert!(
        matches!(
            &s.events[..],
            [
                Event::Conflict(_),
                Event::GuardTripped {
                    side: Side::Db,
                    deletes: 3,
                    rows: 4
                },
                Event::DeleteQueue {
                    change: crate::engine::QueueChange::Queued,
                    deleted_on: Side::Sheet,
                    rows: 3,
                    waiting: 3
                }
            ]
        ),
        "{:?}",
        s.events
    );
    assert_eq!(s.queue.as_ref().map(|q| q.len()), Some(3));
    assert_eq!(s.delta.pending_deletes.as_ref().map(|q| q.len()), Some(3));
}

#[test]
fn applied_deletes_enter_the_guards_log_unless_approved() {
    let st = EngineState::default();
    let mut work = Work::default();
    work.approved_deletes.insert(key_of(2));
    let mut outcomes = Outcomes::default();
    outcomes.deleted[idx(Side::Db)] = vec![key_of(1), key_of(2)];
    let s = settle_with(&st, &work, &outcomes);
    assert_eq!(
        s.recent,
        Some(vec![RecentDeletes {
            side: Side::Db,
            at_ms: 5_000_000,
            count: 1
        }])
    );
    // Nothing deleted and nothing in the log: the log stays as it is.
    let s = settle_with(&st, &work, &Outcomes::default());
    assert_eq!(s.recent, None);
}

#[test]
fn settling_the_same_inputs_twice_gives_the_same_delta() {
    let mut st = EngineState::default();
    st.set_base(key_of(3), RowBase::live(row(3, "old"), 3));
    st.intents.insert(key_of(3), intent(3, Some(row(3, "x"))));
    let mut work = Work::default();
    work.targets.insert(key_of(1), Some(row(1, "a")));
    work.agreed.insert(key_of(2), None);
    work.intents_obsolete.push(key_of(3));
    let mut outcomes = Outcomes::default();
    outcomes
        .generated
        .push((key_of(4), RowBase::live(row(4, "generated"), 9)));
    let a = settle_with(&st, &work, &outcomes);
    let b = settle_with(&st, &work, &outcomes);
    assert_eq!(a.delta, b.delta);
    assert_eq!(a.delta.intents_done, vec![key_of(3)]);
    let keys: Vec<&RowKey> = a.delta.upsert.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![&key_of(4), &key_of(2), &key_of(1)]);
}

#[test]
fn absorbing_makes_memory_what_was_committed() {
    let mut st = EngineState::default();
    st.set_base(key_of(1), RowBase::tombstone(1));
    st.allow_deletes = true;
    let mut reads: [SideRead; 2] = Default::default();
    reads[0].full = true;
    reads[1].full = true;
    let mut work = Work {
        guard_bypassed: true,
        ..Default::default()
    };
    work.targets.insert(key_of(2), Some(row(2, "b")));
    let s = settle(&st, &reads, &work, &Outcomes::default(), &cx());
    let events = st.absorb(&reads, &work, s);
    assert!(events.is_empty());
    assert_eq!(st.bases.len(), 1, "the tombstone was pruned");
    assert_eq!(st.live_bases, 1);
    assert!(!st.allow_deletes, "a lifted guard is lifted for one cycle");
    assert!(st.last_full.iter().all(Option::is_some));
}
