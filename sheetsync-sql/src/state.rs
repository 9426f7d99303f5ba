//! [`StateStore`](sheetsync_core::StateStore)s that keep the engine's state in the synced
//! database itself, in tables of their own:
//!
//! * `..._state_mappings (mapping, doc)`: cursors, pending keys, held rows, conflicts, choices
//!   and the clock of a mapping, as one JSON document;
//! * `..._state_bases (mapping, kh, k, row_data, tombstone, synced_at)`: one merge base per row,
//!   the row in sheetsync's canonical binary encoding (exact for every value, NaN included);
//! * `..._state_intents (mapping, kh, k, intent)`: the engine's write intents, one per row (a
//!   small binary record, rows in the canonical encoding), written before a cycle's writes and
//!   deleted with the bases that complete them.
//!
//! The document also holds the mapping's identity (which Sheet and table it belongs to), the
//! deletes waiting for approval and the guard's log of recent deletes.
//!
//! Each [`StateDelta`] commits in one transaction; the mapping's document row is locked first,
//! so two engines committing for the same mapping serialise. A table adapter whose pool is the
//! store's offers the engine its write transactions
//! ([`TransactionalSink`](sheetsync_core::TransactionalSink)): the cycle's database writes and
//! its new state then commit together ([`StateTx`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sheetsync_core::{
    Choice, ConflictRecord, Cursor, Error, ErrorKind, HeldRow, MappingIdentity, PendingDelete,
    RecentDeletes, Result, Row, RowBase, RowKey, Side, StateDelta, StateSnapshot, Value,
    WriteIntent,
};

/// What a mapping keeps besides its bases.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Doc {
    #[serde(default)]
    pub cursors: BTreeMap<Side, Cursor>,
    #[serde(default)]
    pub pending: Vec<RowKey>,
    #[serde(default)]
    pub held: Vec<HeldRow>,
    #[serde(default)]
    pub conflicts: Vec<ConflictRecord>,
    #[serde(default)]
    pub choices: Vec<(RowKey, Choice)>,
    #[serde(default)]
    pub clock: u64,
    #[serde(default)]
    pub identity: Option<MappingIdentity>,
    #[serde(default)]
    pub pending_deletes: Vec<PendingDelete>,
    #[serde(default)]
    pub recent_deletes: Vec<RecentDeletes>,
}

impl Doc {
    pub(crate) fn parse(s: Option<String>) -> Result<Doc> {
        match s {
            None => Ok(Doc::default()),
            Some(s) => serde_json::from_str(&s).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidData,
                    format!("stored sheetsync state is unreadable: {e}"),
                )
                .with_operation("state.load")
            }),
        }
    }

    pub(crate) fn render(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| {
            Error::new(
                ErrorKind::InvalidData,
                format!("sheetsync state cannot be stored: {e}"),
            )
            .with_operation("state.commit")
        })
    }

    /// Everything in `delta` except the bases and intents.
    pub(crate) fn apply(&mut self, delta: &StateDelta) {
        if delta.reset {
            *self = Doc {
                clock: self.clock,
                ..Doc::default()
            };
        }
        for (side, c) in &delta.cursors {
            self.cursors.insert(*side, c.clone());
        }
        if let Some(p) = &delta.pending {
            self.pending = p.clone();
        }
        if let Some(h) = &delta.held {
            self.held = h.clone();
        }
        if let Some(c) = &delta.conflicts {
            self.conflicts = c.clone();
        }
        if let Some(c) = &delta.choices {
            self.choices = c.clone();
        }
        if let Some(i) = &delta.identity {
            self.identity = Some(i.clone());
        }
        if let Some(p) = &delta.pending_deletes {
            self.pending_deletes = p.clone();
        }
        if let Some(r) = &delta.recent_deletes {
            self.recent_deletes = r.clone();
        }
        self.clock = self.clock.max(delta.clock);
    }

    pub(crate) fn into_snapshot(
        self,
        bases: BTreeMap<RowKey, RowBase>,
        intents: Vec<WriteIntent>,
    ) -> StateSnapshot {
        StateSnapshot {
            bases,
            cursors: self.cursors,
            pending: self.pending,
            held: self.held,
            conflicts: self.conflicts,
            choices: self.choices,
            clock: self.clock,
            identity: self.identity,
            intents,
            pending_deletes: self.pending_deletes,
            recent_deletes: self.recent_deletes,
        }
    }
}

