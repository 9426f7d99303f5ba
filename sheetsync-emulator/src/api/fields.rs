//! Partial-response field masks (`fields=`, spec §4.2.2): `a.b` ≡ `a(b)`, `*` = everything,
//! snake_case names are accepted, arrays apply the sub-mask to each element. Also the
//! FieldMask of `updateSheetProperties`/`updateCells` (comma list, `.` or `/` separators).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::request::camel;
use crate::error::ApiError;

/// A parsed mask: an empty mask selects everything below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mask {
    children: BTreeMap<String, Mask>,
}

impl Mask {
    /// Parses `fields` syntax.
    pub fn parse(s: &str) -> Result<Mask, ApiError> {
        let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
        let mut pos = 0;
        let mut root = Mask::default();
        parse_list(&chars, &mut pos, &mut root)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid field selection {s}")))?;
        if pos != chars.len() {
            return Err(ApiError::bad_request(format!(
                "Invalid field selection {s}"
            )));
        }
        Ok(root)
    }

    /// Whether the mask selects the path (e.g. `["sheets", "data"]`).
    pub fn selects(&self, path: &[&str]) -> bool {
        let mut m = self;
        for p in path {
            if m.children.is_empty() || m.children.contains_key("*") {
                return true;
            }
            match m.children.get(*p) {
                Some(c) => m = c,
                None => return false,
            }
        }
        true
    }

    /// Prunes a JSON value to the mask.
    pub fn apply(&self, v: &Value) -> Value {
        if self.children.is_empty() || self.children.contains_key("*") {
            return v.clone();
        }
        match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, sub) in &self.children {
                    if let Some(x) = map.get(k) {
                        out.insert(k.clone(), sub.apply(x));
                    }
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.apply(x)).collect()),
            other => other.clone(),
        }
    }
}

fn parse_list(c: &[char], pos: &mut usize, into: &mut Mask) -> Option<()> {
    loop {
        parse_item(c, pos, into)?;
        if *pos < c.len() && c[*pos] == ',' {
            *pos += 1;
            continue;
        }
        return Some(());
    }
}

fn parse_item(c: &[char], pos: &mut usize, into: &mut Mask) -> Option<()> {
    let mut path = Vec::new();
    loop {
        let st = *pos;
        while *pos < c.len()
            && (c[*pos].is_alphanumeric() || c[*pos] == '_' || c[*pos] == '*' || c[*pos] == '@')
        {
            *pos += 1;
        }
        if st == *pos {
            return None;
        }
        let name: String = c[st..*pos].iter().collect();
        path.push(camel(&name));
        if *pos < c.len() && (c[*pos] == '.' || c[*pos] == '/') {
            *pos += 1;
            continue;
        }
        break;
    }
    let mut node = into;
    for p in &path {
        node = node.children.entry(p.clone()).or_default();
    }
    if *pos < c.len() && c[*pos] == '(' {
        *pos += 1;
        parse_list(c, pos, node)?;
        if *pos >= c.len() || c[*pos] != ')' {
            return None;
        }
        *pos += 1;
    }
    Some(())
}

/// Paths of an update FieldMask (`gridProperties/rowCount,title` → `["gridProperties.rowCount", "title"]`).
pub fn update_paths(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(m: &Mask, prefix: &str, out: &mut Vec<String>) {
        for (k, sub) in &m.children {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if sub.children.is_empty() {
                out.push(p);
            } else {
                walk(sub, &p, out);
            }
        }
    }
    if let Ok(m) = Mask::parse(s) {
        walk(&m, "", &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks() {
        let v = json!({"spreadsheetId": "x", "properties": {"title": "t", "locale": "en_US"},
            "sheets": [{"properties": {"sheetId": 0, "title": "S", "index": 0}, "data": [1]}]});
        let m = Mask::parse("spreadsheetId,sheets.properties(sheetId,title)").unwrap();
        assert_eq!(
            m.apply(&v),
            json!({"spreadsheetId": "x", "sheets": [{"properties": {"sheetId": 0, "title": "S"}}]})
        );
        let m = Mask::parse("properties/title, sheets(data)").unwrap();
        assert_eq!(
            m.apply(&v),
            json!({"properties": {"title": "t"}, "sheets": [{"data": [1]}]})
        );
        assert!(m.selects(&["sheets", "data"]));
        assert!(!m.selects(&["sheets", "properties"]));
        let m = Mask::parse("spreadsheet_id").unwrap();
        assert_eq!(m.apply(&v), json!({"spreadsheetId": "x"}));
        assert!(Mask::parse("a(b").is_err());
        assert_eq!(
            update_paths("gridProperties/rowCount,gridProperties/columnCount"),
            vec!["gridProperties.columnCount", "gridProperties.rowCount"]
        );
    }
}
