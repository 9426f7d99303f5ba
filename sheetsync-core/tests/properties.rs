//! Property tests of the merge and the engine: convergence under random edits, crashes and
//! failed writes; no echo; idempotence; resolver laws; canonical encoding round trips.
//!
//! Cases per property: 256 by default, `PROPTEST_CASES` to change.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use proptest::prelude::*;
use sheetsync_core::testkit::{arb_row, arb_value};
use sheetsync_core::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

fn schema() -> TableSchema {
    TableSchema::new(
        "p",
        vec![
            Column::new("id", ColumnType::Int).nullable(false),
            Column::new("name", ColumnType::Text),
            Column::new("qty", ColumnType::Int),
        ],
        &["id"],
    )
    .unwrap()
}

fn row(id: i64, name: u8, qty: u8) -> Row {
    Row::new(vec![
        Value::Int(id),
        Value::Text(format!("n{name}")),
        Value::Int(qty as i64),
    ])
}

/// A state store whose next commits can be made to fail: the engine "crashes" after applying
/// its writes but before persisting the new bases.
#[derive(Default)]
struct CrashingStore {
    inner: MemoryStateStore,
    fail: AtomicUsize,
}

#[async_trait]
impl StateStore for CrashingStore {
    async fn load(&self, m: &str) -> Result<StateSnapshot> {
        self.inner.load(m).await
    }
    async fn commit(&self, m: &str, d: &StateDelta) -> Result<()> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::new(ErrorKind::Connection, "crash before persist"));
        }
        self.inner.commit(m, d).await
    }
}

#[derive(Debug, Clone)]
enum Action {
    SheetUpsert(i64, u8, u8),
    SheetDelete(i64),
    DbUpsert(i64, u8, u8),
    DbDelete(i64),
    Cycle,
    /// Apply, then crash before the state is persisted; restart.
    CrashAfterApply,
    /// The database write fails after the Sheet write; then crash; restart.
    CrashBetweenSides,
    /// A write to the Sheet fails (dropped connection); the engine keeps running.
    SheetWriteFails,
    Restart,
}

fn arb_action() -> impl Strategy<Value = Action> {
    let id = 1i64..6;
    prop_oneof![
        4 => (id.clone(), 0u8..3, 0u8..3).prop_map(|(i, n, q)| Action::SheetUpsert(i, n, q)),
        2 => id.clone().prop_map(Action::SheetDelete),
        4 => (id.clone(), 0u8..3, 0u8..3).prop_map(|(i, n, q)| Action::DbUpsert(i, n, q)),
        2 => id.prop_map(Action::DbDelete),
        4 => Just(Action::Cycle),
        1 => Just(Action::CrashAfterApply),
        1 => Just(Action::CrashBetweenSides),
        1 => Just(Action::SheetWriteFails),
        1 => Just(Action::Restart),
    ]
}

struct World {
    sheet: Arc<MemoryTable>,
    db: Arc<MemoryTable>,
    store: Arc<CrashingStore>,
    mapping: MappingConfig,
}

impl World {
    fn new() -> Self {
        let mut mapping = MappingConfig::new("p", &["id"]);
        // Random schedules delete everything often; the guard has its own properties.
        mapping.guard.stop_total_wipe = false;
        mapping.guard.max_share = 1.0;
        World {
            sheet: Arc::new(MemoryTable::sheet_like("sheet", schema())),
            db: Arc::new(MemoryTable::new("db", schema())),
            store: Arc::new(CrashingStore::default()),
            mapping,
        }
    }

    async fn engine(&self) -> Engine {
        Engine::builder(self.mapping.clone(), self.sheet.clone(), self.db.clone())
            .state(self.store.clone())
            .build()
            .await
            .expect("engine builds")
    }
}

/// What was ever written to a key, by anyone.
#[derive(Default)]
struct History {
    values: BTreeMap<i64, Vec<Row>>,
    deleted: BTreeSet<i64>,
    last_was_upsert: BTreeMap<i64, bool>,
}

