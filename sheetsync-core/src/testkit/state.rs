//! The state-store conformance check: a store keeps what the engine needs for crash safety and
//! delete safety exactly like the reference [`MemoryStateStore`].

use chrono::{TimeZone, Utc};

use crate::model::{Row, RowKey, Side, Value};
use crate::state::{
    DeleteDecision, MappingIdentity, MemoryStateStore, PendingDelete, RecentDeletes, RowBase,
    SideBefore, StateDelta, StateSnapshot, StateStore, WriteIntent,
};

fn key(i: i64) -> RowKey {
    RowKey::from_values(&[Value::Int(i)])
}

/// A row whose values only an exact encoding keeps: a float NaN, a long decimal, an empty text.
fn odd_row(i: i64) -> Row {
    Row::new(vec![
        Value::Int(i),
        Value::Float(f64::NAN),
        Value::Decimal(
            "-12345678901234567890.000000000000000000001"
                .parse()
                .expect("decimal"),
        ),
        Value::Text(String::new()),
        Value::Null,
    ])
}

fn intent(i: i64, target: Option<Row>) -> WriteIntent {
    WriteIntent {
        key: key(i),
        base: target.as_ref().map(Row::hash),
        target,
        sides: vec![
            SideBefore {
                side: Side::Sheet,
                row: None,
                at: 7,
            },
            SideBefore {
                side: Side::Db,
                row: Some(odd_row(i)),
                at: u64::MAX,
            },
        ],
    }
}

fn pending(i: i64, decision: Option<DeleteDecision>) -> PendingDelete {
    PendingDelete {
        key: key(i),
        deleted_on: Side::Sheet,
        row: odd_row(i),
        queued_at: Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .expect("time"),
        reason: "12 deletes of 16 rows (75%) exceed the limit of 50%".into(),
        decision,
    }
}

/// Intents in key order (stores need not keep their order).
fn normalised(mut s: StateSnapshot) -> StateSnapshot {
    s.intents.sort_by(|a, b| a.key.cmp(&b.key));
    s
}

async fn same(store: &dyn StateStore, oracle: &MemoryStateStore, mapping: &str, step: &str) {
    let got = normalised(store.load(mapping).await.expect("load"));
    let want = normalised(oracle.load(mapping).await.expect("load"));
    assert_eq!(got.intents.len(), want.intents.len(), "{step}: intents");
    for (g, w) in got.intents.iter().zip(&want.intents) {
        // Compared through hashes too: equality of rows folds NaN, hashes are the exact bytes.
        assert_eq!(
            g.target.as_ref().map(Row::hash),
            w.target.as_ref().map(Row::hash),
            "{step}: intent target of {}",
            g.key
        );
    }
    assert_eq!(got, want, "{step}");
}

/// Checks that `store` commits write intents, the mapping identity, pending deletes, the log of
/// recent deletes and resets atomically and returns them exactly (rows included) like
/// [`MemoryStateStore`]. Panics with the first difference. Uses mappings named
/// `conformance-state` and `conformance-other`.
pub async fn run_state_store_conformance(store: &dyn StateStore) {
    let oracle = MemoryStateStore::new();
    let (m, other) = ("conformance-state", "conformance-other");
    let identity = MappingIdentity {
        sheet: "sheet:1AbC#0".into(),
        db: "postgres://db:5432/shop/public.items".into(),
    };
    let mut d1 = StateDelta {
        identity: Some(identity.clone()),
        intents: (1..=1_500)
            .map(|i| intent(i, (i % 3 != 0).then(|| odd_row(i))))
            .collect(),
        pending_deletes: Some(vec![
            pending(1, None),
            pending(2, Some(DeleteDecision::Reject)),
        ]),
        recent_deletes: Some(vec![RecentDeletes {
            side: Side::Db,
            at_ms: 1_700_000_000_123,
            count: 12,
        }]),
        clock: 10,
        ..StateDelta::default()
    };
    for i in 1..=3 {
        d1.upsert.push((key(i), RowBase::live(odd_row(i), 9)));
    }
    store.commit(m, &d1).await.expect("commit d1");
    oracle.commit(m, &d1).await.expect("oracle");
    same(store, &oracle, m, "intents, identity, pending deletes").await;

    // Intents end (their bases are committed with them) and new ones replace old ones.
    let d2 = StateDelta {
        upsert: vec![(key(4), RowBase::tombstone(11))],
        intents_done: (1..=1_200).map(key).collect(),
        intents: vec![intent(1_300, None), intent(2_000, Some(odd_row(2_000)))],
        pending_deletes: Some(vec![pending(2, Some(DeleteDecision::Approve))]),
        clock: 11,
        ..StateDelta::default()
    };
    store.commit(m, &d2).await.expect("commit d2");
    oracle.commit(m, &d2).await.expect("oracle");
    same(store, &oracle, m, "intents replaced and ended").await;
    let got = store.load(m).await.expect("load");
    assert_eq!(got.intents.len(), 1_500 - 1_200 + 1, "intents after d2");
    assert_eq!(got.identity.as_ref(), Some(&identity), "identity kept");

    // Mappings are independent.
    let d3 = StateDelta {
        intents: vec![intent(1, None)],
        clock: 1,
        ..StateDelta::default()
    };
    store.commit(other, &d3).await.expect("commit other");
    oracle.commit(other, &d3).await.expect("oracle");
    same(store, &oracle, other, "another mapping").await;

    // Every intent ends at once (the other mapping's stay).
    let d2b = StateDelta {
        intents_done: store
            .load(m)
            .await
            .expect("load")
            .intents
            .iter()
            .map(|i| i.key.clone())
            .collect(),
        intents_cleared: true,
        clock: 12,
        ..StateDelta::default()
    };
    store.commit(m, &d2b).await.expect("commit d2b");
    oracle.commit(m, &d2b).await.expect("oracle");
    same(store, &oracle, m, "intents cleared").await;
    assert!(store.load(m).await.expect("load").intents.is_empty());
    same(store, &oracle, other, "the other mapping keeps its intents").await;

    // A reset forgets everything of the mapping but its clock, and records the new identity.
    let moved = MappingIdentity {
        sheet: "sheet:9XyZ#0".into(),
        ..identity
    };
    let d4 = StateDelta {
        reset: true,
        identity: Some(moved.clone()),
        clock: 5,
        ..StateDelta::default()
    };
    store.commit(m, &d4).await.expect("commit reset");
    oracle.commit(m, &d4).await.expect("oracle");
    same(store, &oracle, m, "reset").await;
    let got = store.load(m).await.expect("load");
    assert!(got.bases.is_empty() && got.intents.is_empty() && got.pending_deletes.is_empty());
    assert_eq!(got.identity, Some(moved));
    assert_eq!(got.clock, 12, "the clock survives a reset");
    same(store, &oracle, other, "the other mapping survives a reset").await;
}
