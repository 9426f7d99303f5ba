//! Latency and fault injection: fixed latency plus jitter, and rules that answer with an HTTP
//! error (429, 5xx, ...) or drop the connection instead of running the request, run it and then
//! lose its answer (drop or 5xx after the effect), or answer a read short, either for the next
//! N matching requests or at a rate.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::util::Rng;

/// Added latency for every API request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Latency {
    /// Fixed delay in milliseconds.
    pub fixed_ms: u64,
    /// Up to this many extra milliseconds, uniformly random.
    pub jitter_ms: u64,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum FaultKind {
    /// Answer with this HTTP status and Google's body for it.
    Status {
        /// HTTP status (429, 500, 503, ...).
        status: u16,
    },
    /// Close the connection without answering.
    Drop,
    /// Delay the request this long, then serve it normally.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// Run the request fully (its effect stays), then close the connection without answering:
    /// the client cannot tell whether it was applied.
    DropAfter,
    /// Run the request fully (its effect stays), then answer this HTTP status with Google's
    /// body for it instead of the real answer.
    StatusAfter {
        /// HTTP status (500, 503, ...).
        status: u16,
    },
    /// A short, well-formed read: for `values.get` and `values.batchGet` only, the last value
    /// range of the answer loses its last `rows` rows (as if the read missed its tail). Other
    /// methods never match this rule.
    Truncate {
        /// Rows dropped from the end of the last value range.
        rows: u32,
    },
}

impl FaultKind {
    /// Whether this kind can apply to a request of `method_id` (`Truncate` only to reads of
    /// values).
    pub fn applies_to(&self, method_id: &str) -> bool {
        match self {
            FaultKind::Truncate { .. } => {
                method_id.ends_with("values.get")
                    || method_id.ends_with("values.batchGet")
                    || method_id.ends_with("values.batchGetByDataFilter")
            }
            _ => true,
        }
    }

    /// Whether the request still runs (and keeps its effect) under this fault.
    pub fn runs_request(&self) -> bool {
        !matches!(self, FaultKind::Status { .. } | FaultKind::Drop)
    }
}

/// A fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Fire for the next N matching requests (then the rule is removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Fire with this probability (0..=1) for every matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Only requests whose method id contains this text (`values.get`,
    /// `sheets.spreadsheets.batchUpdate`, `drive.`); all if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl FaultRule {
    /// `kind` for the next `n` matching requests.
    pub fn next(kind: FaultKind, n: u32) -> Self {
        FaultRule {
            kind,
            times: Some(n),
            rate: None,
            method: None,
        }
    }

    /// `kind` for every matching request with probability `rate` (0..=1).
    pub fn at_rate(kind: FaultKind, rate: f64) -> Self {
        FaultRule {
            kind,
            times: None,
            rate: Some(rate),
            method: None,
        }
    }

    /// Runs the next `n` requests, then drops their connections without answering.
    pub fn drop_after_next(n: u32) -> Self {
        Self::next(FaultKind::DropAfter, n)
    }

    /// Runs the next `n` requests, then answers them `status` (Google's body) instead.
    pub fn status_after_next(status: u16, n: u32) -> Self {
        Self::next(FaultKind::StatusAfter { status }, n)
    }

    /// Cuts the last `rows` rows off the last value range of the next `n` `values.get` /
    /// `values.batchGet` / `values.batchGetByDataFilter` answers.
    pub fn truncate_next(rows: u32, n: u32) -> Self {
        Self::next(FaultKind::Truncate { rows }, n)
    }

    /// Fails the next `n` requests with `status`.
    pub fn status_next(status: u16, n: u32) -> Self {
        FaultRule {
            kind: FaultKind::Status { status },
            times: Some(n),
            rate: None,
            method: None,
        }
    }

    /// Drops the next `n` connections.
    pub fn drop_next(n: u32) -> Self {
        FaultRule {
            kind: FaultKind::Drop,
            times: Some(n),
            rate: None,
            method: None,
        }
    }

    /// Fails requests with `status` at probability `rate`.
    pub fn status_rate(status: u16, rate: f64) -> Self {
        FaultRule {
            kind: FaultKind::Status { status },
            times: None,
            rate: Some(rate),
            method: None,
        }
    }

    /// Restricts the rule to method ids containing `method`.
    pub fn for_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }
}

/// Active rules.
#[derive(Debug, Default)]
pub struct Faults {
    /// Rules in insertion order.
    pub rules: Vec<FaultRule>,
}

impl Faults {
    /// Picks the fault for a request, if any, consuming `times` counts.
    pub fn pick(&mut self, method_id: &str, rng: &mut Rng) -> Option<FaultKind> {
        for i in 0..self.rules.len() {
            let rule = &mut self.rules[i];
            if let Some(m) = &rule.method {
                if !method_id.contains(m.as_str()) {
                    continue;
                }
            }
            if !rule.kind.applies_to(method_id) {
                continue;
            }
            if let Some(rate) = rule.rate {
                if rng.next_f64() >= rate {
                    continue;
                }
            }
            let kind = rule.kind;
            if let Some(n) = rule.times.as_mut() {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.rules.remove(i);
                }
            }
            return Some(kind);
        }
        None
    }
}

