//! Reading a request: query parameters (snake_case names accepted as camelCase), JSON
//! bodies, and percent-encoded path segments.

use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use crate::error::ApiError;

/// Decoded query parameters (keys normalised from snake_case to camelCase).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// `value_input_option` → `valueInputOption`.
pub fn camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for ch in s.chars() {
        if ch == '_' && !out.is_empty() {
            up = true;
        } else if up {
            out.extend(ch.to_uppercase());
            up = false;
        } else {
            out.push(ch);
        }
    }
    out
}

impl Query {
    /// Parses a raw query string as `application/x-www-form-urlencoded`.
    pub fn parse(q: Option<&str>) -> Self {
        let pairs = q
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (camel(&k), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// First value of a parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a repeated parameter.
    pub fn all(&self, k: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter (`true`/`True`/`false`/`False`).
    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(Some(false)),
            Some(v) => Err(ApiError::bad_request(format!(
                "Invalid value at '{k}' (TYPE_BOOL), \"{v}\""
            ))),
        }
    }
}

/// Parses a JSON request body; empty bodies are `{}`.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON payload received. {e}")))
}

/// Percent-decodes a path segment once (`+` is a space, as Google decodes it).
pub fn decode_segment(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Rejects unknown fields the way Google's JSON binding does.
pub fn check_fields(body: &Value, allowed: &[&str], at: Option<&str>) -> Result<(), ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request(format!(
            "Invalid JSON payload received. Expected an object{}.",
            at.map(|a| format!(" at '{a}'")).unwrap_or_default()
        )));
    };
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            let at = at.map(|a| format!(" at '{a}'")).unwrap_or_default();
            let msg = format!(
                "Invalid JSON payload received. Unknown name \"{k}\"{at}: Cannot find field."
            );
            let mut e = ApiError::bad_request(msg.clone());
            e.details = Some(json!([{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": at_field(at.as_str(), k), "description": msg}]
            }]));
            return Err(e);
        }
    }
    Ok(())
}

fn at_field(at: &str, k: &str) -> String {
    let base = at.trim_start_matches(" at '").trim_end_matches('\'');
    if base.is_empty() {
        k.to_string()
    } else {
        format!("{base}.{k}")
    }
}

/// `Invalid value at 'field' (type.googleapis.com/google.apps.sheets.v4.Type), "value"`.
pub fn enum_error(field: &str, ty: &str, v: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid value at '{field}' (type.googleapis.com/google.apps.sheets.v4.{ty}), \"{v}\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_booleans_and_camel() {
        let q = Query::parse(Some(
            "include_values_in_response=True&ranges=a+b&ranges=c%20d",
        ));
        assert_eq!(q.bool("includeValuesInResponse").unwrap(), Some(true));
        assert_eq!(q.all("ranges"), vec!["a b".to_string(), "c d".to_string()]);
    }
}
