//! The daemon's HTTP side: the Apps Script webhook, `/healthz`, `/metrics`, and an admin API for
//! conflicts, held rows and pending deletes, guarded by [`AdminAccess`].

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sheetsync::gsheets::webhook::{WebhookConfig, WebhookReceiver};
use sheetsync::{
    Choice, DeleteDecision, DeleteSelection, Engine, MappingHandle, PendingDelete, Placement, Row,
    RowKey, SheetSync, Side, TableSchema, Value,
};

pub use crate::access::{guard, AdminAccess, ApiError};
use crate::metrics::{self, MappingMetrics};

/// One running mapping, with its counters.
pub struct MappingRuntime {
    /// The mapping (its engine, events and health).
    pub handle: Arc<MappingHandle>,
    /// Its counters.
    pub metrics: Arc<MappingMetrics>,
}

impl MappingRuntime {
    fn name(&self) -> &str {
        self.handle.name()
    }

    /// The mapping's engine, or an answer saying that it runs elsewhere.
    fn engine(&self) -> Result<Arc<Engine>, ApiError> {
        self.handle.engine().ok_or_else(|| {
            let elsewhere = match self.handle.placement() {
                Placement::Waiting { owner: Some(o), .. } => {
                    format!("it runs on replica {} (lease epoch {})", o.owner, o.epoch)
                }
                _ => "it runs on another replica, or starts".into(),
            };
            ApiError(
                StatusCode::CONFLICT,
                format!(
                    "mapping {:?} does not run in this process: {elsewhere}; ask that replica",
                    self.name()
                ),
            )
        })
    }
}

/// Where a mapping runs, for `/api/status`: `placement` (`running`, `waiting` or
/// `starting`), and the process that runs it (`replica`) with its lease `epoch`, when known.
fn placement_json(handle: &MappingHandle) -> serde_json::Value {
    match handle.placement() {
        Placement::Running { epoch } => json!({
            "placement": "running",
            "epoch": epoch,
            "replica": sheetsync::sync::process_name(),
        }),
        Placement::Waiting { owner, full } => json!({
            "placement": "waiting",
            "epoch": owner.as_ref().map(|o| o.epoch),
            "replica": owner.as_ref().map(|o| o.owner.clone()),
            "share_full": full,
        }),
        Placement::Starting => json!({ "placement": "starting", "epoch": null, "replica": null }),
    }
}

/// What the HTTP handlers share.
pub struct Daemon {
    /// The mappings.
    pub mappings: Vec<MappingRuntime>,
    /// The sync (its Sheets client, for API call metrics, and its router of reported edits).
    pub sync: Arc<SheetSync>,
    /// The webhook receiver, once the public router has one (for its counters).
    pub webhook: std::sync::OnceLock<WebhookReceiver>,
}

impl Daemon {
    /// The daemon of a sync: its counters follow every mapping's events from now on.
    pub fn new(sync: Arc<SheetSync>) -> Daemon {
        let mappings = sync
            .mappings()
            .iter()
            .map(|handle| {
                let metrics = Arc::new(MappingMetrics::new());
                metrics.clone().follow(handle.subscribe());
                MappingRuntime {
                    handle: handle.clone(),
                    metrics,
                }
            })
            .collect();
        Daemon {
            mappings,
            sync,
            webhook: Default::default(),
        }
    }

    fn mapping(&self, name: &str) -> Result<&MappingRuntime, ApiError> {
        self.mappings
            .iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no mapping named {name:?}")))
    }
}

/// The public router: webhook (when a secret is configured), health and metrics.
pub fn public_router(
    daemon: Arc<Daemon>,
    webhook: Option<(String, String)>,
) -> sheetsync::Result<Router> {
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(daemon.clone());
    if let (Some((path, secret)), Some(edits)) = (webhook, daemon.sync.edit_router()) {
        let receiver = WebhookReceiver::new(WebhookConfig::new(secret), edits.handler())?;
        app = app.merge(receiver.router(&path));
        let _ = daemon.webhook.set(receiver);
    }
    Ok(app)
}

