//! A panic inside a running mapping is never silent: caught, counted, the mapping marked down,
//! then restarted from its saved state or, by configuration, every mapping stopped with an error
//! naming the mapping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use sheetsync::*;

/// A database-like memory table whose reads panic once, at the `panic_at`-th read (full or
/// incremental; every cycle makes one).
struct PanicsOnce {
    inner: MemoryTable,
    reads: AtomicUsize,
    panic_at: usize,
}

impl PanicsOnce {
    fn read(&self) {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.panic_at {
            panic!("test source: read {n} panics");
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Source for PanicsOnce {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn identity(&self) -> Result<String> {
        self.inner.identity().await
    }
    fn schema(&self) -> &TableSchema {
        self.inner.schema()
    }
    fn scan(&self) -> BoxStream<'_, Result<Vec<Observation>>> {
        self.read();
        self.inner.scan()
    }
    async fn cursor(&self) -> Result<Option<Cursor>> {
        self.inner.cursor().await
    }
    async fn changes(&self, since: &Cursor, limit: usize) -> Result<ChangeBatch> {
        self.read();
        self.inner.changes(since, limit).await
    }
    async fn fetch(&self, keys: &[RowKey]) -> Result<Vec<Observation>> {
        self.inner.fetch(keys).await
    }
    async fn resume(&self, saved: &Cursor) -> Result<()> {
        self.inner.resume(saved).await
    }
    async fn ack(&self, cursor: &Cursor) -> Result<()> {
        self.inner.ack(cursor).await
    }
    fn full_scan_requested(&self) -> bool {
        self.inner.full_scan_requested()
    }
    fn wakeups(&self) -> Option<BoxStream<'static, ()>> {
        self.inner.wakeups()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Sink for PanicsOnce {
    async fn apply(&self, ops: Vec<WriteOp>, ctx: &WriteContext) -> Result<Vec<WriteOutcome>> {
        self.inner.apply(ops, ctx).await
    }
    /// None: the panics are in the reads; writes go through `apply`.
    fn transactional(&self) -> Option<&dyn sheetsync::TransactionalSink> {
        None
    }
    async fn annotate(&self, notices: &[RowNotice]) -> Result<()> {
        self.inner.annotate(notices).await
    }
}

fn schema() -> TableSchema {
    TableSchema::new(
        "items",
        vec![
            Column::new("id", ColumnType::Int).nullable(false),
            Column::new("name", ColumnType::Text),
        ],
        &["id"],
    )
    .unwrap()
}

fn item(id: i64, name: &str) -> Row {
    Row::new(vec![Value::Int(id), name.into()])
}

/// A mapping between a Sheet-like table and a database whose `panic_at`-th read panics
/// (`usize::MAX`: never), on a state store that outlives its engines.
struct Rig {
    sheet: Arc<MemoryTable>,
    db: Arc<PanicsOnce>,
    mapping: Supervised,
}

fn rig(name: &str, on_panic: OnPanic, panic_at: usize) -> Rig {
    let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema()));
    let db = Arc::new(PanicsOnce {
        inner: MemoryTable::new("db", schema()),
        reads: AtomicUsize::new(0),
        panic_at,
    });
    db.inner.upsert(item(1, "one"));
    let store = Arc::new(MemoryStateStore::new());
    let mut m = MappingConfig::new(name, &["id"]);
    m.timing.poll_interval_ms = 20;
    let (s, d) = (sheet.clone(), db.clone());
    let factory: EngineFactory = Arc::new(move || {
        let (m, s, d, store) = (m.clone(), s.clone(), d.clone(), store.clone());
        Box::pin(async move { Engine::builder(m, s, d).state(store).build().await })
    });
    Rig {
        sheet,
        db,
        mapping: Supervised::new(name, on_panic, factory),
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_mapping_is_marked_down_counted_and_restarted() {
    let Rig { sheet, db, mapping } = rig("items", OnPanic::Restart, 3);
    let sync = SheetSync::supervise(vec![mapping]).await.unwrap();
    let m = sync.mapping("items").unwrap().clone();
    let mut events = m.subscribe();
    sync.start();
    until("the mapping goes down", || !m.is_up()).await;
    assert_eq!(m.panics(), 1);
    until("the mapping runs again", || m.is_up()).await;
    // The new engine syncs, and the events of the old and the new one reach the same receiver.
    db.inner.upsert(item(2, "two"));
    until("row 2 reaches the Sheet", || sheet.rows().len() == 2).await;
    let mut cycles = 0;
    while let Ok(e) = events.try_recv() {
        cycles += matches!(e, Event::Cycle(_)) as usize;
    }
    assert!(cycles >= 3, "{cycles} cycles seen across the restart");
    assert_eq!(m.panics(), 1);
    tokio::time::timeout(Duration::from_secs(10), sync.shutdown())
        .await
        .expect("shutdown finishes")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_with_on_panic_exit_stops_every_mapping_with_an_error() {
    let bad = rig("bad", OnPanic::Exit, 2);
    let good = rig("good", OnPanic::Restart, usize::MAX);
    let sync = SheetSync::supervise(vec![bad.mapping, good.mapping])
        .await
        .unwrap();
    sync.start();
    let e = tokio::time::timeout(Duration::from_secs(20), sync.failed())
        .await
        .expect("the panic is reported");
    assert_eq!(e.kind(), ErrorKind::Unexpected);
    let text = e.to_string();
    assert!(
        text.contains("\"bad\"") && text.contains("read 2 panics"),
        "{text}"
    );
    assert!(!sync.mapping("bad").unwrap().is_up());
    assert_eq!(sync.mapping("bad").unwrap().panics(), 1);
    // The other mapping was stopped too: shutdown has nothing left to wait for.
    tokio::time::timeout(Duration::from_secs(10), sync.shutdown())
        .await
        .expect("every mapping stopped")
        .unwrap();
    let reads = good.db.reads.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        good.db.reads.load(Ordering::SeqCst),
        reads,
        "the good mapping still runs"
    );
    assert_eq!(
        bad.sheet.rows().len(),
        1,
        "the first cycle synced before the panic"
    );
}
