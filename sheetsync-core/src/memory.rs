//! A table in memory that can play either side: the reference implementation of [`Source`] and
//! [`Sink`], used by the tests, the conformance suite and the examples.
//!
//! Besides the adapter contract it has a "person" surface ([`MemoryTable::upsert`],
//! [`MemoryTable::delete`], [`MemoryTable::insert_unkeyed`], ...) that edits the table the way a
//! user or another program would, and fault injection for failed reads and writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    Change, ChangeBatch, ColumnType, Cursor, InvalidRow, Observation, Row, RowKey, TableSchema,
    UnkeyedRow, Value,
};
use crate::state::{MemoryStateStore, StateDelta, StateStore};
use crate::table::{
    Capabilities, Expected, RowNotice, Sink, SinkTransaction, Source, TransactionalSink,
    WriteContext, WriteOp, WriteOutcome,
};

type Rule = Arc<dyn Fn(&Row) -> Option<String> + Send + Sync>;

/// An in-memory table.
pub struct MemoryTable {
    name: String,
    schema: TableSchema,
    caps: Capabilities,
    inner: Mutex<Inner>,
    wake: broadcast::Sender<()>,
    /// The state store its transactions commit into, when it has them.
    state: Option<Arc<MemoryStateStore>>,
}

#[derive(Default, Clone)]
struct Inner {
    rows: BTreeMap<RowKey, Row>,
    unkeyed: BTreeMap<String, Row>,
    invalid: Vec<InvalidRow>,
    next_locator: u64,
    /// The change feed: (sequence, key, written by the engine).
    log: Vec<(u64, RowKey, bool)>,
    next_seq: u64,
    next_id: i64,
    fail_applies: usize,
    lose_answers: usize,
    fail_scans: usize,
    scan_delay: std::time::Duration,
    rule: Option<Rule>,
    calls: HashMap<&'static str, usize>,
    /// What the last [`Sink::annotate`] call that succeeded asked to show.
    notices: Vec<RowNotice>,
    fail_annotations: usize,
}

impl MemoryTable {
    /// An empty table with the capabilities of a database: a change feed, fetch by key,
    /// wake-ups and conditional writes.
    pub fn new(name: impl Into<String>, schema: TableSchema) -> Self {
        Self::with_capabilities(
            name,
            schema,
            Capabilities {
                incremental: true,
                fetch: true,
                wakeups: true,
                conditional_writes: true,
                ..Capabilities::default()
            },
        )
    }

    /// An empty table with the capabilities of a Sheet: full scans only, rows without keys.
    pub fn sheet_like(name: impl Into<String>, schema: TableSchema) -> Self {
        Self::with_capabilities(
            name,
            schema,
            Capabilities {
                unkeyed_rows: true,
                ..Capabilities::default()
            },
        )
    }

    /// An empty table with exactly these capabilities. With `generated_keys`, the key must be a
    /// single integer column, numbered from 1.
    pub fn with_capabilities(
        name: impl Into<String>,
        schema: TableSchema,
        caps: Capabilities,
    ) -> Self {
        let (wake, _) = broadcast::channel(64);
        MemoryTable {
            name: name.into(),
            schema,
            caps,
            inner: Mutex::new(Inner {
                next_id: 1,
                ..Default::default()
            }),
            wake,
            state: None,
        }
    }

    /// Makes the table [transactional](TransactionalSink): its write transactions commit the
    /// engine's state into `store` together with the writes, as a database table does with the
    /// state store in the same database. (A transaction works out its outcomes on a copy of the
    /// table and applies its writes at commit; the table must not change in between.)
    pub fn commit_state_to(mut self, store: Arc<MemoryStateStore>) -> Self {
        self.state = Some(store);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory table lock poisoned")
    }

    fn changed(&self) {
        let _ = self.wake.send(());
    }

    /// Inserts or replaces a row, as a person or another program would.
    pub fn upsert(&self, row: Row) {
        let key = row
            .key(&self.schema)
            .expect("MemoryTable::upsert needs a row with a key; use insert_unkeyed");
        let mut g = self.lock();
        if let Some(Value::Int(i)) = key.values().first() {
            g.next_id = g.next_id.max(i + 1);
        }
        g.rows.insert(key.clone(), row);
        g.record(key, false);
        drop(g);
        self.changed();
    }

    /// Deletes the row with `key`, as a person would. Returns whether it existed.
    pub fn delete(&self, key: &RowKey) -> bool {
        let mut g = self.lock();
        let existed = g.rows.remove(key).is_some();
        if existed {
            g.record(key.clone(), false);
        }
        drop(g);
        self.changed();
        existed
    }

