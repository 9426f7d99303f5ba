//! Drive v3 subset (spec §9.4): files create/get/list/update/delete for spreadsheets.

use serde_json::{json, Value};

use super::request::Query;
use crate::error::ApiError;
use crate::model::Spreadsheet;
use crate::state::Shared;
use crate::values::dates::rfc3339_ms;

/// Google Sheets MIME type.
pub const SHEET_MIME: &str = "application/vnd.google-apps.spreadsheet";

fn not_found(id: &str) -> ApiError {
    let mut e = ApiError::new(404, "NOT_FOUND", format!("File not found: {id}."));
    e.details = None;
    e
}

/// The full Drive `File` resource of a spreadsheet.
pub fn file_json(ss: &Spreadsheet) -> Value {
    json!({
        "kind": "drive#file",
        "id": ss.id,
        "name": ss.title,
        "mimeType": SHEET_MIME,
        "trashed": false,
        "createdTime": rfc3339_ms(ss.created_ms),
        "modifiedTime": rfc3339_ms(ss.modified_ms),
        "version": ss.version.to_string(),
        "webViewLink": ss.url(),
        "owners": [{"kind": "drive#user", "displayName": "Emulator", "me": true}],
    })
}

fn default_fields(f: &Value) -> Value {
    json!({"kind": f["kind"], "id": f["id"], "name": f["name"], "mimeType": f["mimeType"]})
}

/// `files.create` (spreadsheets only).
pub(crate) fn create(shared: &Shared, body: &Value) -> Result<Value, ApiError> {
    let mime = body
        .get("mimeType")
        .and_then(Value::as_str)
        .unwrap_or(SHEET_MIME);
    if mime != SHEET_MIME {
        return Err(ApiError::bad_request(format!(
            "The emulator only stores Google Sheets files ({SHEET_MIME}), not {mime}."
        )));
    }
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("Untitled spreadsheet");
    let v = super::sheets::create(shared, &json!({"properties": {"title": name}}))?;
    let id = v["spreadsheetId"].as_str().unwrap_or_default();
    let ss = shared.spreadsheet(id).ok_or_else(ApiError::not_found)?;
    let f = file_json(&ss.read());
    Ok(default_fields(&f))
}

/// `files.get` (`fields` is applied by the caller; without it the default four fields).
pub(crate) fn get(shared: &Shared, id: &str, q: &Query) -> Result<Value, ApiError> {
    let ss = shared.spreadsheet(id).ok_or_else(|| not_found(id))?;
    let f = file_json(&ss.read());
    if q.get("fields").is_some() {
        Ok(f)
    } else {
        Ok(default_fields(&f))
    }
}

/// `files.update` (rename via `name`).
pub(crate) fn update(shared: &Shared, id: &str, body: &Value) -> Result<Value, ApiError> {
    let ss = shared.spreadsheet(id).ok_or_else(|| not_found(id))?;
    let mut ss = ss.write();
    if let Some(n) = body.get("name").and_then(Value::as_str) {
        ss.title = n.to_string();
        shared.touch(&mut ss);
    }
    Ok(default_fields(&file_json(&ss)))
}

/// `files.delete`.
pub(crate) fn delete(shared: &Shared, id: &str) -> Result<(), ApiError> {
    shared
        .store
        .write()
        .remove(id)
        .map(|_| ())
        .ok_or_else(|| not_found(id))?;
    shared.triggers.remove_spreadsheet(id);
    shared.record_change(id, true);
    Ok(())
}

/// `changes.getStartPageToken`.
pub(crate) fn start_page_token(shared: &Shared) -> Value {
    json!({"kind": "drive#startPageToken", "startPageToken": shared.next_change_seq().to_string()})
}

/// `changes.list`: one entry per file changed since `pageToken` (latest change wins).
pub(crate) fn changes(shared: &Shared, q: &Query) -> Result<Value, ApiError> {
    let token = q.get("pageToken").unwrap_or_default();
    let from: u64 = token
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Invalid Value: pageToken \"{token}\"")))?;
    let log = shared.changes.lock().clone();
    let mut latest: Vec<(u64, String, bool, u64)> = Vec::new();
    for (seq, id, removed, time) in log.into_iter().filter(|c| c.0 >= from) {
        latest.retain(|c| c.1 != id);
        latest.push((seq, id, removed, time));
    }
    let changes: Vec<Value> = latest
        .into_iter()
        .map(|(_, id, removed, time)| {
            let mut c = json!({"kind": "drive#change", "changeType": "file", "fileId": id,
                               "removed": removed, "time": rfc3339_ms(time)});
            if !removed {
                if let Some(ss) = shared.spreadsheet(&id) {
                    c["file"] = default_fields(&file_json(&ss.read()));
                } else {
                    c["removed"] = json!(true);
                }
            }
            c
        })
        .collect();
    Ok(json!({
        "kind": "drive#changeList",
        "newStartPageToken": shared.next_change_seq().to_string(),
        "changes": changes,
    }))
}

/// One clause of a `q` query.
fn clause_matches(f: &Value, clause: &str) -> bool {
    let c = clause.trim();
    let unquote = |s: &str| -> String {
        let s = s.trim();
        if s.len() >= 2
            && ((s.starts_with('\'') && s.ends_with('\''))
                || (s.starts_with('"') && s.ends_with('"')))
        {
            s[1..s.len() - 1].replace("\\'", "'").replace("\\\"", "\"")
        } else {
            s.to_string()
        }
    };
    if let Some((field, value)) = c.split_once(" contains ") {
        let field = field.trim();
        return f
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|v| v.contains(&unquote(value)));
    }
    if let Some((field, value)) = c.split_once("!=") {
        let field = field.trim();
        return f.get(field).map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        }) != Some(unquote(value));
    }
    if let Some((field, value)) = c.split_once('=') {
        let field = field.trim();
        let value = unquote(value);
        return match f.get(field) {
            Some(Value::String(s)) => *s == value,
            Some(Value::Bool(b)) => b.to_string() == value,
            _ => false,
        };
    }
    true
}

/// `files.list` with `q` (equality/contains clauses joined by `and`).
pub(crate) fn list(shared: &Shared, q: &Query) -> Result<Value, ApiError> {
    let query = q.get("q").unwrap_or_default().to_string();
    let clauses: Vec<String> = query
        .split(" and ")
        .map(str::to_string)
        .filter(|c| !c.trim().is_empty())
        .collect();
    let store = shared.store.read();
    let mut files: Vec<Value> = store
        .values()
        .map(|s| file_json(&s.read()))
        .filter(|f| clauses.iter().all(|c| clause_matches(f, c)))
        .collect();
    files.sort_by(|a, b| b["modifiedTime"].as_str().cmp(&a["modifiedTime"].as_str()));
    let files: Vec<Value> = if q.get("fields").is_some() {
        files
    } else {
        files.iter().map(default_fields).collect()
    };
    Ok(json!({"kind": "drive#fileList", "incompleteSearch": false, "files": files}))
}