/// A stored intent (its key is in the row's `k` column): version 1 is
/// `1, target?, base?, n, (side, at, row?) * n`, where `x?` is a flag byte then, when set, a
/// 4-byte length and the canonical encoding (a row) or the 16 hash bytes (the base).
pub(crate) fn encode_intent(intent: &WriteIntent) -> Vec<u8> {
    fn row(out: &mut Vec<u8>, r: Option<&Row>) {
        match r {
            None => out.push(0),
            Some(r) => {
                let bytes = encode_row(r);
                out.push(1);
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
        }
    }
    let mut out = vec![1u8];
    row(&mut out, intent.target.as_ref());
    match intent.base {
        None => out.push(0),
        Some(h) => {
            out.push(1);
            out.extend_from_slice(&h.0.to_be_bytes());
        }
    }
    out.push(intent.sides.len() as u8);
    for b in &intent.sides {
        out.push(matches!(b.side, Side::Db) as u8);
        out.extend_from_slice(&b.at.to_be_bytes());
        row(&mut out, b.row.as_ref());
    }
    out
}

/// Decodes a stored intent of row `k`.
pub(crate) fn decode_intent(k: &[u8], data: &[u8]) -> Result<WriteIntent> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        *rest = tail;
        Some(head)
    }
    fn row(rest: &mut &[u8]) -> Option<Option<Row>> {
        if take(rest, 1)?[0] == 0 {
            return Some(None);
        }
        let len = u32::from_be_bytes(take(rest, 4)?.try_into().ok()?) as usize;
        let mut bytes = take(rest, len)?;
        let mut values = Vec::new();
        while !bytes.is_empty() {
            values.push(Value::decode(&mut bytes)?);
        }
        Some(Some(Row::new(values)))
    }
    let decode = || -> Option<WriteIntent> {
        let mut rest = data;
        if take(&mut rest, 1)?[0] != 1 {
            return None;
        }
        let target = row(&mut rest)?;
        let base = match take(&mut rest, 1)?[0] {
            0 => None,
            _ => Some(sheetsync_core::RowHash(u128::from_be_bytes(
                take(&mut rest, 16)?.try_into().ok()?,
            ))),
        };
        let n = take(&mut rest, 1)?[0];
        let mut sides = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let side = if take(&mut rest, 1)?[0] == 0 {
                Side::Sheet
            } else {
                Side::Db
            };
            let at = u64::from_be_bytes(take(&mut rest, 8)?.try_into().ok()?);
            sides.push(sheetsync_core::SideBefore {
                side,
                row: row(&mut rest)?,
                at,
            });
        }
        rest.is_empty().then_some(WriteIntent {
            key: RowKey::from_bytes(k)?,
            target,
            base,
            sides,
        })
    };
    decode().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidData,
            "a stored write intent is unreadable",
        )
        .with_operation("state.load")
    })
}

/// Decodes stored intents: (key bytes, intent bytes) per row.
pub(crate) fn decode_intents(
    rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<Vec<WriteIntent>> {
    rows.into_iter()
        .map(|(k, data)| decode_intent(&k, &data))
        .collect()
}

/// The keys whose intents a delta replaces or ends (the rows of `..._state_intents` to delete
/// before inserting the new ones); none when the delta clears them all at once.
pub(crate) fn intent_keys_to_clear(delta: &StateDelta) -> Vec<&RowKey> {
    if delta.intents_cleared {
        return delta.intents.iter().map(|i| &i.key).collect();
    }
    delta
        .intents_done
        .iter()
        .chain(delta.intents.iter().map(|i| &i.key))
        .collect()
}

/// How many intents one statement writes (4 parameters each).
pub(crate) const INTENTS_PER_STATEMENT: usize = 1_000;

/// `(?, ?, ?, ?), ...` or `($1, ...)` for `n` intents.
pub(crate) fn intent_tuples(n: usize, dollar: bool) -> String {
    tuples(n, 4, dollar)
}

/// Where a store over `pool` keeps its state, for matching a table adapter's transactions with
/// it: the pool itself (its clones share one set of connect options), so only a table and a
/// store on the same pool commit together.
pub(crate) fn pool_location<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> String {
    format!(
        "{}:{:p}",
        DB::NAME.to_ascii_lowercase(),
        std::sync::Arc::as_ptr(&pool.connect_options())
    )
}

/// A table adapter's write transaction that can also commit the engine's state.
#[async_trait::async_trait]
pub(crate) trait CommitWithState: crate::apply::WriteTx {
    /// Clears the origin tag, commits `delta` for `mapping` in the transaction, then commits.
    async fn commit_with_state(self: Box<Self>, mapping: &str, delta: &StateDelta) -> Result<()>;
}

/// A [`SinkTransaction`](sheetsync_core::SinkTransaction) over an adapter's write transaction.
pub(crate) struct StateTx<'a, W> {
    info: &'a crate::table::TableInfo,
    schema: &'a sheetsync_core::TableSchema,
    w: Box<W>,
    max_batch: usize,
    rows_per_statement: usize,
}