    /// Deletes every row, as a person selecting all and pressing delete would.
    pub fn clear(&self) {
        let mut g = self.lock();
        let keys: Vec<RowKey> = g.rows.keys().cloned().collect();
        g.rows.clear();
        for k in keys {
            g.record(k, false);
        }
        drop(g);
        self.changed();
    }

    /// Adds a row without a key (a new Sheet row) and returns its locator.
    pub fn insert_unkeyed(&self, row: Row) -> String {
        let mut g = self.lock();
        g.next_locator += 1;
        let loc = format!("unkeyed-{}", g.next_locator);
        g.unkeyed.insert(loc.clone(), row);
        drop(g);
        self.changed();
        loc
    }

    /// Adds a row the side cannot read (a bad cell); scans report it as invalid.
    pub fn insert_invalid(&self, row: InvalidRow) {
        self.lock().invalid.push(row);
        self.changed();
    }

    /// Removes every invalid row (someone fixed the cells).
    pub fn clear_invalid(&self) {
        self.lock().invalid.clear();
        self.changed();
    }

    /// The rows, in key order.
    pub fn rows(&self) -> Vec<Row> {
        self.lock().rows.values().cloned().collect()
    }

    /// The rows without a key, by locator.
    pub fn unkeyed(&self) -> Vec<(String, Row)> {
        self.lock()
            .unkeyed
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The row with `key`.
    pub fn get(&self, key: &RowKey) -> Option<Row> {
        self.lock().rows.get(key).cloned()
    }

    /// How many times each adapter method was called (`"scan"`, `"apply"`, `"changes"`, ...).
    pub fn calls(&self, method: &str) -> usize {
        self.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// Makes the next `n` calls of [`Sink::apply`] fail as a dropped connection would.
    pub fn fail_next_applies(&self, n: usize) {
        self.lock().fail_applies = n;
    }

    /// Makes the next `n` calls of [`Sink::apply`] carry out their writes and then fail, as a
    /// connection dropped before the answer arrived would.
    pub fn lose_next_answers(&self, n: usize) {
        self.lock().lose_answers = n;
    }

    /// Makes the next `n` scans fail after their first page, as a truncated read would.
    pub fn fail_next_scans(&self, n: usize) {
        self.lock().fail_scans = n;
    }

    /// Makes every scan wait `delay` before its first page, as a read over a slow network would.
    pub fn delay_scans(&self, delay: std::time::Duration) {
        self.lock().scan_delay = delay;
    }

    /// Refuses rows for which `rule` returns a reason, as a database constraint would.
    pub fn reject_rows(&self, rule: impl Fn(&Row) -> Option<String> + Send + Sync + 'static) {
        self.lock().rule = Some(Arc::new(rule));
    }

    /// Accepts every row again.
    pub fn accept_all_rows(&self) {
        self.lock().rule = None;
    }

    /// What the last [`Sink::annotate`] call that succeeded asked to show, as a Sheet would.
    pub fn notices(&self) -> Vec<RowNotice> {
        self.lock().notices.clone()
    }

    /// Makes the next `n` calls of [`Sink::annotate`] fail.
    pub fn fail_next_annotations(&self, n: usize) {
        self.lock().fail_annotations = n;
    }

    fn count(&self, method: &'static str) {
        *self.lock().calls.entry(method).or_default() += 1;
    }

    fn observe(&self, g: &Inner, key: &RowKey) -> Observation {
        match g.rows.get(key) {
            Some(r) => Observation::row(r.clone()),
            None => Observation::new(Change::Delete(key.clone())),
        }
    }

    fn check_row(&self, g: &Inner, row: &Row) -> Option<String> {
        if row.0.len() != self.schema.columns.len() {
            return Some(format!(
                "row has {} values but the table has {} columns",
                row.0.len(),
                self.schema.columns.len()
            ));
        }
        for (v, c) in row.0.iter().zip(&self.schema.columns) {
            if v.is_null() && !c.nullable {
                return Some(format!("column {:?} may not be empty", c.name));
            }
            if let Some(t) = v.column_type() {
                if t != c.ty {
                    return Some(format!("column {:?} holds {t}, not {}", c.name, c.ty));
                }
            }
        }
        g.rule.as_ref().and_then(|r| r(row))
    }

    fn apply_one(&self, g: &mut Inner, op: WriteOp) -> WriteOutcome {
        let conditional = self.caps.conditional_writes;
        let matches = |g: &Inner, key: &RowKey, expected: &Expected| match expected {
            Expected::Any => true,
            Expected::Absent => !g.rows.contains_key(key),
            Expected::Row(r) => g.rows.get(key) == Some(r),
        };
        match op {
            WriteOp::Upsert { row, expected } => {
                let Some(key) = row.key(&self.schema) else {
                    return WriteOutcome::Held("upsert of a row without a key".into());
                };
                if conditional && !matches(g, &key, &expected) {
                    return WriteOutcome::Stale;
                }
                if let Some(reason) = self.check_row(g, &row) {
                    return WriteOutcome::Held(reason);
                }
                if g.rows.get(&key) != Some(&row) {
                    g.rows.insert(key.clone(), row);
                    g.record(key, true);
                }
                WriteOutcome::Applied
            }
            WriteOp::Delete { key, expected } => {
                if conditional && !matches(g, &key, &expected) {
                    return WriteOutcome::Stale;
                }
                if g.rows.remove(&key).is_some() {
                    g.record(key, true);
                }
                WriteOutcome::Applied
            }
            WriteOp::Insert { mut row } => {
                if !self.caps.generated_keys {
                    return WriteOutcome::Held(format!("{} does not generate keys", self.name));
                }
                let col = self.schema.key[0];
                row.0[col] = Value::Int(g.next_id);
                if let Some(reason) = self.check_row(g, &row) {
                    return WriteOutcome::Held(reason);
                }
                g.next_id += 1;
                let key = row.key(&self.schema).expect("generated key");
                g.rows.insert(key.clone(), row.clone());
                g.record(key, true);
                WriteOutcome::Stored(row)
            }
            WriteOp::SetKey { locator, row } => {
                let Some(key) = row.key(&self.schema) else {
                    return WriteOutcome::Held("set_key with an empty key".into());
                };
                if !g.unkeyed.contains_key(&locator) {
                    return WriteOutcome::Stale;
                }
                if g.rows.contains_key(&key) {
                    return WriteOutcome::Held(format!("key {key} is already taken"));
                }
                g.unkeyed.remove(&locator);
                g.rows.insert(key.clone(), row);
                g.record(key, true);
                WriteOutcome::Applied
            }
        }
    }
}

impl Inner {
    fn record(&mut self, key: RowKey, by_engine: bool) {
        self.next_seq += 1;
        self.log.push((self.next_seq, key, by_engine));
    }
}

fn parse_cursor(c: &Cursor) -> Result<u64> {
    c.0.parse().map_err(|_| {
        Error::new(
            ErrorKind::InvalidData,
            format!("{:?} is not a memory table cursor", c.0),
        )
    })
}

#[async_trait]
impl Source for MemoryTable {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn schema(&self) -> &TableSchema {
        &self.schema
    }

    fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>> {
        self.count("scan");
        let mut g = self.lock();
        let mut all: Vec<Observation> = g.rows.values().cloned().map(Observation::row).collect();
        all.extend(g.unkeyed.iter().map(|(loc, row)| {
            Observation::new(Change::Unkeyed(UnkeyedRow {
                locator: loc.clone(),
                row: row.clone(),
            }))
        }));
        all.extend(
            g.invalid
                .iter()
                .cloned()
                .map(|i| Observation::new(Change::Invalid(i))),
        );
        let fail = g.fail_scans > 0;
        g.fail_scans = g.fail_scans.saturating_sub(1);
        let delay = g.scan_delay;
        drop(g);
        let mut pages: Vec<Result<Vec<Observation>>> =
            all.chunks(1000).map(|c| Ok(c.to_vec())).collect();
        if fail {
            pages.truncate(1);
            pages.push(Err(Error::new(
                ErrorKind::Connection,
                format!("{}: connection dropped during scan", self.name),
            )));
        }
        if delay.is_zero() {
            // No timer unless asked for: hosts may test on a runtime without one.
            return stream::iter(pages).boxed();
        }
        stream::once(tokio::time::sleep(delay))
            .flat_map(move |()| stream::iter(std::mem::take(&mut pages)))
            .boxed()
    }

    async fn cursor(&self) -> Result<Option<Cursor>> {
        if !self.caps.incremental {
            return Ok(None);
        }
        Ok(Some(Cursor(self.lock().next_seq.to_string())))
    }

    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        if !self.caps.incremental {
            return Err(Error::unsupported("changes", &self.name));
        }
        self.count("changes");
        let since = parse_cursor(since)?;
        let g = self.lock();
        let start = g.log.partition_point(|(seq, _, _)| *seq <= since);
        let entries = &g.log[start..];
        let page = &entries[..entries.len().min(limit)];
        let changes = page
            .iter()
            .filter(|(_, _, by_engine)| !by_engine)
            .map(|(_, key, _)| self.observe(&g, key))
            .collect();
        let cursor = page.last().map_or(since, |(seq, _, _)| *seq);
        Ok(ChangeBatch {
            changes,
            cursor: Cursor(cursor.to_string()),
            more: entries.len() > page.len(),
        })
    }

    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        if !self.caps.fetch {
            return Err(Error::unsupported("fetch", &self.name));
        }
        self.count("fetch");
        let g = self.lock();
        Ok(keys.iter().map(|k| self.observe(&g, k)).collect())
    }

    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        if !self.caps.wakeups {
            return None;
        }
        let rx = self.wake.subscribe();
        Some(
            stream::unfold(rx, |mut rx| async move {
                match rx.recv().await {
                    Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            })
            .boxed(),
        )
    }
}

