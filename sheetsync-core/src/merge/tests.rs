use super::*;
use crate::model::{Column, ColumnType};
use crate::resolve::{Chain, ColumnOwner, Granularity, LastWriteWins, Manual, SideWins};

fn schema() -> TableSchema {
    TableSchema::new(
        "t",
        vec![
            Column::new("id", ColumnType::Int),
            Column::new("a", ColumnType::Text),
            Column::new("b", ColumnType::Int),
        ],
        &["id"],
    )
    .unwrap()
}

fn row(a: &str, b: i64) -> Row {
    Row::new(vec![Value::Int(1), Value::Text(a.into()), Value::Int(b)])
}

fn key() -> RowKey {
    RowKey::from_values(&[Value::Int(1)])
}

fn merge_with(
    r: &dyn ConflictResolver,
    base: Option<&Row>,
    s: Option<&Row>,
    d: Option<&Row>,
) -> Merged {
    let schema = schema();
    let policy = MergePolicy {
        schema: &schema,
        resolver: r,
        update_vs_delete: DeleteResolution::KeepUpdate,
        deletes: DeletePropagation::default(),
    };
    merge_row(
        &policy,
        &key(),
        base,
        SideState { row: s, at: 10 },
        SideState { row: d, at: 20 },
        99,
    )
}

fn merge(base: Option<&Row>, s: Option<&Row>, d: Option<&Row>) -> Merged {
    merge_with(&Manual, base, s, d)
}

#[test]
fn one_sided_changes_propagate_without_the_resolver() {
    let b = row("x", 1);
    // Manual would hold any conflict; none of these is one.
    assert_eq!(
        merge(Some(&b), Some(&row("y", 1)), Some(&b)),
        Merged::Write(Some(row("y", 1)))
    );
    assert_eq!(
        merge(Some(&b), Some(&b), Some(&row("x", 2))),
        Merged::Write(Some(row("x", 2)))
    );
    // Different fields on each side merge.
    assert_eq!(
        merge(Some(&b), Some(&row("y", 1)), Some(&row("x", 2))),
        Merged::Write(Some(row("y", 2)))
    );
    // Inserts.
    assert_eq!(merge(None, Some(&b), None), Merged::Write(Some(b.clone())));
    assert_eq!(merge(None, None, Some(&b)), Merged::Write(Some(b.clone())));
}

#[test]
fn same_change_on_both_sides_is_not_a_conflict() {
    let b = row("x", 1);
    let c = row("z", 5);
    assert_eq!(
        merge(Some(&b), Some(&c), Some(&c)),
        Merged::Agreed(Some(c.clone()))
    );
    assert_eq!(merge(None, Some(&c), Some(&c)), Merged::Agreed(Some(c)));
    assert_eq!(merge(Some(&b), None, None), Merged::Agreed(None));
}

#[test]
fn true_conflicts_go_to_the_resolver() {
    let b = row("x", 1);
    let s = row("sheet", 1);
    let d = row("db", 1);
    assert_eq!(
        merge_with(&SideWins(Side::Sheet), Some(&b), Some(&s), Some(&d)),
        Merged::Write(Some(s.clone()))
    );
    assert_eq!(
        merge_with(&SideWins(Side::Db), Some(&b), Some(&s), Some(&d)),
        Merged::Write(Some(d.clone()))
    );
    // LWW: the db side is later (20 > 10).
    let lww = LastWriteWins {
        granularity: Granularity::Field,
        tie: Side::Sheet,
    };
    assert_eq!(
        merge_with(&lww, Some(&b), Some(&s), Some(&d)),
        Merged::Write(Some(d.clone()))
    );
    match merge(Some(&b), Some(&s), Some(&d)) {
        Merged::Conflict(c) => {
            assert_eq!(c.fields.len(), 1);
            assert_eq!(c.fields[0].column, "a");
            assert_eq!(c.fields[0].base, Some(Value::Text("x".into())));
            assert_eq!(c.sheet, Some(s));
            assert_eq!(c.db, Some(d));
        }
        m => panic!("expected a kept conflict, got {m:?}"),
    }
}

#[test]
fn row_granularity_takes_the_whole_later_row() {
    let b = row("x", 1);
    let s = row("sheet", 1);
    let d = row("db", 7);
    let lww = LastWriteWins {
        granularity: Granularity::Row,
        tie: Side::Sheet,
    };
    // Conflict on `a`; the db is later, so the db's whole row wins.
    assert_eq!(
        merge_with(&lww, Some(&b), Some(&s), Some(&d)),
        Merged::Write(Some(d))
    );
    // Field granularity keeps the sheet-free field b=7 and takes a from the later db too.
    let s2 = row("sheet", 9);
    let d2 = row("db", 1);
    let lww = LastWriteWins {
        granularity: Granularity::Row,
        tie: Side::Db,
    };
    assert_eq!(
        merge_with(&lww, Some(&b), Some(&s2), Some(&d2)),
        Merged::Write(Some(d2))
    );
}

