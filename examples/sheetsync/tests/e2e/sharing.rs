//! Three replicas with one configuration over six mappings: they divide the mappings, two
//! each, every mapping on exactly one of them; `kill -9` of one hands its two to the others
//! (three each) within the takeover bound, with nothing lost or doubled on either side; a
//! replica started again gets its share back (the others hand one over each, between cycles).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{insert_sql, row, rows_map, wait_within, Backend, Canon, World};

/// How long the mappings of a killed replica may wait for the others: its heartbeat's time to
/// live (5 s), a heartbeat and the lease retry, with room for a slow machine.
const TAKEOVER: Duration = Duration::from_secs(15);
/// How long replicas may take to settle on their shares after one joins.
const REBALANCE: Duration = Duration::from_secs(30);

/// Which mappings each replica (by port) runs, from its `/api/status`.
async fn running_on(w: &World, ports: &[u16]) -> Result<BTreeMap<u16, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    for &port in ports {
        let (code, body) = w.http_get_on(port, "/api/status").await?;
        if code != 200 {
            return Err(format!(
                "replica on {port}: /api/status answered {code}: {body}"
            ));
        }
        let status: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let mut names = Vec::new();
        for m in status["mappings"].as_array().into_iter().flatten() {
            if m["placement"] == json!("running") {
                names.push(m["mapping"].as_str().unwrap_or_default().to_string());
            }
        }
        out.insert(port, names);
    }
    Ok(out)
}

/// Waits up to `limit` until the replicas on `ports` run `each` mappings apiece, every
/// mapping on exactly one of them; how long it took.
async fn shares_settle(w: &World, ports: &[u16], each: usize, limit: Duration) -> Duration {
    let all = w.mappings.len();
    wait_within(
        &format!("{} replicas run {each} mappings each", ports.len()),
        limit,
        || async {
            let running = running_on(w, ports).await?;
            let mut seen = BTreeMap::new();
            for (port, names) in &running {
                for n in names {
                    if let Some(other) = seen.insert(n.clone(), *port) {
                        return Err(format!("{n} runs on {other} and {port}: {running:?}"));
                    }
                }
            }
            let balanced = running.values().all(|n| n.len() == each);
            match seen.len() == all && balanced {
                true => Ok(()),
                false => Err(format!("not settled: {running:?}")),
            }
        },
    )
    .await
}

/// One database insert and one typed Sheet row in every mapping; what both sides must hold.
async fn edit_all(w: &World, wants: &mut [BTreeMap<i64, Canon>], id: i64) {
    for (m, want) in wants.iter_mut().enumerate() {
        let t = w.mappings[m].table.clone();
        let from_db = row([&id.to_string(), "from the database", "", "", "", "true"]);
        w.db.exec(&insert_sql(&t, &[(id, from_db.clone())])).await;
        want.insert(id, from_db);
        let typed = row([&(id + 1).to_string(), "typed", "", "", "", "false"]);
        w.type_rows(m, &[(id + 1, typed.clone())]);
        want.insert(id + 1, typed);
    }
}

async fn converge_all(w: &World, wants: &[BTreeMap<i64, Canon>]) {
    for (m, want) in wants.iter().enumerate() {
        w.converge(m, want).await;
    }
}

pub async fn three_replicas_share_six_mappings(backend: Backend) {
    let mut w = World::new(backend, "share").await;
    // Person edits reach whichever replica runs the mapping (a webhook posts to one address).
    w.change_detection = "journal";
    let mut wants = Vec::new();
    for i in 1..=6 {
        let seed = [(1, row(["1", &format!("seed {i}"), "", "", "", "true"]))];
        w.add_mapping(&format!("m{i}"), &seed, "").await;
        wants.push(rows_map(&seed));
    }
    w.start().await;
    let b = w.spawn_replica();
    let c = w.spawn_replica();
    let ports = [w.port, b.port, c.port];
    let took = shares_settle(&w, &ports, 2, REBALANCE).await;
    eprintln!(
        "{backend:?}: three replicas settled on 2 mappings each {took:?} after the last started"
    );
    edit_all(&w, &mut wants, 10).await;
    converge_all(&w, &wants).await;

    // kill -9 of one replica: the other two take its mappings over, three each.
    let mut c = c;
    let killed = Instant::now();
    c.daemon.kill9();
    edit_all(&w, &mut wants, 20).await;
    shares_settle(&w, &ports[..2], 3, TAKEOVER).await;
    eprintln!(
        "{backend:?}: the killed replica's mappings ran again {:?} after the kill",
        killed.elapsed()
    );
    converge_all(&w, &wants).await;

    // A replica started again gets its share back.
    let again = w.spawn_replica();
    let ports = [w.port, b.port, again.port];
    let joined = Instant::now();
    edit_all(&w, &mut wants, 30).await;
    shares_settle(&w, &ports, 2, REBALANCE).await;
    eprintln!(
        "{backend:?}: rebalanced {:?} after a replica joined",
        joined.elapsed()
    );
    edit_all(&w, &mut wants, 40).await;
    converge_all(&w, &wants).await;
    // Settled replicas stay settled (no flapping).
    tokio::time::sleep(Duration::from_secs(3)).await;
    shares_settle(&w, &ports, 2, Duration::from_millis(1)).await;
    drop((b, again));
}
