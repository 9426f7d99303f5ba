//! Property-based race suite: the adapter reads the tab in full, then people make random
//! structural edits (sort, delete, insert, drag rows, paste a block) *between that read and the
//! adapter's write*, and answers get lost after Google applied them. The write must never land
//! on the wrong row: whatever happens, no row's values appear under another key, no row is
//! deleted that nobody deleted, no row is duplicated, and every write is either applied or
//! reported stale (and then applied by the retry once people stop). Before people edit, an
//! earlier write may delete and append rows, so that the write racing them places its rows
//! from positions the adapter kept across its own writes rather than from the read.
//!
//! `PROPTEST_CASES` sets the number of cases (256 by default).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use proptest::prelude::*;
use serde_json::{json, Value as Json};
use sheetsync_core::*;
use sheetsync_emulator::{Config, EmulatorHandle, FaultRule};
use sheetsync_gsheets::{SheetOptions, SheetTable, SheetsClient};

mod common;
use common::{fast_client, id_name_note as schema};

/// A person's structural edit, with positions drawn as fractions of the data rows.
#[derive(Debug, Clone)]
enum Person {
    Sort {
        column: u32,
        ascending: bool,
    },
    Delete {
        at: f64,
        count: u32,
    },
    Insert {
        at: f64,
        count: u32,
    },
    Drag {
        from: f64,
        count: u32,
        to: f64,
    },
    /// A person types a new row (a key of their own) at the bottom.
    Type {
        id: i64,
    },
}

/// One of the adapter's writes.
#[derive(Debug, Clone)]
enum Write {
    Update(i64),
    Delete(i64),
    Insert(i64),
}

fn person() -> impl Strategy<Value = Person> {
    prop_oneof![
        (1u32..=3, any::<bool>())
            .prop_map(|(column, ascending)| Person::Sort { column, ascending }),
        (0.0..1.0f64, 1u32..=3).prop_map(|(at, count)| Person::Delete { at, count }),
        (0.0..1.0f64, 1u32..=2).prop_map(|(at, count)| Person::Insert { at, count }),
        (0.0..1.0f64, 1u32..=3, 0.0..1.0f64).prop_map(|(from, count, to)| Person::Drag {
            from,
            count,
            to
        }),
        (1000i64..1100).prop_map(|id| Person::Type { id }),
    ]
}

fn write(n: i64) -> impl Strategy<Value = Write> {
    prop_oneof![
        (1..=n).prop_map(Write::Update),
        (1..=n).prop_map(Write::Delete),
        (500i64..600).prop_map(Write::Insert),
    ]
}

