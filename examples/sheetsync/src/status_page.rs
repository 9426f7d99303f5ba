//! The status page at `/status`: mappings, health, lag, held rows with their reasons, conflicts
//! and pending deletes, for people with a browser.
//!
//! The page itself is static and holds no data, so it is served without the admin token (under
//! the admin API's `Host` check): its script asks for the token when the admin API answers 401,
//! keeps it in the tab's `sessionStorage` and sends it in the `Authorization` header of its
//! requests to `/api/status`, `/api/conflicts` and `/api/deletes`. The token never appears in
//! a URL, so never in a log or a browser history. The script shows every value through
//! `textContent` (cell values are anybody's input), and the Content-Security-Policy allows no
//! inline script or style, no other origin and no framing, so a value that got through as
//! markup could still run nothing.

use std::sync::Arc;

use axum::http::header;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::access::{guard, AdminAccess};

/// Only this origin's script, style and requests; nothing inline, no frames, no forms posting
/// anywhere, no plugins, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const PAGE: &str = include_str!("status_page/page.html");
const SCRIPT: &str = include_str!("status_page/app.js");
const STYLE: &str = include_str!("status_page/app.css");

/// The page and its two assets, behind `access`'s `Host` check (the token is the API's).
pub fn router(access: &AdminAccess) -> Router {
    Router::new()
        .route(
            "/status",
            get(|| async { asset(PAGE, "text/html; charset=utf-8") }),
        )
        .route(
            "/status/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/status/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route_layer(middleware::from_fn_with_state(
            Arc::new(access.hosts_only()),
            guard,
        ))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    fn access() -> AdminAccess {
        AdminAccess {
            token: Some("0123456789abcdef".into()),
            hosts: vec!["127.0.0.1".into()],
        }
    }

    async fn get_page(path: &str, host: &str) -> Response {
        let req = Request::get(path)
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        router(&access()).oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn the_page_is_served_without_the_token_with_a_strict_policy() {
        for path in ["/status", "/status/app.js", "/status/app.css"] {
            let r = get_page(path, "127.0.0.1:8787").await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let h = r.headers();
            assert_eq!(h["content-security-policy"], CONTENT_SECURITY_POLICY);
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["x-frame-options"], "DENY");
        }
        // Another name resolving here (DNS rebinding) gets no page.
        let r = get_page("/status", "attacker.example").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    /// What the policy forbids must not be needed: no inline script, style or handler, and
    /// the script never builds markup from text.
    #[test]
    fn the_page_needs_nothing_the_policy_forbids() {
        let inline_scripts = PAGE.matches("<script").count() - PAGE.matches("<script src=").count();
        assert_eq!(inline_scripts, 0);
        for forbidden in [
            "<style",
            "style=",
            " onclick",
            " onload",
            " onsubmit",
            "javascript:",
        ] {
            assert!(!PAGE.contains(forbidden), "the page uses {forbidden}");
        }
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(forbidden), "the script uses {forbidden}");
        }
        assert!(
            !SCRIPT.contains("localStorage"),
            "the token must stay in the tab"
        );
    }
}