impl<'a, W> StateTx<'a, W> {
    pub(crate) fn new(
        info: &'a crate::table::TableInfo,
        schema: &'a sheetsync_core::TableSchema,
        w: W,
        max_batch: usize,
        rows_per_statement: usize,
    ) -> Self {
        StateTx {
            info,
            schema,
            w: Box::new(w),
            max_batch,
            rows_per_statement,
        }
    }
}

#[async_trait::async_trait]
impl<W: CommitWithState> sheetsync_core::SinkTransaction for StateTx<'_, W> {
    async fn apply(
        &mut self,
        ops: Vec<sheetsync_core::WriteOp>,
    ) -> Result<Vec<sheetsync_core::WriteOutcome>> {
        if ops.len() > self.max_batch.max(1) {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("{} ops exceed max_batch {}", ops.len(), self.max_batch),
            ));
        }
        crate::apply::apply_ops(
            self.info,
            self.schema,
            &mut *self.w,
            ops,
            self.rows_per_statement,
        )
        .await
    }

    async fn commit(self: Box<Self>, mapping: &str, state: &StateDelta) -> Result<()> {
        self.w.commit_with_state(mapping, state).await
    }
}

/// A 16-byte hash of a key's canonical bytes: the primary key column (keys themselves may be
/// longer than an index allows).
pub(crate) fn key_hash(key: &RowKey) -> Vec<u8> {
    // `Row::hash` is xxh3-128 of the concatenated canonical encodings, which is what a key's
    // bytes are.
    Row::new(key.values()).hash().0.to_be_bytes().to_vec()
}

/// The canonical encoding of a row.
pub(crate) fn encode_row(row: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * row.0.len());
    for v in &row.0 {
        v.encode(&mut out);
    }
    out
}

/// A stored base.
/// Decodes stored bases: (key bytes, row bytes, tombstone, synced_at) per row.
pub(crate) fn decode_bases(
    rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>, bool, i64)>,
) -> Result<BTreeMap<RowKey, RowBase>> {
    rows.into_iter()
        .map(|(k, row, tombstone, synced_at)| decode_base(&k, &row, tombstone, synced_at))
        .collect()
}

pub(crate) fn decode_base(
    k: &[u8],
    row: &[u8],
    tombstone: bool,
    synced_at: i64,
) -> Result<(RowKey, RowBase)> {
    let bad = |what: &str| {
        Error::new(
            ErrorKind::InvalidData,
            format!("stored sheetsync base has an unreadable {what}"),
        )
        .with_operation("state.load")
    };
    let key = RowKey::from_bytes(k).ok_or_else(|| bad("key"))?;
    let mut rest = row;
    let mut vals = Vec::new();
    while !rest.is_empty() {
        vals.push(Value::decode(&mut rest).ok_or_else(|| bad("row"))?);
    }
    let synced_at = synced_at as u64;
    let base = if tombstone {
        RowBase::tombstone(synced_at)
    } else {
        RowBase::live(Row::new(vals), synced_at)
    };
    Ok((key, base))
}

/// How many bases one statement writes (6 parameters each).
pub(crate) const BASES_PER_STATEMENT: usize = 1_000;

/// `(?, ?, ?, ?, ?, ?), ...` or `($1, ...)` for `n` bases.
pub(crate) fn base_tuples(n: usize, dollar: bool) -> String {
    tuples(n, 6, dollar)
}