/// The adapter's earlier write: a delete of a seeded row or an append of a new one.
fn earlier_write(n: i64) -> impl Strategy<Value = Write> {
    prop_oneof![
        (1..=n).prop_map(Write::Delete),
        (600i64..700).prop_map(Write::Insert),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lost {
    No,
    /// The write batch is applied and its answer dropped.
    AfterApply,
    /// The connection drops before Google applies anything.
    Before,
}

fn lost() -> impl Strategy<Value = Lost> {
    prop_oneof![
        6 => Just(Lost::No),
        2 => Just(Lost::AfterApply),
        1 => Just(Lost::Before),
    ]
}

fn original(id: i64) -> (String, String) {
    (format!("n{id}"), format!("x{id}"))
}

fn written(id: i64) -> (String, String) {
    (format!("w{id}"), format!("x{id}"))
}

/// The data rows by id, with the number of rows each id appears in.
fn sheet_rows(emu: &EmulatorHandle, id: &str) -> BTreeMap<i64, Vec<(String, String)>> {
    let v = emu.read_values(id, "Sheet1").unwrap();
    let rows: Vec<Vec<Json>> = serde_json::from_value(v).unwrap_or_default();
    let mut out: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
    for r in rows.iter().skip(1) {
        let cell = |i: usize| r.get(i).cloned().unwrap_or(json!(""));
        let text = |c: Json| c.as_str().map(str::to_owned).unwrap_or(c.to_string());
        let key = match cell(0) {
            Json::Number(n) => n.as_f64().unwrap() as i64,
            Json::String(s) if s.is_empty() => {
                assert!(
                    r.iter().all(|c| c.as_str() == Some("") || c.is_null()),
                    "a row without its key: {r:?}"
                );
                continue;
            }
            other => panic!("bad key cell {other}"),
        };
        out.entry(key)
            .or_default()
            .push((text(cell(1)), text(cell(2))));
    }
    out
}

fn ops(writes: &[Write]) -> Vec<WriteOp> {
    writes
        .iter()
        .map(|w| match w {
            Write::Update(i) => WriteOp::Upsert {
                row: Row::new(vec![
                    Value::Int(*i),
                    written(*i).0.into(),
                    written(*i).1.into(),
                ]),
                expected: Expected::Row(Row::new(vec![
                    Value::Int(*i),
                    original(*i).0.into(),
                    original(*i).1.into(),
                ])),
            },
            Write::Delete(i) => WriteOp::Delete {
                key: RowKey::from_values(&[Value::Int(*i)]),
                expected: Expected::Any,
            },
            Write::Insert(i) => WriteOp::Upsert {
                row: Row::new(vec![
                    Value::Int(*i),
                    written(*i).0.into(),
                    written(*i).1.into(),
                ]),
                expected: Expected::Absent,
            },
        })
        .collect()
}

/// Applies a person's edit to the emulator; returns the ids it deleted.
fn apply_person(emu: &EmulatorHandle, id: &str, p: &Person) -> Vec<i64> {
    let rows = sheet_order(emu, id);
    let n = rows.len() as u32;
    let pos = |f: f64| 2 + ((f * n as f64) as u32).min(n.saturating_sub(1));
    match p {
        Person::Sort { column, ascending } => {
            let range = format!("Sheet1!A2:C{}", n + 1);
            emu.sort_range(id, &range, *column, *ascending).unwrap();
            Vec::new()
        }
        Person::Delete { at, count } if n > 0 => {
            let start = pos(*at);
            let count = (*count).min(n + 2 - start);
            emu.delete_rows(id, "Sheet1", start, count).unwrap();
            rows.iter()
                .skip((start - 2) as usize)
                .take(count as usize)
                .filter_map(|r| *r)
                .collect()
        }
        Person::Insert { at, count } => {
            emu.insert_rows(id, "Sheet1", pos(*at).max(2), *count)
                .unwrap();
            Vec::new()
        }
        Person::Drag { from, count, to } if n > 1 => {
            let start = pos(*from);
            let count = (*count).min(n + 2 - start);
            let before = pos(*to);
            if before < start || before > start + count {
                emu.move_rows(id, "Sheet1", start, count, before).unwrap();
            }
            Vec::new()
        }
        Person::Type { id: key } => {
            let at = rows.len() as u32 + 2;
            emu.set_cells(
                id,
                &format!("Sheet1!A{at}"),
                vec![vec![json!(key), json!(format!("p{key}")), json!("typed")]],
            )
            .unwrap();
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// The key of each data row, in order (`None` for blank rows), up to the last non-blank.
fn sheet_order(emu: &EmulatorHandle, id: &str) -> Vec<Option<i64>> {
    let v = emu.read_values(id, "Sheet1").unwrap();
    let rows: Vec<Vec<Json>> = serde_json::from_value(v).unwrap_or_default();
    rows.iter()
        .skip(1)
        .map(|r| r.first().and_then(|c| c.as_f64()).map(|f| f as i64))
        .collect()
}

async fn table(emu: &EmulatorHandle, id: &str) -> SheetTable {
    let client = Arc::new(
        SheetsClient::new(fast_client(&emu.base_url()))
            .await
            .unwrap(),
    );
    let mut opts = SheetOptions::new(id, 0);
    opts.use_drive_version = false;
    SheetTable::new(client, opts, schema())
}

/// The adapter's earlier write, applied before people edit: deletes and appends only, on rows
/// the racing write leaves alone. Returns the ids it deleted.
async fn write_before(sheet: &SheetTable, earlier: &[Write]) -> Vec<i64> {
    let out = sheet
        .apply(ops(earlier), &WriteContext { origin: "t".into() })
        .await
        .unwrap();
    assert!(out.iter().all(|o| *o == WriteOutcome::Applied), "{out:?}");
    earlier
        .iter()
        .filter_map(|w| match w {
            Write::Delete(i) => Some(*i),
            _ => None,
        })
        .collect()
}

async fn run_case(
    n: i64,
    earlier: Vec<Write>,
    writes: Vec<Write>,
    people: Vec<Person>,
    lost: Lost,
) {
    let emu = EmulatorHandle::start(Config::default()).await.unwrap();
    let id = emu.create_spreadsheet("race").unwrap();
    let mut values = vec![vec![json!("id"), json!("name"), json!("note")]];
    values.extend((1..=n).map(|i| vec![json!(i), json!(original(i).0), json!(original(i).1)]));
    emu.set_cells(&id, "Sheet1!A1", values).unwrap();
    let sheet = table(&emu, &id).await;
    // The same row is written once per batch, as the engine does.
    let mut seen = std::collections::HashSet::new();
    let writes: Vec<Write> = writes
        .into_iter()
        .filter(|w| {
            seen.insert(match w {
                Write::Update(i) | Write::Delete(i) | Write::Insert(i) => *i,
            })
        })
        .collect();

    let _ = sheet.scan().next().await.unwrap().unwrap(); // positions from this read ...
    let earlier: Vec<Write> = earlier
        .into_iter()
        .filter(|w| {
            seen.insert(match w {
                Write::Update(i) | Write::Delete(i) | Write::Insert(i) => *i,
            })
        })
        .collect();
    // ... and kept up to date across this write of the adapter's own.
    let mut deleted_by_people = write_before(&sheet, &earlier).await;
    let appended: Vec<i64> = earlier
        .iter()
        .filter_map(|w| match w {
            Write::Insert(i) => Some(*i),
            _ => None,
        })
        .collect();
    let mut typed = Vec::new();
    for p in &people {
        if let Person::Type { id } = p {
            if typed.contains(id) {
                continue; // a person's own duplicate is another test's business
            }
            typed.push(*id);
        }
        deleted_by_people.extend(apply_person(&emu, &id, p));
    }
    match lost {
        Lost::No => {}
        Lost::AfterApply => {
            emu.inject_fault(FaultRule::drop_after_next(1).for_method("spreadsheets.batchUpdate"))
        }
        Lost::Before => {
            emu.inject_fault(FaultRule::drop_next(1).for_method("spreadsheets.batchUpdate"))
        }
    }
    let outcomes = match sheet
        .apply(ops(&writes), &WriteContext { origin: "t".into() })
        .await
    {
        Ok(o) => o,
        Err(e) => {
            assert_eq!(lost, Lost::Before, "only a batch never applied fails: {e}");
            vec![WriteOutcome::Stale; writes.len()]
        }
    };
    emu.clear_faults();
    check(&emu, &id, n, &writes, &outcomes, &deleted_by_people, &typed);
    check_appended(&emu, &id, &appended, &deleted_by_people);

    // People stop; the engine re-reads and retries what was stale: everything lands.
    let _ = sheet.scan().next().await.unwrap().unwrap();
    let retry: Vec<Write> = writes
        .iter()
        .zip(&outcomes)
        .filter(|(w, o)| {
            **o == WriteOutcome::Stale
                && !matches!(w, Write::Update(i) if deleted_by_people.contains(i))
        })
        .map(|(w, _)| w.clone())
        .collect();
    let again = sheet
        .apply(ops(&retry), &WriteContext { origin: "t".into() })
        .await
        .unwrap();
    for (w, o) in retry.iter().zip(&again) {
        let applied = matches!(w, Write::Delete(i) if deleted_by_people.contains(i))
            || *o == WriteOutcome::Applied;
        assert!(applied, "{w:?} still {o:?} once people stopped");
    }
    let all_applied = vec![WriteOutcome::Applied; writes.len()];
    check(
        &emu,
        &id,
        n,
        &writes,
        &all_applied,
        &deleted_by_people,
        &typed,
    );
    check_appended(&emu, &id, &appended, &deleted_by_people);
}

/// The rows the earlier write appended are there as written (unless people deleted them).
fn check_appended(emu: &EmulatorHandle, id: &str, appended: &[i64], deleted_by_people: &[i64]) {
    let rows = sheet_rows(emu, id);
    for i in appended.iter().filter(|i| !deleted_by_people.contains(i)) {
        assert_eq!(
            rows.get(i),
            Some(&vec![written(*i)]),
            "appended id {i}: {rows:?}"
        );
    }
}

/// Every row is where it should be given which writes were applied.
fn check(
    emu: &EmulatorHandle,
    id: &str,
    n: i64,
    writes: &[Write],
    outcomes: &[WriteOutcome],
    deleted_by_people: &[i64],
    typed: &[i64],
) {
    let rows = sheet_rows(emu, id);
    for (key, copies) in &rows {
        assert_eq!(
            copies.len(),
            1,
            "id {key} appears {} times: {rows:?}",
            copies.len()
        );
    }
    let applied = |i: i64| {
        writes.iter().zip(outcomes).find_map(|(w, o)| match w {
            Write::Update(k) | Write::Delete(k) | Write::Insert(k) if *k == i => {
                Some((w.clone(), *o == WriteOutcome::Applied))
            }
            _ => None,
        })
    };
    for i in 1..=n {
        let got = rows.get(&i).map(|c| c[0].clone());
        let want = if deleted_by_people.contains(&i) {
            None
        } else {
            match applied(i) {
                Some((Write::Update(_), true)) => Some(written(i)),
                Some((Write::Delete(_), true)) => None,
                _ => Some(original(i)),
            }
        };
        assert_eq!(got, want, "id {i}: {rows:?}");
    }
    for w in writes {
        if let Write::Insert(i) = w {
            let got = rows.get(i).map(|c| c[0].clone());
            let want = applied(*i).filter(|(_, a)| *a).map(|_| written(*i));
            assert_eq!(got, want, "inserted id {i}");
        }
    }
    for t in typed.iter().filter(|t| !deleted_by_people.contains(t)) {
        assert_eq!(
            rows.get(t).map(|c| c[0].clone()),
            Some((format!("p{t}"), "typed".into())),
            "a person's row is kept as typed"
        );
    }
    let known = |k: &i64| {
        *k <= n
            || (600..700).contains(k)
            || typed.contains(k)
            || writes
                .iter()
                .any(|w| matches!(w, Write::Insert(i) if i == k))
    };
    assert!(
        rows.keys().all(known),
        "no row appears from nowhere: {rows:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn writes_never_land_on_the_wrong_row(
        n in 3i64..25,
        earlier in prop::collection::vec(earlier_write(24), 0..4),
        writes in prop::collection::vec(write(24), 1..8),
        people in prop::collection::vec(person(), 0..3),
        lost in lost(),
    ) {
        let in_tab = |w: &Write| !matches!(w, Write::Update(i) | Write::Delete(i) if *i > n);
        let writes: Vec<Write> = writes.into_iter().filter(in_tab).collect();
        let earlier: Vec<Write> = earlier.into_iter().filter(in_tab).collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_case(n, earlier, writes, people, lost));
    }
}
