//! The configuration of a conflict rule. It is plain data, so a configuration that names a
//! rule parses without the `rules` feature; building it needs the feature.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ConflictResolver;
use crate::error::Result;
use crate::model::{ColumnType, Side, TableSchema};

/// Which conflicts a rule decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleScope {
    /// One field changed on both sides: the rule returns `"sheet"`, `"db"`, `"manual"`,
    /// `"next"` or the value to keep.
    #[default]
    Field,
    /// A row changed on both sides, before its fields are looked at: `"sheet"` or `"db"` (that
    /// side's whole row), `"per_field"`, `"manual"` or `"next"`.
    Row,
    /// An update on one side against a delete on the other: `"keep"`, `"delete"`, `"manual"`
    /// or `"next"`.
    Delete,
}

/// A conflict rule: an expression in the Common Expression Language that sees the conflict
/// (`sheet`, `db`, `base`, `column`, `sheet_at`, `db_at`, `mapping`, and for deletes
/// `deleted_on`) and returns a decision. See the README's section on conflicts.
///
/// ```toml
/// [[mapping.resolvers]]
/// strategy = "rule"
/// columns = ["qty"]
/// rule = 'sheet.qty > db.qty ? "sheet" : "db"'
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The expression.
    pub rule: String,
    /// Which conflicts it decides (field conflicts by default).
    #[serde(default)]
    pub on: RuleScope,
    /// Field rules: only conflicts in these columns (none listed: every column).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Field rules: only conflicts in columns of these types (none listed: every type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<ColumnType>,
    /// Delete rules: only rows deleted on this side (unset: either side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_on: Option<Side>,
}

impl RuleSpec {
    /// A field rule for every column.
    pub fn field(rule: impl Into<String>) -> Self {
        RuleSpec {
            rule: rule.into(),
            on: RuleScope::Field,
            columns: Vec::new(),
            types: Vec::new(),
            deleted_on: None,
        }
    }

    /// A rule for whole rows.
    pub fn row(rule: impl Into<String>) -> Self {
        RuleSpec {
            on: RuleScope::Row,
            ..RuleSpec::field(rule)
        }
    }

    /// A rule for update-vs-delete.
    pub fn delete(rule: impl Into<String>) -> Self {
        RuleSpec {
            on: RuleScope::Delete,
            ..RuleSpec::field(rule)
        }
    }

    /// Only for these columns.
    pub fn columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Only for columns of these types.
    pub fn types(mut self, types: impl IntoIterator<Item = ColumnType>) -> Self {
        self.types = types.into_iter().collect();
        self
    }

    /// Only for rows deleted on this side.
    pub fn deleted_on(mut self, side: Side) -> Self {
        self.deleted_on = Some(side);
        self
    }

    /// Compiles and checks the rule against the schema.
    #[cfg(feature = "rules")]
    pub(super) fn build(&self, schema: &TableSchema) -> Result<Arc<dyn ConflictResolver>> {
        Ok(Arc::new(super::Rule::compile(self, schema)?))
    }

    /// Without the `rules` feature a rule cannot run: say so rather than ignore it.
    #[cfg(not(feature = "rules"))]
    pub(super) fn build(&self, schema: &TableSchema) -> Result<Arc<dyn ConflictResolver>> {
        Err(crate::error::Error::new(
            crate::error::ErrorKind::ConfigInvalid,
            format!(
                "mapping {:?} has the conflict rule {:?}, but sheetsync was built without \
                 conflict rules (the `rules` feature)",
                schema.name, self.rule
            ),
        ))
    }
}
