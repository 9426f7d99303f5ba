//! The write path shared by every database: one transaction per batch, conditional writes
//! checked against locked rows, multi-row statements, and savepoints so that a row the database
//! refuses, or one that another transaction keeps locked past the lock time-out, is held while
//! the rest of the batch applies.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sheetsync_core::{Expected, Result, Row, RowKey, TableSchema, WriteOp, WriteOutcome};

use crate::error::RowError;
use crate::statements::Lock;
use crate::table::{Insert, TableInfo};

/// A write transaction on one database, tagged with the engine's origin.
#[async_trait]
pub(crate) trait WriteTx: Send {
    /// The table written.
    fn info(&self) -> &TableInfo;
    /// The current rows for `keys`, locked until commit as `lock` says where the database locks
    /// rows. A row that does not decode is reported as `Err(reason)`; a lock that could not be
    /// had (in time) is [`RowError::Busy`].
    async fn current(
        &mut self,
        keys: &[RowKey],
        lock: Lock,
    ) -> std::result::Result<Vec<(RowKey, std::result::Result<Row, String>)>, RowError>;
    /// Runs a statement without results (savepoints).
    async fn execute(&mut self, sql: &str) -> Result<()>;
    /// Inserts or updates `rows` in one statement, writing the columns `cols` (the others keep
    /// their values, or get their defaults when the row is new).
    async fn upsert(&mut self, rows: &[&Row], cols: &[usize]) -> std::result::Result<(), RowError>;
    /// Inserts `rows` that the engine expects to be absent, writing the columns `cols` (the
    /// others get their defaults); returns the keys actually inserted (a row that another
    /// writer inserted meanwhile is left alone: the caller reports it stale).
    async fn create(
        &mut self,
        rows: &[&Row],
        keys: &[&RowKey],
        cols: &[usize],
    ) -> std::result::Result<HashSet<RowKey>, RowError>;
    /// Deletes `keys` in one statement.
    async fn delete(&mut self, keys: &[&RowKey]) -> std::result::Result<(), RowError>;
    /// Inserts a row whose key the database generates, writing the columns `cols` (not the
    /// key; the others get their defaults), and returns the stored row.
    async fn insert(&mut self, row: &Row, cols: &[usize]) -> std::result::Result<Row, RowError>;
}

/// How many rows one statement may carry: at most `max_rows`, and within the database's bind
/// parameter limit.
pub(crate) fn rows_per_statement(info: &TableInfo, max_params: usize, max_rows: usize) -> usize {
    let per_row = info.columns.len().max(1);
    (max_params / per_row).clamp(1, max_rows.max(1))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upsert,
    /// An upsert of a row expected to be absent.
    Create,
    Delete,
}

/// Ops written by the same statements: one kind, distinct keys, and the same columns left to
/// the database's defaults.
struct Group {
    kind: Kind,
    /// The columns the rows leave empty and the database fills in (creates only).
    defaults: Vec<usize>,
    ops: Vec<usize>,
    keys: HashSet<RowKey>,
}

impl Group {
    fn new(kind: Kind, defaults: Vec<usize>) -> Group {
        Group {
            kind,
            defaults,
            ops: Vec::new(),
            keys: HashSet::new(),
        }
    }
}

/// Applies `ops` inside `tx` and returns one outcome per op. `Err` only for failures that are
/// not about a row (the connection, a permission): the caller drops the transaction.
///
/// `schema` is the table's sheetsync schema: expected rows are compared with the current ones in
/// its normalised form, the form the engine compares rows in.
pub(crate) async fn apply_ops(
    info: &TableInfo,
    schema: &TableSchema,
    tx: &mut dyn WriteTx,
    mut ops: Vec<WriteOp>,
    rows_per_stmt: usize,
) -> Result<Vec<WriteOutcome>> {
    let (mut outcomes, keys, conditional) = check_shapes(info, &ops);
    check_conditions(
        schema,
        tx,
        &mut ops,
        &keys,
        conditional,
        rows_per_stmt,
        &mut outcomes,
    )
    .await?;
    execute(info, tx, &ops, &keys, rows_per_stmt, &mut outcomes).await?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(WriteOutcome::Applied))
        .collect())
}

