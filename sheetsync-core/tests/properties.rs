//! Property tests of the merge and the engine: convergence under random edits, crashes and
//! failed writes; no echo; idempotence; resolver laws; canonical encoding round trips.
//!
//! Cases per property: 256 by default, `PROPTEST_CASES` to change.
//!
//! `PROPTEST_CASES=2000 cargo nextest run -p sheetsync-core --all-features --test properties`
//! for a deeper run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
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

/// When the process dies: after `budget` more writes (to either side or to the state store), the
/// next write kills it. With `land`, that write is carried out before the process dies (its
/// answer is lost); without, it never happens. A dead process writes nothing more.
struct Fate {
    budget: AtomicI64,
    land: AtomicBool,
    dead: AtomicBool,
}

enum Step {
    Go,
    LandThenDie,
    Die,
}

impl Fate {
    fn healthy() -> Self {
        Fate {
            budget: AtomicI64::new(i64::MAX),
            land: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        }
    }

    fn doom(&self, budget: i64, land: bool) {
        self.land.store(land, Ordering::SeqCst);
        self.budget.store(budget, Ordering::SeqCst);
    }

    fn step(&self) -> Step {
        if self.dead.load(Ordering::SeqCst) {
            return Step::Die;
        }
        if self.budget.fetch_sub(1, Ordering::SeqCst) > 0 {
            return Step::Go;
        }
        self.dead.store(true, Ordering::SeqCst);
        if self.land.load(Ordering::SeqCst) {
            Step::LandThenDie
        } else {
            Step::Die
        }
    }
}

fn killed() -> Error {
    Error::new(ErrorKind::Connection, "the process was killed")
}

/// The state store of a process with a [`Fate`].
struct MortalStore {
    inner: Arc<MemoryStateStore>,
    fate: Arc<Fate>,
}

#[async_trait]
impl StateStore for MortalStore {
    async fn load(&self, m: &str) -> Result<StateSnapshot> {
        self.inner.load(m).await
    }
    fn location(&self) -> Option<String> {
        self.inner.location()
    }
    async fn commit(&self, m: &str, d: &StateDelta) -> Result<()> {
        match self.fate.step() {
            Step::Go => self.inner.commit(m, d).await,
            Step::LandThenDie => {
                self.inner.commit(m, d).await?;
                Err(killed())
            }
            Step::Die => Err(killed()),
        }
    }
}

/// A table written by a process with a [`Fate`]; reads and person edits go straight through.
struct MortalTable {
    inner: Arc<MemoryTable>,
    fate: Arc<Fate>,
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Source for MortalTable {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn identity(&self) -> Result<String> {
        self.inner.identity().await
    }
    fn schema(&self) -> &TableSchema {
        self.inner.schema()
    }
    fn scan(&self) -> futures::stream::BoxStream<'_, Result<Vec<Observation>>> {
        self.inner.scan()
    }
    async fn cursor(&self) -> Result<Option<Cursor>> {
        self.inner.cursor().await
    }
    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        self.inner.changes(since, limit).await
    }
    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        self.inner.fetch(keys).await
    }
    async fn resume(&self, saved: &Cursor) -> Result<()> {
        self.inner.resume(saved).await
    }
    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        if self.fate.dead.load(Ordering::SeqCst) {
            return Err(killed());
        }
        self.inner.ack(cursor).await
    }
    fn full_scan_requested(&self) -> bool {
        self.inner.full_scan_requested()
    }
    fn wakeups(&self) -> Option<futures::stream::BoxStream<'static, ()>> {
        self.inner.wakeups()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Sink for MortalTable {
    async fn apply(&self, ops: Vec<WriteOp>, ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        match self.fate.step() {
            Step::Go => self.inner.apply(ops, ctx).await,
            Step::LandThenDie => {
                self.inner.apply(ops, ctx).await?;
                Err(killed())
            }
            Step::Die => Err(killed()),
        }
    }

    fn transactional(&self) -> Option<&dyn TransactionalSink> {
        self.inner
            .transactional()
            .map(|_| self as &dyn TransactionalSink)
    }

    async fn annotate(&self, notices: &[RowNotice]) -> Result<()> {
        self.inner.annotate(notices).await
    }
}

