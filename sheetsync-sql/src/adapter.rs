//! The part of a table adapter that is the same on every database, generic over the driver:
//! reading rows by key, the full scan, observations for changed keys, and the write path
//! ([`Sink::apply`](sheetsync_core::Sink::apply) and the transaction that also commits the
//! engine's state).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use sheetsync_core::{
    Error, ErrorKind, Observation, Result, Row, RowKey, SinkTransaction, StateDelta, TableSchema,
    WriteContext, WriteOp, WriteOutcome,
};

use crate::apply::{apply_ops, rows_per_statement, WriteTx};
use crate::common::{dedup_keys, Common};
use crate::dialect::{audited, WaitSql};
use crate::driver::{Driver, Query};
use crate::error::{db_error, lock_error, row_error, RowError};
use crate::session::Session;
use crate::statements::Lock;
use crate::table::TableInfo;

/// Rows by key: a row that does not decode keeps its reason.
pub(crate) type Fetched = Vec<(RowKey, std::result::Result<Row, String>)>;

/// A table of driver `D`: what does not depend on the database, its pool, and how its write
/// transactions bound their waits.
pub(crate) struct Core<D: Driver> {
    pub common: Common,
    pub pool: sqlx::Pool<D>,
    waits: WaitSql,
}

impl<D: Driver> Core<D> {
    /// `mariadb`: the server is MariaDB (whose statement time limit has another name).
    pub(crate) fn new(common: Common, pool: sqlx::Pool<D>, mariadb: bool) -> Self {
        let waits = D::DIALECT.wait_sql(mariadb, common.waits());
        Core {
            common,
            pool,
            waits,
        }
    }

    pub(crate) fn info(&self) -> &TableInfo {
        &self.common.info
    }

    pub(crate) fn name(&self) -> &str {
        &self.common.name
    }

    pub(crate) fn schema(&self) -> &TableSchema {
        &self.common.schema
    }

    /// How many rows one statement carries.
    pub(crate) fn chunk(&self) -> usize {
        rows_per_statement(
            self.info(),
            D::MAX_PARAMS,
            self.common.options.statement_rows,
        )
    }

    pub(crate) fn decode(
        &self,
        row: &D::Row,
    ) -> std::result::Result<Row, (Option<RowKey>, String)> {
        self.common.decode_row(|i| D::decode(self.info(), row, i))
    }

    /// A stored row read back after a write.
    pub(crate) fn read_back(&self, row: Option<&D::Row>) -> std::result::Result<Row, RowError> {
        let row = row.ok_or_else(|| {
            RowError::Fatal(Error::new(
                ErrorKind::Unexpected,
                format!("the row written to {} is not there", self.name()),
            ))
        })?;
        self.decode(row).map_err(|(_, reason)| {
            RowError::Held(format!("the stored row does not read back: {reason}"))
        })
    }

    /// `sql` with the columns `cols` of each row bound in turn.
    pub(crate) fn rows_query(&self, sql: String, rows: &[&Row], cols: &[usize]) -> Query<D> {
        let mut q = sqlx::query(audited(sql));
        for r in rows {
            for &i in cols {
                q = D::bind(q, self.info().bind(&r.0[i]));
            }
        }
        q
    }

    /// `sql` with the columns `cols` of `row` bound.
    pub(crate) fn row_query(&self, sql: String, row: &Row, cols: &[usize]) -> Query<D> {
        self.rows_query(sql, &[row], cols)
    }

