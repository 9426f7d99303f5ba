//! Latency and fault injection: fixed latency plus jitter, and rules that answer with an HTTP
//! error (429, 5xx, ...) or drop the connection, either for the next N matching requests or at
//! a rate.

use serde::{Deserialize, Serialize};

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
}