fn tuples(n: usize, width: usize, dollar: bool) -> String {
    let mut p = 0;
    (0..n)
        .map(|_| {
            let t: Vec<String> = (0..width)
                .map(|_| {
                    p += 1;
                    if dollar {
                        format!("${p}")
                    } else {
                        "?".to_string()
                    }
                })
                .collect();
            format!("({})", t.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `?, ?, ...` or `$2, $3, ...` (after the mapping parameter) for `n` key hashes.
pub(crate) fn hash_list(n: usize, dollar: bool) -> String {
    (0..n)
        .map(|i| {
            if dollar {
                format!("${}", i + 2)
            } else {
                "?".to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(feature = "postgres")]
pub(crate) mod postgres {
    use super::*;
    use async_trait::async_trait;
    use sheetsync_core::StateStore;
    use sqlx::{PgPool, Postgres, Row as _};

    use crate::dialect::audited;
    use crate::error::db_error;

    /// A [`StateStore`] in a PostgreSQL database: tables `sheetsync.state_mappings`,
    /// `sheetsync.state_bases` and `sheetsync.state_intents`.
    pub struct PostgresStateStore {
        pool: PgPool,
    }

    impl PostgresStateStore {
        /// Creates the state tables if needed and returns the store.
        pub async fn new(pool: PgPool) -> Result<Self> {
            let err = |e| db_error(e, "state.install");
            let mut tx = pool.begin().await.map_err(err)?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sheetsync.install'))")
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            for ddl in [
                "CREATE SCHEMA IF NOT EXISTS sheetsync",
                "CREATE TABLE IF NOT EXISTS sheetsync.state_mappings (mapping text PRIMARY KEY, doc text NOT NULL)",
                "CREATE TABLE IF NOT EXISTS sheetsync.state_bases (
                    mapping text NOT NULL, kh bytea NOT NULL, k bytea NOT NULL, row_data bytea NOT NULL,
                    tombstone boolean NOT NULL, synced_at bigint NOT NULL, PRIMARY KEY (mapping, kh))",
                "CREATE TABLE IF NOT EXISTS sheetsync.state_intents (
                    mapping text NOT NULL, kh bytea NOT NULL, k bytea NOT NULL, intent bytea NOT NULL,
                    PRIMARY KEY (mapping, kh))",
            ] {
                sqlx::query(ddl).execute(&mut *tx).await.map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            Ok(PostgresStateStore { pool })
        }

        /// Drops the state tables (every mapping's state).
        pub async fn uninstall(&self) -> Result<()> {
            let err = |e| db_error(e, "state.uninstall");
            for ddl in [
                "DROP TABLE IF EXISTS sheetsync.state_mappings",
                "DROP TABLE IF EXISTS sheetsync.state_bases",
                "DROP TABLE IF EXISTS sheetsync.state_intents",
            ] {
                sqlx::query(ddl).execute(&self.pool).await.map_err(err)?;
            }
            sqlx::query("DO $$ BEGIN DROP SCHEMA IF EXISTS sheetsync; EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$")
                .execute(&self.pool)
                .await
                .map_err(err)?;
            Ok(())
        }
    }

    /// Commits `delta` for `mapping` inside `tx` (which the caller commits).
    pub(crate) async fn commit_in(
        tx: &mut sqlx::Transaction<'_, Postgres>,
        mapping: &str,
        delta: &StateDelta,
    ) -> Result<()> {
        let err = |e| db_error(e, "state.commit");
        sqlx::query("INSERT INTO sheetsync.state_mappings (mapping, doc) VALUES ($1, '{}') ON CONFLICT (mapping) DO NOTHING")
            .bind(mapping)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
        let doc: String = sqlx::query_scalar(
            "SELECT doc FROM sheetsync.state_mappings WHERE mapping = $1 FOR UPDATE",
        )
        .bind(mapping)
        .fetch_one(&mut **tx)
        .await
        .map_err(err)?;
        let mut doc = Doc::parse(Some(doc))?;
        doc.apply(delta);
        let bases = delta
            .reset
            .then_some("DELETE FROM sheetsync.state_bases WHERE mapping = $1");
        let intents = (delta.reset || delta.intents_cleared)
            .then_some("DELETE FROM sheetsync.state_intents WHERE mapping = $1");
        for sql in bases.into_iter().chain(intents) {
            sqlx::query(sql)
                .bind(mapping)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
        }
        for chunk in delta.upsert.chunks(BASES_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO sheetsync.state_bases (mapping, kh, k, row_data, tombstone, synced_at) VALUES {}
                 ON CONFLICT (mapping, kh) DO UPDATE SET k = EXCLUDED.k, row_data = EXCLUDED.row_data,
                   tombstone = EXCLUDED.tombstone, synced_at = EXCLUDED.synced_at",
                base_tuples(chunk.len(), true)
            );
            let mut q = sqlx::query(audited(sql));
            for (k, b) in chunk {
                q = q
                    .bind(mapping)
                    .bind(key_hash(k))
                    .bind(k.as_bytes().to_vec())
                    .bind(encode_row(&b.row))
                    .bind(b.tombstone)
                    .bind(b.synced_at as i64);
            }
            q.execute(&mut **tx).await.map_err(err)?;
        }
        for (table, keys) in [
            (
                "sheetsync.state_bases",
                delta.remove.iter().collect::<Vec<_>>(),
            ),
            ("sheetsync.state_intents", intent_keys_to_clear(delta)),
        ] {
            for chunk in keys.chunks(BASES_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM {table} WHERE mapping = $1 AND kh IN ({})",
                    hash_list(chunk.len(), true)
                );
                let mut q = sqlx::query(audited(sql)).bind(mapping);
                for k in chunk {
                    q = q.bind(key_hash(k));
                }
                q.execute(&mut **tx).await.map_err(err)?;
            }
        }
        for chunk in delta.intents.chunks(INTENTS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO sheetsync.state_intents (mapping, kh, k, intent) VALUES {}",
                intent_tuples(chunk.len(), true)
            );
            let mut q = sqlx::query(audited(sql));
            for i in chunk {
                q = q
                    .bind(mapping)
                    .bind(key_hash(&i.key))
                    .bind(i.key.as_bytes().to_vec())
                    .bind(encode_intent(i));
            }
            q.execute(&mut **tx).await.map_err(err)?;
        }
        sqlx::query("UPDATE sheetsync.state_mappings SET doc = $2 WHERE mapping = $1")
            .bind(mapping)
            .bind(doc.render()?)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
        Ok(())
    }

    #[async_trait]
    impl StateStore for PostgresStateStore {
        fn location(&self) -> Option<String> {
            Some(pool_location(&self.pool))
        }

        async fn load(&self, mapping: &str) -> Result<StateSnapshot> {
            let err = |e| db_error(e, "state.load");
            let mut tx = self.pool.begin().await.map_err(err)?;
            // One snapshot for the document, the bases and the intents.
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            let doc: Option<String> =
                sqlx::query_scalar("SELECT doc FROM sheetsync.state_mappings WHERE mapping = $1")
                    .bind(mapping)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
            let rows = sqlx::query("SELECT k, row_data, tombstone, synced_at FROM sheetsync.state_bases WHERE mapping = $1")
                .bind(mapping)
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
            let intents: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
                "SELECT k, intent FROM sheetsync.state_intents WHERE mapping = $1 ORDER BY kh",
            )
            .bind(mapping)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            let bases = decode_bases(
                rows.iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))),
            )?;
            Ok(Doc::parse(doc)?.into_snapshot(bases, decode_intents(intents)?))
        }

        async fn commit(&self, mapping: &str, delta: &StateDelta) -> Result<()> {
            let err = |e| db_error(e, "state.commit");
            let mut tx = self.pool.begin().await.map_err(err)?;
            commit_in(&mut tx, mapping, delta).await?;
            tx.commit().await.map_err(err)
        }
    }
}

