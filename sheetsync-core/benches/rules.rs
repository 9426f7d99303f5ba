//! The cost of conflict rules (feature `rules`).
//!
//! `cargo bench -p sheetsync-core --features rules --bench rules`
//!
//! * `rule/<example>`: one evaluation of each example rule of the README on a conflict in a
//!   10-column row: binding the columns it reads, running it, reading its answer.
//! * `merge_10000_conflicts`: the pure merge of 10,000 rows that each conflict in `qty` and
//!   `status`, through the chain [larger qty wins, the Sheet's cancellation wins or next,
//!   last-write-wins]: what a cycle with 10,000 conflicts spends on deciding them.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sheetsync_core::*;

fn schema() -> TableSchema {
    let mut cols = vec![
        Column::new("id", ColumnType::Int).nullable(false),
        Column::new("qty", ColumnType::Int),
        Column::new("status", ColumnType::Text),
        Column::new("note", ColumnType::Text),
        Column::new("paid", ColumnType::Bool),
    ];
    for i in 5..10 {
        cols.push(Column::new(format!("c{i}"), ColumnType::Text));
    }
    TableSchema::new("orders", cols, &["id"]).unwrap()
}

fn row(id: i64, qty: i64, status: &str, note: &str) -> Row {
    let mut v = vec![
        Value::Int(id),
        Value::Int(qty),
        Value::Text(status.into()),
        Value::Text(note.into()),
        Value::Bool(id % 2 == 0),
    ];
    for i in 5..10 {
        v.push(Value::Text(format!("text {id} {i}")));
    }
    Row::new(v)
}

fn rule(spec: RuleSpec) -> Rule {
    Rule::compile(&spec, &schema()).expect("the rule compiles")
}

fn bench_examples(c: &mut Criterion) {
    let schema = schema();
    let key = key_of(1);
    let (base, sheet, db) = (
        row(1, 1, "open", "x"),
        row(1, 5, "cancelled", ""),
        row(1, 3, "shipped", "call"),
    );
    let rc = RowConflict {
        key: &key,
        schema: &schema,
        base: Some(&base),
        sheet: &sheet,
        db: &db,
        fields: &[1, 2, 3],
        sheet_at: 1,
        db_at: 2,
    };
    let fc = |i: usize| FieldConflict {
        key: &key,
        column: &schema.columns[i],
        index: i,
        base: Some(&base.0[i]),
        sheet: &sheet.0[i],
        db: &db.0[i],
        sheet_at: rc.sheet_at,
        db_at: rc.db_at,
        sheet_row: &sheet,
        db_row: &db,
        base_row: Some(&base),
    };
    let mut g = c.benchmark_group("rule");
    g.throughput(Throughput::Elements(1));
    let fields = [
        ("larger_qty", 1, RuleSpec::field(r#"sheet.qty > db.qty ? "sheet" : "db""#)),
        ("status_cancelled", 2, RuleSpec::field(r#"sheet.status == "cancelled" ? "sheet" : "db""#)),
        (
            "non_empty_text",
            3,
            RuleSpec::field(r#"sheet[column] in [null, ""] ? "db" : db[column] in [null, ""] ? "sheet" : "next""#)
                .types([ColumnType::Text]),
        ),
    ];
    for (name, i, spec) in fields {
        let r = rule(spec);
        let conflict = fc(i);
        assert!(!matches!(
            r.resolve_field(&conflict),
            Resolution::ManualBecause(_)
        ));
        g.bench_function(name, |b| b.iter(|| r.resolve_field(&conflict)));
    }
    let paid = rule(RuleSpec::delete(r#"db.paid ? "keep" : "delete""#).deleted_on(Side::Sheet));
    let dc = DeleteConflict {
        key: &key,
        deleted_on: Side::Sheet,
        base: &base,
        updated: &db,
        deleted_at: 1,
        updated_at: 2,
    };
    assert_eq!(paid.resolve_delete(&dc), DeleteResolution::Delete);
    g.bench_function("paid_is_kept", |b| b.iter(|| paid.resolve_delete(&dc)));
    g.finish();
}

fn bench_batch(c: &mut Criterion) {
    const N: i64 = 10_000;
    let schema = schema();
    let specs = [
        ResolverSpec::Rule(
            RuleSpec::field(r#"sheet.qty > db.qty ? "sheet" : "db""#).columns(["qty"]),
        ),
        ResolverSpec::Rule(
            RuleSpec::field(r#"sheet.status == "cancelled" ? "sheet" : "next""#)
                .columns(["status"]),
        ),
        ResolverSpec::LastWriteWins {
            granularity: Granularity::Field,
            tie: Side::Db,
        },
    ];
    let chain = ResolverSpec::build_chain(&specs, &schema).unwrap();
    let policy = MergePolicy {
        schema: &schema,
        resolver: &chain,
        update_vs_delete: DeleteResolution::KeepUpdate,
        deletes: DeletePropagation::default(),
    };
    let rows: Vec<(RowKey, Row, Row, Row)> = (0..N)
        .map(|i| {
            let status = if i % 3 == 0 { "cancelled" } else { "paused" };
            (
                key_of(i),
                row(i, 1, "open", ""),
                row(i, i % 7 + 4, status, ""),
                row(i, 3, "shipped", ""),
            )
        })
        .collect();
    let mut g = c.benchmark_group("merge_10000_conflicts");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("qty_and_status_rules_then_lww", |b| {
        b.iter(|| {
            for (k, base, s, d) in &rows {
                let m = merge_row(
                    &policy,
                    k,
                    Some(base),
                    SideState {
                        row: Some(s),
                        at: 1,
                    },
                    SideState {
                        row: Some(d),
                        at: 2,
                    },
                    3,
                );
                assert!(matches!(m, Merged::Write(_)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_examples, bench_batch);
criterion_main!(benches);