    /// `sql` with the values of each key bound in turn.
    pub(crate) fn keys_query<'k>(
        &self,
        sql: String,
        keys: impl IntoIterator<Item = &'k RowKey>,
    ) -> Query<D> {
        let mut q = sqlx::query(audited(sql));
        for k in keys {
            for b in self.info().key_binds(k) {
                q = D::bind(q, b);
            }
        }
        q
    }

    /// The current rows for `keys` on `conn`, locked as `lock` says.
    pub(crate) async fn fetch_rows(
        &self,
        conn: &mut D::Connection,
        keys: &[RowKey],
        lock: Lock,
    ) -> std::result::Result<Fetched, sqlx::Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let q = self.keys_query(self.info().select_keys_sql(keys.len(), lock), keys);
        let rows = D::fetch_all(conn, q).await?;
        Ok(self.common.keyed(rows.iter().map(|r| self.decode(r))))
    }

    /// The current rows for `keys`, outside any write.
    pub(crate) async fn current(
        &self,
        keys: &[RowKey],
    ) -> Result<HashMap<RowKey, std::result::Result<Row, String>>> {
        let mut found = HashMap::new();
        if keys.is_empty() {
            return Ok(found);
        }
        let err = |e| db_error(e, "fetch");
        let mut conn = self.pool.acquire().await.map_err(err)?;
        for chunk in keys.chunks(self.chunk()) {
            found.extend(
                self.fetch_rows(&mut conn, chunk, Lock::None)
                    .await
                    .map_err(err)?,
            );
        }
        Ok(found)
    }

    /// Every row, in pages.
    pub(crate) fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>> {
        D::stream(
            &self.pool,
            sqlx::query(audited(self.common.select_all.clone())),
        )
        .enumerate()
        .map(|(n, r)| {
            r.map(|r| self.common.scanned(self.decode(&r), n))
                .map_err(|e| db_error(e, "scan"))
        })
        .chunks(1_000)
        .map(|page| page.into_iter().collect::<Result<Vec<_>>>())
        .boxed()
    }

    /// The rows for `keys` as observations (a missing row is a delete).
    pub(crate) async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        let found = self.current(keys).await?;
        let keys: Vec<_> = keys.iter().map(|k| (k.clone(), None)).collect();
        Ok(self.common.observations(&keys, found))
    }

    /// The observations for the keys a change log named (in first-seen order, with the latest
    /// time each was seen), followed by `invalid` (entries that named no key).
    pub(crate) async fn changed(
        &self,
        keys: Vec<(RowKey, Option<DateTime<Utc>>)>,
        invalid: Vec<Observation>,
    ) -> Result<Vec<Observation>> {
        let keys = dedup_keys(keys);
        let just_keys: Vec<RowKey> = keys.iter().map(|(k, _)| k.clone()).collect();
        let found = self.current(&just_keys).await?;
        let mut changes = self.common.observations(&keys, found);
        changes.extend(invalid);
        Ok(changes)
    }

    /// An error unless change capture is installed (`installed`).
    pub(crate) fn require_installed(&self, installed: bool, operation: &'static str) -> Result<()> {
        if installed {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "change capture is not installed for {}; call install() first",
                self.name()
            ),
        )
        .with_operation(operation))
    }

    /// A write transaction tagged with `ctx`'s origin, its waits bounded.
    pub(crate) async fn begin_tx(&self, ctx: &WriteContext) -> Result<Tx<'_, D>> {
        self.common.note_origin(&ctx.origin);
        let session =
            Session::begin(&self.pool, &self.waits, Some(&ctx.origin), self.name()).await?;
        Ok(Tx {
            core: self,
            session,
        })
    }

    fn check_batch(&self, n: usize) -> Result<()> {
        let max = self.common.options.max_batch;
        if n > max.max(1) {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("{n} ops exceed max_batch {max}"),
            ));
        }
        Ok(())
    }

    /// Where the state of a store on this table's pool lives.
    pub(crate) fn state_location(&self) -> String {
        crate::state::pool_location(&self.pool)
    }
}

/// The write paths, which run the database's own [`Writes`].
impl<D: Writes> Core<D> {
    /// [`Sink::apply`](sheetsync_core::Sink::apply): one transaction for the batch.
    pub(crate) async fn apply(
        &self,
        ops: Vec<WriteOp>,
        ctx: &WriteContext,
    ) -> Result<Vec<WriteOutcome>> {
        self.check_batch(ops.len())?;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_tx(ctx).await?;
        match apply_ops(self.info(), self.schema(), &mut tx, ops, self.chunk()).await {
            Ok(out) => {
                tx.session.commit().await?;
                Ok(out)
            }
            Err(e) => {
                tx.session.rollback().await;
                Err(e)
            }
        }
    }

    /// [`TransactionalSink::begin`](sheetsync_core::TransactionalSink::begin): writes and the
    /// engine's state in one transaction.
    pub(crate) async fn begin(&self, ctx: &WriteContext) -> Result<Box<dyn SinkTransaction + '_>> {
        Ok(Box::new(StateTx(self.begin_tx(ctx).await?)))
    }
}

