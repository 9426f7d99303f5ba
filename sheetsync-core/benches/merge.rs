//! Merge throughput and state memory.
//!
//! `cargo bench -p sheetsync-core --bench merge`
//!
//! * `merge_row`: the pure three-way merge of one 10-column row changed on both sides.
//! * `plan/N`: one full cycle's planning over N rows of 10 columns, both sides read in full, 1%
//!   of the rows changed on each side: take both sides' pages (prepared outside the measured
//!   time), diff every row against its base, merge the changed ones, plan the writes. Throughput
//!   is in rows of the table.
//! * The engine's state per row (its map of merge bases, the values included as it keeps them)
//!   is printed once, beside what the same values take as `Row`s, measured with a counting
//!   allocator.

#![allow(unsafe_code)] // the counting allocator below

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use futures::stream::{BoxStream, StreamExt};
use sheetsync_core::*;

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ALLOCATED.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const COLS: usize = 10;

fn schema() -> TableSchema {
    let mut cols = vec![Column::new("id", ColumnType::Int).nullable(false)];
    for i in 1..COLS {
        let ty = match i % 3 {
            0 => ColumnType::Int,
            1 => ColumnType::Text,
            _ => ColumnType::Float,
        };
        cols.push(Column::new(format!("c{i}"), ty));
    }
    TableSchema::new("bench", cols, &["id"]).unwrap()
}

fn row(id: i64, version: i64) -> Row {
    let mut v = vec![Value::Int(id)];
    for i in 1..COLS {
        v.push(match i % 3 {
            0 => Value::Int(id * 7 + version),
            1 => Value::Text(format!("text {id} {i} v{version}")),
            _ => Value::Float(id as f64 * 0.25 + version as f64),
        });
    }
    Row::new(v)
}

fn bench_merge_row(c: &mut Criterion) {
    let schema = schema();
    let key = key_of(1);
    let base = row(1, 0);
    let mut sheet = base.clone();
    sheet.0[1] = Value::Text("sheet edit".into());
    let mut db = base.clone();
    db.0[3] = Value::Int(-1);
    let resolver = LastWriteWins {
        granularity: Granularity::Field,
        tie: Side::Db,
    };
    let policy = MergePolicy {
        schema: &schema,
        resolver: &resolver,
        update_vs_delete: DeleteResolution::KeepUpdate,
        deletes: DeletePropagation::default(),
    };
    let mut g = c.benchmark_group("merge_row");
    g.throughput(Throughput::Elements(1));
    g.bench_function("two_sided_10_columns", |b| {
        b.iter(|| {
            merge_row(
                &policy,
                &key,
                Some(&base),
                SideState {
                    row: Some(&sheet),
                    at: 1,
                },
                SideState {
                    row: Some(&db),
                    at: 2,
                },
                3,
            )
        })
    });
    g.finish();
}

/// A side whose scan hands out pages prepared outside the measured time, so the benchmark
/// measures the engine (diff against the bases, merge, plan) and not an adapter's reads.
struct Prebuilt {
    schema: TableSchema,
    pages: Mutex<Vec<Vec<Observation>>>,
}

impl Prebuilt {
    fn load(&self, rows: &[Row]) {
        let pages = rows
            .chunks(1000)
            .map(|c| c.iter().cloned().map(Observation::row).collect())
            .collect();
        *self.pages.lock().unwrap() = pages;
    }
}

#[async_trait::async_trait]
impl Source for Prebuilt {
    fn name(&self) -> &str {
        "prebuilt"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn schema(&self) -> &TableSchema {
        &self.schema
    }
    fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>> {
        let pages = std::mem::take(&mut *self.pages.lock().unwrap());
        futures::stream::iter(pages.into_iter().map(Ok)).boxed()
    }
}

#[async_trait::async_trait]
impl Sink for Prebuilt {
    async fn apply(&self, ops: Vec<WriteOp>, _: &WriteContext) -> Result<Vec<WriteOutcome>> {
        Ok(vec![WriteOutcome::Applied; ops.len()])
    }
}

fn bench_plan(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("plan");
    g.sample_size(10);
    for n in [100_000i64, 1_000_000] {
        let side = || {
            Arc::new(Prebuilt {
                schema: schema(),
                pages: Mutex::new(Vec::new()),
            })
        };
        let (sheet, db) = (side(), side());
        let synced: Vec<Row> = (0..n).map(|i| row(i, 0)).collect();
        sheet.load(&synced);
        db.load(&synced);
        let engine = rt
            .block_on(
                Engine::builder(
                    MappingConfig::new("bench", &["id"]),
                    sheet.clone(),
                    db.clone(),
                )
                .build(),
            )
            .unwrap();
        rt.block_on(engine.run_once()).unwrap();
        // 1% changed on each side, on different rows.
        let mut sheet_rows = synced.clone();
        let mut db_rows = synced;
        for i in (0..n as usize).step_by(100) {
            sheet_rows[i] = row(i as i64, 1);
            db_rows[i + 50] = row(i as i64 + 50, 2);
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || {
                    sheet.load(&sheet_rows);
                    db.load(&db_rows);
                },
                |()| {
                    let plan = rt.block_on(engine.plan()).unwrap();
                    assert_eq!(plan.sheet.len() + plan.db.len(), (n / 50) as usize);
                    plan
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Bytes per row of the engine's state: its map of bases (key, base, values as the engine
/// keeps them), beside what the same rows' values take as `Row`s.
fn report_state_memory(_: &mut Criterion) {
    let n = 200_000i64;
    let before = ALLOCATED.load(Ordering::Relaxed);
    let rows: Vec<Row> = (0..n).map(|i| row(i, 0)).collect();
    let values_only = ALLOCATED.load(Ordering::Relaxed) - before;
    drop(rows);
    let before = ALLOCATED.load(Ordering::Relaxed);
    let bases =
        sheetsync_core::__bench::base_map((0..n).map(|i| (key_of(i), RowBase::live(row(i, 0), 0))));
    let with_state = ALLOCATED.load(Ordering::Relaxed) - before;
    println!(
        "state memory: {:.1} bytes per row in all ({} rows of {COLS} columns; the values alone take {:.1} bytes per row as rows)",
        with_state as f64 / n as f64,
        n,
        values_only as f64 / n as f64
    );
    drop(bases);
}

criterion_group!(benches, report_state_memory, bench_merge_row, bench_plan);
criterion_main!(benches);
