use super::*;
use crate::model::{Column, ColumnType, RowKey, Value};

fn schema() -> TableSchema {
    TableSchema::new(
        "orders",
        vec![
            Column::new("id", ColumnType::Int),
            Column::new("qty", ColumnType::Int),
            Column::new("status", ColumnType::Text),
            Column::new("note", ColumnType::Text),
            Column::new("paid", ColumnType::Bool),
            Column::new("price", ColumnType::Decimal),
            Column::new("data", ColumnType::Json),
        ],
        &["id"],
    )
    .unwrap()
}

/// A row of `schema()`: qty, status, note, paid (price 1.5, data `{}`).
fn row(qty: Value, status: &str, note: &str, paid: bool) -> Row {
    Row::new(vec![
        Value::Int(1),
        qty,
        Value::Text(status.into()),
        Value::Text(note.into()),
        Value::Bool(paid),
        Value::Decimal("1.5".parse().unwrap()),
        Value::Json(serde_json::json!({})),
    ])
}

fn r(qty: i64, status: &str) -> Row {
    row(Value::Int(qty), status, "", false)
}

fn compile(spec: RuleSpec) -> Rule {
    Rule::compile(&spec, &schema()).unwrap_or_else(|e| panic!("{e}"))
}

fn compile_err(spec: RuleSpec) -> String {
    match Rule::compile(&spec, &schema()) {
        Ok(_) => panic!("{:?} compiled", spec.rule),
        Err(e) => e.to_string(),
    }
}

fn key() -> RowKey {
    RowKey::from_values(&[Value::Int(1)])
}