/// The table writes whose SQL differs between databases, on a table's write transaction: the
/// part of a driver that needs the table adapter ([`Tx`]), so it lives here rather than in
/// [`Driver`]. The defaults suit most databases.
#[async_trait]
pub(crate) trait Writes: Driver {
    /// Inserts or updates `rows` in one statement (see [`WriteTx::upsert`]).
    async fn upsert(
        tx: &mut Tx<'_, Self>,
        rows: &[&Row],
        cols: &[usize],
    ) -> std::result::Result<(), RowError> {
        let q = tx
            .core
            .rows_query(tx.core.info().upsert_sql(rows.len(), cols), rows, cols);
        Self::execute(tx.conn(), q)
            .await
            .map(|_| ())
            .map_err(|e| tx.row_error(e))
    }
    /// Inserts rows expected to be absent (see [`WriteTx::create`]). The default suits a
    /// database with a single writer, where the preceding check holds.
    async fn create(
        tx: &mut Tx<'_, Self>,
        rows: &[&Row],
        keys: &[&RowKey],
        cols: &[usize],
    ) -> std::result::Result<HashSet<RowKey>, RowError> {
        Self::upsert(tx, rows, cols).await?;
        Ok(keys.iter().map(|k| (*k).clone()).collect())
    }
    /// Inserts a row whose key the database generates (see [`WriteTx::insert`]). The default
    /// reads the stored row from `RETURNING`.
    async fn insert(
        tx: &mut Tx<'_, Self>,
        row: &Row,
        cols: &[usize],
    ) -> std::result::Result<Row, RowError> {
        let q = tx
            .core
            .row_query(tx.core.info().insert_generated_sql(cols), row, cols);
        let stored = Self::fetch_all(tx.conn(), q)
            .await
            .map_err(|e| tx.row_error(e))?;
        tx.core.read_back(stored.first())
    }
}

/// A write transaction on a table.
pub(crate) struct Tx<'a, D: Driver> {
    pub core: &'a Core<D>,
    pub session: Session<D>,
}

impl<D: Driver> Tx<'_, D> {
    pub(crate) fn conn(&mut self) -> &mut D::Connection {
        self.session.conn()
    }

    /// A statement's row error, naming the table.
    pub(crate) fn row_error(&self, e: sqlx::Error) -> RowError {
        row_error(e, "apply", self.core.name())
    }
}

#[async_trait]
impl<D: Writes> WriteTx for Tx<'_, D> {
    fn info(&self) -> &TableInfo {
        self.core.info()
    }

    async fn current(
        &mut self,
        keys: &[RowKey],
        lock: Lock,
    ) -> std::result::Result<Fetched, RowError> {
        let core = self.core;
        core.fetch_rows(self.session.conn(), keys, lock)
            .await
            .map_err(|e| lock_error(e, "apply", core.name()))
    }

    async fn execute(&mut self, sql: &str) -> Result<()> {
        crate::driver::run::<D>(self.conn(), sql)
            .await
            .map(|_| ())
            .map_err(|e| db_error(e, "apply"))
    }

    async fn upsert(&mut self, rows: &[&Row], cols: &[usize]) -> std::result::Result<(), RowError> {
        D::upsert(self, rows, cols).await
    }

    async fn create(
        &mut self,
        rows: &[&Row],
        keys: &[&RowKey],
        cols: &[usize],
    ) -> std::result::Result<HashSet<RowKey>, RowError> {
        D::create(self, rows, keys, cols).await
    }

    async fn delete(&mut self, keys: &[&RowKey]) -> std::result::Result<(), RowError> {
        let q = self
            .core
            .keys_query(self.info().delete_sql(keys.len()), keys.iter().copied());
        D::execute(self.conn(), q)
            .await
            .map(|_| ())
            .map_err(|e| self.row_error(e))
    }

    async fn insert(&mut self, row: &Row, cols: &[usize]) -> std::result::Result<Row, RowError> {
        D::insert(self, row, cols).await
    }
}

/// The transaction of [`Core::begin`]: the cycle's writes, then the engine's state.
pub(crate) struct StateTx<'a, D: Driver>(Tx<'a, D>);

#[async_trait]
impl<D: Writes> SinkTransaction for StateTx<'_, D> {
    async fn apply(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        let core = self.0.core;
        core.check_batch(ops.len())?;
        apply_ops(core.info(), core.schema(), &mut self.0, ops, core.chunk()).await
    }

    async fn commit(mut self: Box<Self>, mapping: &str, state: &StateDelta) -> Result<()> {
        let table = self.0.core.name();
        crate::state::commit_in::<D>(self.0.conn(), mapping, state)
            .await
            .map_err(|e| e.with_context("table", table))?;
        self.0.session.commit().await
    }
}

