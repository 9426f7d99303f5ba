//! A mapping's configuration: which columns sync, which key identifies rows, how conflicts and
//! deletes are handled. Deserialisable from TOML/JSON/YAML by hosts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::merge::DeletePropagation;
use crate::model::{Column, ColumnType, Direction, TableSchema};
use crate::resolve::{DeleteResolution, Granularity, ResolverSpec};

/// A mapped column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// The column name (SQL column and Sheet header).
    pub name: String,
    /// Which side's edits sync.
    #[serde(default)]
    pub direction: Direction,
}

/// How rows typed into the Sheet without a key get one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStrategy {
    /// `uuid` for a single text/uuid key column, else `database` when the database generates
    /// keys, else `require`.
    #[default]
    Auto,
    /// The engine writes a new UUIDv7 into the Sheet row first, then inserts it (crash-safe).
    Uuid,
    /// The database generates the key on insert; the engine writes it back into the Sheet.
    Database,
    /// Rows without a key are held until someone types one.
    Require,
}

/// The mass-delete guard. Deletes the engine would apply to one side are added up over a sliding
/// window (an hour by default) and the current cycle; when they exceed a share or a count of the
/// side's rows, the cycle's deletes are parked in a queue of pending deletes instead of being
/// applied: the rows stay where they are until an operator approves or rejects them
/// ([`crate::Engine::approve_deletes`], [`crate::Engine::reject_deletes`]). While a side has
/// deletes waiting, every further delete for it waits too: the guard cannot be walked around by
/// waiting a cycle or deleting a little at a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeleteGuard {
    /// At most this many deletes per side within the window (`None`: no count limit).
    #[serde(default)]
    pub max_count: Option<usize>,
    /// At most this share (0 to 1) of a side's rows within the window. The rows are counted as
    /// they were when the window began: the rows now plus those the window deleted.
    #[serde(default = "default_share")]
    pub max_share: f64,
    /// The share limit applies to tables of at least this many rows (default 0: every table;
    /// five deletes out of six rows is a share too).
    #[serde(default)]
    pub min_rows: usize,
    /// Deleting every row of a non-empty side trips the guard whatever the limits (an empty
    /// read is never taken as "everything was deleted"). Turn off only for tests or tables that
    /// are emptied on purpose.
    #[serde(default = "yes")]
    pub stop_total_wipe: bool,
    /// The sliding window, in seconds (default 3600). 0 counts each cycle on its own.
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    /// Apply deletes that trip the guard anyway (they are still reported and logged) instead
    /// of parking them for approval.
    #[serde(default)]
    pub auto_approve: bool,
}

fn yes() -> bool {
    true
}

fn default_share() -> f64 {
    0.5
}

fn default_window_secs() -> u64 {
    3_600
}

impl Default for DeleteGuard {
    fn default() -> Self {
        DeleteGuard {
            max_count: None,
            max_share: default_share(),
            min_rows: 0,
            stop_total_wipe: true,
            window_secs: default_window_secs(),
            auto_approve: false,
        }
    }
}

impl DeleteGuard {
    /// True when `deletes` out of `rows` rows is too many. Deleting every row of a non-empty
    /// side always is: an empty read is never taken as "everything was deleted".
    pub fn trips(&self, deletes: usize, rows: usize) -> bool {
        self.exceeded(deletes, rows).is_some()
    }

    /// Which limit `deletes` out of `rows` rows exceeds, in words, if any.
    pub fn exceeded(&self, deletes: usize, rows: usize) -> Option<String> {
        if deletes == 0 {
            return None;
        }
        if deletes >= rows && self.stop_total_wipe {
            return Some(format!("{deletes} deletes would empty all {rows} rows"));
        }
        if let Some(m) = self.max_count.filter(|m| deletes > *m) {
            return Some(format!("{deletes} deletes exceed the limit of {m}"));
        }
        let share = deletes as f64 / rows.max(1) as f64;
        (rows >= self.min_rows && share > self.max_share).then(|| {
            format!(
                "{deletes} deletes of {rows} rows ({:.0}%) exceed the limit of {:.0}%",
                share * 100.0,
                self.max_share * 100.0
            )
        })
    }

