//! Membership of replicas that share mappings: a heartbeat row per replica in the state
//! store's replicas table (`..._state_replicas (replica, seen)`), stamped by the database's own
//! clock, so replicas on hosts whose clocks disagree still agree on who is alive. A replica is
//! alive while its row was stamped within the time to live the caller gives; a clean shutdown
//! deletes its row at once, and rows long expired are removed by the next heartbeat.
//!
//! SQLite keeps no membership ([`ErrorKind::Unsupported`]): each commit to its file wakes every
//! engine on it, so a heartbeat a second would cost each mapping a cycle a second. Replicas on
//! one SQLite database (one host) stand by instead: the first runs every mapping it can lease.

use std::time::Duration;

use sheetsync_core::{Error, ErrorKind, LeaseRecord, Result};

use crate::codec::Bind;
use crate::dialect::audited;
use crate::driver::{by_mapping, Driver};
use crate::error::db_error;

/// Rows expired this many times over are deleted (an expired row is harmless meanwhile).
const PRUNE_AFTER_TTLS: u32 = 10;

/// Records that `replica` is alive now; returns the replicas stamped within `ttl`, sorted.
pub(crate) async fn heartbeat<D: Driver>(
    pool: &sqlx::Pool<D>,
    replica: &str,
    ttl: Duration,
) -> Result<Vec<String>> {
    let (s, err) = (D::state(), |e| db_error(e, "replicas.heartbeat"));
    let Some(upsert) = s.lease.beat_upsert else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "this database keeps no replica membership (SQLite: replicas stand by)",
        ));
    };
    let mut conn = pool.acquire().await.map_err(err)?;
    let beat = format!(
        "INSERT INTO {} (replica, seen) VALUES ({}, {}) {upsert}",
        s.replicas,
        s.param(1),
        s.now_ms,
    );
    D::execute(&mut conn, by_mapping::<D>(beat, replica))
        .await
        .map_err(err)?;
    let older_than = |ttl: Duration| {
        let sql = format!(" {} - {}", s.now_ms, s.param(1));
        (sql, Bind::Int(ttl.as_millis() as i64))
    };
    let (prune, bind) = older_than(ttl * PRUNE_AFTER_TTLS);
    let prune = format!("DELETE FROM {} WHERE seen <{prune}", s.replicas);
    D::execute(&mut conn, D::bind(sqlx::query(audited(prune)), bind))
        .await
        .map_err(err)?;
    let (alive, bind) = older_than(ttl);
    let alive = format!(
        "SELECT replica FROM {} WHERE seen >={alive} ORDER BY replica",
        s.replicas
    );
    let rows = D::fetch_all(&mut conn, D::bind(sqlx::query(audited(alive)), bind))
        .await
        .map_err(err)?;
    rows.iter()
        .map(|r| D::text(r, 0).map(Option::unwrap_or_default))
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(err)
}

/// Deletes `replica`'s heartbeat row.
pub(crate) async fn leave<D: Driver>(pool: &sqlx::Pool<D>, replica: &str) -> Result<()> {
    let (s, err) = (D::state(), |e| db_error(e, "replicas.leave"));
    if s.lease.beat_upsert.is_none() {
        return Ok(());
    }
    let mut conn = pool.acquire().await.map_err(err)?;
    let sql = format!("DELETE FROM {} WHERE replica = {}", s.replicas, s.param(1));
    D::execute(&mut conn, by_mapping::<D>(sql, replica))
        .await
        .map_err(err)?;
    Ok(())
}

/// The owner and epoch of the mapping's lease row, if it has one.
pub(crate) async fn lease_record<D: Driver>(
    pool: &sqlx::Pool<D>,
    mapping: &str,
) -> Result<Option<LeaseRecord>> {
    let (s, err) = (D::state(), |e| db_error(e, "lease.record"));
    let mut conn = pool.acquire().await.map_err(err)?;
    let sql = format!(
        "SELECT owner, epoch FROM {} WHERE mapping = {}",
        s.leases,
        s.param(1)
    );
    let rows = D::fetch_all(&mut conn, by_mapping::<D>(sql, mapping))
        .await
        .map_err(err)?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(LeaseRecord {
        owner: D::text(row, 0).map_err(err)?.unwrap_or_default(),
        epoch: D::int(row, 1).map_err(err)? as u64,
    }))
}
