//! What the shared SQL core needs from each database, as sqlx does it: code generic over the
//! driver's [`sqlx::Database`], with the per-database parts in one trait implemented once per
//! driver. [`impl_plumbing!`] writes the parts that only differ in their types (binding,
//! executing, reading a column); each adapter module writes the rest (decoding, how a write
//! transaction is tagged and bounded) and, in [`Writes`](crate::adapter::Writes) a layer up, the
//! writes whose SQL differs.

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sheetsync_core::Value;

use crate::codec::Bind;
use crate::dialect::{audited, Dialect, WaitSql};
use crate::store_sql::StateSql;
use crate::table::TableInfo;

/// A statement of driver `D` with its bound values.
pub(crate) type Query<D> = sqlx::query::Query<'static, D, <D as sqlx::Database>::Arguments>;

/// A database the shared core runs on.
#[async_trait]
pub(crate) trait Driver: sqlx::Database {
    /// The prefix of the adapter's name (`postgres:public.items`).
    const PREFIX: &'static str;
    /// The SQL dialect.
    const DIALECT: Dialect;
    /// The most bind parameters one statement may carry.
    const MAX_PARAMS: usize;
    /// The statement that begins a write transaction.
    const BEGIN: &'static str = "BEGIN";

    /// Binds one value.
    fn bind(q: Query<Self>, b: Bind) -> Query<Self>;
    /// Runs a statement; the number of rows it affected.
    fn execute(conn: &mut Self::Connection, q: Query<Self>) -> BoxFuture<'_, sqlx::Result<u64>>;
    /// Runs a query; every row.
    fn fetch_all(
        conn: &mut Self::Connection,
        q: Query<Self>,
    ) -> BoxFuture<'_, sqlx::Result<Vec<Self::Row>>>;
    /// Runs fixed SQL without parameters (transaction control, session settings).
    fn raw(conn: &mut Self::Connection, sql: String) -> BoxFuture<'_, sqlx::Result<()>>;
    /// Streams a query's rows from the pool.
    fn stream(pool: &sqlx::Pool<Self>, q: Query<Self>) -> BoxStream<'_, sqlx::Result<Self::Row>>;
    /// Column `i` of `row` as text, bytes, a boolean or an integer.
    fn text(row: &Self::Row, i: usize) -> sqlx::Result<Option<String>>;
    /// See [`Driver::text`].
    fn bytes(row: &Self::Row, i: usize) -> sqlx::Result<Vec<u8>>;
    /// See [`Driver::text`].
    fn boolean(row: &Self::Row, i: usize) -> sqlx::Result<bool>;
    /// See [`Driver::text`].
    fn int(row: &Self::Row, i: usize) -> sqlx::Result<i64>;

    /// Column `i` of a row selected with [`TableInfo::select_list`].
    fn decode(info: &TableInfo, row: &Self::Row, i: usize) -> Result<Value, String>;

    /// Whether the server is MariaDB (whose statement time limit is `max_statement_time`).
    async fn mariadb(_conn: &mut Self::Connection) -> sqlx::Result<bool> {
        Ok(false)
    }

    /// Session settings a write needs before `BEGIN`; returns the statement that gives the
    /// session its own settings back (run before the transaction ends, and again should it
    /// fail to begin).
    async fn prepare_session(
        _conn: &mut Self::Connection,
        _waits: &WaitSql,
    ) -> sqlx::Result<Option<String>> {
        Ok(None)
    }
    /// Inside the new transaction: tags it with the engine's origin (for the triggers) and sets
    /// what is transaction-local. Returns whether a tag must be cleared before commit.
    async fn tag(
        conn: &mut Self::Connection,
        waits: &WaitSql,
        origin: Option<&str>,
    ) -> sqlx::Result<bool>;
    /// The statement that clears the tag before commit, if there is one to clear.
    fn untag(tagged: bool) -> Option<&'static str>;

    /// The statements of the state store.
    fn state() -> &'static StateSql;

    /// The file the pool's database lives in, for a lease held as a file lock (SQLite).
    fn database_file(_pool: &sqlx::Pool<Self>) -> Option<std::path::PathBuf> {
        None
    }
}

/// Runs fixed, audited SQL on a connection of any driver.
pub(crate) async fn run<D: Driver>(conn: &mut D::Connection, sql: &str) -> sqlx::Result<u64> {
    D::execute(conn, sqlx::query(audited(sql))).await
}

/// `sql` with the mapping bound as its first parameter.
pub(crate) fn by_mapping<D: Driver>(sql: String, mapping: &str) -> Query<D> {
    D::bind(sqlx::query(audited(sql)), Bind::Text(mapping.to_string()))
}

/// The parts of [`Driver`] that differ between drivers only in their types, for
/// `$db` (`sqlx::Postgres`, ...).
macro_rules! impl_plumbing {
    () => {
        fn bind(
            q: $crate::driver::Query<Self>,
            b: $crate::codec::Bind,
        ) -> $crate::driver::Query<Self> {
            use $crate::codec::Bind;
            match b {
                Bind::Null => q.bind(None::<String>),
                Bind::Bool(v) => q.bind(v),
                Bind::Int(v) => q.bind(v),
                Bind::Float(v) => q.bind(v),
                Bind::Text(v) => q.bind(v),
                Bind::Bytes(v) => q.bind(v),
            }
        }

        fn execute(
            conn: &mut Self::Connection,
            q: $crate::driver::Query<Self>,
        ) -> futures::future::BoxFuture<'_, sqlx::Result<u64>> {
            Box::pin(async move { Ok(q.execute(conn).await?.rows_affected()) })
        }

        fn fetch_all(
            conn: &mut Self::Connection,
            q: $crate::driver::Query<Self>,
        ) -> futures::future::BoxFuture<'_, sqlx::Result<Vec<Self::Row>>> {
            Box::pin(q.fetch_all(conn))
        }

        fn raw(
            conn: &mut Self::Connection,
            sql: String,
        ) -> futures::future::BoxFuture<'_, sqlx::Result<()>> {
            Box::pin(async move {
                sqlx::raw_sql($crate::dialect::audited(sql))
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        }

        fn stream(
            pool: &sqlx::Pool<Self>,
            q: $crate::driver::Query<Self>,
        ) -> futures::stream::BoxStream<'_, sqlx::Result<Self::Row>> {
            q.fetch(pool)
        }

        fn text(row: &Self::Row, i: usize) -> sqlx::Result<Option<String>> {
            sqlx::Row::try_get(row, i)
        }

        fn bytes(row: &Self::Row, i: usize) -> sqlx::Result<Vec<u8>> {
            sqlx::Row::try_get(row, i)
        }

        fn boolean(row: &Self::Row, i: usize) -> sqlx::Result<bool> {
            sqlx::Row::try_get(row, i)
        }

        fn int(row: &Self::Row, i: usize) -> sqlx::Result<i64> {
            sqlx::Row::try_get(row, i)
        }
    };
}
pub(crate) use impl_plumbing;
