//! Two daemons with the same configuration (two replicas, or the old and the new process of a
//! rolling update): the mapping runs on one of them only. The second waits and says so; while
//! both run, a database insert reaches the Sheet once (two owners would both append it) and a
//! person's edit reaches the database once; `kill -9` of the owner hands the mapping to the
//! other, which resumes from the saved state with nothing lost or doubled. `sheetsync reset`
//! refuses to run under a live owner.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{insert_sql, row, rows_map, Backend, World};

/// How long the standby may take to run the mapping after the owner is killed.
const TAKEOVER: Duration = Duration::from_secs(15);

pub async fn a_second_daemon_waits_then_takes_over(backend: Backend) {
    let seed = [(
        1,
        row(["1", "Widget", "007", "12.50", "2024-01-31", "true"]),
    )];
    let mut w = World::new(backend, "replicas").await;
    let m = w.add_mapping("items", &seed, "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&seed);
    w.converge(m, &want).await;

    // The owner says which lease epoch it runs the mapping under, and who it is.
    let epoch = w
        .metric("sheetsync_mapping_epoch", "mapping=\"items\"")
        .await
        .unwrap();
    assert!(epoch >= 1.0, "epoch {epoch}");
    let (_, status) = w.http_get("/api/status").await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["mappings"][0]["epoch"],
        json!(epoch as u64),
        "{status}"
    );
    assert!(status["mappings"][0]["replica"]
        .as_str()
        .is_some_and(|r| r.contains(':')));
    let standby = w.spawn_replica();
    standby
        .daemon
        .wait_for_log("another process runs this mapping")
        .await;
    // The standby serves its status at once, and says that it waits, and for whom.
    let (_, waiting) = w.http_get_on(standby.port, "/api/status").await.unwrap();
    let waiting: serde_json::Value = serde_json::from_str(&waiting).unwrap();
    let one = &waiting["mappings"][0];
    assert_eq!(one["placement"], json!("waiting"), "{waiting}");
    assert_eq!(
        one["replica"], status["mappings"][0]["replica"],
        "{waiting}"
    );
    assert_eq!(one["epoch"], json!(epoch as u64), "{waiting}");
    assert_eq!(
        status["mappings"][0]["placement"],
        json!("running"),
        "{status}"
    );
    let (_, health) = w.http_get_on(standby.port, "/healthz").await.unwrap();
    assert!(
        health.contains("\"ok\""),
        "a waiting standby is healthy: {health}"
    );

    // Both processes are up: each change is carried once.
    let two = row(["2", "Gadget", "", "", "", "false"]);
    w.db.exec(&insert_sql(&t, &[(2, two.clone())])).await;
    want.insert(2, two);
    w.converge(m, &want).await;
    w.type_rows(m, &[(3, row(["3", "Typed", "", "", "", "false"]))]);
    want.insert(3, row(["3", "Typed", "", "", "", "false"]));
    w.converge(m, &want).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a standby that wrote would show by now
    w.converge(m, &want).await;

    // Resetting the mapping under a running owner would race its cycles: refused by the
    // lease, also from a host whose configuration points at another daemon address.
    let elsewhere = w.dir.join("elsewhere.toml");
    let listen = format!("127.0.0.1:{}", w.port);
    std::fs::write(&elsewhere, w.config_text().replace(&listen, "127.0.0.1:9")).unwrap();
    let reset = w.cli(&elsewhere, &["reset", "--mapping", "items"]).await;
    assert_ne!(reset.code, Some(0), "{reset:?}");
    assert!(reset.stderr.contains("stop the daemon first"), "{reset:?}");

    let killed = Instant::now();
    w.kill9();
    w.promote(standby, TAKEOVER).await;
    w.running()
        .wait_for_log_within("took the mapping over", TAKEOVER)
        .await;
    eprintln!(
        "{backend:?}: the standby took over {:?} after the kill",
        killed.elapsed()
    );
    let four = row(["4", "After", "", "", "", "true"]);
    w.db.exec(&insert_sql(&t, &[(4, four.clone())])).await;
    want.insert(4, four);
    w.type_cell(m, 1, "name", json!("Widget v2"));
    want.get_mut(&1).unwrap()[1] = Some("Widget v2".into());
    w.converge(m, &want).await;
}