/// The admin API, behind `access`, and the status page that reads it.
pub fn admin_router(daemon: Arc<Daemon>, access: Arc<AdminAccess>) -> Router {
    let page = crate::status_page::router(&access);
    Router::new()
        .route("/api/status", get(status))
        .route("/api/conflicts", get(conflicts))
        .route("/api/conflicts/resolve", post(resolve))
        .route("/api/deletes", get(deletes))
        .route("/api/deletes/approve", post(approve_deletes))
        .route("/api/deletes/reject", post(reject_deletes))
        .with_state(daemon)
        .route_layer(middleware::from_fn_with_state(access, guard))
        .merge(page)
}

/// What `/api/...` and the status page answer where the admin API is not served: `why` says
/// where it is, or how to turn it on.
pub fn admin_elsewhere(status: StatusCode, why: &'static str) -> Router {
    let answer = move || async move { ApiError(status, why.into()) };
    Router::new()
        .route("/api", any(answer))
        .route("/api/{*rest}", any(answer))
        .route("/status", any(answer))
        .route("/status/{*rest}", any(answer))
}

/// A mapping's health: `down` while its engine is down after a panic, `elsewhere` while this
/// replica does not run it (another replica reports it), `lagging` until it finished a cycle
/// within ten poll intervals, else `ok`.
fn health(m: &MappingRuntime) -> &'static str {
    if !m.handle.is_up() {
        return "down";
    }
    let Some(engine) = m.handle.engine() else {
        return "elsewhere";
    };
    let limit = 10 * engine.mapping().timing.poll_interval_ms.max(1000) as i64;
    match m.metrics.lag_ms().is_none_or(|lag| lag > limit) {
        true => "lagging",
        false => "ok",
    }
}

async fn healthz(State(d): State<Arc<Daemon>>) -> impl IntoResponse {
    let of = |state: &str| -> Vec<&str> {
        d.mappings
            .iter()
            .filter(|m| health(m) == state)
            .map(|m| m.name())
            .collect()
    };
    // Unhealthy at once while a mapping's engine is down after a panic.
    let down = of("down");
    if !down.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "down", "mappings": down})),
        );
    }
    let stale = of("lagging");
    if stale.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "lagging", "mappings": stale})),
        )
    }
}

async fn metrics_text(State(d): State<Arc<Daemon>>) -> impl IntoResponse {
    let maps: Vec<(&MappingHandle, &MappingMetrics)> = d
        .mappings
        .iter()
        .map(|m| (&*m.handle, &*m.metrics))
        .collect();
    let (calls, retries) = match d.sync.sheets_client() {
        Some(c) => (c.counter().calls(), c.counter().retries()),
        None => Default::default(),
    };
    let mut text = metrics::render(&maps, &calls, &retries);
    if let Some(receiver) = d.webhook.get() {
        metrics::render_webhook(&mut text, &receiver.stats());
    }
    metrics::render_watchers(&mut text, d.sync.watchers());
    ([("content-type", "text/plain; version=0.0.4")], text)
}

async fn status(State(d): State<Arc<Daemon>>) -> Result<Json<serde_json::Value>, ApiError> {
    let mut out = Vec::new();
    for m in &d.mappings {
        let mut one = json!({
            "mapping": m.name(),
            "up": m.handle.is_up(),
            "health": health(m),
            "panics": m.handle.panics(),
            "lag_ms": m.metrics.lag_ms(),
            "held": m.handle.held().await,
            "conflicts": m.handle.conflicts().await.len(),
            "pending_deletes": m.handle.pending_deletes().await.len(),
        });
        if let (Some(one), serde_json::Value::Object(place)) =
            (one.as_object_mut(), placement_json(&m.handle))
        {
            one.extend(place);
        }
        out.push(one);
    }
    let share = d.sync.share().map(|s| {
        json!({
            "replica": s.replica,
            "replicas": s.replicas,
            "share": s.share,
            "running": s.held,
            "sharing": s.enabled,
        })
    });
    Ok(Json(json!({ "mappings": out, "replicas": share })))
}

#[derive(Deserialize)]
struct MappingQuery {
    mapping: Option<String>,
}

async fn conflicts(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<MappingQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut out = Vec::new();
    for m in &d.mappings {
        if q.mapping.as_ref().is_some_and(|n| n != m.name()) {
            continue;
        }
        out.push(json!({
            "mapping": m.name(),
            "conflicts": m.handle.conflicts().await,
            "held": m.handle.held().await,
        }));
    }
    Ok(Json(json!(out)))
}

