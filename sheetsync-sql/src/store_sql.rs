//! The SQL text of the state store and of mapping leases on one database: each driver names
//! its tables ([`Driver::state`](crate::driver::Driver::state)), which the driver, the leases and
//! the state store all read, so they sit below all three.

/// The state store's statements on one database.
pub(crate) struct StateSql {
    /// The four tables, qualified and quoted.
    pub mappings: &'static str,
    pub bases: &'static str,
    pub intents: &'static str,
    pub leases: &'static str,
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
}
