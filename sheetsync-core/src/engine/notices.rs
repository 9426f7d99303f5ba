//! Telling people in the Sheet which rows wait for them ([`Sink::annotate`]): after each cycle,
//! the held and conflicted rows with a key, each with a short reason, whenever that set changed.

use super::{Engine, EngineState};
use crate::model::{RowKey, Side};
use crate::state::ConflictRecord;
use crate::table::RowNotice;

impl Engine {
    /// Hands the Sheet side the rows that wait for a person, when they changed since the last
    /// call that succeeded. Never fails the cycle: a failure is logged and retried next cycle.
    pub(super) async fn annotate_sheet(&self, st: &mut EngineState) {
        if !self.sheet.capabilities().annotations {
            return; // nothing to show them on: not worth a notice per row every cycle
        }
        let notices = notices(st, &self.mapping.name);
        if st.annotated.as_ref() == Some(&notices) {
            return;
        }
        match self.sheet.annotate(&notices).await {
            Ok(()) => st.annotated = Some(notices),
            Err(e) => tracing::warn!(
                mapping = %self.mapping.name,
                error = %e,
                "could not show held rows and conflicts in the Sheet; trying again next cycle"
            ),
        }
    }
}

/// One notice per keyed row that waits for a person (a conflict's rather than its hold's),
/// by key.
pub(super) fn notices(st: &EngineState, mapping: &str) -> Vec<RowNotice> {
    let mut by_key: std::collections::BTreeMap<&RowKey, String> = st
        .held
        .iter()
        .filter_map(|h| Some((h.key.as_ref()?, format!("held — {}", h.reason))))
        .collect();
    for (key, c) in &st.conflicts {
        by_key.insert(key, conflict_text(c, mapping));
    }
    by_key
        .into_iter()
        .map(|(key, text)| RowNotice {
            key: key.clone(),
            text,
        })
        .collect()
}

fn conflict_text(c: &ConflictRecord, mapping: &str) -> String {
    let what = match (&c.deleted_on, c.fields.is_empty()) {
        (Some(Side::Sheet), _) => "conflict: changed in the database, deleted in the Sheet".into(),
        (Some(Side::Db), _) => "conflict: changed in the Sheet, deleted in the database".into(),
        (None, true) => "conflict".to_string(),
        (None, false) => {
            let fields: Vec<&str> = c.fields.iter().map(|f| f.column.as_str()).collect();
            format!("conflict on {}", fields.join(", "))
        }
    };
    format!(
        "{what} — resolve with `sheetsync conflicts resolve --mapping {mapping} --key {} \
         --side sheet|db` or on the status page",
        c.key
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::key_of;
    use crate::state::{FieldDiff, HeldRow};
    use crate::Value;

    fn conflict(id: i64, fields: &[&str], deleted_on: Option<Side>) -> ConflictRecord {
        ConflictRecord {
            key: key_of(id),
            fields: fields
                .iter()
                .map(|f| FieldDiff {
                    column: f.to_string(),
                    base: None,
                    sheet: Value::Int(1),
                    db: Value::Int(2),
                })
                .collect(),
            deleted_on,
            sheet: None,
            db: None,
            at: 0,
            reason: None,
        }
    }

    fn held(key: Option<i64>, reason: &str) -> HeldRow {
        HeldRow {
            key: key.map(key_of),
            side: Some(Side::Sheet),
            locator: None,
            reason: reason.into(),
        }
    }

    #[test]
    fn one_notice_per_keyed_row_the_conflict_before_its_hold() {
        let mut st = EngineState {
            held: vec![
                held(Some(2), "\"abc\" is not a valid integer"),
                held(None, "no key"),
                held(Some(1), "conflict kept"),
            ],
            ..Default::default()
        };
        st.conflicts
            .insert(key_of(1), conflict(1, &["name", "price"], None));
        st.conflicts
            .insert(key_of(3), conflict(3, &[], Some(Side::Db)));
        let n = notices(&st, "items");
        let texts: Vec<(String, &str)> = n
            .iter()
            .map(|n| (n.key.to_string(), n.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("1".into(), "conflict on name, price — resolve with `sheetsync conflicts resolve --mapping items --key 1 --side sheet|db` or on the status page"),
                ("2".into(), "held — \"abc\" is not a valid integer"),
                ("3".into(), "conflict: changed in the Sheet, deleted in the database — resolve with `sheetsync conflicts resolve --mapping items --key 3 --side sheet|db` or on the status page"),
            ]
        );
    }
}