#[cfg(feature = "mysql")]
pub(crate) mod mysql {
    use super::*;
    use async_trait::async_trait;
    use sheetsync_core::StateStore;
    use sqlx::{MySql, MySqlPool, Row as _};

    use crate::dialect::audited;
    use crate::error::db_error;

    /// A [`StateStore`] in a MySQL/MariaDB database: tables `_sheetsync_state_mappings`,
    /// `_sheetsync_state_bases` and `_sheetsync_state_intents`.
    pub struct MySqlStateStore {
        pool: MySqlPool,
    }

    impl MySqlStateStore {
        /// Creates the state tables if needed and returns the store.
        pub async fn new(pool: MySqlPool) -> Result<Self> {
            let err = |e| db_error(e, "state.install");
            for ddl in [
                "CREATE TABLE IF NOT EXISTS `_sheetsync_state_mappings` (
                    mapping VARCHAR(191) NOT NULL PRIMARY KEY, doc LONGTEXT NOT NULL
                 ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                "CREATE TABLE IF NOT EXISTS `_sheetsync_state_bases` (
                    mapping VARCHAR(191) NOT NULL, kh BINARY(16) NOT NULL, k LONGBLOB NOT NULL,
                    row_data LONGBLOB NOT NULL, tombstone BOOLEAN NOT NULL, synced_at BIGINT NOT NULL,
                    PRIMARY KEY (mapping, kh)
                 ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                "CREATE TABLE IF NOT EXISTS `_sheetsync_state_intents` (
                    mapping VARCHAR(191) NOT NULL, kh BINARY(16) NOT NULL, k LONGBLOB NOT NULL,
                    intent LONGBLOB NOT NULL, PRIMARY KEY (mapping, kh)
                 ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            ] {
                sqlx::query(ddl).execute(&pool).await.map_err(err)?;
            }
            Ok(MySqlStateStore { pool })
        }

        /// Drops the state tables (every mapping's state).
        pub async fn uninstall(&self) -> Result<()> {
            sqlx::query(
                "DROP TABLE IF EXISTS `_sheetsync_state_mappings`, `_sheetsync_state_bases`, `_sheetsync_state_intents`",
            )
            .execute(&self.pool)
            .await
            .map_err(|e| db_error(e, "state.uninstall"))?;
            Ok(())
        }
    }

