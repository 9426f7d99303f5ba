//! Person edits scheduled between two of a client's requests: "when the Nth request matching
//! method M reaches this spreadsheet, apply this person edit just before it runs (or right after
//! its effect, before its answer goes out)". This is how tests put a person's sort or row
//! delete exactly between an engine's read and its write.
//!
//! A scheduled edit is an ordinary person edit when it fires: USER_ENTERED parsing, webhooks
//! of the registered triggers, a new Drive version. Only requests that reach the spreadsheet
//! count: a request answered by a fault before it runs (`status`, `drop`), by a quota 429 or
//! by an auth error does not.

use serde::{Deserialize, Serialize};

use crate::edit::PersonEdit;

/// When a scheduled edit is applied, relative to the request that triggers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum When {
    /// Just before the request runs: between the client's previous request and this one.
    Before,
    /// Right after the request's effect, before its answer is sent.
    #[default]
    After,
}

/// Which request makes a scheduled edit fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditTrigger {
    /// Requests to the edit's spreadsheet whose method id contains this text
    /// (`values.batchGet`, `values.update`, `spreadsheets.batchUpdate`, `drive.files.get`),
    /// matched like fault rules' `method`.
    pub method: String,
    /// Fire on the Nth such request from now (1 = the next one).
    #[serde(default = "one")]
    pub nth: u32,
    /// Before the request runs, or after its effect (the default).
    #[serde(default)]
    pub when: When,
}

fn one() -> u32 {
    1
}

impl EditTrigger {
    /// Right after the next request matching `method` has had its effect, before its answer.
    pub fn after(method: &str) -> Self {
        EditTrigger {
            method: method.to_string(),
            nth: 1,
            when: When::After,
        }
    }

    /// Just before the next request matching `method` runs.
    pub fn before(method: &str) -> Self {
        EditTrigger {
            method: method.to_string(),
            nth: 1,
            when: When::Before,
        }
    }

    /// On the `n`th matching request instead of the next one (`n` = 0 counts as 1).
    pub fn nth(mut self, n: u32) -> Self {
        self.nth = n.max(1);
        self
    }

    fn matches(&self, method_id: &str) -> bool {
        method_id.contains(self.method.as_str())
    }
}

/// A person edit waiting for its request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledEdit {
    /// Id (`scheduledEditId` over HTTP), for [`crate::EmulatorHandle::cancel_scheduled_edit`].
    pub scheduled_edit_id: String,
    /// The spreadsheet edited (and whose requests count).
    pub spreadsheet_id: String,
    /// What makes it fire.
    #[serde(flatten)]
    pub trigger: EditTrigger,
    /// Matching requests still to come, this one included, before it fires.
    pub remaining: u32,
    /// The edit.
    pub edit: PersonEdit,
    /// Who it is attributed to (`Config::default_editor` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A scheduled edit that has fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FiredEdit {
    /// Id it was scheduled under.
    pub scheduled_edit_id: String,
    /// The spreadsheet edited.
    pub spreadsheet_id: String,
    /// Method id of the request that triggered it.
    pub method_id: String,
    /// Before or after that request.
    pub when: When,
    /// The edit.
    pub edit: PersonEdit,
    /// Why the edit could not be applied (the request went on regardless), if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Pending and fired scheduled edits.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    pending: Vec<ScheduledEdit>,
    fired: Vec<FiredEdit>,
    next_id: u64,
}

impl Schedule {
    /// Adds an edit; returns its id.
    pub(crate) fn add(
        &mut self,
        spreadsheet_id: &str,
        trigger: EditTrigger,
        edit: PersonEdit,
        user: Option<String>,
    ) -> String {
        self.next_id += 1;
        let id = format!("se-{}", self.next_id);
        let remaining = trigger.nth.max(1);
        self.pending.push(ScheduledEdit {
            scheduled_edit_id: id.clone(),
            spreadsheet_id: spreadsheet_id.to_string(),
            trigger,
            remaining,
            edit,
            user,
        });
        id
    }

    /// Counts a request of `method_id` on `spreadsheet_id` against every matching pending edit
    /// and takes out those that fire on it, in the order they were scheduled.
    pub(crate) fn take_due(&mut self, spreadsheet_id: &str, method_id: &str) -> Vec<ScheduledEdit> {
        let mut due = Vec::new();
        let mut keep = Vec::with_capacity(self.pending.len());
        for mut e in std::mem::take(&mut self.pending) {
            if e.spreadsheet_id == spreadsheet_id && e.trigger.matches(method_id) {
                e.remaining = e.remaining.saturating_sub(1);
                if e.remaining == 0 {
                    due.push(e);
                    continue;
                }
            }
            keep.push(e);
        }
        self.pending = keep;
        due
    }

    /// Records a fired edit.
    pub(crate) fn record(&mut self, fired: FiredEdit) {
        self.fired.push(fired);
    }

    /// Pending edits, in scheduling order.
    pub(crate) fn pending(&self) -> Vec<ScheduledEdit> {
        self.pending.clone()
    }

    /// Fired edits, oldest first.
    pub(crate) fn fired(&self) -> Vec<FiredEdit> {
        self.fired.clone()
    }

    /// Cancels one pending edit; whether it existed.
    pub(crate) fn cancel(&mut self, id: &str) -> bool {
        let before = self.pending.len();
        self.pending.retain(|e| e.scheduled_edit_id != id);
        self.pending.len() != before
    }

    /// Forgets pending and fired edits.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.fired.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clear_a1() -> PersonEdit {
        PersonEdit::Clear {
            range: "Sheet1!A1".into(),
        }
    }

    #[test]
    fn nth_matching_request_on_the_same_spreadsheet_fires() {
        let mut s = Schedule::default();
        let id = s.add(
            "ss",
            EditTrigger::before("values.batchGet").nth(2),
            clear_a1(),
            None,
        );
        s.add("ss", EditTrigger::after("values.update"), clear_a1(), None);
        let get = "sheets.spreadsheets.values.batchGet";
        assert!(
            s.take_due("other", get).is_empty(),
            "other spreadsheets do not count"
        );
        assert!(s
            .take_due("ss", "sheets.spreadsheets.values.batchUpdate")
            .is_empty());
        assert!(s.take_due("ss", get).is_empty(), "first of two");
        let due = s.take_due("ss", get);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].scheduled_edit_id, id);
        assert_eq!(due[0].trigger.when, When::Before);
        assert!(s.take_due("ss", get).is_empty(), "fires once");
        assert_eq!(s.pending().len(), 1);
        assert!(!s.cancel(&id));
        let other = s.pending()[0].scheduled_edit_id.clone();
        assert!(s.cancel(&other));
        assert!(s.pending().is_empty());
    }
}