/// The database's write transactions carry the state: the process can die at their commit.
#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl TransactionalSink for MortalTable {
    fn state_location(&self) -> String {
        self.inner
            .transactional()
            .map(|t| t.state_location())
            .unwrap_or_default()
    }

    async fn begin(&self, ctx: &WriteContext) -> Result<Box<dyn SinkTransaction + '_>> {
        let inner = self
            .inner
            .transactional()
            .expect("transactional")
            .begin(ctx)
            .await?;
        Ok(Box::new(MortalTransaction {
            inner,
            fate: self.fate.clone(),
        }))
    }
}

struct MortalTransaction<'a> {
    inner: Box<dyn SinkTransaction + 'a>,
    fate: Arc<Fate>,
}

#[async_trait]
impl SinkTransaction for MortalTransaction<'_> {
    async fn apply(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        if self.fate.dead.load(Ordering::SeqCst) {
            return Err(killed());
        }
        self.inner.apply(ops).await
    }

    async fn commit(self: Box<Self>, mapping: &str, state: &StateDelta) -> Result<()> {
        match self.fate.step() {
            Step::Go => self.inner.commit(mapping, state).await,
            Step::LandThenDie => {
                self.inner.commit(mapping, state).await?;
                Err(killed())
            }
            Step::Die => Err(killed()),
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    SheetUpsert(i64, u8, u8),
    SheetDelete(i64),
    DbUpsert(i64, u8, u8),
    DbDelete(i64),
    Cycle,
    /// The process is killed at a write boundary of the next cycle: after `writes` more writes
    /// (intents, Sheet, database, state), the next one lands first when `land` is set. Restart.
    KillAt {
        writes: u8,
        land: bool,
    },
    /// A write to one side fails (dropped connection) or lands with its answer lost; the
    /// engine keeps running.
    WriteFails {
        side: Side,
        land: bool,
    },
    Restart,
}

fn arb_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Sheet), Just(Side::Db)]
}

fn arb_action() -> impl Strategy<Value = Action> {
    let id = 1i64..6;
    prop_oneof![
        4 => (id.clone(), 0u8..3, 0u8..3).prop_map(|(i, n, q)| Action::SheetUpsert(i, n, q)),
        3 => id.clone().prop_map(Action::SheetDelete),
        4 => (id.clone(), 0u8..3, 0u8..3).prop_map(|(i, n, q)| Action::DbUpsert(i, n, q)),
        3 => id.prop_map(Action::DbDelete),
        4 => Just(Action::Cycle),
        4 => (0u8..5, any::<bool>()).prop_map(|(writes, land)| Action::KillAt { writes, land }),
        1 => (arb_side(), any::<bool>()).prop_map(|(side, land)| Action::WriteFails { side, land }),
        1 => Just(Action::Restart),
    ]
}