/// Applies [`FaultKind::Truncate`] to a `values.get` answer (a `ValueRange`) or a
/// `values.batchGet` / `values.batchGetByDataFilter` answer (its last `valueRanges` entry): the
/// last `rows` rows go, and what is left is trimmed the way Google trims (no trailing empty rows;
/// `values` omitted when empty).
pub fn truncate_read(answer: &mut Value, rows: u32) {
    let target = match answer.get_mut("valueRanges").and_then(Value::as_array_mut) {
        Some(ranges) => match ranges.last_mut() {
            // `values.batchGetByDataFilter` wraps each range with the filters it matched.
            Some(last) if last.get("valueRange").is_some() => &mut last["valueRange"],
            Some(last) => last,
            None => return,
        },
        None => answer,
    };
    let columns = target.get("majorDimension").and_then(Value::as_str) == Some("COLUMNS");
    let Some(obj) = target.as_object_mut() else {
        return;
    };
    let Some(Value::Array(values)) = obj.get_mut("values") else {
        return;
    };
    if columns {
        let height = values
            .iter()
            .map(|c| c.as_array().map_or(0, Vec::len))
            .max()
            .unwrap_or(0);
        let keep = height.saturating_sub(rows as usize);
        for col in values.iter_mut() {
            if let Value::Array(cells) = col {
                cells.truncate(keep);
                while cells.last().is_some_and(is_empty_cell) {
                    cells.pop();
                }
            }
        }
    } else {
        let keep = values.len().saturating_sub(rows as usize);
        values.truncate(keep);
    }
    while values
        .last()
        .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
    {
        values.pop();
    }
    if values.is_empty() {
        obj.remove("values");
    }
}

fn is_empty_cell(v: &Value) -> bool {
    v.as_str() == Some("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_then_gone() {
        let mut f = Faults::default();
        f.rules
            .push(FaultRule::status_next(503, 2).for_method("values.get"));
        let mut rng = Rng::from_entropy();
        assert_eq!(f.pick("sheets.spreadsheets.get", &mut rng), None);
        assert_eq!(
            f.pick("sheets.spreadsheets.values.get", &mut rng),
            Some(FaultKind::Status { status: 503 })
        );
        assert!(f.pick("sheets.spreadsheets.values.get", &mut rng).is_some());
        assert_eq!(f.pick("sheets.spreadsheets.values.get", &mut rng), None);
        f.rules.push(FaultRule::status_rate(500, 0.0));
        assert_eq!(f.pick("x", &mut rng), None);
        f.rules.push(FaultRule::status_rate(500, 1.0));
        assert!(f.pick("x", &mut rng).is_some());
    }

    #[test]
    fn truncate_matches_value_reads_only() {
        let mut f = Faults::default();
        f.rules.push(FaultRule::truncate_next(1, 1));
        let mut rng = Rng::from_entropy();
        assert_eq!(
            f.pick("sheets.spreadsheets.values.batchUpdate", &mut rng),
            None
        );
        assert_eq!(f.pick("sheets.spreadsheets.get", &mut rng), None);
        assert_eq!(
            f.pick("sheets.spreadsheets.values.batchGet", &mut rng),
            Some(FaultKind::Truncate { rows: 1 })
        );
        assert!(f.rules.is_empty());
    }

    #[test]
    fn truncated_reads_stay_well_formed() {
        let mut v = serde_json::json!({"range": "S!A1:B4", "majorDimension": "ROWS",
            "values": [["a"], [], ["c"], ["d"]]});
        truncate_read(&mut v, 2);
        assert_eq!(
            v["values"],
            serde_json::json!([["a"]]),
            "no trailing empty row"
        );
        truncate_read(&mut v, 5);
        assert!(v.get("values").is_none(), "omitted when empty: {v}");
        let mut b = serde_json::json!({"spreadsheetId": "x", "valueRanges": [
            {"range": "S!A1:A2", "values": [["1"], ["2"]]},
            {"range": "S!B1:B3", "values": [["1"], ["2"], ["3"]]}]});
        truncate_read(&mut b, 1);
        assert_eq!(
            b["valueRanges"][0]["values"],
            serde_json::json!([["1"], ["2"]])
        );
        assert_eq!(
            b["valueRanges"][1]["values"],
            serde_json::json!([["1"], ["2"]])
        );
        let mut c = serde_json::json!({"majorDimension": "COLUMNS",
            "values": [["a", "b", "c"], ["x", "", "z"], ["p"]]});
        truncate_read(&mut c, 1);
        assert_eq!(c["values"], serde_json::json!([["a", "b"], ["x"], ["p"]]));
    }
}
