//! What the daemon tells the people who run it: its log, read as a file (not a terminal) the way
//! systemd and containers keep it, has no colour codes and says when the initial sync is done;
//! in JSON mode every line it writes, on stderr and on stdout, is a JSON object.

use crate::harness::{row, rows_map, Backend, World};

fn seed() -> Vec<(i64, Vec<Option<String>>)> {
    vec![(
        1,
        row(["1", "Widget", "007", "12.50", "2024-01-31", "true"]),
    )]
}

pub async fn a_log_file_is_plain_text_and_reports_the_initial_sync(backend: Backend) {
    let mut w = World::new(backend, "plainlog").await;
    let m = w.add_mapping("items", &seed(), "").await;
    w.start().await;
    w.converge(m, &rows_map(&seed())).await;
    let log = w.take_daemon().expect("the daemon").log();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("items: initial sync done")),
        "no line about the initial sync:\n{log}"
    );
}

pub async fn json_mode_writes_only_json(backend: Backend) {
    let mut w = World::new(backend, "jsonlog").await;
    w.log_format = Some("json");
    let m = w.add_mapping("items", &seed(), "").await;
    w.start().await;
    w.converge(m, &rows_map(&seed())).await;
    let daemon = w.take_daemon().expect("the daemon");
    let (log, stdout) = (daemon.log(), daemon.stdout());
    assert!(!stdout.is_empty() && !log.is_empty());
    for line in log.lines().chain(stdout.iter().map(String::as_str)) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
}

/// A held row is one WARN line with its reason (not one per cycle), a delete one INFO line, and
/// both name the mapping and the row.
pub async fn held_rows_and_deletes_are_logged_once(backend: Backend) {
    let mut w = World::new(backend, "logged").await;
    let mut seed = seed();
    seed.push((2, row(["2", "Gadget", "", "", "", "false"])));
    let m = w.add_mapping("items", &seed, "").await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    w.converge(m, &rows_map(&seed)).await;
    w.type_cell(m, 2, "price", serde_json::json!("abc"));
    w.db.exec(&format!("DELETE FROM {t} WHERE id = 1")).await;
    crate::harness::wait_until("the delete reaches the Sheet", || async {
        match w.sheet_rows(m)?.contains_key(&1) {
            false => Ok(()),
            true => Err("row 1 is still in the Sheet".into()),
        }
    })
    .await;
    // Several more cycles (full reads every second) while row 2 stays held.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let log = w.take_daemon().expect("the daemon").log();
    let held: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("row held"))
        .collect();
    assert_eq!(held.len(), 1, "one WARN per held row:\n{log}");
    assert!(
        held[0].contains("mapping=items") && held[0].contains("abc"),
        "{}",
        held[0]
    );
    let deleted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("row deleted in the sheet"))
        .collect();
    assert_eq!(deleted.len(), 1, "one INFO per deleted row:\n{log}");
    assert!(
        deleted[0].contains("mapping=items") && deleted[0].contains("key="),
        "{}",
        deleted[0]
    );
}

/// The webhook's counters are metrics: a person's edit is an accepted delivery, a forged one a
/// refusal with its reason; the allocator's figures are there too.
pub async fn webhook_deliveries_are_counted(backend: Backend) {
    let mut w = World::new(backend, "hooks").await;
    let m = w.add_mapping("items", &seed(), "").await;
    w.start().await;
    w.converge(m, &rows_map(&seed())).await;
    w.type_cell(m, 1, "name", serde_json::json!("Renamed"));
    let accepted = "result=\"accepted\"";
    crate::harness::wait_until("the delivery is counted", || async {
        let n = w
            .metric("sheetsync_webhook_deliveries_total", accepted)
            .await?;
        if n >= 1.0 {
            Ok(())
        } else {
            Err(format!("{n} accepted"))
        }
    })
    .await;
    let port = w.port;
    let forged = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let body = r#"{"version":1}"#;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             X-Sheetsync-Timestamp: {}\r\nX-Sheetsync-Signature: v1={}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            chrono::Utc::now().timestamp(),
            "00".repeat(32),
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(forged.starts_with("HTTP/1.1 401"), "{forged}");
    let refused = w
        .metric(
            "sheetsync_webhook_rejected_total",
            "reason=\"bad_signature\"",
        )
        .await
        .unwrap();
    assert_eq!(refused, 1.0);
    let build = w.metric("sheetsync_build_info", "version=").await.unwrap();
    assert_eq!(build, 1.0);
    // The allocator's figures (the default build allocates with jemalloc).
    let allocated = w
        .metric("sheetsync_heap_allocated_bytes", "")
        .await
        .unwrap();
    let resident = w.metric("sheetsync_heap_resident_bytes", "").await.unwrap();
    assert!(
        allocated > 1e6 && resident >= allocated,
        "{allocated} {resident}"
    );
    // The delivery's own cycle may still be running: the histogram counts it once it ends.
    crate::harness::wait_until("a cycle is in the histogram", || async {
        let cycles = w
            .metric(
                "sheetsync_cycle_duration_seconds_count",
                "mapping=\"items\"",
            )
            .await?;
        match cycles >= 1.0 {
            true => Ok(()),
            false => Err(format!("{cycles} cycles in the histogram")),
        }
    })
    .await;
}

/// A later full read that takes long (here: every Sheets request answered after 700 ms) logs
/// how far it got, with the mapping, and that it ended; short reads log nothing of the kind.
pub async fn long_full_reads_log_their_progress(backend: Backend) {
    use sheetsync::emulator::Latency;
    let mut w = World::new(backend, "readprogress").await;
    w.log_extra = "progress_interval_ms = 400\n".into();
    let rows: Vec<_> = (1..=300)
        .map(|i| {
            let (id, name) = (i.to_string(), format!("item {i}"));
            (i, row([&id, &name, "", "2.50", "2024-05-01", "true"]))
        })
        .collect();
    let m = w.add_mapping("items", &rows, "").await;
    w.start().await;
    w.converge(m, &rows_map(&rows)).await;
    let daemon = w.running();
    daemon.wait_for_log("items: initial sync done").await;
    // Full reads every second, each quick: no progress lines.
    w.cycles_more(m, 5).await;
    assert!(
        !daemon.log().contains("items: full read"),
        "a quick read logged progress:\n{}",
        daemon.log()
    );
    w.emu.set_latency(Latency {
        fixed_ms: 700,
        jitter_ms: 0,
    });
    daemon
        .wait_for_log("items: full read done: 300 Sheet rows")
        .await;
    w.emu.set_latency(Latency::default());
    let log = daemon.log();
    let progress: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("items: full read: 300 Sheet rows"))
        .collect();
    assert!(!progress.is_empty(), "no progress line:\n{log}");
    eprintln!("progress lines: {progress:#?}");
    for line in progress.iter().chain(
        log.lines()
            .filter(|l| l.contains("items: full read done"))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            line.contains(" INFO ") && line.contains("mapping=items"),
            "{line}"
        );
    }
}