/// Calls `f` with a conflict between these rows in `fields` (the Sheet at 10, the db at 20).
fn with_conflict<T>(
    base: Option<&Row>,
    (s, d): (&Row, &Row),
    fields: &[usize],
    f: impl FnOnce(&RowConflict<'_>) -> T,
) -> T {
    let (schema, k) = (schema(), key());
    f(&RowConflict {
        key: &k,
        schema: &schema,
        base,
        sheet: s,
        db: d,
        fields,
        sheet_at: 10,
        db_at: 20,
    })
}

/// The rule's answer to a conflict on column `col` between these rows.
fn field(rule: &Rule, col: &str, base: Option<&Row>, s: &Row, d: &Row) -> Resolution {
    let i = schema().index_of(col).unwrap();
    with_conflict(base, (s, d), &[i], |rc| {
        rule.resolve_field(&crate::resolve::field_conflict(rc, i))
    })
}

fn delete(rule: &Rule, deleted_on: Side, base: &Row, updated: &Row) -> DeleteResolution {
    let k = key();
    rule.resolve_delete(&DeleteConflict {
        key: &k,
        deleted_on,
        base,
        updated,
        deleted_at: 5,
        updated_at: 6,
    })
}

#[test]
fn the_larger_count_wins() {
    let rule = compile(RuleSpec::field(r#"sheet.qty > db.qty ? "sheet" : "db""#).columns(["qty"]));
    let b = r(1, "open");
    assert_eq!(
        field(&rule, "qty", Some(&b), &r(5, "open"), &r(3, "open")),
        Resolution::Sheet
    );
    assert_eq!(
        field(&rule, "qty", Some(&b), &r(2, "open"), &r(3, "open")),
        Resolution::Db
    );
    // Other columns are not this rule's.
    assert_eq!(
        field(&rule, "status", Some(&b), &r(5, "a"), &r(3, "b")),
        Resolution::Fallback
    );
}

#[test]
fn the_database_wins_status_unless_the_sheet_cancels() {
    let rule = compile(
        RuleSpec::field(r#"sheet.status == "cancelled" ? "sheet" : "db""#).columns(["status"]),
    );
    let b = r(1, "open");
    let d = r(1, "shipped");
    assert_eq!(
        field(&rule, "status", Some(&b), &r(1, "cancelled"), &d),
        Resolution::Sheet
    );
    assert_eq!(
        field(&rule, "status", Some(&b), &r(1, "paused"), &d),
        Resolution::Db
    );
}

#[test]
fn the_non_empty_text_is_kept_and_the_rest_falls_through() {
    let rule = compile(
        RuleSpec::field(
            r#"sheet[column] in [null, ""] ? "db" : db[column] in [null, ""] ? "sheet" : "next""#,
        )
        .types([ColumnType::Text]),
    );
    let b = row(Value::Int(1), "open", "old", false);
    let empty = row(Value::Int(1), "open", "", false);
    let full = row(Value::Int(1), "open", "call first", false);
    let other = row(Value::Int(1), "open", "leave at door", false);
    assert_eq!(
        field(&rule, "note", Some(&b), &empty, &full),
        Resolution::Db
    );
    assert_eq!(
        field(&rule, "note", Some(&b), &full, &empty),
        Resolution::Sheet
    );
    let mut null = empty.clone();
    null.0[3] = Value::Null;
    assert_eq!(
        field(&rule, "note", Some(&b), &full, &null),
        Resolution::Sheet
    );
    // Both non-empty: undecided, the next resolver decides.
    assert_eq!(
        field(&rule, "note", Some(&b), &full, &other),
        Resolution::Fallback
    );
    // Not a text column: not this rule's.
    assert_eq!(
        field(&rule, "qty", Some(&b), &r(2, ""), &r(3, "")),
        Resolution::Fallback
    );
}

#[test]
fn a_paid_row_deleted_in_the_sheet_is_kept() {
    let rule = compile(RuleSpec::delete(r#"db.paid ? "keep" : "delete""#).deleted_on(Side::Sheet));
    let b = row(Value::Int(1), "open", "", false);
    let paid = row(Value::Int(1), "open", "", true);
    let unpaid = row(Value::Int(2), "open", "", false);
    assert_eq!(
        delete(&rule, Side::Sheet, &b, &paid),
        DeleteResolution::KeepUpdate
    );
    assert_eq!(
        delete(&rule, Side::Sheet, &b, &unpaid),
        DeleteResolution::Delete
    );
    // Deleted in the database: not this rule's.
    assert_eq!(
        delete(&rule, Side::Db, &b, &paid),
        DeleteResolution::Fallback
    );
    // Without the filter the deleted side is null: reading it fails, and a person decides.
    let any = compile(RuleSpec::delete(r#"db.paid ? "keep" : "delete""#));
    match delete(&any, Side::Db, &b, &paid) {
        DeleteResolution::ManualBecause(why) => assert!(why.contains("db.paid"), "{why}"),
        other => panic!("expected a kept conflict, got {other:?}"),
    }
    let by_side = compile(RuleSpec::delete(r#"deleted_on == "db" ? "keep" : "next""#));
    assert_eq!(
        delete(&by_side, Side::Db, &b, &paid),
        DeleteResolution::KeepUpdate
    );
    assert_eq!(
        delete(&by_side, Side::Sheet, &b, &paid),
        DeleteResolution::Fallback
    );
}

#[test]
fn field_rules_may_return_values() {
    let b = r(1, "open");
    let sum = compile(RuleSpec::field("sheet.qty + db.qty - base.qty").columns(["qty"]));
    assert_eq!(
        field(&sum, "qty", Some(&b), &r(5, "open"), &r(3, "open")),
        Resolution::Value(Value::Int(7))
    );
    let joined = compile(RuleSpec::field(r#"sheet.note + " / " + db.note"#).columns(["note"]));
    let s = row(Value::Int(1), "open", "a", false);
    let d = row(Value::Int(1), "open", "b", false);
    assert_eq!(
        field(&joined, "note", Some(&b), &s, &d),
        Resolution::Value(Value::Text("a / b".into()))
    );
    // {"value": x} sets a word that is also a decision, or empties the field.
    let word = compile(RuleSpec::field(r#"{"value": "sheet"}"#).columns(["note"]));
    assert_eq!(
        field(&word, "note", Some(&b), &s, &d),
        Resolution::Value(Value::Text("sheet".into()))
    );
    let empty = compile(RuleSpec::field(r#"{"value": null}"#).columns(["note"]));
    assert_eq!(
        field(&empty, "note", Some(&b), &s, &d),
        Resolution::Value(Value::Null)
    );
    // Decimals are doubles to a rule, and back.
    let price = compile(RuleSpec::field("sheet.price * 2.0").columns(["price"]));
    assert_eq!(
        field(&price, "price", Some(&b), &s, &d),
        Resolution::Value(Value::Decimal("3".parse().unwrap()))
    );
}

#[test]
fn row_rules_take_a_whole_side() {
    let later = compile(RuleSpec::row(r#"sheet_at > db_at ? "sheet" : "db""#));
    let mapping = compile(RuleSpec::row(
        r#"mapping == "orders" ? "per_field" : "manual""#,
    ));
    let (s, d) = (r(5, "a"), r(3, "b"));
    with_conflict(None, (&s, &d), &[1, 2], |rc| {
        assert_eq!(later.resolve_row(rc), RowResolution::Take(Side::Db));
        assert_eq!(mapping.resolve_row(rc), RowResolution::PerField);
    });
}

#[test]
fn errors_quote_the_rule_and_point_at_the_place() {
    let e = compile_err(RuleSpec::field(r#"sheet.qtty > db.qty ? "sheet" : "db""#));
    assert!(e.contains("conflict rule `sheet.qtty > db.qty"), "{e}");
    assert!(
        e.contains(r#"has no column "qtty""#) && e.contains("id, qty, status"),
        "{e}"
    );
    assert!(e.contains("at column 6") && e.contains("| .....^"), "{e}");
    let e = compile_err(RuleSpec::field(r#"sheet["qtty"] > 1 ? "sheet" : "db""#));
    assert!(e.contains(r#"has no column "qtty""#), "{e}");
    // Syntax errors carry the parser's position.
    let e = compile_err(RuleSpec::field(r#"sheet.qty > ? "sheet" : "db""#));
    assert!(e.contains("does not parse") && e.contains(":1:"), "{e}");
    // Columns count characters, not bytes.
    let e = compile_err(RuleSpec::field(
        r#"sheet.status == "café" && sheet.qtty > 1 ? "sheet" : "db""#,
    ));
    assert!(e.contains("at column 32"), "{e}");
    let e = compile_err(RuleSpec::field(r#"shet.qty > 1 ? "sheet" : "db""#));
    assert!(
        e.contains(r#"unknown name "shet""#) && e.contains("at column 1"),
        "{e}"
    );
    let e = compile_err(RuleSpec::delete(r#"column == "qty" ? "keep" : "next""#));
    assert!(
        e.contains(r#"unknown name "column" in a delete rule"#),
        "{e}"
    );
}

#[test]
fn wrong_types_for_the_columns_are_errors() {
    let e = compile_err(RuleSpec::field(r#"sheet.qty == "many" ? "sheet" : "db""#));
    assert!(
        e.contains("compares values of different types: int and string"),
        "{e}"
    );
    let e = compile_err(RuleSpec::field(r#"sheet.status > 3 ? "sheet" : "db""#));
    assert!(e.contains("cannot be compared: string and int"), "{e}");
    let e = compile_err(RuleSpec::field(r#"sheet.qty ? "sheet" : "db""#));
    assert!(e.contains("condition of `? :` must be a bool"), "{e}");
    // `sheet[column]` has the type of the columns the rule decides, when they share one.
    let text_over_3 = r#"sheet[column] > 3 ? "sheet" : "db""#;
    let e = compile_err(RuleSpec::field(text_over_3).types([ColumnType::Text]));
    assert!(e.contains("cannot be compared: string and int"), "{e}");
    compile(RuleSpec::field(text_over_3).columns(["qty", "note"]));
    let e = compile_err(RuleSpec::field("sheet.qty + 0.5").columns(["qty"]));
    assert!(e.contains("int and double do not mix"), "{e}");
    // Results: a decision the scope knows, or a value of the column's type.
    let e = compile_err(RuleSpec::delete(r#"db.paid ? "keeep" : "delete""#));
    assert!(
        e.contains(r#"returns "keeep", which is not one of keep, delete, manual, next"#),
        "{e}"
    );
    let e = compile_err(RuleSpec::field(r#"sheet.qty > 1 ? "shet" : "db""#).columns(["qty"]));
    assert!(e.contains(r#"returns "shet""#), "{e}");
    let e = compile_err(RuleSpec::field("sheet.qty > db.qty").columns(["qty"]));
    assert!(
        e.contains("returns a bool, but it must return a decision or a value"),
        "{e}"
    );
    let e = compile_err(RuleSpec::row(r#"size(sheet.note)"#));
    assert!(
        e.contains("returns a int, but it must return a decision"),
        "{e}"
    );
    let e = compile_err(RuleSpec::field(
        r#"sheet.note.matches("x") ? "sheet" : "db""#,
    ));
    assert!(e.contains(r#"unknown function "matches""#), "{e}");
    let e = compile_err(RuleSpec::row(r#"sheet == db ? "sheet" : "db""#));
    assert!(e.contains("whole rows cannot be compared"), "{e}");
    compile(RuleSpec::delete(
        r#"db != null && db.paid ? "keep" : "next""#,
    ));
}

#[test]
fn settings_and_size_limits_are_checked() {
    let e = compile_err(RuleSpec::field(r#""sheet""#).columns(["qtty"]));
    assert!(e.contains(r#"`columns` names "qtty""#), "{e}");
    let e = compile_err(RuleSpec::row(r#""sheet""#).columns(["qty"]));
    assert!(e.contains("apply to field rules only"), "{e}");
    let e = compile_err(RuleSpec::field(r#""sheet""#).deleted_on(Side::Db));
    assert!(e.contains("delete rules only"), "{e}");
    let e = compile_err(RuleSpec::field(r#""sheet""#).types([ColumnType::Uuid]));
    assert!(e.contains("no column of the mapping matches"), "{e}");
    let long = format!(
        "{} ? \"sheet\" : \"db\"",
        vec!["sheet.qty > 1"; 100].join(" && ")
    );
    let e = compile_err(RuleSpec::field(long));
    assert!(e.contains("too long"), "{e}");
    let e = compile_err(RuleSpec::field(format!("\"{}\"", "x".repeat(3000))));
    assert!(e.contains("longer than 2000 characters"), "{e}");
    let nested = r#"[1, 2].all(x, [3].exists(y, x < y)) ? "sheet" : "db""#;
    let e = compile_err(RuleSpec::field(nested));
    assert!(e.contains("inside another is not allowed"), "{e}");
    compile(RuleSpec::field(
        r#"[1, 2].all(x, x < sheet.qty) ? "sheet" : "db""#,
    ));
}

/// The reason of a kept field conflict, or a panic.
fn reason(r: Resolution) -> String {
    match r {
        Resolution::ManualBecause(why) => why,
        other => panic!("expected a conflict kept with a reason, got {other:?}"),
    }
}

#[test]
fn failures_at_run_time_keep_the_conflict_with_the_error() {
    let rule = compile(RuleSpec::field(r#"sheet.qty > db.qty ? "sheet" : "db""#).columns(["qty"]));
    let b = r(1, "open");
    let why = reason(field(
        &rule,
        "qty",
        Some(&b),
        &row(Value::Null, "", "", false),
        &r(3, ""),
    ));
    assert!(why.contains("conflict rule `sheet.qty > db.qty"), "{why}");
    assert!(
        why.contains(r#"for column "qty""#) && why.contains("a value it read is null"),
        "{why}"
    );
    // Null is not a decision: written out, the check refuses it; at run time, a person decides.
    let e = compile_err(RuleSpec::field(r#"sheet.qty > db.qty ? "sheet" : null"#).columns(["qty"]));
    assert!(
        e.contains("returns null, which is not a decision") && e.contains("at column 32"),
        "{e}"
    );
    let json = compile(RuleSpec::field("sheet.data.n").columns(["qty"]));
    let mut s = r(1, "");
    s.0[6] = Value::Json(serde_json::json!({"n": null}));
    let why = reason(field(&json, "qty", Some(&b), &s, &r(3, "")));
    assert!(
        why.contains("returned null, which is not a decision"),
        "{why}"
    );
    // A value of the wrong type for the column, known only at run time.
    s.0[6] = Value::Json(serde_json::json!({"n": "lots"}));
    let why = reason(field(&json, "qty", Some(&b), &s, &r(3, "")));
    assert!(why.contains(r#"does not fit column "qty""#), "{why}");
    // The cost limit: too much JSON for one row.
    let big =
        compile(RuleSpec::field(r#"sheet.data.all(x, x > 0) ? "sheet" : "db""#).columns(["qty"]));
    s.0[6] = Value::Json(serde_json::json!(vec![1; values::MAX_ELEMENTS + 1]));
    let why = reason(field(&big, "qty", Some(&b), &s, &r(3, "")));
    assert!(why.contains("cost limit"), "{why}");
    s.0[6] = Value::Json(serde_json::json!(vec![1; 100]));
    assert_eq!(
        field(&big, "qty", Some(&b), &s, &r(3, "")),
        Resolution::Sheet
    );
    // A row rule with no base reads base's columns: kept, with the error.
    let row_rule = compile(RuleSpec::row(r#"base.qty == 0 ? "sheet" : "db""#));
    let (s, d) = (r(5, "a"), r(3, "b"));
    let why = with_conflict(None, (&s, &d), &[1], |rc| row_rule.resolve_row(rc));
    assert!(
        matches!(&why, RowResolution::ManualBecause(w) if w.contains("base.qty")),
        "{why:?}"
    );
}