#[async_trait]
impl Sink for MemoryTable {
    async fn apply(&self, ops: Vec<WriteOp>, _ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        self.count("apply");
        if ops.len() > self.caps.max_batch {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("{} ops exceed max_batch {}", ops.len(), self.caps.max_batch),
            ));
        }
        let mut g = self.lock();
        dropped_once(&mut g.fail_applies, &self.name, "apply")?;
        let outcomes = ops
            .into_iter()
            .map(|op| self.apply_one(&mut g, op))
            .collect();
        if g.lose_answers > 0 {
            g.lose_answers -= 1;
            return Err(Error::new(
                ErrorKind::Connection,
                format!("{}: connection dropped before the answer", self.name),
            ));
        }
        Ok(outcomes)
    }

    fn transactional(&self) -> Option<&dyn TransactionalSink> {
        self.state
            .is_some()
            .then_some(self as &dyn TransactionalSink)
    }

    async fn annotate(&self, notices: &[RowNotice]) -> Result<()> {
        self.count("annotate");
        let mut g = self.lock();
        dropped_once(&mut g.fail_annotations, &self.name, "annotate")?;
        g.notices = notices.to_vec();
        Ok(())
    }
}

#[async_trait]
impl TransactionalSink for MemoryTable {
    fn state_location(&self) -> String {
        self.state
            .as_ref()
            .and_then(|s| s.location())
            .unwrap_or_default()
    }

