//! Conflict rules written in the Common Expression Language (CEL): a sandboxed, loop-free
//! expression language (what Kubernetes and Envoy use for user policies), here through the
//! `cel` crate (the maintained successor of `cel-interpreter`).
//!
//! A rule is compiled and checked against the mapping's schema once, when the resolver chain
//! is built (configuration load, `sheetsync check`); see [`check`]. Evaluating it cannot loop
//! or do I/O; its cost is bounded by its size (at most [`check::MAX_NODES`] terms, no list
//! macro inside another) and by the values it reads (a JSON value brings at most
//! [`values::MAX_ELEMENTS`] elements). A rule that fails at run time keeps its conflict for a
//! person with the error as the reason ([`Resolution::ManualBecause`]): it never guesses.

mod check;
mod values;

use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program};

use super::{
    ConflictResolver, DeleteConflict, DeleteResolution, FieldConflict, Resolution, RowConflict,
    RowResolution, RuleScope, RuleSpec,
};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Row, Side, TableSchema};
use check::{decisions, Checker, Flaw};

/// At most this many characters in a rule.
const MAX_LEN: usize = 2_000;

/// The names a rule may use (each scope allows some of them; see [`check`]).
const NAMES: [&str; 8] = [
    "sheet",
    "db",
    "base",
    "column",
    "deleted_on",
    "sheet_at",
    "db_at",
    "mapping",
];

/// A compiled conflict rule (see [`RuleSpec`] and the README's section on conflicts).
///
/// ```
/// # use sheetsync_core::*;
/// let schema = TableSchema::new("stock", vec![
///     Column::new("sku", ColumnType::Text),
///     Column::new("qty", ColumnType::Int),
/// ], &["sku"])?;
/// // The larger count wins.
/// let rule = Rule::compile(
///     &RuleSpec::field(r#"sheet.qty > db.qty ? "sheet" : "db""#).columns(["qty"]),
///     &schema,
/// )?;
/// let chain = Chain::new().then(rule).then(LastWriteWins {
///     granularity: Granularity::Field,
///     tie: Side::Db,
/// });
/// # let _ = chain;
/// # Ok::<(), sheetsync_core::Error>(())
/// ```
pub struct Rule {
    text: String,
    scope: RuleScope,
    /// Field rules: whether it decides each column, by index.
    decides: Vec<bool>,
    deleted_on: Option<Side>,
    program: Program,
    /// The columns the rule reads; only those are handed to it.
    reads: Vec<usize>,
    /// The names it uses; only those are bound.
    uses: Vec<&'static str>,
    mapping: cel::Value,
    columns: Vec<(cel::objects::Key, cel::Value)>,
}

/// The standard CEL environment, built once.
fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