fn arb_resolver() -> impl Strategy<Value = ResolverSpec> {
    #[allow(unused_mut)]
    let mut specs = vec![
        ResolverSpec::LastWriteWins {
            granularity: Granularity::Field,
            tie: Side::Db,
        },
        ResolverSpec::LastWriteWins {
            granularity: Granularity::Row,
            tie: Side::Sheet,
        },
        ResolverSpec::SheetWins,
        ResolverSpec::DbWins,
        ResolverSpec::Manual,
    ];
    // A conflict rule: the larger count wins; conflicts in other columns wait for a person.
    #[cfg(feature = "rules")]
    specs.push(ResolverSpec::Rule(
        RuleSpec::field(r#"sheet.qty > db.qty ? "sheet" : "db""#).columns(["qty"]),
    ));
    proptest::sample::select(specs)
}

/// The two tables (which outlive processes), the state store, and the running process.
struct World {
    sheet: Arc<MemoryTable>,
    db: Arc<MemoryTable>,
    store: Arc<MemoryStateStore>,
    mapping: MappingConfig,
    fate: Arc<Fate>,
}

impl World {
    /// With `transactional`, the database's writes and the state commit together.
    fn new(
        resolver: ResolverSpec,
        update_vs_delete: DeleteResolution,
        transactional: bool,
    ) -> Self {
        let mut mapping = MappingConfig::new("p", &["id"]);
        mapping.resolvers = vec![resolver];
        mapping.update_vs_delete = update_vs_delete;
        // Random schedules delete everything often; the guard has its own tests.
        mapping.guard.stop_total_wipe = false;
        mapping.guard.max_share = 1.0;
        let store = Arc::new(MemoryStateStore::new());
        let db = MemoryTable::new("db", schema());
        let db = if transactional {
            db.commit_state_to(store.clone())
        } else {
            db
        };
        World {
            sheet: Arc::new(MemoryTable::sheet_like("sheet", schema())),
            db: Arc::new(db),
            store,
            mapping,
            fate: Arc::new(Fate::healthy()),
        }
    }

    /// Starts a new process.
    async fn start(&mut self) -> Engine {
        self.fate = Arc::new(Fate::healthy());
        let sheet = Arc::new(MortalTable {
            inner: self.sheet.clone(),
            fate: self.fate.clone(),
        });
        let db = Arc::new(MortalTable {
            inner: self.db.clone(),
            fate: self.fate.clone(),
        });
        let store = Arc::new(MortalStore {
            inner: self.store.clone(),
            fate: self.fate.clone(),
        });
        Engine::builder(self.mapping.clone(), sheet, db)
            .state(store)
            .build()
            .await
            .expect("engine builds")
    }
}

/// A person's (or another program's) edit of one key.
#[derive(Debug, Clone)]
enum Edit {
    Upsert(Side, Row),
    Delete(Side),
}

/// Everything people did, and when both sides last agreed.
#[derive(Default)]
struct History {
    /// Every value ever written to a key, by anyone.
    values: BTreeMap<i64, Vec<Row>>,
    deleted: BTreeSet<i64>,
    last_was_fresh_upsert: BTreeMap<i64, bool>,
    /// The edits of each key since both sides last held the same rows after a good cycle.
    since_agreement: BTreeMap<i64, Vec<Edit>>,
}

impl History {
    /// What a key must hold at the end when only one side edited it since the last agreement:
    /// that side's last edit wins, whatever the resolver and the update-vs-delete policy
    /// (a delete stays deleted, an update is not lost). `None` when both sides edited it.
    fn one_sided(&self, id: i64) -> Option<Option<Row>> {
        let edits = self.since_agreement.get(&id)?;
        let side = |e: &Edit| match e {
            Edit::Upsert(s, _) | Edit::Delete(s) => *s,
        };
        let first = side(edits.first()?);
        if edits.iter().any(|e| side(e) != first) {
            return None;
        }
        Some(match edits.last()? {
            Edit::Upsert(_, r) => Some(r.clone()),
            Edit::Delete(_) => None,
        })
    }
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

async fn run_schedule(
    actions: Vec<Action>,
    resolver: ResolverSpec,
    update_vs_delete: DeleteResolution,
    transactional: bool,
) -> std::result::Result<(), TestCaseError> {
    let mut w = World::new(resolver.clone(), update_vs_delete.clone(), transactional);
    let mut e = w.start().await;
    let mut h = History::default();
    for a in actions {
        match a {
            Action::SheetUpsert(i, n, q) | Action::DbUpsert(i, n, q) => {
                let r = row(i, n, q);
                let side = if matches!(a, Action::SheetUpsert(..)) {
                    w.sheet.upsert(r.clone());
                    Side::Sheet
                } else {
                    w.db.upsert(r.clone());
                    Side::Db
                };
                // An upsert that brings a field value never written to this key before differs
                // from any base the engine can hold, so it is a real edit that must survive.
                let earlier = h.values.entry(i).or_default();
                let fresh = (1..r.0.len()).any(|f| earlier.iter().all(|w| w.0[f] != r.0[f]));
                earlier.push(r.clone());
                h.last_was_fresh_upsert.insert(i, fresh);
                h.since_agreement
                    .entry(i)
                    .or_default()
                    .push(Edit::Upsert(side, r));
            }
            Action::SheetDelete(i) | Action::DbDelete(i) => {
                let k = key_of(i);
                let (existed, side) = if matches!(a, Action::SheetDelete(_)) {
                    (w.sheet.delete(&k), Side::Sheet)
                } else {
                    (w.db.delete(&k), Side::Db)
                };
                if existed {
                    h.deleted.insert(i);
                    h.last_was_fresh_upsert.insert(i, false);
                    h.since_agreement
                        .entry(i)
                        .or_default()
                        .push(Edit::Delete(side));
                }
            }
            Action::Cycle => {
                let rep = e.run_once().await.map_err(fail)?;
                // A clean cycle that leaves both sides equal: they agree, as people see it.
                if rep.pending == 0 && w.sheet.rows() == w.db.rows() {
                    h.since_agreement.clear();
                }
            }
            Action::KillAt { writes, land } => {
                w.fate.doom(writes as i64, land);
                let _ = e.run_once().await;
                e = w.start().await;
            }
            Action::WriteFails { side, land } => {
                let (table, other) = match side {
                    Side::Sheet => (&w.sheet, &w.db),
                    Side::Db => (&w.db, &w.sheet),
                };
                if land {
                    table.lose_next_answers(1);
                } else {
                    table.fail_next_applies(1);
                }
                // A lost answer from a transaction's commit fails the cycle.
                let _ = e.run_once().await;
                table.fail_next_applies(0);
                table.lose_next_answers(0);
                let _ = other;
            }
            Action::Restart => e = w.start().await,
        }
    }
    // Quiesce: a few cycles reach agreement (retries need one cycle each); conflicts kept for
    // people are resolved as a person would, then synced.
    let mut resolved = BTreeSet::new();
    for round in 0..6 {
        e.run_once().await.map_err(fail)?;
        for c in e.conflicts().await {
            let Value::Int(i) = c.key.values()[0] else {
                unreachable!()
            };
            resolved.insert(i);
            let side = if round % 2 == 0 {
                Side::Sheet
            } else {
                Side::Db
            };
            e.resolve_conflict(&c.key, Choice::Side(side))
                .await
                .map_err(fail)?;
        }
    }
    let sheet = w.sheet.rows();
    let db = w.db.rows();
    prop_assert_eq!(&sheet, &db, "sides did not converge");
    prop_assert!(e.held().await.is_empty(), "held rows: {:?}", e.held().await);
    prop_assert!(e.conflicts().await.is_empty());
    // No echo: a quiet system makes no write calls at all.
    let quiet = e.run_once().await.map_err(fail)?;
    prop_assert_eq!(
        quiet.write_calls.total(),
        0,
        "steady state made write calls"
    );
    let by_id: BTreeMap<i64, &Row> = sheet
        .iter()
        .map(|r| match r.0[0] {
            Value::Int(i) => (i, r),
            _ => unreachable!(),
        })
        .collect();
    // Nothing invented.
    for (i, r) in &by_id {
        let written = &h.values[i];
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
    for i in h.values.keys() {
        let present = by_id.get(i).copied();
        // Nothing came back that was deleted, nothing vanished that was not, nothing was
        // undone: a change made on one side since the sides last agreed wins.
        if let Some(want) = h.one_sided(*i) {
            prop_assert_eq!(
                present,
                want.as_ref(),
                "key {} was changed on one side only since the sides agreed: {:?}",
                i,
                h.since_agreement[i]
            );
        }
        if present.is_none() {
            prop_assert!(h.deleted.contains(i), "key {} vanished without a delete", i);
        }
        // Last-write-wins leaves update-vs-delete to the policy; the other resolvers decide it.
        let keeps_updates = update_vs_delete == DeleteResolution::KeepUpdate
            && matches!(resolver, ResolverSpec::LastWriteWins { .. });
        if keeps_updates && h.last_was_fresh_upsert[i] && !resolved.contains(i) {
            prop_assert!(
                present.is_some(),
                "key {} was last edited with new values but is gone",
                i
            );
        }
    }
    Ok(())
}

fn crash_schedule(
    actions: Vec<Action>,
    resolver: ResolverSpec,
    update_vs_delete: DeleteResolution,
    transactional: bool,
) -> std::result::Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run_schedule(
        actions,
        resolver,
        update_vs_delete,
        transactional,
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Random edits and deletes on both sides, cycles, the process killed at every write
    /// boundary (before and after the intent commit, each side's write, and the state commit;
    /// the write that dies landing or not), failed and lost writes, and restarts, under each
    /// resolver, with the database's writes and the state committed apart or in one transaction,
    /// with update-vs-delete `keep_update`: one quiet cycle later both sides hold the
    /// same rows, nothing was invented, a change made on one side since the sides last agreed
    /// wins (no resurrected delete, no lost update), and the steady state writes nothing.
    #[test]
    fn crashes_keep_update(
        actions in proptest::collection::vec(arb_action(), 1..40),
        resolver in arb_resolver(),
        transactional in any::<bool>(),
    ) {
        crash_schedule(actions, resolver, DeleteResolution::KeepUpdate, transactional)?;
    }

    /// The same with update-vs-delete `delete`.
    #[test]
    fn crashes_delete_wins(
        actions in proptest::collection::vec(arb_action(), 1..40),
        resolver in arb_resolver(),
        transactional in any::<bool>(),
    ) {
        crash_schedule(actions, resolver, DeleteResolution::Delete, transactional)?;
    }

    /// The same with update-vs-delete `manual` (kept conflicts are resolved at the end).
    #[test]
    fn crashes_manual(
        actions in proptest::collection::vec(arb_action(), 1..40),
        resolver in arb_resolver(),
        transactional in any::<bool>(),
    ) {
        crash_schedule(actions, resolver, DeleteResolution::Manual, transactional)?;
    }

    /// Whatever a full read of the Sheet returns, an empty Sheet never deletes database rows
    /// unless the host allows it.
    #[test]
    fn an_empty_read_never_wipes_the_other_side(n in 1i64..40) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let w = World::new(ResolverSpec::Manual, DeleteResolution::KeepUpdate, false);
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
        #[cfg(feature = "rules")]
        {
            let rules = |specs: &[RuleSpec]| {
                let specs: Vec<ResolverSpec> = specs.iter().cloned().map(ResolverSpec::Rule).collect();
                ResolverSpec::build_chain(&specs, &schema).expect("the rules compile")
            };
            // A rule that always answers a side behaves like that side winning.
            for side in Side::BOTH {
                let chain = rules(&[
                    RuleSpec::field(format!("\"{side}\"")),
                    RuleSpec::delete(format!("deleted_on == \"{side}\" ? \"delete\" : \"keep\"")),
                ]);
                prop_assert_eq!(merge(&chain, sr, dr, ts, td), merge(&SideWins(side), sr, dr, ts, td));
            }
            // Last-write-wins written as a rule is last-write-wins.
            let later = rules(&[RuleSpec::field(r#"sheet_at > db_at ? "sheet" : "db""#)]);
            prop_assert_eq!(merge(&later, sr, dr, ts, td), merge(&lww, sr, dr, ts, td));
            // Rules that decide nothing leave every conflict to the rest of the chain.
            let next = rules(&[RuleSpec::row(r#""next""#), RuleSpec::field(r#""next""#), RuleSpec::delete(r#""next""#)])
                .then(lww);
            prop_assert_eq!(merge(&next, sr, dr, ts, td), merge(&lww, sr, dr, ts, td));
            // The larger count wins; a count missing on one side is kept for a person, with the
            // rule's error as the reason.
            let larger = rules(&[RuleSpec::field(r#"sheet.qty > db.qty ? "sheet" : "db""#).columns(["qty"])])
                .then(lww);
            if let (Some(b), Some(s), Some(d)) = (base, sr, dr) {
                let both_changed = b.0[2] != s.0[2] && b.0[2] != d.0[2] && s.0[2] != d.0[2];
                match (both_changed, &s.0[2], &d.0[2], merge(&larger, sr, dr, ts, td)) {
                    (false, ..) => {}
                    (true, Value::Int(x), Value::Int(y), Merged::Write(Some(t))) => {
                        prop_assert_eq!(&t.0[2], &Value::Int((*x).max(*y)));
                    }
                    (true, Value::Null, _, Merged::Conflict(c)) | (true, _, Value::Null, Merged::Conflict(c)) => {
                        prop_assert!(c.reason.is_some_and(|r| r.contains("sheet.qty > db.qty")));
                    }
                    (true, _, _, m) => prop_assert!(false, "qty {:?} vs {:?} merged to {:?}", s.0[2], d.0[2], m),
                }
            }
        }
    }
}
