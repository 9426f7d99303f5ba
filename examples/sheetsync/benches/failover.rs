//! Failover time of replicas: two daemons on one mapping, the owner killed with `kill -9`, 20
//! times per database. Reports, per database, p50 and max of
//! * **takeover**: kill → the standby holds the lease and says so in its log (it builds its
//!   engine from the saved state next);
//! * **first change**: kill → a database row inserted right after the kill is in the Sheet
//!   (the new owner's first cycles).
//!
//! ```sh
//! cargo bench -p sheetsync-cli --bench failover            # SHEETSYNC_FAILOVER_KILLS=20
//! ```
//! Databases as in the end-to-end tests (`SHEETSYNC_TEST_POSTGRES_URL`, `SHEETSYNC_TEST_MYSQL_URL`).

#[allow(dead_code)]
#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{insert_sql, row, rows_map, Backend, World};

fn kills() -> usize {
    std::env::var("SHEETSYNC_FAILOVER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// `(takeover, first change)` of each kill.
async fn measure(backend: Backend, kills: usize) -> Vec<(Duration, Duration)> {
    let mut w = World::new(backend, "failover").await;
    let m = w.add_mapping("items", &[], "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&[]);
    let mut out = Vec::new();
    for i in 1..=kills as i64 {
        let standby = w.spawn_replica();
        standby
            .daemon
            .wait_for_log("another process runs this mapping")
            .await;
        let killed = Instant::now();
        w.kill9();
        let r = row([&i.to_string(), "after the kill", "", "", "", "true"]);
        w.db.exec(&insert_sql(&t, &[(i, r.clone())])).await;
        want.insert(i, r);
        w.promote(standby, Duration::from_secs(60)).await;
        w.running()
            .wait_for_log_within("took the mapping over", Duration::from_secs(60))
            .await;
        let takeover = killed.elapsed();
        w.converge(m, &want).await;
        out.push((takeover, killed.elapsed()));
    }
    out
}

fn p50_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], *v.last().expect("measurements"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks
    }
    let kills = kills();
    println!(
        "| Database | Kills | Takeover p50 | Takeover max | First change p50 | First change max |"
    );
    println!("|---|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        let runs = measure(backend, kills).await;
        let (tp50, tmax) = p50_max(runs.iter().map(|r| r.0).collect());
        let (cp50, cmax) = p50_max(runs.iter().map(|r| r.1).collect());
        println!(
            "| {backend:?} | {kills} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            tp50.as_secs_f64(),
            tmax.as_secs_f64(),
            cp50.as_secs_f64(),
            cmax.as_secs_f64()
        );
    }
}