/// The change feed of one database: the part of a table's
/// [`Source`](sheetsync_core::Source) that [`impl_table!`] does not share.
#[async_trait]
pub(crate) trait Feed: Send + Sync {
    /// True when change capture is installed for the table.
    async fn installed(&self) -> Result<bool>;
    /// Where the feed stands now (capture is installed; a full read starts).
    async fn position(&self) -> Result<sheetsync_core::Cursor>;
    /// See [`Source::changes`](sheetsync_core::Source::changes).
    async fn changes(
        &self,
        since: &sheetsync_core::Cursor,
        limit: usize,
    ) -> Result<sheetsync_core::ChangeBatch>;
    /// See [`Source::ack`](sheetsync_core::Source::ack).
    async fn ack(&self, cursor: &sheetsync_core::Cursor) -> Result<()>;
    /// See [`Source::wakeups`](sheetsync_core::Source::wakeups).
    fn wakeups(&self) -> Option<BoxStream<'static, ()>>;
}

/// [`Source`](sheetsync_core::Source), [`Sink`](sheetsync_core::Sink) and
/// [`TransactionalSink`](sheetsync_core::TransactionalSink) for `$table`, a table adapter with a
/// field `core` (a [`Core`]) and a [`Feed`]; `$store` names its state store in the docs.
macro_rules! impl_table {
    ($table:ty, $store:literal) => {
        #[async_trait::async_trait]
        impl sheetsync_core::Source for $table {
            fn name(&self) -> &str {
                self.core.name()
            }

            fn capabilities(&self) -> sheetsync_core::Capabilities {
                self.core.common.capabilities()
            }

            fn schema(&self) -> &sheetsync_core::TableSchema {
                self.core.schema()
            }

            fn scan(
                &self,
            ) -> futures::stream::BoxStream<'_, sheetsync_core::Result<Vec<sheetsync_core::Observation>>>
            {
                self.core.scan()
            }

            async fn cursor(&self) -> sheetsync_core::Result<Option<sheetsync_core::Cursor>> {
                let installed = $crate::adapter::Feed::installed(self).await?;
                self.core.require_installed(installed, "cursor")?;
                self.core.common.full_scan_started();
                $crate::adapter::Feed::position(self).await.map(Some)
            }

            fn full_scan_requested(&self) -> bool {
                self.core.common.full_scan_requested()
            }

            async fn changes(
                &self,
                since: &sheetsync_core::Cursor,
                limit: usize,
            ) -> sheetsync_core::Result<sheetsync_core::ChangeBatch> {
                $crate::adapter::Feed::changes(self, since, limit).await
            }

            async fn fetch(
                &self,
                keys: &[sheetsync_core::RowKey],
            ) -> sheetsync_core::Result<Vec<sheetsync_core::Observation>> {
                self.core.fetch(keys).await
            }

            async fn ack(&self, cursor: &sheetsync_core::Cursor) -> sheetsync_core::Result<()> {
                $crate::adapter::Feed::ack(self, cursor).await
            }

            fn wakeups(&self) -> Option<futures::stream::BoxStream<'static, ()>> {
                $crate::adapter::Feed::wakeups(self)
            }
        }

        #[async_trait::async_trait]
        impl sheetsync_core::Sink for $table {
            async fn apply(
                &self,
                ops: Vec<sheetsync_core::WriteOp>,
                ctx: &sheetsync_core::WriteContext,
            ) -> sheetsync_core::Result<Vec<sheetsync_core::WriteOutcome>> {
                self.core.apply(ops, ctx).await
            }

            fn transactional(&self) -> Option<&dyn sheetsync_core::TransactionalSink> {
                Some(self)
            }
        }

        #[doc = concat!("Writes and the engine's state in one transaction, with a [`", $store, "`] on the same pool.")]
        #[async_trait::async_trait]
        impl sheetsync_core::TransactionalSink for $table {
            fn state_location(&self) -> String {
                self.core.state_location()
            }

            async fn begin(
                &self,
                ctx: &sheetsync_core::WriteContext,
            ) -> sheetsync_core::Result<Box<dyn sheetsync_core::SinkTransaction + '_>> {
                self.core.begin(ctx).await
            }
        }
    };
}
pub(crate) use impl_table;
