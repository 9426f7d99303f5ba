//! The SQL text of the state store and of mapping leases on one database: each driver names
//! its tables ([`Driver::state`](crate::driver::Driver::state)), which the driver, the leases and
//! the state store all read, so they sit below all three.

/// The state store's statements on one database.
pub(crate) struct StateSql {
    /// The tables, qualified and quoted.
    pub mappings: &'static str,
    pub bases: &'static str,
    pub intents: &'static str,
    pub leases: &'static str,
    /// The replicas' heartbeats ([`crate::replicas`]).
    pub replicas: &'static str,
    /// The database's clock in milliseconds since 1970, as an SQL expression: heartbeats are
    /// stamped and compared by the database, so replicas' own clocks may disagree.
    pub now_ms: &'static str,
    /// `$n` placeholders (PostgreSQL) rather than `?`.
    pub dollar: bool,
    /// Creates the tables (in one transaction begun with the driver's `BEGIN`).
    pub install: &'static [&'static str],
    /// Drops them.
    pub uninstall: &'static [&'static str],
    /// Inserts a mapping's empty document unless there is one (binds: the mapping).
    pub ensure_doc: &'static str,
    /// Locks the mapping's document row for the commit (empty where the transaction already
    /// excludes every other writer).
    pub lock_doc: &'static str,
    /// What an insert of bases that exist does: updates them.
    pub upsert_bases: &'static str,
    /// Begins the transaction that loads a mapping (one snapshot for all three tables).
    pub load_begin: &'static str,
    /// Mapping ownership ([`crate::lease`]).
    pub lease: LeaseSql,
}

impl StateSql {
    /// The `n`-th bind parameter: `$n` or `?`.
    pub(crate) fn param(&self, n: usize) -> String {
        if self.dollar {
            format!("${n}")
        } else {
            "?".into()
        }
    }
}

/// The lease statements of one database.
pub(crate) struct LeaseSql {
    /// Makes the server end the lock connection once it is idle for `{secs}` seconds: the
    /// lease's time to live when its owner stops answering.
    pub ttl: Option<&'static str>,
    /// Tries the lock without waiting; one integer column, 1 when taken (binds: the mapping).
    /// `None`: the lock is a file beside the database.
    pub try_lock: Option<&'static str>,
    /// Inserts the mapping's lease row with epoch 1, or increments its epoch (binds: mapping,
    /// owner, since).
    pub take: &'static str,
    /// What a heartbeat of a replica that has a row does: updates its `seen`. `None`: the
    /// database keeps no membership ([`crate::replicas`]).
    pub beat_upsert: Option<&'static str>,
}
