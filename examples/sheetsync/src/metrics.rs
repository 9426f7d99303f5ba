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
    /// Cycle durations: counts per bucket of [`CYCLE_BUCKETS`] (not cumulative), and the sum
    /// in microseconds.
    cycle_buckets: [AtomicU64; CYCLE_BUCKETS.len() + 1],
    cycle_micros: AtomicU64,
    /// When the daemon began running the mapping: the lag counts from here until the first
    /// cycle finishes, so a mapping that never works shows a growing lag, not NaN.
    started_ms: i64,
}

/// Upper bounds (seconds) of the cycle-duration histogram's buckets.
const CYCLE_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

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
    /// Counters from zero, the lag counting from now.
    pub fn new() -> Self {
        MappingMetrics {
            started_ms: chrono::Utc::now().timestamp_millis(),
            ..MappingMetrics::default()
        }
    }

    /// Follows an engine's events until it stops.
    pub fn follow(self: Arc<Self>, mut events: broadcast::Receiver<Event>) {
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Cycle(r)) => {
                        self.cycles.fetch_add(1, Ordering::Relaxed);
                        self.observe_cycle(r.timings.total);
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

    fn observe_cycle(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        let bucket = CYCLE_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(CYCLE_BUCKETS.len());
        self.cycle_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.cycle_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The cycle-duration histogram's samples: cumulative buckets, then `+Inf`, sum and count.
    fn cycle_histogram(&self, mapping: &str) -> Vec<(String, String, f64)> {
        let mut rows = Vec::new();
        let mut seen = 0u64;
        for (k, le) in CYCLE_BUCKETS.iter().enumerate() {
            seen += self.cycle_buckets[k].load(Ordering::Relaxed);
            rows.push((
                "_bucket".into(),
                format!("{mapping},le=\"{le}\""),
                seen as f64,
            ));
        }
        seen += self.cycle_buckets[CYCLE_BUCKETS.len()].load(Ordering::Relaxed);
        rows.push((
            "_bucket".into(),
            format!("{mapping},le=\"+Inf\""),
            seen as f64,
        ));
        let sum = self.cycle_micros.load(Ordering::Relaxed) as f64 / 1e6;
        rows.push(("_sum".into(), mapping.to_string(), sum));
        rows.push(("_count".into(), mapping.to_string(), seen as f64));
        rows
    }

    /// Seconds since the last finished cycle, or since the mapping started before the first.
    fn lag_seconds(&self) -> f64 {
        let last = self
            .last_cycle_ms
            .load(Ordering::Relaxed)
            .max(self.started_ms);
        (chrono::Utc::now().timestamp_millis() - last) as f64 / 1000.0
    }

    /// When the last cycle finished, in Unix seconds (0 before the first).
    fn last_success_seconds(&self) -> f64 {
        self.last_cycle_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// Where a family's samples come from: one per mapping, one per mapping and side, or one per
/// mapping from its handle.
#[derive(Clone, Copy)]
enum Samples {
    Mapping(fn(&MappingMetrics) -> f64),
    PerSide(fn(&MappingMetrics, Side) -> f64),
    Handle(fn(&MappingHandle) -> f64),
    /// The pending-delete queue's changes, per mapping and kind of change.
    QueueChanges,
}

fn load(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

/// The families of the mappings' samples: name, type, help, samples.
const FAMILIES: &[(&str, &str, &str, Samples)] = &[
    ("sheetsync_cycles_total", "counter", "Sync cycles finished.", Samples::Mapping(|m| load(&m.cycles))),
    ("sheetsync_failed_cycles_total", "counter", "Sync cycles that failed and were retried.", Samples::Mapping(|m| load(&m.failed_cycles))),
    ("sheetsync_changes_total", "counter", "Changed rows observed, per side.", Samples::PerSide(|m, s| load(&m.changes[i(s)]))),
    ("sheetsync_writes_total", "counter", "Rows written, per side.", Samples::PerSide(|m, s| load(&m.writes[i(s)]))),
    ("sheetsync_held_rows", "gauge", "Rows held back for bad data or refused writes.", Samples::Mapping(|m| load(&m.held))),
    ("sheetsync_conflicts", "gauge", "Conflicts kept for people.", Samples::Mapping(|m| load(&m.conflicts))),
    ("sheetsync_pending_rows", "gauge", "Rows to retry next cycle.", Samples::Mapping(|m| load(&m.pending))),
    ("sheetsync_guard_trips_total", "counter", "Times the mass-delete guard stopped deletes.", Samples::Mapping(|m| load(&m.guard_trips))),
    ("sheetsync_pending_deletes", "gauge", "Deletes the mass-delete guard holds back, waiting for approval.", Samples::Mapping(|m| load(&m.pending_deletes))),
    ("sheetsync_pending_delete_changes_total", "counter", "Rows queued, approved, rejected, applied, restored or dropped in the pending-delete queue.", Samples::QueueChanges),
    ("sheetsync_rows_deleted_total", "counter", "Rows the engine deleted, per side written.", Samples::PerSide(|m, s| load(&m.rows_deleted[i(s)]))),
    ("sheetsync_lag_seconds", "gauge", "Seconds since the last finished cycle (since the mapping started, before the first).", Samples::Mapping(MappingMetrics::lag_seconds)),
    ("sheetsync_last_success_timestamp_seconds", "gauge", "When the last cycle finished, in Unix seconds (0 before the first).", Samples::Mapping(MappingMetrics::last_success_seconds)),
    ("sheetsync_mapping_epoch", "gauge", "The epoch of the lease this process runs the mapping under (0 without a lease).", Samples::Handle(|h| h.epoch().unwrap_or(0) as f64)),
    ("sheetsync_engine_panics_total", "counter", "Panics of the mapping's engine (each restarts it, or stops the daemon, by on_panic).", Samples::Handle(|h| h.panics() as f64)),
    ("sheetsync_mapping_up", "gauge", "1 while the mapping's engine runs, 0 from a panic until it runs again.", Samples::Handle(|h| h.is_up() as u8 as f64)),
];

/// One family's samples: labels and value.
fn samples(mappings: &[(&MappingHandle, &MappingMetrics)], from: Samples) -> Vec<(String, f64)> {
    let mut rows = Vec::new();
    for (h, m) in mappings {
        let mapping = format!("mapping=\"{}\"", esc(h.name()));
        match from {
            Samples::Mapping(f) => rows.push((mapping, f(m))),
            Samples::Handle(f) => rows.push((mapping, f(h))),
            Samples::PerSide(f) => {
                for s in Side::BOTH {
                    rows.push((format!("{mapping},side=\"{s}\""), f(m, s)));
                }
            }
            Samples::QueueChanges => {
                for c in QUEUE_CHANGES {
                    let labels = format!("{mapping},change=\"{}\"", c.as_str());
                    rows.push((labels, load(&m.queue_changes[q(c)])));
                }
            }
        }
    }
    rows
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
    for &(name, kind, help, from) in FAMILIES {
        family(name, kind, help, samples(mappings, from));
    }
    let build = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    family(
        "sheetsync_build_info",
        "gauge",
        "The daemon's version (always 1).",
        vec![(build, 1.0)],
    );
    let by_method = |counts: &BTreeMap<&'static str, u64>| {
        counts
            .iter()
            .map(|(k, v)| (format!("method=\"{k}\""), *v as f64))
            .collect()
    };
    family(
        "sheetsync_api_calls_total",
        "counter",
        "Google API requests, by method (retries included).",
        by_method(api_calls),
    );
    family(
        "sheetsync_api_retries_total",
        "counter",
        "Google API retries after 429, 5xx or timeouts, by method.",
        by_method(api_retries),
    );
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    if let Some(heap) = crate::alloc::heap() {
        let one = |v: u64| vec![(String::new(), v as f64)];
        family(
            "sheetsync_heap_allocated_bytes",
            "gauge",
            "Bytes in the daemon's live allocations (jemalloc's count).",
            one(heap.allocated),
        );
        family(
            "sheetsync_heap_resident_bytes",
            "gauge",
            "Bytes of the pages the allocator keeps resident: live allocations, the free space between them, and its own metadata.",
            one(heap.resident),
        );
    }
    cycle_histogram(&mut out, mappings);
    out
}

/// The cycle-duration histogram of every mapping.
fn cycle_histogram(out: &mut String, mappings: &[(&MappingHandle, &MappingMetrics)]) {
    let _ = writeln!(
        out,
        "# HELP sheetsync_cycle_duration_seconds How long sync cycles took."
    );
    let _ = writeln!(out, "# TYPE sheetsync_cycle_duration_seconds histogram");
    for (h, m) in mappings {
        let mapping = format!("mapping=\"{}\"", esc(h.name()));
        for (suffix, labels, v) in m.cycle_histogram(&mapping) {
            let _ = writeln!(
                out,
                "sheetsync_cycle_duration_seconds{suffix}{{{labels}}} {v}"
            );
        }
    }
}

/// The webhook receiver's counters: deliveries accepted, duplicates, refusals by reason.
pub fn render_webhook(out: &mut String, stats: &sheetsync::gsheets::webhook::WebhookStats) {
    let _ = writeln!(out, "# HELP sheetsync_webhook_deliveries_total Webhook deliveries handed to the sync (accepted) or recognised as already applied (duplicate).");
    let _ = writeln!(out, "# TYPE sheetsync_webhook_deliveries_total counter");
    let _ = writeln!(
        out,
        "sheetsync_webhook_deliveries_total{{result=\"accepted\"}} {}",
        stats.accepted
    );
    let _ = writeln!(
        out,
        "sheetsync_webhook_deliveries_total{{result=\"duplicate\"}} {}",
        stats.duplicates
    );
    let _ = writeln!(out, "# HELP sheetsync_webhook_rejected_total Webhook deliveries refused, by reason (bad_signature: the secrets differ).");
    let _ = writeln!(out, "# TYPE sheetsync_webhook_rejected_total counter");
    for (reason, n) in &stats.rejected {
        let _ = writeln!(
            out,
            "sheetsync_webhook_rejected_total{{reason=\"{}\"}} {n}",
            reason.as_str()
        );
    }
}

/// Each spreadsheet watcher's counters (`sheetsync_watch_*`, labelled by spreadsheet).
pub fn render_watchers(
    out: &mut String,
    watchers: &[std::sync::Arc<sheetsync::gsheets::watch::Watcher>],
) {
    type Counter = fn(&sheetsync::gsheets::watch::WatchStats) -> u64;
    let counters: [(&str, &str, Counter); 6] = [
        (
            "polls",
            "Polls of the spreadsheet's Drive version (no Sheets quota).",
            |s| s.polls,
        ),
        ("moves", "Polls that found the spreadsheet changed.", |s| {
            s.moves
        }),
        (
            "journal_reads",
            "Reads of the edit journal tab (one Sheets read each).",
            |s| s.journal_reads,
        ),
        ("journal_entries", "Journal entries applied.", |s| s.entries),
        (
            "full_reads",
            "Full reads asked for because of a change nobody reported.",
            |s| s.full_reads,
        ),
        (
            "journal_trims",
            "Trims of committed journal entries.",
            |s| s.trims,
        ),
    ];
    let stats: Vec<(String, sheetsync::gsheets::watch::WatchStats)> = watchers
        .iter()
        .map(|w| (esc(w.spreadsheet_id()), w.stats()))
        .collect();
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP sheetsync_watch_{name}_total {help}");
        let _ = writeln!(out, "# TYPE sheetsync_watch_{name}_total counter");
        for (id, s) in &stats {
            let _ = writeln!(
                out,
                "sheetsync_watch_{name}_total{{spreadsheet=\"{id}\"}} {}",
                get(s)
            );
        }
    }
    let _ = writeln!(out, "# HELP sheetsync_watch_journal_missing 1 while the spreadsheet's edit journal tab is missing (edits are then found by full reads).");
    let _ = writeln!(out, "# TYPE sheetsync_watch_journal_missing gauge");
    for (id, s) in &stats {
        let _ = writeln!(
            out,
            "sheetsync_watch_journal_missing{{spreadsheet=\"{id}\"}} {}",
            s.journal_missing as u8
        );
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_durations_fill_a_cumulative_histogram() {
        let m = MappingMetrics::new();
        for ms in [10, 70, 70, 3_000, 120_000] {
            m.observe_cycle(std::time::Duration::from_millis(ms));
        }
        let rows = m.cycle_histogram("mapping=\"m\"");
        let find = |labels: &str| {
            rows.iter()
                .find(|(_, l, _)| l.ends_with(labels))
                .map(|r| r.2)
        };
        assert_eq!(find("le=\"0.05\""), Some(1.0));
        assert_eq!(find("le=\"0.1\""), Some(3.0));
        assert_eq!(find("le=\"5\""), Some(4.0));
        assert_eq!(find("le=\"60\""), Some(4.0));
        assert_eq!(find("le=\"+Inf\""), Some(5.0));
        let count = rows.iter().find(|(s, _, _)| s == "_count").map(|r| r.2);
        let sum = rows.iter().find(|(s, _, _)| s == "_sum").map(|r| r.2);
        assert_eq!(count, Some(5.0));
        assert!((sum.unwrap() - 123.15).abs() < 1e-9, "{sum:?}");
    }

    #[test]
    fn the_lag_counts_from_the_start_until_the_first_cycle() {
        let m = MappingMetrics {
            started_ms: chrono::Utc::now().timestamp_millis() - 5_000,
            ..MappingMetrics::new()
        };
        let lag = m.lag_seconds();
        assert!(
            (5.0..60.0).contains(&lag),
            "a mapping that never worked lags: {lag}"
        );
        assert_eq!(m.last_success_seconds(), 0.0);
        assert_eq!(m.lag_ms(), None, "health still waits for a first cycle");
        m.last_cycle_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        assert!(m.lag_seconds() < 1.0);
        assert!(m.last_success_seconds() > 1.0e9);
    }
}