    /// Commits `delta` for `mapping` inside `tx` (which the caller commits).
    pub(crate) async fn commit_in(
        tx: &mut sqlx::Transaction<'_, MySql>,
        mapping: &str,
        delta: &StateDelta,
    ) -> Result<()> {
        let err = |e| db_error(e, "state.commit");
        sqlx::query(
            "INSERT IGNORE INTO `_sheetsync_state_mappings` (mapping, doc) VALUES (?, '{}')",
        )
        .bind(mapping)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
        let doc: String = sqlx::query_scalar(
            "SELECT doc FROM `_sheetsync_state_mappings` WHERE mapping = ? FOR UPDATE",
        )
        .bind(mapping)
        .fetch_one(&mut **tx)
        .await
        .map_err(err)?;
        let mut doc = Doc::parse(Some(doc))?;
        doc.apply(delta);
        let bases = delta
            .reset
            .then_some("DELETE FROM `_sheetsync_state_bases` WHERE mapping = ?");
        let intents = (delta.reset || delta.intents_cleared)
            .then_some("DELETE FROM `_sheetsync_state_intents` WHERE mapping = ?");
        for sql in bases.into_iter().chain(intents) {
            sqlx::query(sql)
                .bind(mapping)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
        }
        for chunk in delta.upsert.chunks(BASES_PER_STATEMENT) {
            // Only the primary key is unique in this table of ours.
            let sql = format!(
                "INSERT INTO `_sheetsync_state_bases` (mapping, kh, k, row_data, tombstone, synced_at) VALUES {}
                 ON DUPLICATE KEY UPDATE k = VALUES(k), row_data = VALUES(row_data),
                   tombstone = VALUES(tombstone), synced_at = VALUES(synced_at)",
                base_tuples(chunk.len(), false)
            );
            let mut q = sqlx::query(audited(sql));
            for (k, b) in chunk {
                q = q
                    .bind(mapping)
                    .bind(key_hash(k))
                    .bind(k.as_bytes().to_vec())
                    .bind(encode_row(&b.row))
                    .bind(b.tombstone)
                    .bind(b.synced_at as i64);
            }
            q.execute(&mut **tx).await.map_err(err)?;
        }
        for (table, keys) in [
            (
                "`_sheetsync_state_bases`",
                delta.remove.iter().collect::<Vec<_>>(),
            ),
            ("`_sheetsync_state_intents`", intent_keys_to_clear(delta)),
        ] {
            for chunk in keys.chunks(BASES_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM {table} WHERE mapping = ? AND kh IN ({})",
                    hash_list(chunk.len(), false)
                );
                let mut q = sqlx::query(audited(sql)).bind(mapping);
                for k in chunk {
                    q = q.bind(key_hash(k));
                }
                q.execute(&mut **tx).await.map_err(err)?;
            }
        }
        for chunk in delta.intents.chunks(INTENTS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO `_sheetsync_state_intents` (mapping, kh, k, intent) VALUES {}",
                intent_tuples(chunk.len(), false)
            );
            let mut q = sqlx::query(audited(sql));
            for i in chunk {
                q = q
                    .bind(mapping)
                    .bind(key_hash(&i.key))
                    .bind(i.key.as_bytes().to_vec())
                    .bind(encode_intent(i));
            }
            q.execute(&mut **tx).await.map_err(err)?;
        }
        sqlx::query("UPDATE `_sheetsync_state_mappings` SET doc = ? WHERE mapping = ?")
            .bind(doc.render()?)
            .bind(mapping)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
        Ok(())
    }

    #[async_trait]
    impl StateStore for MySqlStateStore {
        fn location(&self) -> Option<String> {
            Some(pool_location(&self.pool))
        }

        async fn load(&self, mapping: &str) -> Result<StateSnapshot> {
            let err = |e| db_error(e, "state.load");
            let mut tx = self.pool.begin().await.map_err(err)?;
            let doc: Option<String> =
                sqlx::query_scalar("SELECT doc FROM `_sheetsync_state_mappings` WHERE mapping = ?")
                    .bind(mapping)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
            let rows = sqlx::query(
                "SELECT k, row_data, tombstone, synced_at FROM `_sheetsync_state_bases` WHERE mapping = ?",
            )
            .bind(mapping)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            let intents: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
                "SELECT k, intent FROM `_sheetsync_state_intents` WHERE mapping = ? ORDER BY kh",
            )
            .bind(mapping)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            let bases = decode_bases(
                rows.iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))),
            )?;
            Ok(Doc::parse(doc)?.into_snapshot(bases, decode_intents(intents)?))
        }

        async fn commit(&self, mapping: &str, delta: &StateDelta) -> Result<()> {
            let err = |e| db_error(e, "state.commit");
            let mut tx = self.pool.begin().await.map_err(err)?;
            commit_in(&mut tx, mapping, delta).await?;
            tx.commit().await.map_err(err)
        }
    }
}

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    use super::*;
    use async_trait::async_trait;
    use sheetsync_core::StateStore;
    use sqlx::{Row as _, Sqlite, SqlitePool};

    use crate::dialect::audited;
    use crate::error::db_error;

    /// A [`StateStore`] in a SQLite database: tables `_sheetsync_state_mappings`,
    /// `_sheetsync_state_bases` and `_sheetsync_state_intents`.
    pub struct SqliteStateStore {
        pool: SqlitePool,
    }

    impl SqliteStateStore {
        /// Creates the state tables if needed and returns the store.
        pub async fn new(pool: SqlitePool) -> Result<Self> {
            let err = |e| db_error(e, "state.install");
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
            for ddl in [
                "CREATE TABLE IF NOT EXISTS _sheetsync_state_mappings (mapping TEXT PRIMARY KEY, doc TEXT NOT NULL)",
                "CREATE TABLE IF NOT EXISTS _sheetsync_state_bases (
                    mapping TEXT NOT NULL, kh BLOB NOT NULL, k BLOB NOT NULL, row_data BLOB NOT NULL,
                    tombstone INTEGER NOT NULL, synced_at INTEGER NOT NULL, PRIMARY KEY (mapping, kh))",
                "CREATE TABLE IF NOT EXISTS _sheetsync_state_intents (
                    mapping TEXT NOT NULL, kh BLOB NOT NULL, k BLOB NOT NULL, intent BLOB NOT NULL,
                    PRIMARY KEY (mapping, kh))",
            ] {
                sqlx::query(ddl).execute(&mut *tx).await.map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            Ok(SqliteStateStore { pool })
        }

        /// Drops the state tables (every mapping's state).
        pub async fn uninstall(&self) -> Result<()> {
            let err = |e| db_error(e, "state.uninstall");
            for ddl in [
                "DROP TABLE IF EXISTS _sheetsync_state_mappings",
                "DROP TABLE IF EXISTS _sheetsync_state_bases",
                "DROP TABLE IF EXISTS _sheetsync_state_intents",
            ] {
                sqlx::query(ddl).execute(&self.pool).await.map_err(err)?;
            }
            Ok(())
        }
    }

    /// Commits `delta` for `mapping` inside `tx` (which the caller commits; SQLite has one
    /// writer, so the transaction should have begun `IMMEDIATE`).
    pub(crate) async fn commit_in(
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        mapping: &str,
        delta: &StateDelta,
    ) -> Result<()> {
        let err = |e| db_error(e, "state.commit");
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc FROM _sheetsync_state_mappings WHERE mapping = ?")
                .bind(mapping)
                .fetch_optional(&mut **tx)
                .await
                .map_err(err)?;
        let mut doc = Doc::parse(doc)?;
        doc.apply(delta);
        let bases = delta
            .reset
            .then_some("DELETE FROM _sheetsync_state_bases WHERE mapping = ?");
        let intents = (delta.reset || delta.intents_cleared)
            .then_some("DELETE FROM _sheetsync_state_intents WHERE mapping = ?");
        for sql in bases.into_iter().chain(intents) {
            sqlx::query(sql)
                .bind(mapping)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
        }
        for chunk in delta.upsert.chunks(BASES_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO _sheetsync_state_bases (mapping, kh, k, row_data, tombstone, synced_at) VALUES {}
                 ON CONFLICT (mapping, kh) DO UPDATE SET k = excluded.k, row_data = excluded.row_data,
                   tombstone = excluded.tombstone, synced_at = excluded.synced_at",
                base_tuples(chunk.len(), false)
            );
            let mut q = sqlx::query(audited(sql));
            for (k, b) in chunk {
                q = q
                    .bind(mapping)
                    .bind(key_hash(k))
                    .bind(k.as_bytes().to_vec())
                    .bind(encode_row(&b.row))
                    .bind(b.tombstone)
                    .bind(b.synced_at as i64);
            }
            q.execute(&mut **tx).await.map_err(err)?;
        }
        for (table, keys) in [
            (
                "_sheetsync_state_bases",
                delta.remove.iter().collect::<Vec<_>>(),
            ),
            ("_sheetsync_state_intents", intent_keys_to_clear(delta)),
        ] {
            for chunk in keys.chunks(BASES_PER_STATEMENT) {
                let sql = format!(
                    "DELETE FROM {table} WHERE mapping = ? AND kh IN ({})",
                    hash_list(chunk.len(), false)
                );
                let mut q = sqlx::query(audited(sql)).bind(mapping);
                for k in chunk {
                    q = q.bind(key_hash(k));
                }
                q.execute(&mut **tx).await.map_err(err)?;
            }
        }
        for chunk in delta.intents.chunks(INTENTS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO _sheetsync_state_intents (mapping, kh, k, intent) VALUES {}",
                intent_tuples(chunk.len(), false)
            );
            let mut q = sqlx::query(audited(sql));
            for i in chunk {
                q = q
                    .bind(mapping)
                    .bind(key_hash(&i.key))
                    .bind(i.key.as_bytes().to_vec())
                    .bind(encode_intent(i));
            }
            q.execute(&mut **tx).await.map_err(err)?;
        }
        sqlx::query(
            "INSERT INTO _sheetsync_state_mappings (mapping, doc) VALUES (?, ?)
             ON CONFLICT (mapping) DO UPDATE SET doc = excluded.doc",
        )
        .bind(mapping)
        .bind(doc.render()?)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
        Ok(())
    }

    #[async_trait]
    impl StateStore for SqliteStateStore {
        fn location(&self) -> Option<String> {
            Some(pool_location(&self.pool))
        }

        async fn load(&self, mapping: &str) -> Result<StateSnapshot> {
            let err = |e| db_error(e, "state.load");
            let mut tx = self.pool.begin().await.map_err(err)?;
            let doc: Option<String> =
                sqlx::query_scalar("SELECT doc FROM _sheetsync_state_mappings WHERE mapping = ?")
                    .bind(mapping)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
            let rows = sqlx::query("SELECT k, row_data, tombstone, synced_at FROM _sheetsync_state_bases WHERE mapping = ?")
                .bind(mapping)
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
            let intents: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
                "SELECT k, intent FROM _sheetsync_state_intents WHERE mapping = ? ORDER BY kh",
            )
            .bind(mapping)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            let bases = decode_bases(
                rows.iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))),
            )?;
            Ok(Doc::parse(doc)?.into_snapshot(bases, decode_intents(intents)?))
        }

        async fn commit(&self, mapping: &str, delta: &StateDelta) -> Result<()> {
            let err = |e| db_error(e, "state.commit");
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
            commit_in(&mut tx, mapping, delta).await?;
            tx.commit().await.map_err(err)
        }
    }
}