/// An owner paused past its lease (SIGSTOP): the database ends its silent lock connection, the
/// standby takes over, and when the old owner resumes it finds its lease gone, stops writing and
/// waits as a standby itself; nothing it had in flight lands twice.
pub async fn a_paused_owner_stands_down_when_it_resumes(backend: Backend) {
    let seed = [(
        1,
        row(["1", "Widget", "007", "12.50", "2024-01-31", "true"]),
    )];
    let mut w = World::new(backend, "paused").await;
    let m = w.add_mapping("items", &seed, "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&seed);
    w.converge(m, &want).await;
    let standby = w.spawn_replica();
    let old = w.take_daemon().expect("the owner");
    let paused = Instant::now();
    old.signal("STOP");
    // The lease lives 10 s without an answer; the standby retries every second.
    w.promote(standby, Duration::from_secs(30)).await;
    w.running()
        .wait_for_log_within("took the mapping over", Duration::from_secs(30))
        .await;
    eprintln!(
        "{backend:?}: the standby took over {:?} after the pause",
        paused.elapsed()
    );
    let two = row(["2", "Gadget", "", "", "", "false"]);
    w.db.exec(&insert_sql(&t, &[(2, two.clone())])).await;
    want.insert(2, two);
    w.converge(m, &want).await;
    old.signal("CONT");
    // The resumed owner stands down.
    old.wait_for_log("lost the mapping's lease").await;
    let three = row(["3", "Late", "", "", "", "true"]);
    w.db.exec(&insert_sql(&t, &[(3, three.clone())])).await;
    want.insert(3, three);
    w.converge(m, &want).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the old owner, were it writing, would show
    w.converge(m, &want).await;
}

/// Three replicas restarted one after another (SIGTERM, as a rolling update does) while people
/// and a service keep editing both sides: every edit made before, during and after each
/// handover reaches the other side, none is lost or doubled.
pub async fn a_rolling_restart_under_a_stream_of_edits_loses_nothing(backend: Backend) {
    let seed: Vec<_> = (1..=20)
        .map(|i| (i, row([&i.to_string(), "seed", "", "1.00", "", "true"])))
        .collect();
    let mut w = World::new(backend, "rolling").await;
    let m = w.add_mapping("items", &seed, "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    let mut want = rows_map(&seed);
    w.converge(m, &want).await;
    let first = w.take_daemon().expect("the owner");
    let standbys = [w.spawn_replica(), w.spawn_replica()];
    for s in &standbys {
        s.daemon
            .wait_for_log("another process runs this mapping")
            .await;
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let roll = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        first.signal("TERM");
        let next = took_over(&standbys, None).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        standbys[next].daemon.signal("TERM");
        took_over(&standbys, Some(next)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let edits = async {
        let mut n = 0i64;
        let mut edits = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            n += 1;
            // The service inserts a row and reprices an old one; a person renames another.
            let new = row([&(100 + n).to_string(), "inserted", "", "2.00", "", "false"]);
            w.db.exec(&insert_sql(&t, &[(100 + n, new.clone())])).await;
            let priced = 11 + n % 10;
            let price = format!("{n}.5");
            w.db.exec(&format!(
                "UPDATE {t} SET price = '{price}' WHERE id = {priced}"
            ))
            .await;
            let renamed = 1 + n % 10;
            w.type_cell(m, renamed, "name", json!(format!("typed {n}")));
            edits.push((100 + n, new, priced, price, renamed, format!("typed {n}")));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        edits
    };
    let ((), edits) = tokio::join!(roll, edits);
    assert!(
        edits.len() > 20,
        "a stream, not a few edits: {}",
        edits.len()
    );
    for (id, new, priced, price, renamed, name) in edits {
        want.insert(id, new);
        want.get_mut(&priced).unwrap()[3] = Some(price);
        want.get_mut(&renamed).unwrap()[1] = Some(name);
    }
    w.converge(m, &want).await;
}

/// Waits for one of `standbys` other than `not` to say it took the mapping over; its index.
async fn took_over(standbys: &[crate::harness::Standby], not: Option<usize>) -> usize {
    let started = Instant::now();
    loop {
        for (i, s) in standbys.iter().enumerate() {
            if Some(i) != not && s.log().contains("took the mapping over") {
                return i;
            }
        }
        assert!(
            started.elapsed() < TAKEOVER,
            "no standby took the mapping over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