#[test]
fn column_owner_then_fallback_chain() {
    let b = row("x", 1);
    let s = row("sheet", 2);
    let d = row("db", 3);
    let chain = Chain::new()
        .then(ColumnOwner::new([("b".to_string(), Side::Sheet)]))
        .then(SideWins(Side::Db));
    assert_eq!(
        merge_with(&chain, Some(&b), Some(&s), Some(&d)),
        Merged::Write(Some(row("db", 2)))
    );
    // Without a fallback, the unowned column is kept for a person.
    let owner_only = Chain::new().then(ColumnOwner::new([("b".to_string(), Side::Sheet)]));
    assert!(
        matches!(merge_with(&owner_only, Some(&b), Some(&s), Some(&d)), Merged::Conflict(c) if c.fields.len() == 1)
    );
}

#[test]
fn update_vs_delete_keeps_the_update_by_default() {
    let b = row("x", 1);
    let u = row("y", 1);
    // LWW has no opinion on update-vs-delete, so the mapping's default decides: keep the update.
    let lww = LastWriteWins {
        granularity: Granularity::Field,
        tie: Side::Sheet,
    };
    assert_eq!(
        merge_with(&lww, Some(&b), None, Some(&u)),
        Merged::Write(Some(u.clone()))
    );
    assert_eq!(
        merge_with(&lww, Some(&b), Some(&u), None),
        Merged::Write(Some(u.clone()))
    );
    // Manual keeps it for a person.
    assert!(
        matches!(merge(Some(&b), None, Some(&u)), Merged::Conflict(c) if c.deleted_on == Some(Side::Sheet))
    );
    // A plain delete propagates.
    assert_eq!(merge(Some(&b), None, Some(&b)), Merged::Write(None));
    // SideWins decides both ways.
    assert_eq!(
        merge_with(&SideWins(Side::Sheet), Some(&b), None, Some(&u)),
        Merged::Write(None)
    );
    assert_eq!(
        merge_with(&SideWins(Side::Db), Some(&b), None, Some(&u)),
        Merged::Write(Some(u))
    );
}

#[test]
fn forbidden_deletes_restore_the_row() {
    let schema = schema();
    let b = row("x", 1);
    let policy = MergePolicy {
        schema: &schema,
        resolver: &Manual,
        update_vs_delete: DeleteResolution::Delete,
        deletes: DeletePropagation {
            sheet_to_db: false,
            db_to_sheet: true,
        },
    };
    let st = |r| SideState { row: r, at: 0 };
    assert_eq!(
        merge_row(&policy, &key(), Some(&b), st(None), st(Some(&b)), 0),
        Merged::Write(Some(b.clone()))
    );
    assert_eq!(
        merge_row(&policy, &key(), Some(&b), st(Some(&b)), st(None), 0),
        Merged::Write(None)
    );
}

#[test]
fn directions_revert_edits_of_the_other_sides_column() {
    let mut schema = schema();
    schema.columns[1].direction = Direction::DbToSheet;
    schema.columns[2].direction = Direction::SheetToDb;
    let policy = MergePolicy {
        schema: &schema,
        resolver: &Manual,
        update_vs_delete: DeleteResolution::KeepUpdate,
        deletes: DeletePropagation::default(),
    };
    let b = row("x", 1);
    let st = |r| SideState { row: r, at: 0 };
    // The sheet edits the db-owned `a` and the db edits the sheet-owned `b`: both reverted.
    let s = row("sheet edit", 1);
    let d = row("x", 5);
    assert_eq!(
        merge_row(&policy, &key(), Some(&b), st(Some(&s)), st(Some(&d)), 0),
        Merged::Write(Some(b.clone()))
    );
    // Owners' own edits go through, even when both sides edited.
    let s = row("sheet edit", 9);
    let d = row("db edit", 5);
    assert_eq!(
        merge_row(&policy, &key(), Some(&b), st(Some(&s)), st(Some(&d)), 0),
        Merged::Write(Some(row("db edit", 9)))
    );
}