async fn run_schedule(actions: Vec<Action>) -> std::result::Result<(), TestCaseError> {
    let w = World::new();
    let mut e = w.engine().await;
    let mut h = History::default();
    for a in actions {
        match a {
            Action::SheetUpsert(i, n, q) | Action::DbUpsert(i, n, q) => {
                let r = row(i, n, q);
                if matches!(a, Action::SheetUpsert(..)) {
                    w.sheet.upsert(r.clone());
                } else {
                    w.db.upsert(r.clone());
                }
                // An upsert that brings a field value never written to this key before differs
                // from any base the engine can hold, so it is a real edit that must survive.
                let earlier = h.values.entry(i).or_default();
                let fresh = (1..r.0.len()).any(|f| earlier.iter().all(|w| w.0[f] != r.0[f]));
                earlier.push(r);
                h.last_was_upsert.insert(i, fresh);
            }
            Action::SheetDelete(i) | Action::DbDelete(i) => {
                let k = key_of(i);
                let existed = if matches!(a, Action::SheetDelete(_)) {
                    w.sheet.delete(&k)
                } else {
                    w.db.delete(&k)
                };
                if existed {
                    h.deleted.insert(i);
                    h.last_was_upsert.insert(i, false);
                }
            }
            Action::Cycle => {
                e.run_once()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Action::CrashAfterApply => {
                // A quiet cycle persists nothing, so it may not reach the failing commit.
                w.store.fail.store(1, Ordering::SeqCst);
                let _ = e.run_once().await;
                w.store.fail.store(0, Ordering::SeqCst);
                e = w.engine().await;
            }
            Action::CrashBetweenSides => {
                w.db.fail_next_applies(1);
                w.store.fail.store(1, Ordering::SeqCst);
                let _ = e.run_once().await;
                w.db.fail_next_applies(0);
                w.store.fail.store(0, Ordering::SeqCst);
                e = w.engine().await;
            }
            Action::SheetWriteFails => {
                w.sheet.fail_next_applies(1);
                e.run_once()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                w.sheet.fail_next_applies(0);
            }
            Action::Restart => e = w.engine().await,
        }
    }
    // Quiesce: a few cycles reach agreement (retries need one cycle each).
    for _ in 0..4 {
        e.run_once()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let sheet = w.sheet.rows();
    let db = w.db.rows();
    prop_assert_eq!(&sheet, &db, "sides did not converge");
    prop_assert!(e.held().await.is_empty(), "held rows: {:?}", e.held().await);
    prop_assert!(e.conflicts().await.is_empty());
    // No echo: a quiet system makes no write calls at all.
    let quiet = e
        .run_once()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        quiet.write_calls.total(),
        0,
        "steady state made write calls"
    );
    // Nothing invented, nothing lost.
    let present: HashSet<i64> = sheet
        .iter()
        .map(|r| match r.0[0] {
            Value::Int(i) => i,
            _ => unreachable!(),
        })
        .collect();
    for r in &sheet {
        let Value::Int(i) = r.0[0] else {
            unreachable!()
        };
        let written = &h.values[&i];
        for (f, v) in r.0.iter().enumerate() {
            prop_assert!(
                written.iter().any(|w| &w.0[f] == v),
                "key {} field {} holds {:?}, which nobody wrote",
                i,
                f,
                v
            );
        }
    }
    for (i, last_upsert) in &h.last_was_upsert {
        if *last_upsert {
            prop_assert!(
                present.contains(i),
                "key {} was last edited with new values but is gone",
                i
            );
        }
        if !present.contains(i) {
            prop_assert!(h.deleted.contains(i), "key {} vanished without a delete", i);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Random edits on both sides, cycles, crashes between apply and persist, failed writes and
    /// restarts: one quiet cycle later both sides hold the same rows, no value was invented, no
    /// upserted row was lost, and the steady state writes nothing.
    #[test]
    fn converges_through_crashes(actions in proptest::collection::vec(arb_action(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_schedule(actions))?;
    }

    /// Whatever a full read of the Sheet returns, an empty Sheet never deletes database rows
    /// unless the host allows it.
    #[test]
    fn an_empty_read_never_wipes_the_other_side(n in 1i64..40) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let w = World::new();
            let mut mapping = MappingConfig::new("p", &["id"]);
            mapping.guard = DeleteGuard::default();
            let e = Engine::builder(mapping, w.sheet.clone(), w.db.clone()).build().await.unwrap();
            for i in 0..n {
                w.db.upsert(row(i, 0, 0));
            }
            e.run_once().await.unwrap();
            w.sheet.clear();
            let rep = e.run_once().await.unwrap();
            prop_assert_eq!(w.db.rows().len() as i64, n);
            prop_assert_eq!(rep.guard_tripped, vec![Side::Db]);
            Ok(())
        })?;
    }

    /// The canonical encoding decodes to the same value, and equal values encode equally.
    #[test]
    fn canonical_encoding_round_trips(v in arb_value()) {
        let bytes = v.to_canonical();
        let mut rest = bytes.as_slice();
        let back = Value::decode(&mut rest).expect("decodes");
        prop_assert!(rest.is_empty());
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(back.to_canonical(), bytes);
        let key = RowKey::from_values([&v]);
        prop_assert_eq!(RowKey::from_bytes(key.as_bytes()), Some(key.clone()));
        prop_assert_eq!(key.values(), vec![v]);
    }

    /// The text form parses back to the same value of the same type.
    #[test]
    fn text_form_round_trips(v in arb_value().prop_filter("typed", |v| !v.is_null())) {
        let ty = v.column_type().unwrap();
        prop_assert_eq!(Value::parse(ty, &v.to_string()).unwrap(), v);
    }

    /// Resolver laws on the pure merge.
    #[test]
    fn resolver_laws(
        (b, s, d) in {
            let s = schema();
            (arb_row(&s), arb_row(&s), arb_row(&s))
        },
        base_present in any::<bool>(),
        s_present in any::<bool>(),
        d_present in any::<bool>(),
        ts in 0u64..3, td in 0u64..3,
    ) {
        let schema = schema();
        // One key for all three rows.
        let fix = |mut r: Row| { r.0[0] = Value::Int(1); r };
        let (b, s, d) = (fix(b), fix(s), fix(d));
        let key = key_of(1);
        let base = base_present.then_some(&b);
        let sr = s_present.then_some(&s);
        let dr = d_present.then_some(&d);
        let merge = |r: &dyn ConflictResolver, sr: Option<&Row>, dr: Option<&Row>, ts, td| {
            let policy = MergePolicy {
                schema: &schema,
                resolver: r,
                update_vs_delete: DeleteResolution::KeepUpdate,
                deletes: DeletePropagation::default(),
            };
            merge_row(&policy, &key, base, SideState { row: sr, at: ts }, SideState { row: dr, at: td }, 0)
        };
        let target = |m: &Merged| match m {
            Merged::Agreed(t) | Merged::Write(t) => Some(t.clone()),
            Merged::Conflict(_) => None,
        };
        // Determinism.
        let lww = LastWriteWins { granularity: Granularity::Field, tie: Side::Db };
        prop_assert_eq!(merge(&lww, sr, dr, ts, td), merge(&lww, sr, dr, ts, td));
        // Both changed to the same value: agreed, whatever the policy.
        prop_assert!(matches!(merge(&Manual, sr, sr, ts, td), Merged::Agreed(_)));
        // A one-sided change wins whatever the policy, even Manual.
        if sr == base {
            prop_assert_eq!(target(&merge(&Manual, sr, dr, ts, td)), Some(dr.cloned()));
        }
        if dr == base {
            prop_assert_eq!(target(&merge(&Manual, sr, dr, ts, td)), Some(sr.cloned()));
        }
        // SheetWins never takes a database value the Sheet changed away from, and never
        // keeps a row the Sheet deleted; DbWins mirrors it.
        for (side, mine, theirs) in [(Side::Sheet, sr, dr), (Side::Db, dr, sr)] {
            if mine == base {
                continue; // one-sided change of the other side: covered above
            }
            let t = target(&merge(&SideWins(side), sr, dr, ts, td)).expect("SideWins always decides");
            match (mine, base) {
                (None, Some(_)) => prop_assert_eq!(t, None, "{} deleted the row", side),
                (Some(m), _) => {
                    let t = t.expect("the winner's row survives");
                    for i in 0..m.0.len() {
                        let changed = base.is_none_or(|b| b.0[i] != m.0[i]);
                        if changed {
                            prop_assert_eq!(&t.0[i], &m.0[i], "{} lost its change to field {}", side, i);
                        } else if let Some(o) = theirs {
                            prop_assert_eq!(&t.0[i], &o.0[i], "the other side's one-sided change to field {} was lost", i);
                        }
                    }
                }
                (None, None) => {}
            }
        }
        // Last-write-wins is symmetric: swapping the sides and their times swaps the outcome.
        let a = target(&merge(&LastWriteWins { granularity: Granularity::Field, tie: Side::Db }, sr, dr, ts, td));
        let b2 = target(&merge(&LastWriteWins { granularity: Granularity::Field, tie: Side::Sheet }, dr, sr, td, ts));
        prop_assert_eq!(a, b2);
    }
}
