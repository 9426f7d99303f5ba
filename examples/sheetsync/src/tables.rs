//! What the CLI prints for people: the admin API's JSON as short text, one line per thing
//! (`--json` prints the JSON itself, for scripts).

use std::fmt::Write as _;

use serde::Deserialize;
use sheetsync::{ConflictRecord, HeldRow, Result};

/// One mapping of `GET /api/conflicts`.
#[derive(Deserialize)]
struct MappingConflicts {
    mapping: String,
    conflicts: Vec<ConflictRecord>,
    held: Vec<HeldRow>,
}

/// `sheetsync conflicts list` for people.
pub fn conflicts(json: &str) -> Result<String> {
    let mappings: Vec<MappingConflicts> = parse(json)?;
    let mut out = String::new();
    for m in mappings {
        let _ = writeln!(
            out,
            "{}: {} kept for a person, {} held",
            m.mapping,
            plural(m.conflicts.len(), "conflict"),
            plural(m.held.len(), "row")
        );
        for c in &m.conflicts {
            conflict(&mut out, &m.mapping, c);
        }
        for h in &m.held {
            let key = h.key.as_ref().map_or("(no key)".into(), |k| k.to_string());
            let at = match (&h.side, &h.locator) {
                (Some(side), Some(at)) => format!(" ({side} {at})"),
                (Some(side), None) => format!(" ({side})"),
                _ => String::new(),
            };
            let _ = writeln!(out, "  held {key}{at}: {}", h.reason);
        }
    }
    Ok(out)
}

