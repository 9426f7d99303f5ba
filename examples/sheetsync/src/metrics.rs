//! Prometheus metrics, fed by the engines' events and the Sheets client's call counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use sheetsync::{Event, MappingHandle, QueueChange, Side, WriteKind};
use tokio::sync::broadcast;

/// Counters of one mapping.
#[derive(Default)]
pub struct MappingMetrics {
    cycles: AtomicU64,
    failed_cycles: AtomicU64,
    changes: [AtomicU64; 2],
    writes: [AtomicU64; 2],
    held: AtomicU64,
    conflicts: AtomicU64,
    pending: AtomicU64,
    guard_trips: AtomicU64,
    pending_deletes: AtomicU64,
    queue_changes: [AtomicU64; QUEUE_CHANGES.len()],
    rows_deleted: [AtomicU64; 2],
    last_cycle_ms: AtomicI64,
}

/// The changes of the pending-delete queue, in the order of [`MappingMetrics::queue_changes`].
const QUEUE_CHANGES: [QueueChange; 6] = [
    QueueChange::Queued,
    QueueChange::Approved,
    QueueChange::Rejected,
    QueueChange::Applied,
    QueueChange::Restored,
    QueueChange::Dropped,
];

fn q(change: QueueChange) -> usize {
    QUEUE_CHANGES
        .iter()
        .position(|c| *c == change)
        .expect("every change is listed")
}

fn i(side: Side) -> usize {
    match side {
        Side::Sheet => 0,
        Side::Db => 1,
    }
}

