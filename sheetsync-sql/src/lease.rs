//! Mapping ownership among replicas: a lease held through the database's own lock manager, and
//! an ownership epoch that fences out an owner that lost it.
//!
//! * **The lock.** PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) held by a
//!   connection taken out of the pool for the purpose; MySQL/MariaDB: `GET_LOCK` on such a
//!   connection (the lock's name hashes the database and the mapping, since MySQL's locks are
//!   server-wide); SQLite: an exclusive lock on a file beside the database
//!   (`<database>.sheetsync-lease-<hash>`), which the operating system drops when the process
//!   ends, so it serves processes on one host. The database or the kernel releases the lock when
//!   its holder dies: nothing here expires by the clock.
//! * **The epoch.** Taking the lease increments the mapping's row in the state store's leases
//!   table (`..._state_leases (mapping, epoch, owner, since)`). The owner puts its epoch on every
//!   state commit ([`StateDelta::fence`](sheetsync_core::StateDelta::fence)), and the commit
//!   reads the row under a lock in its own transaction and refuses a different epoch with
//!   [`ErrorKind::NotOwner`]. An owner that was paused past losing its lock (SIGSTOP, a long GC,
//!   a partition) therefore never commits over the new one: whatever it wrote to the database in
//!   that transaction rolls back with it.
//! * **Liveness.** The connection that holds the lock is pinged every second; [`Lease::check`]
//!   pings it on demand (the owner calls it before each Sheet write). A failed ping ends the
//!   lease at once ([`Lease::is_held`] turns false). An owner that stops answering without
//!   dying (paused, partitioned) keeps its connection open, so the server is told to end the
//!   lock connection after [`LEASE_TTL`] of silence (PostgreSQL's `idle_session_timeout`,
//!   MySQL's `wait_timeout`, set on that connection only): its lock goes with it and another
//!   process takes over. SQLite's file lock lasts as long as its process, paused or not.
//!
//! What remains possible, and why it converges: an owner paused *inside* a Sheet request (after
//! its check) can have that one request applied after a new owner started. The Sheet write is
//! guarded by its rows' pre-images like any other, the old owner's state commit is refused, and
//! the new owner reads the Sheet before it plans: the effect is that of a person's edit arriving
//! late, merged like one.

use std::path::PathBuf;
use std::time::Duration;

use sheetsync_core::{Error, ErrorKind, Result};
use tokio::sync::{mpsc, oneshot, watch};

use crate::codec::Bind;
use crate::driver::{by_mapping, Driver};
use crate::error::db_error;

/// How often the lock connection is pinged while nobody asks.
const PING_EVERY: Duration = Duration::from_secs(1);

/// How long the database keeps the lock of an owner that stopped talking (paused by SIGSTOP,
/// a partition, a hung host): the lock connection's idle timeout, which the pings above keep
/// from ever running out while the owner is alive.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// Ownership of one mapping, held until dropped or [`released`](Lease::release).
#[derive(Debug)]
pub struct Lease {
    mapping: String,
    epoch: u64,
    held: watch::Receiver<bool>,
    checks: mpsc::Sender<oneshot::Sender<bool>>,
}

impl Lease {
    /// The mapping this lease is for.
    pub fn mapping(&self) -> &str {
        &self.mapping
    }

    /// The ownership epoch: put it on every state commit
    /// ([`StateDelta::fence`](sheetsync_core::StateDelta::fence)).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the lock was still held at the last ping (at most a second ago).
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Pings the lock's connection now: `Ok` while this process owns the mapping,
    /// [`ErrorKind::NotOwner`] once the lock is lost.
    pub async fn check(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let alive = self.checks.send(reply).await.is_ok() && answer.await.unwrap_or(false);
        if alive {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::NotOwner,
            format!(
                "the lease on mapping {:?} (epoch {}) was lost: its lock connection is gone, \
                 so another replica may own the mapping now",
                self.mapping, self.epoch
            ),
        )
        .with_operation("lease.check"))
    }

    /// Resolves when the lease is lost (never, while it is held).
    pub async fn lost(&self) {
        let mut held = self.held.clone();
        let _ = held.wait_for(|h| !*h).await;
    }

    /// Gives the mapping up: the lock is released at once (its connection closed).
    pub fn release(self) {}
}

/// What keeps a lock: the connection that holds it, or the locked file.
enum Holder<D: Driver> {
    Connection(D::Connection),
    File(#[allow(dead_code)] std::fs::File),
}

/// Tries to take the lease on `mapping` for `owner` (a name for logs and status: host and
/// process); `None` while another process holds it.
pub(crate) async fn try_acquire<D: Driver>(
    pool: &sqlx::Pool<D>,
    file: Option<PathBuf>,
    mapping: &str,
    owner: &str,
) -> Result<Option<Lease>> {
    let Some(holder) = lock::<D>(pool, file, mapping).await? else {
        return Ok(None);
    };
    let epoch = take_epoch::<D>(pool, mapping, owner).await?;
    let (held_tx, held) = watch::channel(true);
    let (checks, requests) = mpsc::channel(8);
    tokio::spawn(keep::<D>(holder, held_tx, requests));
    Ok(Some(Lease {
        mapping: mapping.to_string(),
        epoch,
        held,
        checks,
    }))
}

async fn lock<D: Driver>(
    pool: &sqlx::Pool<D>,
    file: Option<PathBuf>,
    mapping: &str,
) -> Result<Option<Holder<D>>> {
    let err = |e| db_error(e, "lease.acquire");
    let Some(sql) = D::state().lease.try_lock else {
        let path = file.ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "an in-memory SQLite database has no file to hold a lease on",
            )
        })?;
        return lock_file(path, mapping).map(|f| f.map(Holder::File));
    };
    let mut conn = pool.acquire().await.map_err(err)?.detach();
    if let Some(ttl) = D::state().lease.ttl {
        let sql = ttl.replace("{secs}", &LEASE_TTL.as_secs().to_string());
        D::raw(&mut conn, sql).await.map_err(err)?;
    }
    let rows = D::fetch_all(&mut conn, by_mapping::<D>(sql.to_string(), mapping))
        .await
        .map_err(err)?;
    let taken = rows
        .first()
        .map(|r| D::int(r, 0))
        .transpose()
        .map_err(err)?
        == Some(1);
    if taken {
        return Ok(Some(Holder::Connection(conn)));
    }
    let _ = sqlx::Connection::close(conn).await;
    Ok(None)
}