#[cfg(feature = "mysql")]
pub use mysql::MySqlStateStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStateStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStateStore;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_round_trip_exactly() {
        let row = Row::new(vec![
            Value::Int(1),
            Value::Float(f64::NAN),
            Value::Decimal("0.10".parse().unwrap()),
            Value::Null,
        ]);
        let key = RowKey::from_values(&[Value::Int(1)]);
        let (k, b) = decode_base(key.as_bytes(), &encode_row(&row), false, 42).unwrap();
        assert_eq!(k, key);
        assert_eq!(b, RowBase::live(row, 42));
        let (_, t) = decode_base(key.as_bytes(), &[], true, 7).unwrap();
        assert_eq!(t, RowBase::tombstone(7));
        assert_eq!(key_hash(&key).len(), 16);
        assert!(decode_base(&[200], &[], false, 0).is_err());
    }

    #[test]
    fn intents_round_trip_exactly() {
        let row = Row::new(vec![Value::Int(1), Value::Float(f64::NAN), Value::Null]);
        let key = RowKey::from_values(&[Value::Int(1)]);
        for intent in [
            WriteIntent {
                key: key.clone(),
                target: Some(row.clone()),
                base: Some(row.hash()),
                sides: vec![
                    sheetsync_core::SideBefore {
                        side: Side::Sheet,
                        row: None,
                        at: u64::MAX,
                    },
                    sheetsync_core::SideBefore {
                        side: Side::Db,
                        row: Some(row.clone()),
                        at: 7,
                    },
                ],
            },
            WriteIntent {
                key: key.clone(),
                target: None,
                base: None,
                sides: Vec::new(),
            },
        ] {
            let back = decode_intent(key.as_bytes(), &encode_intent(&intent)).unwrap();
            assert_eq!(
                back.target.as_ref().map(Row::hash),
                intent.target.as_ref().map(Row::hash)
            );
            assert_eq!(
                (back.base, back.sides.len()),
                (intent.base, intent.sides.len())
            );
            assert_eq!(back.key, key);
        }
        let good = encode_intent(&WriteIntent {
            key: key.clone(),
            target: None,
            base: None,
            sides: Vec::new(),
        });
        assert!(decode_intent(key.as_bytes(), &good[..good.len() - 1]).is_err());
        assert!(decode_intent(key.as_bytes(), &[2]).is_err());
    }

    #[test]
    fn placeholders() {
        assert_eq!(base_tuples(1, true), "($1, $2, $3, $4, $5, $6)");
        assert_eq!(hash_list(2, true), "$2, $3");
        assert_eq!(hash_list(2, false), "?, ?");
    }
}
