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
//! its new state then commit together.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sheetsync_core::{
    Choice, ConflictRecord, Cursor, Error, ErrorKind, HeldRow, LeaseRecord, MappingIdentity,
    PendingDelete, RecentDeletes, Result, Row, RowBase, RowKey, Side, StateDelta, StateSnapshot,
    Value, WriteIntent,
};

use crate::dialect::{audited, WaitSql};
use crate::driver::{by_mapping, run, Driver};
use crate::error::db_error;
use crate::session::Session;

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
            out.extend_from_slice(&h.get().to_be_bytes());
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
            _ => Some(sheetsync_core::RowHash::new(u128::from_be_bytes(
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

/// A 16-byte hash of a key's canonical bytes: the primary key column (keys themselves may be
/// longer than an index allows).
pub(crate) fn key_hash(key: &RowKey) -> Vec<u8> {
    // `Row::hash` is xxh3-128 of the concatenated canonical encodings, which is what a key's
    // bytes are.
    Row::new(key.values()).hash().get().to_be_bytes().to_vec()
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

/// The state store's parts that are the same on every database.
pub(crate) struct Store<D: Driver> {
    pool: sqlx::Pool<D>,
    waits: WaitSql,
}

impl<D: Driver> Store<D> {
    pub(crate) async fn new(pool: sqlx::Pool<D>) -> Result<Self> {
        let err = |e| db_error(e, "state.install");
        let mut tx = pool.begin_with(D::BEGIN).await.map_err(err)?;
        for ddl in D::state().install {
            run::<D>(&mut tx, ddl).await.map_err(err)?;
        }
        let mariadb = D::mariadb(&mut tx).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        // The commits bound their waits like a table's writes with the default options.
        let options = crate::SqlOptions::default();
        let waits = D::DIALECT.wait_sql(
            mariadb,
            crate::dialect::Waits {
                lock: options.lock_timeout,
                statement: options.statement_timeout,
            },
        );
        Ok(Store { pool, waits })
    }

    pub(crate) async fn uninstall(&self) -> Result<()> {
        let err = |e| db_error(e, "state.uninstall");
        let mut conn = self.pool.acquire().await.map_err(err)?;
        for ddl in D::state().uninstall {
            run::<D>(&mut conn, ddl).await.map_err(err)?;
        }
        Ok(())
    }

    pub(crate) async fn load(&self, mapping: &str) -> Result<StateSnapshot> {
        let (s, err) = (D::state(), |e| db_error(e, "state.load"));
        let mut tx = self.pool.begin_with(s.load_begin).await.map_err(err)?;
        let doc = read_doc::<D>(&mut tx, mapping, "").await.map_err(err)?;
        let by_mapping = |sql| by_mapping::<D>(sql, mapping);
        let p = s.param(1);
        let rows = D::fetch_all(
            &mut tx,
            by_mapping(format!(
                "SELECT k, row_data, tombstone, synced_at FROM {} WHERE mapping = {p}",
                s.bases
            )),
        )
        .await
        .map_err(err)?;
        let intents = D::fetch_all(
            &mut tx,
            by_mapping(format!(
                "SELECT k, intent FROM {} WHERE mapping = {p} ORDER BY kh",
                s.intents
            )),
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        let bases = rows
            .iter()
            .map(|r| {
                Ok((
                    D::bytes(r, 0)?,
                    D::bytes(r, 1)?,
                    D::boolean(r, 2)?,
                    D::int(r, 3)?,
                ))
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(err)?;
        let intents = intents
            .iter()
            .map(|r| Ok((D::bytes(r, 0)?, D::bytes(r, 1)?)))
            .collect::<sqlx::Result<Vec<_>>>()
            .map_err(err)?;
        Ok(Doc::parse(doc)?.into_snapshot(decode_bases(bases)?, decode_intents(intents)?))
    }

    pub(crate) async fn commit(&self, mapping: &str, delta: &StateDelta) -> Result<()> {
        let table = D::state().mappings;
        let mut session = Session::<D>::begin(&self.pool, &self.waits, None, table).await?;
        commit_in::<D>(session.conn(), mapping, delta)
            .await
            .map_err(|e| e.with_context("table", table))?;
        session.commit().await
    }

    pub(crate) async fn try_lease(
        &self,
        mapping: &str,
        owner: &str,
    ) -> Result<Option<crate::lease::Lease>> {
        let file = D::database_file(&self.pool);
        crate::lease::try_acquire::<D>(&self.pool, file, mapping, owner).await
    }

    pub(crate) async fn lease_record(&self, mapping: &str) -> Result<Option<LeaseRecord>> {
        crate::replicas::lease_record::<D>(&self.pool, mapping).await
    }

    pub(crate) async fn heartbeat(&self, replica: &str, ttl: Duration) -> Result<Vec<String>> {
        crate::replicas::heartbeat::<D>(&self.pool, replica, ttl).await
    }

    pub(crate) async fn leave(&self, replica: &str) -> Result<()> {
        crate::replicas::leave::<D>(&self.pool, replica).await
    }
}

/// The mapping's document, if it has one; `lock` is appended to the query.
async fn read_doc<D: Driver>(
    conn: &mut D::Connection,
    mapping: &str,
    lock: &str,
) -> sqlx::Result<Option<String>> {
    let s = D::state();
    let sql = format!(
        "SELECT doc FROM {} WHERE mapping = {}{lock}",
        s.mappings,
        s.param(1)
    );
    let rows = D::fetch_all(conn, by_mapping::<D>(sql, mapping)).await?;
    Ok(rows.first().map(|r| D::text(r, 0)).transpose()?.flatten())
}

/// Commits `delta` for `mapping` inside the transaction on `conn` (which the caller commits).
pub(crate) async fn commit_in<D: Driver>(
    conn: &mut D::Connection,
    mapping: &str,
    delta: &StateDelta,
) -> Result<()> {
    let (s, err) = (D::state(), |e| db_error(e, "state.commit"));
    let text = |v: &str| crate::codec::Bind::Text(v.to_string());
    let by_mapping = |sql| by_mapping::<D>(sql, mapping);
    D::execute(conn, by_mapping(s.ensure_doc.to_string()))
        .await
        .map_err(err)?;
    let doc = read_doc::<D>(conn, mapping, s.lock_doc)
        .await
        .map_err(err)?;
    if let Some(epoch) = delta.fence {
        crate::lease::check_fence::<D>(conn, mapping, epoch).await?;
    }
    let mut doc = Doc::parse(doc)?;
    doc.apply(delta);
    let cleared = [
        delta.reset.then_some(s.bases),
        (delta.reset || delta.intents_cleared).then_some(s.intents),
    ];
    for table in cleared.into_iter().flatten() {
        let sql = format!("DELETE FROM {table} WHERE mapping = {}", s.param(1));
        D::execute(conn, by_mapping(sql)).await.map_err(err)?;
    }
    for chunk in delta.upsert.chunks(BASES_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {} (mapping, kh, k, row_data, tombstone, synced_at) VALUES {} {}",
            s.bases,
            base_tuples(chunk.len(), s.dollar),
            s.upsert_bases
        );
        let mut q = sqlx::query(audited(sql));
        for (k, b) in chunk {
            use crate::codec::Bind;
            for v in [
                text(mapping),
                Bind::Bytes(key_hash(k)),
                Bind::Bytes(k.as_bytes().to_vec()),
                Bind::Bytes(encode_row(&b.row)),
                Bind::Bool(b.tombstone),
                Bind::Int(b.synced_at as i64),
            ] {
                q = D::bind(q, v);
            }
        }
        D::execute(conn, q).await.map_err(err)?;
    }
    let removed = [
        (s.bases, delta.remove.iter().collect::<Vec<_>>()),
        (s.intents, intent_keys_to_clear(delta)),
    ];
    for (table, keys) in removed {
        for chunk in keys.chunks(BASES_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM {table} WHERE mapping = {} AND kh IN ({})",
                s.param(1),
                hash_list(chunk.len(), s.dollar)
            );
            let mut q = by_mapping(sql);
            for k in chunk {
                q = D::bind(q, crate::codec::Bind::Bytes(key_hash(k)));
            }
            D::execute(conn, q).await.map_err(err)?;
        }
    }
    for chunk in delta.intents.chunks(INTENTS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {} (mapping, kh, k, intent) VALUES {}",
            s.intents,
            intent_tuples(chunk.len(), s.dollar)
        );
        let mut q = sqlx::query(audited(sql));
        for i in chunk {
            use crate::codec::Bind;
            for v in [
                text(mapping),
                Bind::Bytes(key_hash(&i.key)),
                Bind::Bytes(i.key.as_bytes().to_vec()),
                Bind::Bytes(encode_intent(i)),
            ] {
                q = D::bind(q, v);
            }
        }
        D::execute(conn, q).await.map_err(err)?;
    }
    let sql = format!(
        "UPDATE {} SET doc = {} WHERE mapping = {}",
        s.mappings,
        s.param(1),
        s.param(2)
    );
    let q = D::bind(
        D::bind(sqlx::query(audited(sql)), text(&doc.render()?)),
        text(mapping),
    );
    D::execute(conn, q).await.map_err(err)?;
    Ok(())
}

/// A public state store over [`Store`] for one driver.
macro_rules! state_store {
    ($(#[$doc:meta])* $name:ident, $db:ty) => {
        $(#[$doc])*
        pub struct $name(Store<$db>);

        impl $name {
            /// Creates the state tables if needed and returns the store.
            pub async fn new(pool: sqlx::Pool<$db>) -> Result<Self> {
                Store::new(pool).await.map($name)
            }

            /// Drops the state tables (every mapping's state).
            pub async fn uninstall(&self) -> Result<()> {
                self.0.uninstall().await
            }

            /// Tries to take ownership of `mapping` for `owner` (a name for logs and status,
            /// such as host and process id); `None` while another process owns it. See
            /// [`crate::lease`]: put the lease's epoch on every commit
            /// ([`StateDelta::fence`](sheetsync_core::StateDelta::fence)).
            pub async fn try_lease(
                &self,
                mapping: &str,
                owner: &str,
            ) -> Result<Option<crate::lease::Lease>> {
                self.0.try_lease(mapping, owner).await
            }
        }

        #[async_trait::async_trait]
        impl sheetsync_core::StateStore for $name {
            fn location(&self) -> Option<String> {
                Some(pool_location(&self.0.pool))
            }

            async fn load(&self, mapping: &str) -> Result<StateSnapshot> {
                self.0.load(mapping).await
            }

            async fn commit(&self, mapping: &str, delta: &StateDelta) -> Result<()> {
                self.0.commit(mapping, delta).await
            }

            async fn try_lease(
                &self,
                mapping: &str,
                owner: &str,
            ) -> Result<Option<std::sync::Arc<dyn sheetsync_core::Ownership>>> {
                let lease = self.0.try_lease(mapping, owner).await?;
                Ok(lease.map(|l| std::sync::Arc::new(l) as _))
            }

            async fn lease_record(
                &self,
                mapping: &str,
            ) -> Result<Option<sheetsync_core::LeaseRecord>> {
                self.0.lease_record(mapping).await
            }

            async fn heartbeat(
                &self,
                replica: &str,
                ttl: std::time::Duration,
            ) -> Result<Vec<String>> {
                self.0.heartbeat(replica, ttl).await
            }

            async fn leave(&self, replica: &str) -> Result<()> {
                self.0.leave(replica).await
            }
        }
    };
}

#[cfg(feature = "postgres")]
state_store!(
    /// A [`StateStore`](sheetsync_core::StateStore) in a PostgreSQL database: tables
    /// `sheetsync.state_mappings`, `sheetsync.state_bases` and `sheetsync.state_intents`.
    PostgresStateStore,
    sqlx::Postgres
);
#[cfg(feature = "mysql")]
state_store!(
    /// A [`StateStore`](sheetsync_core::StateStore) in a MySQL/MariaDB database: tables
    /// `_sheetsync_state_mappings`, `_sheetsync_state_bases` and `_sheetsync_state_intents`.
    MySqlStateStore,
    sqlx::MySql
);
#[cfg(feature = "sqlite")]
state_store!(
    /// A [`StateStore`](sheetsync_core::StateStore) in a SQLite database: tables
    /// `_sheetsync_state_mappings`, `_sheetsync_state_bases` and `_sheetsync_state_intents`.
    SqliteStateStore,
    sqlx::Sqlite
);

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