impl Rule {
    /// Compiles the rule and checks it against `schema`: a syntax error, an unknown name or
    /// column, operands of types that do not work together, or a result that is not a decision
    /// (or, for field rules, a value of the column's type) is a configuration error that quotes
    /// the rule and points at the place.
    pub fn compile(spec: &RuleSpec, schema: &TableSchema) -> Result<Rule> {
        let invalid = |m: String| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "mapping {:?}: conflict rule `{}`: {m}",
                    schema.name, spec.rule
                ),
            )
        };
        if spec.rule.chars().count() > MAX_LEN {
            return Err(invalid(format!("longer than {MAX_LEN} characters")));
        }
        let decides = decided_columns(spec, schema).map_err(invalid)?;
        let program = env().compile(&spec.rule).map_err(|e| {
            invalid(format!(
                "does not parse:\n{}",
                e.to_string().replace("<input>", "rule")
            ))
        })?;
        let columns: Vec<usize> = (0..decides.len()).filter(|&i| decides[i]).collect();
        let info = program.source_info();
        let offset = |id| info.offset_for(id).map(|(start, _)| start);
        let mut checker = Checker::new(schema, spec.on, &columns);
        if let Err(Flaw { id, message }) = checker.check(program.expression()) {
            return Err(invalid(at(&spec.rule, offset(id), &message)));
        }
        let reads = match checker.reads.any {
            true => (0..schema.columns.len()).collect(),
            false => checker.reads.columns,
        };
        let refs = program.references();
        let uses = NAMES.into_iter().filter(|n| refs.has_variable(n)).collect();
        Ok(Rule {
            uses,
            text: spec.rule.clone(),
            scope: spec.on,
            decides,
            deleted_on: spec.deleted_on,
            program,
            reads,
            mapping: cel::Value::String(Arc::new(schema.name.clone())),
            columns: schema
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone().into(),
                        cel::Value::String(Arc::new(c.name.clone())),
                    )
                })
                .collect(),
        })
    }

    /// Runs the rule with the conflict's bindings.
    fn eval(&self, bind: Bindings<'_>) -> std::result::Result<cel::Value, String> {
        let mut ctx = Context::with_env(env());
        for &name in &self.uses {
            let value = match name {
                "sheet" => self.row(bind.sheet)?,
                "db" => self.row(bind.db)?,
                "base" => self.row(bind.base)?,
                "sheet_at" => cel::Value::Int(clamp(bind.sheet_at)),
                "db_at" => cel::Value::Int(clamp(bind.db_at)),
                "mapping" => self.mapping.clone(),
                // The check allows these only in the scopes that have them.
                "column" => bind
                    .column
                    .map_or(cel::Value::Null, |i| self.columns[i].1.clone()),
                _ => bind
                    .deleted_on
                    .map_or(cel::Value::Null, |s| s.to_string().into()),
            };
            ctx.add_variable_from_value(name, value);
        }
        self.program.execute(&ctx).map_err(|e| e.to_string())
    }

    /// A row as a map of the columns the rule reads (null when the side has no row).
    fn row(&self, row: Option<&Row>) -> std::result::Result<cel::Value, String> {
        let Some(row) = row else {
            return Ok(cel::Value::Null);
        };
        let mut budget = values::MAX_ELEMENTS;
        let mut map = std::collections::HashMap::with_capacity(self.reads.len());
        for &i in &self.reads {
            let v = values::to_cel(&row.0[i], &mut budget)
                .map_err(|e| format!("column {:?}: {e}", self.columns[i].0))?;
            map.insert(self.columns[i].0.clone(), v);
        }
        Ok(cel::Value::Map(map.into()))
    }

    /// The reason a person reads when the rule fails.
    fn failed(&self, what: &str, e: &str) -> String {
        // CEL's own words for a null operand are cryptic.
        let hint = if e.contains("null_type") {
            " (a value it read is null: an empty cell, SQL NULL, or the row of the side that deleted it)"
        } else {
            ""
        };
        format!("conflict rule `{}` failed{what}: {e}{hint}", self.text)
    }

    /// A returned string that must be one of the scope's decisions.
    fn decision(&self, v: &cel::Value) -> std::result::Result<&'static str, String> {
        let known = decisions(self.scope);
        match v {
            cel::Value::String(s) => known.iter().find(|k| ***k == **s).copied().ok_or_else(|| {
                format!(
                    "it returned {s:?}, which is not one of {}",
                    known.join(", ")
                )
            }),
            other => Err(format!(
                "it returned {}, which is not one of {}",
                values::describe(other),
                known.join(", ")
            )),
        }
    }

    fn field(&self, c: &FieldConflict<'_>) -> std::result::Result<Resolution, String> {
        let v = self.eval(Bindings {
            sheet: Some(c.sheet_row),
            db: Some(c.db_row),
            base: c.base_row,
            column: Some(c.index),
            ..Bindings::times(c.sheet_at, c.db_at)
        })?;
        if let cel::Value::String(s) = &v {
            match s.as_str() {
                "sheet" => return Ok(Resolution::Sheet),
                "db" => return Ok(Resolution::Db),
                "manual" => return Ok(Resolution::Manual),
                "next" => return Ok(Resolution::Fallback),
                _ => {}
            }
        }
        let value = values::from_cel(&v)?;
        value
            .coerce(c.column.ty)
            .map(Resolution::Value)
            .map_err(|e| {
                format!(
                    "it returned a value that does not fit column {:?}: {e}",
                    c.column.name
                )
            })
    }
}