/// Step 1 of [`apply_ops`]: the outcomes of rows the database would refuse for their shape,
/// each op's key, and the keys of conditional writes to check.
#[allow(clippy::type_complexity)]
fn check_shapes(
    info: &TableInfo,
    ops: &[WriteOp],
) -> (Vec<Option<WriteOutcome>>, Vec<Option<RowKey>>, Vec<RowKey>) {
    let schema_key = |row: &Row| -> Option<RowKey> {
        let vals: Vec<&sheetsync_core::Value> = info.key.iter().map(|&i| &row.0[i]).collect();
        if vals.iter().any(|v| v.is_null()) {
            None
        } else {
            Some(RowKey::from_values(vals))
        }
    };
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; ops.len()];
    let mut conditional: Vec<RowKey> = Vec::new();
    let mut keys: Vec<Option<RowKey>> = Vec::with_capacity(ops.len());
    for (n, op) in ops.iter().enumerate() {
        let key = match op {
            WriteOp::Upsert { row, expected } => {
                // A row expected to be new may leave columns to their defaults.
                let insert = if *expected == Expected::Absent {
                    Insert::New
                } else {
                    Insert::No
                };
                if let Some(reason) = info.check_row(row, insert) {
                    outcomes[n] = Some(WriteOutcome::Held(reason));
                    None
                } else {
                    match schema_key(row) {
                        None => {
                            outcomes[n] =
                                Some(WriteOutcome::Held("upsert of a row without a key".into()));
                            None
                        }
                        Some(k) => {
                            if *expected != Expected::Any {
                                conditional.push(k.clone());
                            }
                            Some(k)
                        }
                    }
                }
            }
            WriteOp::Delete { key, expected } => {
                if *expected != Expected::Any {
                    conditional.push(key.clone());
                }
                Some(key.clone())
            }
            WriteOp::Insert { row } => {
                if !info.generated_key {
                    outcomes[n] = Some(WriteOutcome::Held(format!(
                        "table {} does not generate keys",
                        info.display()
                    )));
                } else if let Some(reason) = info.check_row(row, Insert::GeneratedKey) {
                    outcomes[n] = Some(WriteOutcome::Held(reason));
                }
                None
            }
            WriteOp::SetKey { .. } => {
                outcomes[n] = Some(WriteOutcome::Held(format!(
                    "table {} has no rows without a key; set_key does not apply",
                    info.display()
                )));
                None
            }
        };
        keys.push(key);
    }
    (outcomes, keys, conditional)
}

/// Step 2 of [`apply_ops`]: conditional writes compared with the locked current rows, in op
/// order; a write whose expectation fails is stale, one whose row stays locked is held.
async fn check_conditions(
    schema: &TableSchema,
    tx: &mut dyn WriteTx,
    ops: &mut [WriteOp],
    keys: &[Option<RowKey>],
    mut conditional: Vec<RowKey>,
    rows_per_stmt: usize,
    outcomes: &mut [Option<WriteOutcome>],
) -> Result<()> {
    if conditional.is_empty() {
        return Ok(());
    }
    conditional.sort();
    conditional.dedup();
    let mut state: HashMap<RowKey, Option<std::result::Result<Row, String>>> =
        conditional.iter().map(|k| (k.clone(), None)).collect();
    let mut busy: HashMap<RowKey, String> = HashMap::new();
    for chunk in conditional.chunks(rows_per_stmt.max(1)) {
        lock_rows(tx, chunk, &mut state, &mut busy).await?;
    }
    for (n, op) in ops.iter_mut().enumerate() {
        if outcomes[n].is_some() {
            continue;
        }
        if let Some(reason) = keys[n].as_ref().and_then(|k| busy.get(k)) {
            outcomes[n] = Some(WriteOutcome::Held(reason.clone()));
            continue;
        }
        let (key, expected, mut row) = match op {
            WriteOp::Upsert { row, expected } => (keys[n].as_ref(), &*expected, Some(row)),
            WriteOp::Delete { key, expected } => (Some(&*key), &*expected, None),
            _ => continue,
        };
        let Some(key) = key else { continue };
        let Some(cur) = state.get_mut(key) else {
            continue;
        };
        let matches = match expected {
            Expected::Any => true,
            Expected::Absent => cur.is_none(),
            Expected::Row(r) => matches!(cur, Some(Ok(c)) if same_row(schema, c, r)),
        };
        if !matches {
            outcomes[n] = Some(WriteOutcome::Stale);
            continue;
        }
        if let (Some(Ok(c)), Some(row)) = (&*cur, row.as_deref_mut()) {
            keep_stored_forms(schema, c, row);
        }
        *cur = row.map(|r| Ok(r.clone()));
    }
    Ok(())
}