fn conflict(out: &mut String, mapping: &str, c: &ConflictRecord) {
    let what = match c.deleted_on {
        Some(side) => format!("deleted in the {side}, updated in the {}", side.other()),
        None => c
            .fields
            .iter()
            .map(|f| {
                let base = f
                    .base
                    .as_ref()
                    .map_or(String::new(), |b| format!(", was {}", shown(b)));
                format!(
                    "{}: sheet {}, db {}{base}",
                    f.column,
                    shown(&f.sheet),
                    shown(&f.db)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    };
    let _ = writeln!(out, "  conflict {}: {what}", c.key);
    if let Some(why) = &c.reason {
        let _ = writeln!(out, "    why: {why}");
    }
    let _ = writeln!(
        out,
        "    resolve: sheetsync conflicts resolve --mapping {mapping} --key {} --side sheet|db",
        c.key
    );
}

/// A value as people read it in the CLI's text: text quoted, an empty cell `empty`.
pub(crate) fn shown(v: &sheetsync::Value) -> String {
    match v {
        sheetsync::Value::Null => "empty".into(),
        sheetsync::Value::Text(t) => format!("{t:?}"),
        v => v.to_string(),
    }
}

/// One mapping of `GET /api/status`.
#[derive(Deserialize)]
struct MappingStatus {
    mapping: String,
    up: bool,
    lag_ms: Option<i64>,
    held: Vec<HeldRow>,
    conflicts: usize,
    pending_deletes: usize,
    #[serde(default)]
    epoch: Option<u64>,
    #[serde(default)]
    replica: Option<String>,
    /// `running`, `waiting` or `starting` (absent from older daemons: running).
    #[serde(default)]
    placement: Option<String>,
    #[serde(default)]
    share_full: bool,
}

/// This replica's part in sharing the mappings.
#[derive(Deserialize)]
struct ReplicaShare {
    replica: String,
    replicas: usize,
    share: usize,
    running: Vec<String>,
    sharing: bool,
}

#[derive(Deserialize)]
struct Status {
    mappings: Vec<MappingStatus>,
    #[serde(default)]
    replicas: Option<ReplicaShare>,
}

/// Where a mapping runs, for people.
fn placement_text(m: &MappingStatus) -> String {
    let by = match (&m.replica, m.epoch) {
        (Some(r), Some(e)) => format!("{r} (lease epoch {e})"),
        (Some(r), None) => r.clone(),
        _ => "nobody yet".into(),
    };
    match m.placement.as_deref() {
        Some("waiting") if m.share_full => {
            format!(", WAITING: this replica runs its share; last run by {by}")
        }
        Some("waiting") => format!(", WAITING: run by {by}"),
        Some("starting") => ", starting".into(),
        _ if m.epoch.is_some() => format!(", run here by {by}"),
        _ => String::new(),
    }
}

/// `sheetsync status` for people.
pub fn status(json: &str) -> Result<String> {
    let status: Status = parse(json)?;
    let mut out = String::new();
    for m in status.mappings {
        let lag = m.lag_ms.map_or("no cycle yet".into(), |ms| {
            format!("lag {:.1} s", ms as f64 / 1000.0)
        });
        let owner = placement_text(&m);
        let _ = writeln!(
            out,
            "{}: {}, {lag}, {} held, {}, {} waiting for approval{owner}",
            m.mapping,
            if m.up { "up" } else { "DOWN" },
            m.held.len(),
            plural(m.conflicts, "conflict"),
            plural(m.pending_deletes, "delete"),
        );
        for h in &m.held {
            let key = h.key.as_ref().map_or("(no key)".into(), |k| k.to_string());
            let _ = writeln!(out, "  held {key}: {}", h.reason);
        }
    }
    if let Some(r) = status.replicas {
        let how = match r.sharing {
            true => format!("its share is {}", r.share),
            false => "sharing is off (hot standby)".into(),
        };
        let _ = writeln!(
            out,
            "replica {}: {} alive, {how}; runs {}",
            r.replica,
            plural(r.replicas, "replica"),
            match r.running.is_empty() {
                true => "nothing".into(),
                false => r.running.join(", "),
            }
        );
    }
    Ok(out)
}

/// One mapping of `GET /api/deletes`.
#[derive(Deserialize)]
struct MappingDeletes {
    mapping: String,
    pending_deletes: Vec<PendingLine>,
}

#[derive(Deserialize)]
struct PendingLine {
    key: Vec<String>,
    deleted_on: String,
    row: serde_json::Map<String, serde_json::Value>,
    queued_at: String,
    reason: String,
    decision: Option<serde_json::Value>,
}

/// `sheetsync deletes list` for people.
pub fn deletes(json: &str) -> Result<String> {
    let mappings: Vec<MappingDeletes> = parse(json)?;
    let mut out = String::new();
    for m in mappings {
        let n = m.pending_deletes.len();
        let _ = writeln!(
            out,
            "{}: {} waiting for approval",
            m.mapping,
            plural(n, "delete")
        );
        for p in &m.pending_deletes {
            let row: Vec<String> = p
                .row
                .iter()
                .map(|(c, v)| match v.as_str() {
                    Some(t) => format!("{c}={t:?}"),
                    None => format!("{c}=empty"),
                })
                .collect();
            let decided = match &p.decision {
                Some(d) => format!(" [decided: {}]", d.as_str().unwrap_or("yes")),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {} deleted in the {} at {}{decided}: {}",
                p.key.join("/"),
                p.deleted_on,
                p.queued_at,
                row.join(", ")
            );
            let _ = writeln!(out, "    why it waits: {}", p.reason);
        }
        if n > 0 {
            let _ = writeln!(
                out,
                "  decide: sheetsync deletes approve|reject --mapping {} --all (or --key K, --older-than 1h)",
                m.mapping
            );
        }
    }
    Ok(out)
}

fn plural(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| {
        sheetsync::Error::new(
            sheetsync::ErrorKind::Unexpected,
            format!("the daemon's answer is not what this sheetsync reads ({e}): {json}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sheetsync::{FieldDiff, RowKey, Side, Value};

    fn answer() -> String {
        let key = RowKey::from_values(&[Value::Int(2)]);
        let c = ConflictRecord {
            key: key.clone(),
            fields: vec![FieldDiff {
                column: "name".into(),
                base: Some("Gadget".into()),
                sheet: "Gadget (sheet)".into(),
                db: "Gadget (db)".into(),
            }],
            deleted_on: None,
            sheet: None,
            db: None,
            at: 17,
            reason: Some("rule 'sheet.qty > db.qty ? \"sheet\" : \"db\"': no such key: qty".into()),
        };
        let gone = ConflictRecord {
            key: RowKey::from_values(&[Value::Int(3)]),
            fields: Vec::new(),
            deleted_on: Some(Side::Sheet),
            reason: None,
            ..c.clone()
        };
        let held = HeldRow {
            key: Some(key),
            side: Some(Side::Sheet),
            locator: Some("'Sheet1'!A3:F3".into()),
            reason: "column \"price\" (D3): \"abc\" is not a valid decimal".into(),
        };
        serde_json::json!([{"mapping": "items", "conflicts": [c, gone], "held": [held]}])
            .to_string()
    }

    #[test]
    fn conflicts_list_for_people() {
        let text = conflicts(&answer()).unwrap();
        let want = "\
items: 2 conflicts kept for a person, 1 row held
  conflict 2: name: sheet \"Gadget (sheet)\", db \"Gadget (db)\", was \"Gadget\"
    why: rule 'sheet.qty > db.qty ? \"sheet\" : \"db\"': no such key: qty
    resolve: sheetsync conflicts resolve --mapping items --key 2 --side sheet|db
  conflict 3: deleted in the sheet, updated in the db
    resolve: sheetsync conflicts resolve --mapping items --key 3 --side sheet|db
  held 2 (sheet 'Sheet1'!A3:F3): column \"price\" (D3): \"abc\" is not a valid decimal
";
        assert_eq!(text, want);
    }

    #[test]
    fn status_for_people() {
        let json = serde_json::json!({"mappings": [
            {"mapping": "items", "up": true, "panics": 0, "lag_ms": 1200, "held": [],
             "conflicts": 1, "pending_deletes": 0, "epoch": 3, "replica": "host-a:42"},
            {"mapping": "orders", "up": false, "panics": 1, "lag_ms": null, "held": [],
             "conflicts": 0, "pending_deletes": 2},
            {"mapping": "stock", "up": true, "panics": 0, "lag_ms": null, "held": [],
             "conflicts": 0, "pending_deletes": 0, "placement": "waiting", "epoch": 7,
             "replica": "host-b:7", "share_full": false},
            {"mapping": "prices", "up": true, "panics": 0, "lag_ms": null, "held": [],
             "conflicts": 0, "pending_deletes": 0, "placement": "waiting", "epoch": null,
             "replica": null, "share_full": true},
        ], "replicas": {"replica": "host-a:42", "replicas": 2, "share": 2,
             "running": ["items", "orders"], "sharing": true}});
        let want = "\
items: up, lag 1.2 s, 0 held, 1 conflict, 0 deletes waiting for approval, run here by host-a:42 (lease epoch 3)
orders: DOWN, no cycle yet, 0 held, 0 conflicts, 2 deletes waiting for approval
stock: up, no cycle yet, 0 held, 0 conflicts, 0 deletes waiting for approval, WAITING: run by host-b:7 (lease epoch 7)
prices: up, no cycle yet, 0 held, 0 conflicts, 0 deletes waiting for approval, WAITING: this replica runs its share; last run by nobody yet
replica host-a:42: 2 replicas alive, its share is 2; runs items, orders
";
        assert_eq!(status(&json.to_string()).unwrap(), want);
    }

    #[test]
    fn deletes_list_for_people() {
        let json = serde_json::json!([{"mapping": "items", "pending_deletes": [{
            "key": ["3"], "deleted_on": "sheet",
            "row": {"id": "3", "name": "Gizmo", "note": null},
            "queued_at": "2026-12-01T17:00:00Z",
            "reason": "4 of 10 rows deleted in the sheet within 60 s (limit 20%)",
            "decision": null,
        }]}]);
        let want = "\
items: 1 delete waiting for approval
  3 deleted in the sheet at 2026-12-01T17:00:00Z: id=\"3\", name=\"Gizmo\", note=empty
    why it waits: 4 of 10 rows deleted in the sheet within 60 s (limit 20%)
  decide: sheetsync deletes approve|reject --mapping items --all (or --key K, --older-than 1h)
";
        assert_eq!(deletes(&json.to_string()).unwrap(), want);
    }

    #[test]
    fn an_answer_of_another_shape_is_a_clear_error() {
        let e = conflicts("{\"error\": 1}").unwrap_err();
        assert!(
            e.to_string().contains("not what this sheetsync reads"),
            "{e}"
        );
    }
}