#[test]
fn resolver_values_must_have_the_column_type() {
    let b = row("x", 1);
    let s = row("x", 2);
    let d = row("x", 3);
    let sum = crate::resolve::FnResolver::new(|c| match (c.sheet, c.db) {
        (Value::Int(a), Value::Int(b)) => Resolution::Value(Value::Int(a + b)),
        _ => Resolution::Fallback,
    });
    assert_eq!(
        merge_with(&sum, Some(&b), Some(&s), Some(&d)),
        Merged::Write(Some(row("x", 5)))
    );
    let wrong = crate::resolve::FnResolver::new(|_| Resolution::Value(Value::Text("nope".into())));
    assert!(matches!(
        merge_with(&wrong, Some(&b), Some(&s), Some(&d)),
        Merged::Conflict(_)
    ));
}

#[test]
fn an_owner_before_manual_or_row_lww_still_decides_its_column() {
    let b = row("x", 1);
    let s = row("sheet", 2);
    let d = row("db", 3);
    // Column b belongs to the Sheet; the conflict on a is for a person.
    let chain = Chain::new()
        .then(ColumnOwner::new([("b".to_string(), Side::Sheet)]))
        .then(Manual);
    match merge_with(&chain, Some(&b), Some(&s), Some(&d)) {
        Merged::Conflict(c) => {
            let cols: Vec<&str> = c.fields.iter().map(|f| f.column.as_str()).collect();
            assert_eq!(
                cols,
                vec!["a"],
                "only the unowned column waits for a person"
            );
        }
        m => panic!("expected a kept conflict, got {m:?}"),
    }
    // Row-level last-write-wins (the db is later) after the owner: b stays the Sheet's.
    let chain = Chain::new()
        .then(ColumnOwner::new([("b".to_string(), Side::Sheet)]))
        .then(LastWriteWins {
            granularity: Granularity::Row,
            tie: Side::Db,
        });
    assert_eq!(
        merge_with(&chain, Some(&b), Some(&s), Some(&d)),
        Merged::Write(Some(row("db", 2)))
    );
}

#[cfg(feature = "rules")]
#[test]
fn a_failing_rule_holds_its_field_only_and_the_chain_decides_the_rest() {
    use crate::resolve::{ResolverSpec, RuleSpec};
    let chain = ResolverSpec::build_chain(
        &[
            ResolverSpec::Rule(
                RuleSpec::field(r#"sheet.b > db.b ? "sheet" : "db""#).columns(["b"]),
            ),
            ResolverSpec::Rule(
                RuleSpec::field(r#"sheet.a == "cancelled" ? "sheet" : "next""#).columns(["a"]),
            ),
            ResolverSpec::LastWriteWins {
                granularity: Granularity::Field,
                tie: Side::Db,
            },
        ],
        &schema(),
    )
    .unwrap();
    let b = row("open", 1);
    // b by the first rule; a falls through to last-write-wins (the db is later) or the second.
    assert_eq!(
        merge_with(
            &chain,
            Some(&b),
            Some(&row("paused", 5)),
            Some(&row("shipped", 3))
        ),
        Merged::Write(Some(row("shipped", 5)))
    );
    assert_eq!(
        merge_with(
            &chain,
            Some(&b),
            Some(&row("cancelled", 2)),
            Some(&row("shipped", 3))
        ),
        Merged::Write(Some(row("cancelled", 3)))
    );
    // An empty b: the rule fails, b waits for a person with the error; a is not held.
    let s = Row::new(vec![
        Value::Int(1),
        Value::Text("cancelled".into()),
        Value::Null,
    ]);
    match merge_with(&chain, Some(&b), Some(&s), Some(&row("shipped", 3))) {
        Merged::Conflict(c) => {
            let cols: Vec<&str> = c.fields.iter().map(|f| f.column.as_str()).collect();
            assert_eq!(cols, ["b"]);
            let why = c.reason.expect("a reason");
            assert!(why.contains("conflict rule `sheet.b > db.b"), "{why}");
        }
        m => panic!("expected a kept conflict, got {m:?}"),
    }
}

#[test]
fn a_value_of_the_wrong_type_is_kept_with_the_reason() {
    let wrong = crate::resolve::FnResolver::new(|_| Resolution::Value(Value::Text("nope".into())));
    match merge_with(
        &wrong,
        Some(&row("x", 1)),
        Some(&row("x", 2)),
        Some(&row("x", 3)),
    ) {
        Merged::Conflict(c) => {
            let why = c.reason.expect("a reason");
            assert!(
                why.contains(r#"value for column "b""#) && why.contains("nope"),
                "{why}"
            );
        }
        m => panic!("expected a kept conflict, got {m:?}"),
    }
}
