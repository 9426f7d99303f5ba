//! Who may use the daemon's admin API, its status page and the demo's page: the `Host` check
//! and the bearer token ([`AdminAccess`], [`guard`]), and the API's error answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answer of the admin API.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// Who may use the admin API (and the demo's page): requests must name one of `hosts` in
/// their `Host` header (so a web page on another name that resolves to this host, DNS
/// rebinding, cannot reach it), and carry `Authorization: Bearer <token>` when a token is set.
#[derive(Debug, Clone)]
pub struct AdminAccess {
    /// The token every request must carry.
    pub token: Option<String>,
    /// The host names (without port) the `Host` header may carry, lower case.
    pub hosts: Vec<String>,
}

impl AdminAccess {
    /// The same `Host` check without the token: for pages that hold no data themselves.
    pub fn hosts_only(&self) -> AdminAccess {
        AdminAccess {
            token: None,
            hosts: self.hosts.clone(),
        }
    }

    /// Checks one request's headers.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_name);
        match host {
            Some(h) if self.hosts.contains(&h) => {}
            Some(h) => {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    format!(
                        "Host {h:?} is not one of this daemon's names ({}); add it to server.allowed_hosts",
                        self.hosts.join(", ")
                    ),
                ))
            }
            None => {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "the request has no Host header".into(),
                ))
            }
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        match given {
            Some(g) if same_secret(g.trim().as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "wrong admin token".into(),
            )),
            None => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "the admin API needs `Authorization: Bearer <server.admin_token>`".into(),
            )),
        }
    }
}

/// The host name of a `Host` header value: without the port, lower case, IPv6 without brackets.
pub fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        diff |= std::hint::black_box((x ^ y) as usize);
    }
    diff == 0
}

/// The middleware in front of the admin API and the demo's page.
pub async fn guard(State(access): State<Arc<AdminAccess>>, req: Request, next: Next) -> Response {
    match access.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            let mut r = e.into_response();
            if r.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer".parse().expect("a header value"),
                );
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_are_compared_by_name() {
        assert_eq!(host_name("Sync.Example.COM:8787"), "sync.example.com");
        assert_eq!(host_name("[::1]:8787"), "::1");
        assert_eq!(host_name("localhost."), "localhost");
        let access = AdminAccess {
            token: Some("0123456789abcdef".into()),
            hosts: vec!["127.0.0.1".into()],
        };
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let ok = headers(&[
            ("host", "127.0.0.1:1"),
            ("authorization", "Bearer 0123456789abcdef"),
        ]);
        assert!(access.check(&ok).is_ok());
        let rebound = headers(&[
            ("host", "evil.example"),
            ("authorization", "Bearer 0123456789abcdef"),
        ]);
        assert_eq!(access.check(&rebound).unwrap_err().0, StatusCode::FORBIDDEN);
        let wrong = headers(&[
            ("host", "127.0.0.1"),
            ("authorization", "Bearer 0123456789abcdeF"),
        ]);
        assert_eq!(
            access.check(&wrong).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert!(
            !same_secret(b"abc", b"abcd") && !same_secret(b"", b"a") && same_secret(b"ab", b"ab")
        );
    }
}