    /// The window.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }
}

/// How the engine schedules work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// How far apart cycles start when nothing wakes the engine, in milliseconds (after a
    /// cycle that took longer, the next waits a quarter of it).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// How often an incremental side is also read in full, to catch what its feed missed, in
    /// milliseconds. Sides without a feed are read in full every cycle.
    #[serde(default = "default_full_scan_ms")]
    pub full_scan_interval_ms: u64,
    /// Changes read per `changes` call.
    #[serde(default = "default_batch")]
    pub change_batch: usize,
}

fn default_poll_ms() -> u64 {
    5_000
}

fn default_full_scan_ms() -> u64 {
    600_000
}

fn default_batch() -> usize {
    5_000
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_interval_ms: default_poll_ms(),
            full_scan_interval_ms: default_full_scan_ms(),
            change_batch: default_batch(),
        }
    }
}

impl Timing {
    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The full-scan interval.
    pub fn full_scan_interval(&self) -> Duration {
        Duration::from_millis(self.full_scan_interval_ms)
    }
}

/// One mapping: a Sheet tab and a database table kept in sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingConfig {
    /// A unique name; it keys the mapping's state.
    pub name: String,
    /// The key column(s). Empty (or left out of a configuration file): the database table's
    /// primary key, filled in by the host that opens the table (the facade's `SheetSync`).
    #[serde(default)]
    pub key: Vec<String>,
    /// The columns that sync, in Sheet order; empty means every column of the database table.
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    /// Conflict resolvers, tried in order; empty means field-level last-write-wins.
    #[serde(default)]
    pub resolvers: Vec<ResolverSpec>,
    /// Update-vs-delete when no resolver decides. The default keeps the update.
    #[serde(default = "keep_update")]
    pub update_vs_delete: DeleteResolution,
    /// Which deletes propagate.
    #[serde(default)]
    pub deletes: DeletePropagation,
    /// The mass-delete guard.
    #[serde(default)]
    pub guard: DeleteGuard,
    /// How new Sheet rows get keys.
    #[serde(default)]
    pub keys: KeyStrategy,
    /// Scheduling.
    #[serde(default)]
    pub timing: Timing,
}

fn keep_update() -> DeleteResolution {
    DeleteResolution::KeepUpdate
}

impl MappingConfig {
    /// A mapping with defaults for everything but its name and key.
    pub fn new(name: impl Into<String>, key: &[&str]) -> Self {
        MappingConfig {
            name: name.into(),
            key: key.iter().map(|k| k.to_string()).collect(),
            columns: Vec::new(),
            resolvers: Vec::new(),
            update_vs_delete: keep_update(),
            deletes: DeletePropagation::default(),
            guard: DeleteGuard::default(),
            keys: KeyStrategy::default(),
            timing: Timing::default(),
        }
    }

    /// The resolver specs in force (the default when none are configured).
    pub fn resolver_specs(&self) -> Vec<ResolverSpec> {
        if self.resolvers.is_empty() {
            vec![ResolverSpec::LastWriteWins {
                granularity: Granularity::Field,
                tie: crate::Side::Db,
            }]
        } else {
            self.resolvers.clone()
        }
    }