/// `POST /api/conflicts/resolve`: `{"mapping": "...", "key": ["42"], "side": "sheet"}` or
/// `{..., "row": ["42", "value", ...]}` (text forms of the values).
#[derive(Deserialize)]
pub struct ResolveRequest {
    /// The mapping.
    pub mapping: String,
    /// The key values, as text.
    pub key: Vec<String>,
    /// Take this side's row.
    pub side: Option<Side>,
    /// Or take these values (text forms, one per column).
    pub row: Option<Vec<String>>,
}

async fn resolve(
    State(d): State<Arc<Daemon>>,
    Json(req): Json<ResolveRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let m = d.mapping(&req.mapping)?;
    let engine = m.engine()?;
    let schema = engine.schema();
    let bad = |msg: String| ApiError(StatusCode::BAD_REQUEST, msg);
    let key = parse_key(schema, &req.key)?;
    let choice = match (req.side, req.row) {
        (Some(side), None) => Choice::Side(side),
        (None, Some(texts)) => {
            if texts.len() != schema.columns.len() {
                return Err(bad(format!(
                    "the row needs {} values",
                    schema.columns.len()
                )));
            }
            let values = schema
                .columns
                .iter()
                .zip(&texts)
                .map(|(c, t)| {
                    Value::parse(c.ty, t).map_err(|e| bad(format!("column {:?}: {e}", c.name)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Choice::Row(Row::new(values))
        }
        _ => return Err(bad("give exactly one of \"side\" and \"row\"".into())),
    };
    engine
        .resolve_conflict(&key, choice)
        .await
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok(Json(json!({"resolved": req.key, "mapping": m.name()})))
}

/// A key from the text forms of its values.
fn parse_key(schema: &TableSchema, texts: &[String]) -> Result<RowKey, ApiError> {
    let bad = |msg: String| ApiError(StatusCode::BAD_REQUEST, msg);
    if texts.len() != schema.key.len() {
        return Err(bad(format!(
            "the key has {} column(s): {:?}",
            schema.key.len(),
            schema.key_names()
        )));
    }
    let values = schema
        .key
        .iter()
        .zip(texts)
        .map(|(&i, text)| Value::parse(schema.columns[i].ty, text).map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RowKey::from_values(&values))
}

/// A pending delete for people: the key and row as text, by column.
fn pending_json(schema: &TableSchema, p: &PendingDelete) -> serde_json::Value {
    let text = |v: &Value| (!v.is_null()).then(|| v.to_string());
    let row: serde_json::Map<String, serde_json::Value> = schema
        .columns
        .iter()
        .zip(p.row.values())
        .map(|(c, v)| (c.name.clone(), json!(text(v))))
        .collect();
    json!({
        "key": p.key.values().iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        "deleted_on": p.deleted_on,
        "row": row,
        "queued_at": p.queued_at,
        "reason": p.reason,
        "decision": p.decision,
    })
}

/// `GET /api/deletes[?mapping=...]`: the deletes waiting for approval, oldest first.
async fn deletes(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<MappingQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut out = Vec::new();
    for m in &d.mappings {
        if q.mapping.as_ref().is_some_and(|n| n != m.name()) {
            continue;
        }
        let Some(engine) = m.handle.engine() else {
            continue; // its replica lists them
        };
        let schema = engine.schema();
        let pending: Vec<serde_json::Value> = engine
            .pending_deletes()
            .await
            .iter()
            .map(|p| pending_json(schema, p))
            .collect();
        out.push(json!({ "mapping": m.name(), "pending_deletes": pending }));
    }
    Ok(Json(json!(out)))
}

/// `POST /api/deletes/approve` and `/api/deletes/reject`: `{"mapping": "...", "all": true}`,
/// `{..., "keys": [["42"], ["43"]]}` (text forms of each key's values) or
/// `{..., "older_than_secs": 3600}`.
#[derive(Deserialize)]
pub struct DecideRequest {
    /// The mapping.
    pub mapping: String,
    /// Every pending delete of the mapping.
    #[serde(default)]
    pub all: bool,
    /// These rows' pending deletes.
    #[serde(default)]
    pub keys: Vec<Vec<String>>,
    /// Pending deletes parked at least this many seconds ago.
    pub older_than_secs: Option<u64>,
}

async fn approve_deletes(
    state: State<Arc<Daemon>>,
    Json(req): Json<DecideRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(state, req, DeleteDecision::Approve).await
}

async fn reject_deletes(
    state: State<Arc<Daemon>>,
    Json(req): Json<DecideRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(state, req, DeleteDecision::Reject).await
}

async fn decide(
    State(d): State<Arc<Daemon>>,
    req: DecideRequest,
    decision: DeleteDecision,
) -> Result<Json<serde_json::Value>, ApiError> {
    let m = d.mapping(&req.mapping)?;
    let selection = match (req.all, req.keys.is_empty(), req.older_than_secs) {
        (true, true, None) => DeleteSelection::All,
        (false, false, None) => DeleteSelection::Keys(
            req.keys
                .iter()
                .map(|k| parse_key(m.engine()?.schema(), k))
                .collect::<Result<_, _>>()?,
        ),
        (false, true, Some(secs)) => {
            DeleteSelection::OlderThan(std::time::Duration::from_secs(secs))
        }
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give exactly one of \"all\": true, \"keys\" and \"older_than_secs\"".into(),
            ))
        }
    };
    let (verb, result) = match decision {
        DeleteDecision::Approve => ("approved", m.handle.approve_deletes(&selection).await),
        DeleteDecision::Reject => ("rejected", m.handle.reject_deletes(&selection).await),
    };
    let n = result.map_err(|e| {
        let status = if e.kind() == sheetsync::ErrorKind::NotFound {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError(status, e.to_string())
    })?;
    Ok(Json(json!({ "mapping": m.name(), verb: n })))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sheetsync::{
        Column, ColumnType, Engine, EngineFactory, FnResolver, MappingConfig, MemoryTable, OnPanic,
        Supervised,
    };

    use super::*;

    /// A sync whose one mapping panics in every cycle: both sides hold row 1 with other names,
    /// and the resolver asked about it panics.
    async fn panicking_sync() -> Arc<SheetSync> {
        let schema = TableSchema::new(
            "t",
            vec![
                Column::new("id", ColumnType::Int).nullable(false),
                Column::new("name", ColumnType::Text),
            ],
            &["id"],
        )
        .unwrap();
        let sheet = Arc::new(MemoryTable::sheet_like("sheet", schema.clone()));
        let db = Arc::new(MemoryTable::new("db", schema));
        sheet.upsert(Row::new(vec![Value::Int(1), "a".into()]));
        db.upsert(Row::new(vec![Value::Int(1), "b".into()]));
        let factory: EngineFactory = Arc::new(move || {
            let (s, d) = (sheet.clone(), db.clone());
            Box::pin(async move {
                Engine::builder(MappingConfig::new("m", &["id"]), s, d)
                    .resolver(FnResolver::new(|_| panic!("a resolver bug")))
                    .build()
                    .await
            })
        });
        let mapping = Supervised::new("m", OnPanic::Restart, factory);
        let sync = SheetSync::supervise(vec![mapping]).await.unwrap();
        sync.start();
        Arc::new(sync)
    }

    async fn text(r: axum::response::Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_panicked_mapping_turns_health_red_at_once_and_is_counted() {
        let sync = panicking_sync().await;
        let daemon = Arc::new(Daemon::new(sync.clone()));
        let m = sync.mappings()[0].clone();
        for _ in 0..2_000 {
            if !m.is_up() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!m.is_up(), "the mapping never went down");
        let health = healthz(State(daemon.clone())).await.into_response();
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(text(health).await, r#"{"mappings":["m"],"status":"down"}"#);
        let metrics = text(metrics_text(State(daemon)).await.into_response()).await;
        assert!(
            metrics.contains("sheetsync_mapping_up{mapping=\"m\"} 0\n"),
            "{metrics}"
        );
        let panics = metrics
            .lines()
            .find_map(|l| l.strip_prefix("sheetsync_engine_panics_total{mapping=\"m\"} "))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(panics.is_some_and(|n| n >= 1.0), "{metrics}");
        sync.shutdown().await.unwrap();
    }
}
