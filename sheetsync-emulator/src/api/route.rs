//! Routing on the raw path (spec §2.2): which Google method a request calls.

use axum::http::Method;

use super::request::decode_segment;

/// A routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// spreadsheets.create
    Create,
    /// spreadsheets.get
    Get(String),
    /// spreadsheets.batchUpdate
    BatchUpdate(String),
    /// values.get
    ValuesGet(String, String),
    /// values.update
    ValuesUpdate(String, String),
    /// values.append
    ValuesAppend(String, String),
    /// values.clear
    ValuesClear(String, String),
    /// values.batchGet
    ValuesBatchGet(String),
    /// values.batchGetByDataFilter
    ValuesBatchGetByDataFilter(String),
    /// values.batchUpdate
    ValuesBatchUpdate(String),
    /// values.batchClear
    ValuesBatchClear(String),
    /// developerMetadata.search
    MetaSearch(String),
    /// developerMetadata.get
    MetaGet(String, String),
    /// A Google method the emulator does not implement.
    Unsupported(&'static str),
    /// drive.files.create
    DriveCreate,
    /// drive.files.list
    DriveList,
    /// drive.files.get
    DriveGet(String),
    /// drive.files.update (rename)
    DriveUpdate(String),
    /// drive.files.delete
    DriveDelete(String),
    /// drive.changes.getStartPageToken
    DriveStartPageToken,
    /// drive.changes.list
    DriveChanges,
}

impl Route {
    /// Discovery method id.
    pub fn method_id(&self) -> &'static str {
        match self {
            Route::Create => "sheets.spreadsheets.create",
            Route::Get(_) => "sheets.spreadsheets.get",
            Route::BatchUpdate(_) => "sheets.spreadsheets.batchUpdate",
            Route::ValuesGet(..) => "sheets.spreadsheets.values.get",
            Route::ValuesUpdate(..) => "sheets.spreadsheets.values.update",
            Route::ValuesAppend(..) => "sheets.spreadsheets.values.append",
            Route::ValuesClear(..) => "sheets.spreadsheets.values.clear",
            Route::ValuesBatchGet(_) => "sheets.spreadsheets.values.batchGet",
            Route::ValuesBatchGetByDataFilter(_) => {
                "sheets.spreadsheets.values.batchGetByDataFilter"
            }
            Route::ValuesBatchUpdate(_) => "sheets.spreadsheets.values.batchUpdate",
            Route::ValuesBatchClear(_) => "sheets.spreadsheets.values.batchClear",
            Route::MetaSearch(_) => "sheets.spreadsheets.developerMetadata.search",
            Route::MetaGet(..) => "sheets.spreadsheets.developerMetadata.get",
            Route::Unsupported(id) => id,
            Route::DriveCreate => "drive.files.create",
            Route::DriveList => "drive.files.list",
            Route::DriveGet(_) => "drive.files.get",
            Route::DriveUpdate(_) => "drive.files.update",
            Route::DriveDelete(_) => "drive.files.delete",
            Route::DriveStartPageToken => "drive.changes.getStartPageToken",
            Route::DriveChanges => "drive.changes.list",
        }
    }

    /// The spreadsheet (or Drive file) the request addresses.
    pub fn spreadsheet_id(&self) -> Option<&str> {
        match self {
            Route::Get(id)
            | Route::BatchUpdate(id)
            | Route::ValuesGet(id, _)
            | Route::ValuesUpdate(id, _)
            | Route::ValuesAppend(id, _)
            | Route::ValuesClear(id, _)
            | Route::ValuesBatchGet(id)
            | Route::ValuesBatchGetByDataFilter(id)
            | Route::ValuesBatchUpdate(id)
            | Route::ValuesBatchClear(id)
            | Route::MetaSearch(id)
            | Route::MetaGet(id, _)
            | Route::DriveGet(id)
            | Route::DriveUpdate(id)
            | Route::DriveDelete(id) => Some(id),
            _ => None,
        }
    }

    /// Whether the Sheets quota counts this as a write (else a read). `None` for Drive.
    pub fn sheets_write(&self) -> Option<bool> {
        match self {
            Route::Get(_)
            | Route::ValuesGet(..)
            | Route::ValuesBatchGet(_)
            | Route::ValuesBatchGetByDataFilter(_)
            | Route::MetaSearch(_)
            | Route::MetaGet(..) => Some(false),
            Route::DriveCreate
            | Route::DriveList
            | Route::DriveGet(_)
            | Route::DriveUpdate(_)
            | Route::DriveDelete(_)
            | Route::DriveStartPageToken
            | Route::DriveChanges => None,
            _ => Some(true),
        }
    }
}

