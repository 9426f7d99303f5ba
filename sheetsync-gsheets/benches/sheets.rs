//! The Sheets adapter against the emulator: API calls per 10,000 changed rows, and a full read
//! of a 100,000-row sheet.
//!
//! `cargo bench -p sheetsync-gsheets --bench sheets`
//!
//! Prints a small table. The emulator runs in process without latency or quotas here, so the
//! times are the adapter's own cost plus loopback HTTP and JSON; the end-to-end harness
//! (`cargo bench -p sheetsync-cli --bench e2e`) adds Google-like latency.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sheetsync_core::{
    Column, ColumnType, Expected, Row, Sink, SourceExt, TableSchema, Value, WriteContext, WriteOp,
};
use sheetsync_emulator::{Config, EmulatorHandle};
use sheetsync_gsheets::{ClientConfig, SheetOptions, SheetTable, SheetsClient};

const COLS: usize = 10;

/// The system allocator, counting the bytes allocated now and at most: what the adapter keeps
/// per row is the heap a full read leaves behind (the emulator's own data does not change).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)] // forwards to the system allocator, counting
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Heap bytes allocated now.
fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts measuring the peak afresh; returns the heap now.
fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn schema() -> TableSchema {
    let mut cols = vec![Column::new("id", ColumnType::Int).nullable(false)];
    for i in 1..COLS {
        cols.push(Column::new(
            format!("c{i}"),
            if i % 2 == 0 {
                ColumnType::Int
            } else {
                ColumnType::Text
            },
        ));
    }
    TableSchema::new("bench", cols, &["id"]).unwrap()
}

fn row(id: i64, v: i64) -> Row {
    let mut r = vec![Value::Int(id)];
    for i in 1..COLS {
        r.push(if i % 2 == 0 {
            Value::Int(id * 3 + v)
        } else {
            Value::Text(format!("r{id} c{i} v{v}"))
        });
    }
    Row::new(r)
}

const WRITE_METHODS: [&str; 4] = [
    "sheets.spreadsheets.values.batchUpdate",
    "sheets.spreadsheets.batchUpdate",
    "sheets.spreadsheets.values.append",
    "sheets.spreadsheets.values.update",
];

fn writes(emu: &EmulatorHandle) -> (u64, u64) {
    let c = emu.request_counts();
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    let writes = WRITE_METHODS.iter().map(|m| get(m)).sum();
    let reads = emu.value_reads() + get("sheets.spreadsheets.get");
    (writes, reads)
}

/// Bytes of the write requests' bodies since the counters were reset.
fn write_bytes(emu: &EmulatorHandle) -> u64 {
    let log = emu.request_log();
    let writes = log
        .iter()
        .filter(|r| WRITE_METHODS.contains(&r.method_id.as_str()));
    writes.map(|r| r.body_bytes).sum()
}

async fn scan_len(t: &SheetTable) -> usize {
    t.scan_all().await.unwrap().len()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = EmulatorHandle::start(Config::default()).await.unwrap();
        let id = emu.create_spreadsheet("bench").unwrap();
        let mut cfg = ClientConfig::emulator(&emu.base_url());
        cfg.reads_per_minute = 1_000_000;
        cfg.writes_per_minute = 1_000_000;
        let client = Arc::new(SheetsClient::new(cfg).await.unwrap());
        let mut opts = SheetOptions::new(&id, 0);
        opts.use_drive_version = false; // measure real reads
        let t = SheetTable::new(client, opts, schema());
        let ctx = WriteContext { origin: "bench".into() };
        let n = 100_000i64;

        // Load 100,000 rows (appends, in as few requests as the size budget allows).
        emu.reset_counters();
        let before_load = reset_peak();
        let start = Instant::now();
        let ops: Vec<WriteOp> = (0..n)
            .map(|i| WriteOp::Upsert { row: row(i, 0), expected: Expected::Absent })
            .collect();
        t.apply(ops, &ctx).await.unwrap();
        let load = start.elapsed();
        let load_peak = PEAK.load(Ordering::Relaxed) - before_load;
        let (load_writes, _) = writes(&emu);

        // Full read of 100,000 rows x 10 columns: what the adapter keeps of it.
        let before_read = live();
        assert_eq!(scan_len(&t).await, n as usize);
        let kept = live().saturating_sub(before_read);
        emu.reset_counters();
        let mut times = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            assert_eq!(scan_len(&t).await, n as usize);
            times.push(start.elapsed());
        }
        times.sort();
        let (_, read_calls) = writes(&emu);

        // 10,000 changed rows: 8,000 updates, 1,000 inserts, 1,000 deletes, in one apply: once
        // as a cycle after a full read (positions come from the read), once on its own (the
        // write locates the keys itself), on a sheet whose rows shifted in between.
        let changes = |base: i64, v: i64| {
            let mut ops = Vec::new();
            for i in 0..8_000 {
                ops.push(WriteOp::Upsert {
                    row: row(base + i * 10, v + 1),
                    expected: Expected::Row(row(base + i * 10, v)),
                });
            }
            for i in 0..1_000 {
                ops.push(WriteOp::Upsert { row: row(n + base * 1_000 + i, 0), expected: Expected::Absent });
            }
            for i in 0..1_000 {
                ops.push(WriteOp::Delete {
                    key: sheetsync_core::RowKey::from_values(&[Value::Int(base + i * 10 + 5)]),
                    expected: Expected::Any,
                });
            }
            ops
        };
        emu.reset_counters();
        let start = Instant::now();
        assert_eq!(scan_len(&t).await, n as usize);
        t.apply(changes(0, 0), &ctx).await.unwrap();
        let cycle = start.elapsed();
        let (cycle_writes, cycle_reads) = writes(&emu);
        emu.reset_counters();
        let start = Instant::now();
        t.apply(changes(1, 0), &ctx).await.unwrap();
        let apply = start.elapsed();
        let (change_writes, change_reads) = writes(&emu);
        let change_bytes = write_bytes(&emu);

        println!("| measurement | result |");
        println!("|---|---|");
        println!(
            "| load 100,000 rows (append) | {:.2} s, {load_writes} write calls; peak heap {:.0} MB above the start (emulator included) |",
            load.as_secs_f64(),
            load_peak as f64 / 1e6
        );
        println!(
            "| heap the adapter keeps after a full read (cached rows, keys by row, positions) | {:.0} bytes per row ({:.1} MB) |",
            kept as f64 / n as f64,
            kept as f64 / 1e6
        );
        println!(
            "| full read, 100,000 rows x {COLS} columns (median of 3) | {:.0} ms, {} read calls per read |",
            times[1].as_secs_f64() * 1000.0,
            read_calls / 3
        );
        println!(
            "| cycle: full read + apply 10,000 changed rows (8,000 updates, 1,000 inserts, 1,000 deletes) | {:.2} s, {cycle_writes} write calls, {cycle_reads} read calls |",
            cycle.as_secs_f64()
        );
        println!(
            "| apply 10,000 changed rows on its own (locates the keys itself) | {:.2} s, {change_writes} write calls, {change_reads} read calls |",
            apply.as_secs_f64()
        );
        println!(
            "| write request bodies of that apply | {:.2} MB, {:.0} bytes per changed row |",
            change_bytes as f64 / 1e6,
            change_bytes as f64 / 10_000.0
        );
        emu.shutdown().await;
    });
}