    async fn begin(&self, _ctx: &WriteContext) -> Result<Box<dyn SinkTransaction + '_>> {
        Ok(Box::new(MemoryTransaction {
            table: self,
            scratch: None,
            ops: Vec::new(),
        }))
    }
}

/// A write transaction of a transactional [`MemoryTable`].
struct MemoryTransaction<'a> {
    table: &'a MemoryTable,
    /// The table as the transaction's writes left it so far.
    scratch: Option<Inner>,
    ops: Vec<WriteOp>,
}

#[async_trait]
impl SinkTransaction for MemoryTransaction<'_> {
    async fn apply(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        let t = self.table;
        t.count("apply");
        let mut g = t.lock();
        dropped_once(&mut g.fail_applies, &t.name, "apply")?;
        let scratch = self.scratch.get_or_insert_with(|| g.clone());
        drop(g);
        self.ops.extend(ops.iter().cloned());
        Ok(ops.into_iter().map(|op| t.apply_one(scratch, op)).collect())
    }

    async fn commit(self: Box<Self>, mapping: &str, state: &StateDelta) -> Result<()> {
        let t = self.table;
        let store = t.state.as_ref().expect("a transactional table has a store");
        let mut g = t.lock();
        for op in self.ops {
            t.apply_one(&mut g, op);
        }
        store.commit_now(mapping, state);
        let lost = g.lose_answers > 0;
        g.lose_answers = g.lose_answers.saturating_sub(1);
        drop(g);
        t.changed();
        if lost {
            return Err(Error::new(
                ErrorKind::Connection,
                format!("{}: connection dropped before the commit's answer", t.name),
            ));
        }
        Ok(())
    }
}

/// A failure the test asked for (`remaining` more of them), as a dropped connection during
/// `call` would be.
fn dropped_once(remaining: &mut usize, table: &str, call: &str) -> Result<()> {
    if *remaining == 0 {
        return Ok(());
    }
    *remaining -= 1;
    Err(Error::new(
        ErrorKind::Connection,
        format!("{table}: connection dropped during {call}"),
    ))
}

/// A key for a single-column key table.
pub fn key_of(v: impl Into<Value>) -> RowKey {
    RowKey::from_values(&[v.into()])
}

impl MemoryTable {
    /// True when the schema suits `generated_keys` (one integer key column).
    pub fn can_generate_keys(schema: &TableSchema) -> bool {
        schema.key.len() == 1 && schema.columns[schema.key[0]].ty == ColumnType::Int
    }
}