/// Step 3 of [`apply_ops`]: executes the writes in groups of one kind with distinct keys,
/// keeping the order of ops on a key.
async fn execute(
    info: &TableInfo,
    tx: &mut dyn WriteTx,
    ops: &[WriteOp],
    keys: &[Option<RowKey>],
    rows_per_stmt: usize,
    outcomes: &mut [Option<WriteOutcome>],
) -> Result<()> {
    let mut group = Group::new(Kind::Upsert, Vec::new());
    for n in 0..ops.len() {
        if outcomes[n].is_some() {
            continue;
        }
        let (kind, defaults) = match &ops[n] {
            WriteOp::Upsert {
                expected: Expected::Absent,
                row,
            } => (Kind::Create, info.defaulted(row)),
            WriteOp::Upsert { .. } => (Kind::Upsert, Vec::new()),
            WriteOp::Delete { .. } => (Kind::Delete, Vec::new()),
            WriteOp::Insert { row } => {
                run_group(tx, ops, &group, rows_per_stmt, outcomes).await?;
                group = Group::new(Kind::Upsert, Vec::new());
                outcomes[n] = Some(insert_one(tx, row).await?);
                continue;
            }
            WriteOp::SetKey { .. } => continue,
        };
        let key = keys[n].clone().expect("upserts and deletes have keys");
        if kind != group.kind || defaults != group.defaults || group.keys.contains(&key) {
            run_group(tx, ops, &group, rows_per_stmt, outcomes).await?;
            group = Group::new(kind, defaults);
        }
        group.keys.insert(key);
        group.ops.push(n);
    }
    run_group(tx, ops, &group, rows_per_stmt, outcomes).await
}

/// Reads and locks the current rows for `keys` into `found`. When the lock wait times out
/// (some row stayed locked for the whole lock time-out), the keys are locked one by one without
/// waiting again, so that only the rows another transaction holds are left out: those go to
/// `busy`, with the reason. A chunk waits at most one lock time-out, however many of its rows
/// are locked.
async fn lock_rows(
    tx: &mut dyn WriteTx,
    keys: &[RowKey],
    found: &mut HashMap<RowKey, Option<std::result::Result<Row, String>>>,
    busy: &mut HashMap<RowKey, String>,
) -> Result<()> {
    let Some(reason) = try_lock(tx, keys, Lock::Wait, found).await? else {
        return Ok(());
    };
    if keys.len() == 1 {
        busy.insert(keys[0].clone(), reason);
        return Ok(());
    }
    for k in keys {
        if let Some(reason) = try_lock(tx, std::slice::from_ref(k), Lock::NoWait, found).await? {
            busy.insert(k.clone(), reason);
        }
    }
    Ok(())
}

/// [`WriteTx::current`] inside a savepoint; `Some(reason)` when it could not lock in time.
async fn try_lock(
    tx: &mut dyn WriteTx,
    keys: &[RowKey],
    lock: Lock,
    found: &mut HashMap<RowKey, Option<std::result::Result<Row, String>>>,
) -> Result<Option<String>> {
    tx.execute(SAVEPOINT).await?;
    match tx.current(keys, lock).await {
        Ok(rows) => {
            tx.execute(RELEASE).await?;
            found.extend(rows.into_iter().map(|(k, r)| (k, Some(r))));
            Ok(None)
        }
        Err(RowError::Busy(reason)) => {
            tx.execute(ROLLBACK).await?;
            tx.execute(RELEASE).await?;
            Ok(Some(reason))
        }
        Err(e) => Err(read_error(e)),
    }
}

