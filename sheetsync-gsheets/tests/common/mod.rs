//! Test support shared by the adapter's emulator suites: a client that the quota never holds
//! back and that retries quickly, and the race suites' table.
#![allow(dead_code)] // each test binary uses its own part

use std::time::Duration;

use sheetsync_core::{Column, ColumnType, TableSchema};
use sheetsync_gsheets::quota::Backoff;
use sheetsync_gsheets::{Auth, ClientConfig};

/// A client of the emulator at `base`: budgets far above what a test sends (the emulator, not
/// Google's per-minute quota, sets the pace) and retries a few milliseconds apart.
pub fn fast_client(base: &str) -> ClientConfig {
    let mut c = ClientConfig::emulator(base);
    c.reads_per_minute = 1_000_000;
    c.writes_per_minute = 1_000_000;
    c.backoff = Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(40),
        max_retries: 5,
    };
    c
}

/// [`fast_client`] as the caller `who`: the emulator tells programs apart by their bearer
/// token (our own writes from another program's).
pub fn fast_client_as(base: &str, who: &str) -> ClientConfig {
    let mut c = fast_client(base);
    c.auth = Auth::Bearer(who.into());
    c
}

/// The race suites' table `t`: `id` (the key), `name`, `note`.
pub fn id_name_note() -> TableSchema {
    TableSchema::new(
        "t",
        vec![
            Column::new("id", ColumnType::Int),
            Column::new("name", ColumnType::Text),
            Column::new("note", ColumnType::Text),
        ],
        &["id"],
    )
    .unwrap()
}
