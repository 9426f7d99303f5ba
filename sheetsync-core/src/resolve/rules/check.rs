//! The schema check of a rule. CEL's Rust interpreter has no type checker, so this walks the
//! parsed expression: every name and column must exist, operands must have types that work
//! together (the column types of the mapping), and every result the rule can return must be a
//! decision its scope knows or, for field rules, a value of the column's type. It also bounds
//! the rule's size and nesting, which bounds its cost.

use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue};

use crate::model::{ColumnType, TableSchema};
use crate::resolve::RuleScope;

/// At most this many nodes in a rule's expression.
pub(super) const MAX_NODES: usize = 256;
/// At most this deep.
pub(super) const MAX_DEPTH: usize = 32;

/// The static type of an expression. Column values may also be null, which `==`/`!=` allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Bool,
    Int,
    Double,
    String,
    Bytes,
    Null,
    Row,
    List,
    Map,
    /// Unknown until run time (JSON columns, `sheet[column]`, comprehension variables).
    Dyn,
}

impl Ty {
    pub(super) fn of(ty: ColumnType) -> Ty {
        match ty {
            ColumnType::Bool => Ty::Bool,
            ColumnType::Int => Ty::Int,
            ColumnType::Decimal | ColumnType::Float => Ty::Double,
            ColumnType::Json => Ty::Dyn,
            ColumnType::Bytes => Ty::Bytes,
            _ => Ty::String,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Double => "double",
            Ty::String => "string",
            Ty::Bytes => "bytes",
            Ty::Null => "null",
            Ty::Row => "row",
            Ty::List => "list",
            Ty::Map => "map",
            Ty::Dyn => "dyn",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Double)
    }
}

/// The decisions each scope knows, as the strings a rule returns.
pub(super) fn decisions(scope: RuleScope) -> &'static [&'static str] {
    match scope {
        RuleScope::Field => &["sheet", "db", "manual", "next"],
        RuleScope::Row => &["sheet", "db", "per_field", "manual", "next"],
        RuleScope::Delete => &["keep", "delete", "manual", "next"],
    }
}

/// What the check learnt: the columns the rule reads (by index), or that it reads any.
#[derive(Debug, Default)]
pub(super) struct Reads {
    pub columns: Vec<usize>,
    pub any: bool,
}

/// Walks one rule. `columns` are the indexes of the columns a field rule decides.
pub(super) struct Checker<'a> {
    pub schema: &'a TableSchema,
    pub scope: RuleScope,
    pub columns: &'a [usize],
    pub reads: Reads,
    locals: Vec<String>,
    nodes: usize,
    in_comprehension: bool,
}

/// A check failure: a message and the node it is about.
pub(super) struct Flaw {
    pub id: u64,
    pub message: String,
}

type Checked = Result<Ty, Flaw>;

fn flaw(e: &IdedExpr, message: impl Into<String>) -> Flaw {
    Flaw {
        id: e.id,
        message: message.into(),
    }
}

impl<'a> Checker<'a> {
    pub(super) fn new(schema: &'a TableSchema, scope: RuleScope, columns: &'a [usize]) -> Self {
        Checker {
            schema,
            scope,
            columns,
            reads: Reads::default(),
            locals: Vec::new(),
            nodes: 0,
            in_comprehension: false,
        }
    }

    /// Checks the whole rule, its results included.
    pub(super) fn check(&mut self, e: &IdedExpr) -> Result<(), Flaw> {
        self.ty(e, 0)?;
        self.results(e)
    }