/// A failure to read rows inside the write transaction, which has nothing to do with one row.
fn read_error(e: RowError) -> sheetsync_core::Error {
    match e {
        RowError::Held(reason) | RowError::Busy(reason) => sheetsync_core::Error::new(
            sheetsync_core::ErrorKind::Unexpected,
            format!("reading the rows to write failed: {reason}"),
        ),
        RowError::Fatal(e) => e,
    }
}

/// Whether the database's current row is the row the engine expects. The engine reads rows in
/// their normalised form (an empty text in a nullable text column is NULL), so the database's
/// row is compared in that form too: a stored `''` must not make every write of the row stale.
fn same_row(schema: &TableSchema, current: &Row, expected: &Row) -> bool {
    normalized(schema, current) == normalized(schema, expected)
}

/// Values a write leaves as they are (equal in the normalised form) keep the database's own
/// form: writing a row never turns a stored `''` into NULL.
fn keep_stored_forms(schema: &TableSchema, current: &Row, row: &mut Row) {
    let (cur, new) = (normalized(schema, current), normalized(schema, row));
    for (i, v) in row.0.iter_mut().enumerate() {
        if cur.0.get(i) == new.0.get(i) {
            if let Some(stored) = current.0.get(i) {
                v.clone_from(stored);
            }
        }
    }
}

fn normalized(schema: &TableSchema, row: &Row) -> Row {
    let mut row = row.clone();
    schema.normalize(&mut row);
    row
}

const SAVEPOINT: &str = "SAVEPOINT sheetsync_row";
const ROLLBACK: &str = "ROLLBACK TO SAVEPOINT sheetsync_row";
const RELEASE: &str = "RELEASE SAVEPOINT sheetsync_row";

/// Runs one statement writing the columns `cols`; returns the ops that turned out stale.
async fn run_stmt(
    tx: &mut dyn WriteTx,
    ops: &[WriteOp],
    idx: &[usize],
    kind: Kind,
    cols: &[usize],
) -> std::result::Result<Vec<usize>, RowError> {
    let row_of = |n: usize| match &ops[n] {
        WriteOp::Upsert { row, .. } => row,
        _ => unreachable!("upsert group holds upserts"),
    };
    match kind {
        Kind::Upsert => {
            let rows: Vec<&Row> = idx.iter().map(|&n| row_of(n)).collect();
            tx.upsert(&rows, cols).await.map(|()| Vec::new())
        }
        Kind::Create => {
            let rows: Vec<&Row> = idx.iter().map(|&n| row_of(n)).collect();
            let keys: Vec<RowKey> = idx.iter().map(|&n| key_of(tx.info(), row_of(n))).collect();
            let key_refs: Vec<&RowKey> = keys.iter().collect();
            let inserted = tx.create(&rows, &key_refs, cols).await?;
            Ok(idx
                .iter()
                .zip(&keys)
                .filter(|(_, k)| !inserted.contains(*k))
                .map(|(&n, _)| n)
                .collect())
        }
        Kind::Delete => {
            let keys: Vec<&RowKey> = idx
                .iter()
                .map(|&n| match &ops[n] {
                    WriteOp::Delete { key, .. } => key,
                    _ => unreachable!("delete group holds deletes"),
                })
                .collect();
            tx.delete(&keys).await.map(|()| Vec::new())
        }
    }
}

fn key_of(info: &TableInfo, row: &Row) -> RowKey {
    RowKey::from_values(info.key.iter().map(|&i| &row.0[i]))
}