impl MappingMetrics {
    /// Follows an engine's events until it stops.
    pub fn follow(self: Arc<Self>, mut events: broadcast::Receiver<Event>) {
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Cycle(r)) => {
                        self.cycles.fetch_add(1, Ordering::Relaxed);
                        for s in Side::BOTH {
                            self.changes[i(s)]
                                .fetch_add(r.changes.get(s) as u64, Ordering::Relaxed);
                            self.writes[i(s)].fetch_add(r.writes.get(s) as u64, Ordering::Relaxed);
                        }
                        self.held.store(r.held as u64, Ordering::Relaxed);
                        self.conflicts.store(r.conflicts as u64, Ordering::Relaxed);
                        self.pending.store(r.pending as u64, Ordering::Relaxed);
                        self.pending_deletes
                            .store(r.pending_deletes as u64, Ordering::Relaxed);
                        self.last_cycle_ms
                            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
                    }
                    Ok(Event::Error { side: None, .. }) => {
                        self.failed_cycles.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::GuardTripped { .. }) => {
                        self.guard_trips.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::DeleteQueue {
                        change,
                        rows,
                        waiting,
                        ..
                    }) => {
                        self.queue_changes[q(change)].fetch_add(rows as u64, Ordering::Relaxed);
                        self.pending_deletes
                            .store(waiting as u64, Ordering::Relaxed);
                    }
                    Ok(Event::Synced {
                        side,
                        kind: WriteKind::Delete,
                        ..
                    }) => {
                        self.rows_deleted[i(side)].fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Milliseconds since the last finished cycle (`None` before the first).
    pub fn lag_ms(&self) -> Option<i64> {
        let last = self.last_cycle_ms.load(Ordering::Relaxed);
        (last > 0).then(|| chrono::Utc::now().timestamp_millis() - last)
    }
}

/// Renders everything in the Prometheus text format.
pub fn render(
    mappings: &[(&MappingHandle, &MappingMetrics)],
    api_calls: &BTreeMap<&'static str, u64>,
    api_retries: &BTreeMap<&'static str, u64>,
) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let per_handle = |f: &dyn Fn(&MappingHandle) -> f64| {
        mappings
            .iter()
            .map(|(h, _)| (format!("mapping=\"{}\"", esc(h.name())), f(h)))
            .collect::<Vec<_>>()
    };
    let per = |f: &dyn Fn(&MappingMetrics) -> f64| {
        mappings
            .iter()
            .map(|(h, m)| (format!("mapping=\"{}\"", esc(h.name())), f(m)))
            .collect::<Vec<_>>()
    };
    let per_side = |f: &dyn Fn(&MappingMetrics, Side) -> f64| {
        mappings
            .iter()
            .map(|(h, m)| (h.name(), m))
            .flat_map(|(n, m)| {
                Side::BOTH
                    .into_iter()
                    .map(move |s| (format!("mapping=\"{}\",side=\"{s}\"", esc(n)), f(m, s)))
            })
            .collect::<Vec<_>>()
    };
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    family(
        "sheetsync_cycles_total",
        "counter",
        "Sync cycles finished.",
        per(&|m| load(&m.cycles)),
    );
    family(
        "sheetsync_failed_cycles_total",
        "counter",
        "Sync cycles that failed and were retried.",
        per(&|m| load(&m.failed_cycles)),
    );
    family(
        "sheetsync_changes_total",
        "counter",
        "Changed rows observed, per side.",
        per_side(&|m, s| load(&m.changes[i(s)])),
    );
    family(
        "sheetsync_writes_total",
        "counter",
        "Rows written, per side.",
        per_side(&|m, s| load(&m.writes[i(s)])),
    );
    family(
        "sheetsync_held_rows",
        "gauge",
        "Rows held back for bad data or refused writes.",
        per(&|m| load(&m.held)),
    );
    family(
        "sheetsync_conflicts",
        "gauge",
        "Conflicts kept for people.",
        per(&|m| load(&m.conflicts)),
    );
    family(
        "sheetsync_pending_rows",
        "gauge",
        "Rows to retry next cycle.",
        per(&|m| load(&m.pending)),
    );
    family(
        "sheetsync_guard_trips_total",
        "counter",
        "Times the mass-delete guard stopped deletes.",
        per(&|m| load(&m.guard_trips)),
    );
    family(
        "sheetsync_pending_deletes",
        "gauge",
        "Deletes the mass-delete guard holds back, waiting for approval.",
        per(&|m| load(&m.pending_deletes)),
    );
    family(
        "sheetsync_pending_delete_changes_total",
        "counter",
        "Rows queued, approved, rejected, applied, restored or dropped in the pending-delete queue.",
        mappings
            .iter()
            .flat_map(|(h, m)| {
                let n = h.name();
                QUEUE_CHANGES.iter().map(move |c| {
                    (
                        format!("mapping=\"{}\",change=\"{}\"", esc(n), c.as_str()),
                        load(&m.queue_changes[q(*c)]),
                    )
                })
            })
            .collect(),
    );
    family(
        "sheetsync_rows_deleted_total",
        "counter",
        "Rows the engine deleted, per side written.",
        per_side(&|m, s| load(&m.rows_deleted[i(s)])),
    );
    family(
        "sheetsync_lag_seconds",
        "gauge",
        "Seconds since the last finished cycle.",
        per(&|m| m.lag_ms().map_or(f64::NAN, |ms| ms as f64 / 1000.0)),
    );
    family(
        "sheetsync_engine_panics_total",
        "counter",
        "Panics of the mapping's engine (each restarts it, or stops the daemon, by on_panic).",
        per_handle(&|h| h.panics() as f64),
    );
    family(
        "sheetsync_mapping_up",
        "gauge",
        "1 while the mapping's engine runs, 0 from a panic until it runs again.",
        per_handle(&|h| h.is_up() as u8 as f64),
    );
    family(
        "sheetsync_api_calls_total",
        "counter",
        "Google API requests, by method (retries included).",
        api_calls
            .iter()
            .map(|(k, v)| (format!("method=\"{k}\""), *v as f64))
            .collect(),
    );
    family(
        "sheetsync_api_retries_total",
        "counter",
        "Google API retries after 429, 5xx or timeouts, by method.",
        api_retries
            .iter()
            .map(|(k, v)| (format!("method=\"{k}\""), *v as f64))
            .collect(),
    );
    out
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