    /// The mapping's schema, taken from the database table's columns: the configured subset in
    /// the configured order with their directions, and the configured key. Names a missing
    /// column or a key column left out of the subset.
    pub fn schema_from(&self, table: &TableSchema) -> Result<TableSchema> {
        let invalid = |msg: String| Error::new(ErrorKind::ConfigInvalid, msg);
        if !(0.0..=1.0).contains(&self.guard.max_share) {
            return Err(invalid(format!(
                "mapping {:?}: guard.max_share must be between 0 and 1, not {}",
                self.name, self.guard.max_share
            )));
        }
        let columns: Vec<Column> = if self.columns.is_empty() {
            table.columns.clone()
        } else {
            self.columns
                .iter()
                .map(|spec| {
                    let i = table.index_of(&spec.name).ok_or_else(|| {
                        invalid(format!(
                            "mapping {:?} names column {:?}, which table {:?} does not have",
                            self.name, spec.name, table.name
                        ))
                    })?;
                    Ok(table.columns[i].clone().direction(spec.direction))
                })
                .collect::<Result<_>>()?
        };
        let key: Vec<&str> = self.key.iter().map(String::as_str).collect();
        for k in &key {
            if !columns.iter().any(|c| c.name == *k) {
                return Err(invalid(format!(
                    "mapping {:?}: key column {k:?} must be one of the mapped columns",
                    self.name
                )));
            }
        }
        TableSchema::new(self.name.clone(), columns, &key)
    }

    /// The key strategy `Auto` stands for, given the schema and whether the database side
    /// generates keys.
    pub fn effective_key_strategy(&self, schema: &TableSchema, db_generates: bool) -> KeyStrategy {
        match self.keys {
            KeyStrategy::Auto => {
                let single_textual = schema.key.len() == 1
                    && matches!(
                        schema.columns[schema.key[0]].ty,
                        ColumnType::Text | ColumnType::Uuid
                    );
                if single_textual {
                    KeyStrategy::Uuid
                } else if db_generates {
                    KeyStrategy::Database
                } else {
                    KeyStrategy::Require
                }
            }
            k => k,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserialises_with_defaults_and_builds_schema() {
        let cfg: MappingConfig = serde_json::from_str(
            r#"{"name":"orders","key":["id"],
                "columns":[{"name":"id"},{"name":"total","direction":"db_to_sheet"}],
                "resolvers":[{"strategy":"column_owner","owners":{"total":"db"}},{"strategy":"sheet_wins"}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.update_vs_delete, DeleteResolution::KeepUpdate);
        let table = TableSchema::new(
            "public.orders",
            vec![
                Column::new("id", ColumnType::Int),
                Column::new("note", ColumnType::Text),
                Column::new("total", ColumnType::Decimal),
            ],
            &["id"],
        )
        .unwrap();
        let s = cfg.schema_from(&table).unwrap();
        assert_eq!(s.columns.len(), 2);
        assert_eq!(s.columns[1].direction, Direction::DbToSheet);
        assert_eq!(cfg.effective_key_strategy(&s, true), KeyStrategy::Database);
        assert_eq!(cfg.effective_key_strategy(&s, false), KeyStrategy::Require);
    }

    #[test]
    fn config_errors_name_the_problem() {
        let table =
            TableSchema::new("t", vec![Column::new("id", ColumnType::Int)], &["id"]).unwrap();
        let mut cfg = MappingConfig::new("m", &["id"]);
        cfg.columns = vec![ColumnSpec {
            name: "nope".into(),
            direction: Direction::Both,
        }];
        let e = cfg.schema_from(&table).unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
        let cfg = MappingConfig::new("m", &["idx"]);
        let e = cfg.schema_from(&table).unwrap_err();
        assert!(e.to_string().contains("\"idx\""), "{e}");
    }

    #[test]
    fn guard_thresholds() {
        let g = DeleteGuard::default();
        assert!(!g.trips(0, 0));
        assert!(g.trips(3, 3), "deleting everything always trips");
        assert!(!g.trips(2, 5));
        assert!(g.trips(5, 6), "small tables: a share is a share");
        assert!(g.trips(2, 3));
        assert!(!g.trips(1, 2));
        assert!(g.trips(6, 10));
        assert!(!g.trips(5, 10));
        let legacy = DeleteGuard { min_rows: 10, ..g };
        assert!(
            !legacy.trips(5, 6),
            "min_rows still turns the share off below it"
        );
        assert!(g.exceeded(6, 10).unwrap().contains("60%"));
        let g = DeleteGuard {
            max_count: Some(100),
            ..g
        };
        assert!(g.trips(101, 100_000));
    }
}