/// Field rules: which columns a rule decides; a listed column that does not exist is an error.
fn decided_columns(
    spec: &RuleSpec,
    schema: &TableSchema,
) -> std::result::Result<Vec<bool>, String> {
    let scope = spec.on;
    if scope != RuleScope::Field && (!spec.columns.is_empty() || !spec.types.is_empty()) {
        return Err("`columns` and `types` apply to field rules only (on = \"field\")".into());
    }
    if scope != RuleScope::Delete && spec.deleted_on.is_some() {
        return Err("`deleted_on` applies to delete rules only (on = \"delete\")".into());
    }
    for name in &spec.columns {
        if schema.index_of(name).is_none() {
            return Err(format!(
                "`columns` names {name:?}, which the mapping does not have"
            ));
        }
    }
    let decides: Vec<bool> = schema
        .columns
        .iter()
        .map(|c| {
            (spec.columns.is_empty() || spec.columns.contains(&c.name))
                && (spec.types.is_empty() || spec.types.contains(&c.ty))
        })
        .collect();
    if scope == RuleScope::Field && !decides.contains(&true) {
        return Err("no column of the mapping matches its `columns` and `types`".into());
    }
    Ok(decides)
}

/// The message of a check failure, with a caret under the place in the rule.
fn at(rule: &str, offset: Option<u32>, message: &str) -> String {
    match offset {
        Some(o) => {
            // A byte offset; count the characters before it.
            let col = rule
                .char_indices()
                .take_while(|(i, _)| *i < o as usize)
                .count();
            format!(
                "at column {}: {message}\n| {rule}\n| {}^",
                col + 1,
                ".".repeat(col)
            )
        }
        None => message.to_string(),
    }
}

fn clamp(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// What a rule sees of a conflict.
struct Bindings<'a> {
    sheet: Option<&'a Row>,
    db: Option<&'a Row>,
    base: Option<&'a Row>,
    column: Option<usize>,
    deleted_on: Option<Side>,
    sheet_at: u64,
    db_at: u64,
}

impl<'a> Bindings<'a> {
    fn times(sheet_at: u64, db_at: u64) -> Self {
        Bindings {
            sheet: None,
            db: None,
            base: None,
            column: None,
            deleted_on: None,
            sheet_at,
            db_at,
        }
    }
}

impl ConflictResolver for Rule {
    fn resolve_row(&self, c: &RowConflict<'_>) -> RowResolution {
        if self.scope != RuleScope::Row {
            return RowResolution::Fallback;
        }
        let out = self
            .eval(Bindings {
                sheet: Some(c.sheet),
                db: Some(c.db),
                base: c.base,
                ..Bindings::times(c.sheet_at, c.db_at)
            })
            .and_then(|v| self.decision(&v));
        match out {
            Ok("sheet") => RowResolution::Take(Side::Sheet),
            Ok("db") => RowResolution::Take(Side::Db),
            Ok("per_field") => RowResolution::PerField,
            Ok("manual") => RowResolution::Manual,
            Ok(_) => RowResolution::Fallback,
            Err(e) => RowResolution::ManualBecause(self.failed("", &e)),
        }
    }

    fn resolve_field(&self, c: &FieldConflict<'_>) -> Resolution {
        if self.scope != RuleScope::Field || !self.decides[c.index] {
            return Resolution::Fallback;
        }
        self.field(c).unwrap_or_else(|e| {
            Resolution::ManualBecause(self.failed(&format!(" for column {:?}", c.column.name), &e))
        })
    }

    fn resolve_delete(&self, c: &DeleteConflict<'_>) -> DeleteResolution {
        if self.scope != RuleScope::Delete || self.deleted_on.is_some_and(|s| s != c.deleted_on) {
            return DeleteResolution::Fallback;
        }
        let (sheet, db, sheet_at, db_at) = match c.deleted_on {
            Side::Sheet => (None, Some(c.updated), c.deleted_at, c.updated_at),
            Side::Db => (Some(c.updated), None, c.updated_at, c.deleted_at),
        };
        let out = self
            .eval(Bindings {
                sheet,
                db,
                base: Some(c.base),
                deleted_on: Some(c.deleted_on),
                ..Bindings::times(sheet_at, db_at)
            })
            .and_then(|v| self.decision(&v));
        match out {
            Ok("keep") => DeleteResolution::KeepUpdate,
            Ok("delete") => DeleteResolution::Delete,
            Ok("manual") => DeleteResolution::Manual,
            Ok(_) => DeleteResolution::Fallback,
            Err(e) => DeleteResolution::ManualBecause(self.failed("", &e)),
        }
    }
}

#[cfg(test)]
mod tests;
