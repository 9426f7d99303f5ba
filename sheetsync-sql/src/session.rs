//! A write transaction on a connection of its own, on every database and every write path
//! (a table's batch, its transaction with the engine's state, the state store's commits):
//! bounded waits (lock and statement time-outs, SQLite's busy timeout), the engine's origin
//! tag, and the session's own settings given back before the connection returns to the pool.
//!
//! The transaction is begun and ended with plain statements on a pooled connection rather than
//! with [`sqlx::Transaction`], so that the session settings can be restored whatever happens:
//! also when `BEGIN` itself gives up waiting (SQLite's `BEGIN IMMEDIATE`). A session dropped
//! while its transaction is open closes its connection (the database rolls back), so nothing
//! of it, settings or an open transaction, goes back to the pool.

use sheetsync_core::{Error, Result};
use sqlx::pool::PoolConnection;

use crate::dialect::WaitSql;
use crate::driver::{run, Driver};
use crate::error::db_error;

/// An open write transaction.
pub(crate) struct Session<D: Driver> {
    conn: PoolConnection<D>,
    /// Gives the session its settings back.
    restore: Option<String>,
    /// The origin tag must be cleared before commit.
    tagged: bool,
    /// No transaction is open and the settings are restored: the connection may go back to
    /// the pool.
    clean: bool,
    /// What is written, for errors (`postgres:public.items`, `state`).
    target: String,
}

impl<D: Driver> Session<D> {
    /// Begins a write transaction whose waits `waits` bounds, tagged with `origin` (none for
    /// the state store's own tables, which have no triggers).
    pub(crate) async fn begin(
        pool: &sqlx::Pool<D>,
        waits: &WaitSql,
        origin: Option<&str>,
        target: &str,
    ) -> Result<Self> {
        let conn = pool
            .acquire()
            .await
            .map_err(|e| db_error(e, "apply").with_context("table", target))?;
        let mut s = Session {
            conn,
            restore: None,
            tagged: false,
            clean: false,
            target: target.to_string(),
        };
        s.restore = D::prepare_session(&mut s.conn, waits)
            .await
            .map_err(|e| s.error(e))?;
        if let Err(e) = D::raw(&mut s.conn, D::BEGIN.to_string()).await {
            let e = s.error(e);
            s.clean = s.give_back().await;
            return Err(e);
        }
        s.tagged = D::tag(&mut s.conn, waits, origin)
            .await
            .map_err(|e| s.error(e))?;
        Ok(s)
    }

    /// The transaction's connection.
    pub(crate) fn conn(&mut self) -> &mut D::Connection {
        &mut self.conn
    }

    /// Clears the tag, gives the session its settings back and commits.
    pub(crate) async fn commit(mut self) -> Result<()> {
        if let Some(sql) = D::untag(self.tagged) {
            run::<D>(&mut self.conn, sql)
                .await
                .map_err(|e| self.error(e))?;
        }
        // Session settings are not transactional: restored now, they hold after the commit.
        if let Some(sql) = self.restore.take() {
            D::raw(&mut self.conn, sql)
                .await
                .map_err(|e| self.error(e))?;
        }
        D::raw(&mut self.conn, "COMMIT".into())
            .await
            .map_err(|e| self.error(e))?;
        self.clean = true;
        Ok(())
    }

    /// Rolls back and gives the session its settings back; a connection that cannot is closed.
    pub(crate) async fn rollback(mut self) {
        if D::raw(&mut self.conn, "ROLLBACK".into()).await.is_ok() {
            self.clean = self.give_back().await;
        }
    }

    /// Restores the session's settings; false when that failed.
    async fn give_back(&mut self) -> bool {
        match self.restore.take() {
            Some(sql) => D::raw(&mut self.conn, sql).await.is_ok(),
            None => true,
        }
    }

    /// A failure of the transaction itself (not of one row), naming what it writes. Giving up
    /// on a lock is [`ErrorKind::Conflict`](sheetsync_core::ErrorKind::Conflict) and temporary:
    /// the engine retries.
    fn error(&self, e: sqlx::Error) -> Error {
        db_error(e, "apply").with_context("table", self.target.clone())
    }
}

impl<D: Driver> Drop for Session<D> {
    fn drop(&mut self) {
        if !self.clean {
            self.conn.close_on_drop();
        }
    }
}