    fn ty(&mut self, e: &IdedExpr, depth: usize) -> Checked {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(flaw(
                e,
                format!("the rule is too long (at most {MAX_NODES} terms)"),
            ));
        }
        if depth > MAX_DEPTH {
            return Err(flaw(
                e,
                format!("the rule nests too deep (at most {MAX_DEPTH} levels)"),
            ));
        }
        let d = depth + 1;
        match &e.expr {
            Expr::Literal(l) => Ok(literal(l)),
            Expr::Ident(name) => self.ident(e, name),
            Expr::Select(s) => {
                let operand = self.ty(&s.operand, d)?;
                let t = self.member(e, operand, &s.field)?;
                Ok(if s.test { Ty::Bool } else { t })
            }
            Expr::Call(c) => self.call(e, c, d),
            Expr::List(l) => {
                for x in &l.elements {
                    self.ty(x, d)?;
                }
                Ok(Ty::List)
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.ty(&me.key, d)?;
                        self.ty(&me.value, d)?;
                    }
                }
                Ok(Ty::Map)
            }
            Expr::Comprehension(c) => self.comprehension(e, c, d),
            Expr::Struct(_) | Expr::Unspecified => Err(flaw(
                e,
                "messages (typed structs) are not available in rules",
            )),
        }
    }

    fn ident(&mut self, e: &IdedExpr, name: &str) -> Checked {
        if self.locals.iter().any(|l| l == name) {
            return Ok(Ty::Dyn);
        }
        Ok(match (name, self.scope) {
            ("sheet" | "db" | "base", _) => Ty::Row,
            ("column", RuleScope::Field) => Ty::String,
            ("deleted_on", RuleScope::Delete) => Ty::String,
            ("sheet_at" | "db_at", _) => Ty::Int,
            ("mapping", _) => Ty::String,
            _ => {
                let known = match self.scope {
                    RuleScope::Field => "sheet, db, base, column, sheet_at, db_at, mapping",
                    RuleScope::Row => "sheet, db, base, sheet_at, db_at, mapping",
                    RuleScope::Delete => "sheet, db, base, deleted_on, sheet_at, db_at, mapping",
                };
                return Err(flaw(
                    e,
                    format!(
                        "unknown name {name:?} in a {} rule (known: {known})",
                        scope_name(self.scope)
                    ),
                ));
            }
        })
    }

    /// `operand.field`: a column of a row, or a key of a map.
    fn member(&mut self, e: &IdedExpr, operand: Ty, field: &str) -> Checked {
        match operand {
            Ty::Row => self.column(e, field),
            Ty::Map | Ty::Dyn => Ok(Ty::Dyn),
            t => Err(flaw(e, format!("a {} has no field {field:?}", t.name()))),
        }
    }

    fn column(&mut self, e: &IdedExpr, name: &str) -> Checked {
        match self.schema.index_of(name) {
            Some(i) => {
                if !self.reads.columns.contains(&i) {
                    self.reads.columns.push(i);
                }
                Ok(Ty::of(self.schema.columns[i].ty))
            }
            None => {
                let names: Vec<&str> = self
                    .schema
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                Err(flaw(
                    e,
                    format!(
                        "the mapping has no column {name:?} (its columns: {})",
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    fn call(&mut self, e: &IdedExpr, c: &CallExpr, d: usize) -> Checked {
        let target = match &c.target {
            Some(t) => Some(self.ty(t, d)?),
            None => None,
        };
        // Indexing a row by a literal names a column, checked like `row.column`.
        if c.func_name == "_[_]" {
            let row = self.ty(&c.args[0], d)?;
            if let (Ty::Row, Expr::Literal(LiteralValue::String(s))) = (row, &c.args[1].expr) {
                return self.column(e, s.inner());
            }
            let index = self.ty(&c.args[1], d)?;
            return match row {
                Ty::Row if matches!(index, Ty::String | Ty::Dyn) => {
                    Ok(self.dynamic_column(&c.args[1]))
                }
                Ty::List | Ty::Map | Ty::Dyn => Ok(Ty::Dyn),
                t => Err(flaw(
                    e,
                    format!("a {} cannot be indexed by a {}", t.name(), index.name()),
                )),
            };
        }
        let mut args = Vec::with_capacity(c.args.len());
        for a in &c.args {
            args.push(self.ty(a, d)?);
        }
        operator(e, &c.func_name, target, &args)
    }

    /// `row[index]` with a computed index: `row[column]` in a field rule reads the columns the
    /// rule decides (typed when they share a type); anything else may read any column.
    fn dynamic_column(&mut self, index: &IdedExpr) -> Ty {
        let shadowed = self.locals.iter().any(|l| l == "column");
        let is_column = matches!(&index.expr, Expr::Ident(n) if n == "column");
        if !is_column || shadowed || self.scope != RuleScope::Field {
            self.reads.any = true;
            return Ty::Dyn;
        }
        let mut types = self
            .columns
            .iter()
            .map(|&i| Ty::of(self.schema.columns[i].ty));
        let first = types.next().unwrap_or(Ty::Dyn);
        let ty = if types.all(|t| t == first) {
            first
        } else {
            Ty::Dyn
        };
        for &i in self.columns {
            if !self.reads.columns.contains(&i) {
                self.reads.columns.push(i);
            }
        }
        ty
    }

    fn comprehension(&mut self, e: &IdedExpr, c: &ComprehensionExpr, d: usize) -> Checked {
        if self.in_comprehension {
            return Err(flaw(e, "a list macro (all, exists, exists_one, map, filter) inside another is not allowed: it would multiply the cost"));
        }
        match self.ty(&c.iter_range, d)? {
            Ty::List | Ty::Map | Ty::Dyn => {}
            t => {
                return Err(flaw(
                    &c.iter_range,
                    format!("cannot iterate over a {}", t.name()),
                ))
            }
        }
        self.ty(&c.accu_init, d)?;
        let scope = self.locals.len();
        self.locals.push(c.iter_var.clone());
        self.locals.extend(c.iter_var2.clone());
        self.locals.push(c.accu_var.clone());
        self.in_comprehension = true;
        let body = [&c.loop_cond, &c.loop_step, &c.result]
            .into_iter()
            .try_for_each(|x| self.ty(x, d).map(|_| ()));
        self.in_comprehension = false;
        self.locals.truncate(scope);
        body?;
        Ok(Ty::Dyn)
    }

    /// Every result the rule can return, through its conditionals.
    fn results(&mut self, e: &IdedExpr) -> Result<(), Flaw> {
        if let Expr::Call(c) = &e.expr {
            if c.func_name == "_?_:_" {
                self.results(&c.args[1])?;
                return self.results(&c.args[2]);
            }
        }
        let known = decisions(self.scope);
        if let Expr::Literal(LiteralValue::String(s)) = &e.expr {
            if known.contains(&s.inner()) || self.values_may_be(Ty::String) {
                return Ok(());
            }
            return Err(flaw(
                e,
                format!(
                    "returns {:?}, which is not one of {}",
                    s.inner(),
                    known.join(", ")
                ),
            ));
        }
        let t = self.ty_quiet(e);
        if t == Ty::Null {
            return Err(flaw(e, "returns null, which is not a decision: return \"next\" to leave the conflict to the next resolver, or {\"value\": null} to empty the field"));
        }
        let fits = match t {
            Ty::String | Ty::Dyn | Ty::Map => true,
            Ty::Null => false,
            t => self.values_may_be(t),
        };
        if fits {
            return Ok(());
        }
        let what = match self.scope {
            RuleScope::Field => "a decision or a value of the column's type",
            _ => "a decision",
        };
        Err(flaw(
            e,
            format!(
                "returns a {}, but it must return {what} ({})",
                t.name(),
                known.join(", ")
            ),
        ))
    }

    /// Whether a field rule's result may be a value of this type for one of its columns.
    fn values_may_be(&self, t: Ty) -> bool {
        self.scope == RuleScope::Field
            && self.columns.iter().any(|&i| {
                let c = Ty::of(self.schema.columns[i].ty);
                c == t || c == Ty::Dyn || (c.numeric() && t.numeric())
            })
    }

    /// The type of an already checked expression, without counting it again.
    fn ty_quiet(&mut self, e: &IdedExpr) -> Ty {
        let (nodes, reads) = (self.nodes, std::mem::take(&mut self.reads));
        self.nodes = 0;
        let t = self.ty(e, 0).unwrap_or(Ty::Dyn);
        self.nodes = nodes;
        self.reads = reads;
        t
    }
}

fn scope_name(s: RuleScope) -> &'static str {
    match s {
        RuleScope::Field => "field",
        RuleScope::Row => "row",
        RuleScope::Delete => "delete",
    }
}

fn literal(l: &LiteralValue) -> Ty {
    match l {
        LiteralValue::Boolean(_) => Ty::Bool,
        LiteralValue::Bytes(_) => Ty::Bytes,
        LiteralValue::Double(_) => Ty::Double,
        LiteralValue::Int(_) | LiteralValue::UInt(_) => Ty::Int,
        LiteralValue::Null => Ty::Null,
        LiteralValue::String(_) => Ty::String,
    }
}

/// The type of an operator or function call, or why its operands do not work together.
fn operator(e: &IdedExpr, f: &str, target: Option<Ty>, a: &[Ty]) -> Checked {
    use Ty::*;
    let dynamic = |t: Ty| t == Dyn;
    let mismatch = |what: &str| {
        let hint = match a.contains(&Null) {
            true => " (to test for an empty value, use `x == null` or `x != null`)",
            false => "",
        };
        let types: Vec<&str> = a.iter().map(|t| t.name()).collect();
        Err(flaw(e, format!("{what}: {}{hint}", types.join(" and "))))
    };
    match (f, a) {
        // A rule sees only the columns it names: whole rows are not values to compare or size.
        ("_==_" | "_!=_" | "size", [Row, Row] | [Row]) => Err(flaw(
            e,
            "whole rows cannot be compared or measured: compare their columns (`sheet.qty == db.qty`)",
        )),
        ("_==_" | "_!=_", [x, y]) => {
            let fine = x == y || dynamic(*x) || dynamic(*y) || *x == Null || *y == Null
                || (x.numeric() && y.numeric());
            if fine { Ok(Bool) } else { mismatch("compares values of different types") }
        }
        ("_<_" | "_<=_" | "_>_" | "_>=_", [x, y]) => {
            let fine = dynamic(*x) || dynamic(*y) || (x.numeric() && y.numeric())
                || (x == y && matches!(x, String | Bytes | Bool));
            if fine { Ok(Bool) } else { mismatch("orders values that cannot be compared") }
        }
        ("_&&_" | "_||_", [x, y]) if [*x, *y].iter().all(|t| matches!(t, Bool | Dyn)) => Ok(Bool),
        ("!_", [Bool | Dyn]) => Ok(Bool),
        ("_&&_" | "_||_" | "!_", _) => mismatch("needs bool operands"),
        ("_?_:_", [c, x, y]) => match c {
            Bool | Dyn => Ok(if x == y { *x } else { Dyn }),
            _ => mismatch("the condition of `? :` must be a bool"),
        },
        ("_+_", [x, y]) if x == y && matches!(x, Int | Double | String | Bytes | List) => Ok(*x),
        ("_-_" | "_*_" | "_/_" | "_%_", [x, y]) if x == y && x.numeric() => Ok(*x),
        ("_+_" | "_-_" | "_*_" | "_/_" | "_%_", [x, y]) if dynamic(*x) || dynamic(*y) => Ok(Dyn),
        ("_+_" | "_-_" | "_*_" | "_/_" | "_%_", [x, y]) if x.numeric() && y.numeric() => {
            mismatch("int and double do not mix in arithmetic (convert with double() or int())")
        }
        ("_+_" | "_-_" | "_*_" | "_/_" | "_%_", _) => mismatch("arithmetic on values that do not support it"),
        ("-_", [x]) if x.numeric() || dynamic(*x) => Ok(*x),
        ("@in", [_, List | Map | Dyn]) => Ok(Bool),
        ("@in", _) => mismatch("`in` needs a list or a map on its right"),
        ("@not_strictly_false", [_]) => Ok(Bool),
        ("size", _) => Ok(Int),
        ("contains" | "startsWith" | "endsWith", [y]) => match (target, y) {
            (Some(String | Dyn), String | Dyn) => Ok(Bool),
            _ => mismatch(&format!("{f} works on strings")),
        },
        ("int", [_]) => Ok(Int),
        ("double", [_]) => Ok(Double),
        ("string", [_]) => Ok(String),
        ("bool", [_]) => Ok(Bool),
        ("bytes", [_]) => Ok(Bytes),
        ("dyn", [_]) => Ok(Dyn),
        _ => Err(flaw(
            e,
            format!("unknown function {f:?} (rules may use operators, ? :, in, size, contains, startsWith, endsWith, has, all, exists, exists_one, map, filter and the conversions int, double, string, bool, bytes, dyn)"),
        )),
    }
}