/// `<database>.sheetsync-lease-<hash of the mapping>`, locked exclusively without waiting.
fn lock_file(database: PathBuf, mapping: &str) -> Result<Option<std::fs::File>> {
    let hash = sheetsync_core::Row::new(vec![mapping.into()]).hash().get();
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".sheetsync-lease-{:08x}", hash as u32));
    let path = database.with_file_name(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            Error::new(
                ErrorKind::PermissionDenied,
                format!("cannot open the lease file {}: {e}", path.display()),
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::new(
            ErrorKind::Unexpected,
            format!("cannot lock the lease file {}: {e}", path.display()),
        )),
    }
}

/// Increments the mapping's epoch and returns it.
async fn take_epoch<D: Driver>(pool: &sqlx::Pool<D>, mapping: &str, owner: &str) -> Result<u64> {
    let (s, err) = (D::state(), |e| db_error(e, "lease.acquire"));
    let since = chrono::Utc::now().timestamp_millis();
    let mut tx = pool.begin_with(D::BEGIN).await.map_err(err)?;
    let take = by_mapping::<D>(s.lease.take.to_string(), mapping);
    let take = D::bind(D::bind(take, Bind::Text(owner.into())), Bind::Int(since));
    D::execute(&mut tx, take).await.map_err(err)?;
    let epoch = stored_epoch::<D>(&mut tx, mapping, "").await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(epoch.unwrap_or(0))
}

/// The mapping's current epoch (`lock` is appended to the query), if it has a lease row.
pub(crate) async fn stored_epoch<D: Driver>(
    conn: &mut D::Connection,
    mapping: &str,
    lock: &str,
) -> sqlx::Result<Option<u64>> {
    let s = D::state();
    let sql = format!(
        "SELECT epoch FROM {} WHERE mapping = {}{lock}",
        s.leases,
        s.param(1)
    );
    let rows = D::fetch_all(conn, by_mapping::<D>(sql, mapping)).await?;
    Ok(rows
        .first()
        .map(|r| D::int(r, 0))
        .transpose()?
        .map(|e| e as u64))
}

/// Refuses a commit fenced with `epoch` unless it is the mapping's current one; runs inside the
/// commit's transaction, locking the lease row until it ends.
pub(crate) async fn check_fence<D: Driver>(
    conn: &mut D::Connection,
    mapping: &str,
    epoch: u64,
) -> Result<()> {
    let current = stored_epoch::<D>(conn, mapping, D::state().lock_doc)
        .await
        .map_err(|e| db_error(e, "state.commit"))?;
    if current == Some(epoch) {
        return Ok(());
    }
    let now = current.map_or("no lease".into(), |e| format!("epoch {e}"));
    Err(Error::new(
        ErrorKind::NotOwner,
        format!(
            "mapping {mapping:?} is owned by {now} now, and this commit carries epoch {epoch}: \
             another replica took the mapping over, so this process stops writing it"
        ),
    )
    .with_operation("state.commit"))
}

/// Holds the lock until the lease is dropped, pinging its connection; reports a lost lock.
async fn keep<D: Driver>(
    mut holder: Holder<D>,
    held: watch::Sender<bool>,
    mut checks: mpsc::Receiver<oneshot::Sender<bool>>,
) {
    let mut tick = tokio::time::interval(PING_EVERY);
    loop {
        let reply = tokio::select! {
            request = checks.recv() => match request {
                Some(reply) => Some(reply),
                None => break, // the lease was dropped
            },
            _ = tick.tick() => None,
        };
        let alive = match &mut holder {
            Holder::Connection(conn) => D::raw(conn, "SELECT 1".into()).await.is_ok(),
            Holder::File(_) => true,
        };
        if !alive {
            held.send_replace(false);
        }
        if let Some(reply) = reply {
            let _ = reply.send(alive);
        }
        if !alive {
            break;
        }
    }
    if let Holder::Connection(conn) = holder {
        let _ = sqlx::Connection::close(conn).await;
    }
    // Every later check fails: the channel's receiver is gone.
    held.send_replace(false);
}

#[async_trait::async_trait]
impl sheetsync_core::Ownership for Lease {
    fn epoch(&self) -> u64 {
        Lease::epoch(self)
    }

    async fn check(&self) -> Result<()> {
        Lease::check(self).await
    }

    async fn lost(&self) {
        Lease::lost(self).await
    }
}