/// Routes on the raw (undecoded) path.
pub fn route(method: &Method, raw_path: &str) -> Option<Route> {
    match (method, raw_path.trim_end_matches('/')) {
        (&Method::GET, "/drive/v3/changes/startPageToken") => {
            return Some(Route::DriveStartPageToken)
        }
        (&Method::GET, "/drive/v3/changes") => return Some(Route::DriveChanges),
        _ => {}
    }
    if let Some(rest) = raw_path.strip_prefix("/drive/v3/files") {
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() {
            return match *method {
                Method::POST => Some(Route::DriveCreate),
                Method::GET => Some(Route::DriveList),
                _ => None,
            };
        }
        let id = decode_segment(rest.strip_prefix('/')?);
        if id.contains('/') {
            return None;
        }
        return match *method {
            Method::GET => Some(Route::DriveGet(id)),
            Method::PATCH => Some(Route::DriveUpdate(id)),
            Method::DELETE => Some(Route::DriveDelete(id)),
            _ => None,
        };
    }
    let rest = raw_path.strip_prefix("/v4/spreadsheets")?;
    if rest.is_empty() || rest == "/" {
        return (*method == Method::POST).then_some(Route::Create);
    }
    let rest = rest.strip_prefix('/')?;
    let id_end = rest.find(['/', ':']).unwrap_or(rest.len());
    let id = decode_segment(&rest[..id_end]);
    let tail = &rest[id_end..];
    let m = method.clone();
    match tail {
        "" => (m == Method::GET).then_some(Route::Get(id)),
        ":batchUpdate" => (m == Method::POST).then_some(Route::BatchUpdate(id)),
        ":getByDataFilter" => Some(Route::Unsupported("sheets.spreadsheets.getByDataFilter")),
        "/values:batchGet" => (m == Method::GET).then_some(Route::ValuesBatchGet(id)),
        "/values:batchUpdate" => (m == Method::POST).then_some(Route::ValuesBatchUpdate(id)),
        "/values:batchClear" => (m == Method::POST).then_some(Route::ValuesBatchClear(id)),
        "/values:batchGetByDataFilter" => {
            (m == Method::POST).then_some(Route::ValuesBatchGetByDataFilter(id))
        }
        "/values:batchUpdateByDataFilter" => Some(Route::Unsupported(
            "sheets.spreadsheets.values.batchUpdateByDataFilter",
        )),
        "/values:batchClearByDataFilter" => Some(Route::Unsupported(
            "sheets.spreadsheets.values.batchClearByDataFilter",
        )),
        "/developerMetadata:search" => (m == Method::POST).then_some(Route::MetaSearch(id)),
        _ => {
            if let Some(mid) = tail.strip_prefix("/developerMetadata/") {
                return (m == Method::GET).then(|| Route::MetaGet(id, decode_segment(mid)));
            }
            if tail.starts_with("/sheets/") && tail.ends_with(":copyTo") {
                return Some(Route::Unsupported("sheets.spreadsheets.sheets.copyTo"));
            }
            let range_raw = tail.strip_prefix("/values/")?;
            if range_raw.is_empty() {
                return None;
            }
            match m {
                Method::GET => Some(Route::ValuesGet(id, decode_segment(range_raw))),
                Method::PUT => Some(Route::ValuesUpdate(id, decode_segment(range_raw))),
                Method::POST => {
                    if let Some(r) = range_raw.strip_suffix(":append") {
                        return Some(Route::ValuesAppend(id, decode_segment(r)));
                    }
                    if let Some(r) = range_raw.strip_suffix(":clear") {
                        return Some(Route::ValuesClear(id, decode_segment(r)));
                    }
                    let decoded = decode_segment(range_raw);
                    if let Some(r) = decoded.strip_suffix(":append") {
                        return Some(Route::ValuesAppend(id, r.to_string()));
                    }
                    if let Some(r) = decoded.strip_suffix(":clear") {
                        return Some(Route::ValuesClear(id, r.to_string()));
                    }
                    None
                }
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_raw_paths() {
        let r = route(
            &Method::GET,
            "/v4/spreadsheets/abc/values/%27My%20Sheet%27%21A1%3AB2",
        );
        assert_eq!(
            r,
            Some(Route::ValuesGet("abc".into(), "'My Sheet'!A1:B2".into()))
        );
        let r = route(
            &Method::GET,
            "/v4/spreadsheets/abc/values/'My%20Sheet'!A1:B2",
        );
        assert_eq!(
            r,
            Some(Route::ValuesGet("abc".into(), "'My Sheet'!A1:B2".into()))
        );
        let r = route(
            &Method::POST,
            "/v4/spreadsheets/abc/values/Sheet1!A:A:append",
        );
        assert_eq!(
            r,
            Some(Route::ValuesAppend("abc".into(), "Sheet1!A:A".into()))
        );
        let r = route(
            &Method::POST,
            "/v4/spreadsheets/abc/values/%27Sheet1%27%21A1%3A1%3Aclear",
        );
        assert_eq!(
            r,
            Some(Route::ValuesClear("abc".into(), "'Sheet1'!A1:1".into()))
        );
        let r = route(&Method::GET, "/v4/spreadsheets/abc/values/Users+!1:101");
        assert_eq!(
            r,
            Some(Route::ValuesGet("abc".into(), "Users !1:101".into()))
        );
        let r = route(&Method::GET, "/v4/spreadsheets/abc/values/a%2Fb!A1");
        assert_eq!(r, Some(Route::ValuesGet("abc".into(), "a/b!A1".into())));
        assert_eq!(route(&Method::POST, "/v4/spreadsheets/abc/values/A1"), None);
        assert_eq!(
            route(&Method::POST, "/v4/spreadsheets"),
            Some(Route::Create)
        );
        assert_eq!(
            route(&Method::GET, "/v4/spreadsheets/abc/values:batchGet"),
            Some(Route::ValuesBatchGet("abc".into()))
        );
        let by_filter = route(
            &Method::POST,
            "/v4/spreadsheets/abc/values:batchGetByDataFilter",
        );
        assert_eq!(
            by_filter,
            Some(Route::ValuesBatchGetByDataFilter("abc".into()))
        );
        assert_eq!(by_filter.unwrap().sheets_write(), Some(false), "a read");
        assert_eq!(
            route(&Method::GET, "/v4/spreadsheets/abc/developerMetadata/12"),
            Some(Route::MetaGet("abc".into(), "12".into()))
        );
        assert_eq!(
            route(&Method::DELETE, "/drive/v3/files/xyz"),
            Some(Route::DriveDelete("xyz".into()))
        );
    }
}