/// Runs one statement inside a savepoint; on a row error rolls back to it. `Ok(Ok(stale))`
/// names the ops that turned out stale.
async fn guarded(
    tx: &mut dyn WriteTx,
    ops: &[WriteOp],
    idx: &[usize],
    kind: Kind,
    cols: &[usize],
) -> Result<std::result::Result<Vec<usize>, String>> {
    tx.execute(SAVEPOINT).await?;
    match run_stmt(tx, ops, idx, kind, cols).await {
        Ok(stale) => {
            tx.execute(RELEASE).await?;
            Ok(Ok(stale))
        }
        Err(RowError::Held(msg) | RowError::Busy(msg)) => {
            tx.execute(ROLLBACK).await?;
            tx.execute(RELEASE).await?;
            Ok(Err(msg))
        }
        Err(RowError::Fatal(e)) => Err(e),
    }
}

async fn run_group(
    tx: &mut dyn WriteTx,
    ops: &[WriteOp],
    group: &Group,
    rows_per_stmt: usize,
    outcomes: &mut [Option<WriteOutcome>],
) -> Result<()> {
    let (kind, cols) = (group.kind, tx.info().write_columns_except(&group.defaults));
    for chunk in group.ops.chunks(rows_per_stmt.max(1)) {
        match guarded(tx, ops, chunk, kind, &cols).await? {
            Ok(stale) => {
                for n in stale {
                    outcomes[n] = Some(WriteOutcome::Stale);
                }
            }
            Err(msg) if chunk.len() == 1 => outcomes[chunk[0]] = Some(WriteOutcome::Held(msg)),
            Err(_) => {
                // One row spoiled the statement: find it by writing each row on its own.
                for &n in chunk {
                    match guarded(tx, ops, &[n], kind, &cols).await? {
                        Ok(stale) if stale.is_empty() => {}
                        Ok(_) => outcomes[n] = Some(WriteOutcome::Stale),
                        Err(msg) => outcomes[n] = Some(WriteOutcome::Held(msg)),
                    }
                }
            }
        }
    }
    if !group.defaults.is_empty() {
        report_stored(tx, ops, &group.ops, rows_per_stmt, outcomes).await?;
    }
    Ok(())
}

/// The rows of `idx` that were written, read back as [`WriteOutcome::Stored`]: the database
/// filled in columns they left empty, and the engine shows the values it chose.
async fn report_stored(
    tx: &mut dyn WriteTx,
    ops: &[WriteOp],
    idx: &[usize],
    rows_per_stmt: usize,
    outcomes: &mut [Option<WriteOutcome>],
) -> Result<()> {
    let written: Vec<(usize, RowKey)> = idx
        .iter()
        .filter(|&&n| outcomes[n].is_none())
        .filter_map(|&n| match &ops[n] {
            WriteOp::Upsert { row, .. } => Some((n, key_of(tx.info(), row))),
            _ => None,
        })
        .collect();
    for chunk in written.chunks(rows_per_stmt.max(1)) {
        let keys: Vec<RowKey> = chunk.iter().map(|(_, k)| k.clone()).collect();
        let stored: HashMap<RowKey, std::result::Result<Row, String>> = tx
            .current(&keys, Lock::None)
            .await
            .map_err(read_error)?
            .into_iter()
            .collect();
        for (n, k) in chunk {
            outcomes[*n] = match stored.get(k) {
                Some(Ok(row)) => Some(WriteOutcome::Stored(row.clone())),
                Some(Err(reason)) => Some(WriteOutcome::Held(format!(
                    "the stored row does not read back: {reason}"
                ))),
                None => None,
            };
        }
    }
    Ok(())
}

async fn insert_one(tx: &mut dyn WriteTx, row: &Row) -> Result<WriteOutcome> {
    let info = tx.info();
    let defaults = info.defaulted(row);
    let cols: Vec<usize> = info
        .write_columns_except(&defaults)
        .into_iter()
        .filter(|i| !info.key.contains(i))
        .collect();
    tx.execute(SAVEPOINT).await?;
    match tx.insert(row, &cols).await {
        Ok(stored) => {
            tx.execute(RELEASE).await?;
            Ok(WriteOutcome::Stored(stored))
        }
        Err(RowError::Held(msg) | RowError::Busy(msg)) => {
            tx.execute(ROLLBACK).await?;
            tx.execute(RELEASE).await?;
            Ok(WriteOutcome::Held(msg))
        }
        Err(RowError::Fatal(e)) => Err(e),
    }
}
