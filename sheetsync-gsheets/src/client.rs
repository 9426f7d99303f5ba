//! A Sheets API client that keeps to the quota, retries what may be retried, counts its calls
//! and maps Google's errors to sheetsync's once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use google_sheets4::api::{
    BatchGetValuesByDataFilterRequest, BatchGetValuesByDataFilterResponse, BatchGetValuesResponse,
    BatchUpdateSpreadsheetRequest, BatchUpdateSpreadsheetResponse, BatchUpdateValuesRequest,
    DataFilter, GridRange, Spreadsheet, ValueRange,
};
use google_sheets4::common::{self, GetToken};
use google_sheets4::Sheets;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sheetsync_core::{Error, ErrorKind, Result};

use crate::quota::{Backoff, CallCounter, Priority, RateLimiter};
use crate::wire;

tokio::task_local! {
    /// The priority of the reads of the current scope: see [`SheetsClient::background`].
    static READ_PRIORITY: Priority;
}

/// Supplies OAuth2 bearer tokens (a host's own token cache, workload identity, ...).
pub trait TokenProvider: Send + Sync + 'static {
    /// A token valid for `scopes`.
    fn token<'a>(
        &'a self,
        scopes: &'a [&str],
    ) -> Pin<Box<dyn Future<Output = Result<String>> + Send + 'a>>;
}

/// How the client authenticates.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials (the emulator).
    #[default]
    None,
    /// A fixed bearer token (tests, short jobs). The emulator uses it to name the quota user.
    Bearer(String),
    /// Tokens from the host.
    Provider(Arc<dyn TokenProvider>),
    /// A service account's JSON key (the spreadsheet must be shared with its e-mail).
    #[cfg(feature = "service-account")]
    #[cfg_attr(docsrs, doc(cfg(feature = "service-account")))]
    ServiceAccount(Box<yup_oauth2::ServiceAccountKey>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Bearer(_) => "Auth::Bearer(..)",
            Auth::Provider(_) => "Auth::Provider(..)",
            #[cfg(feature = "service-account")]
            Auth::ServiceAccount(_) => "Auth::ServiceAccount(..)",
        })
    }
}

impl Auth {
    /// Reads a service-account JSON key file.
    #[cfg(feature = "service-account")]
    #[cfg_attr(docsrs, doc(cfg(feature = "service-account")))]
    pub async fn service_account_file(path: impl AsRef<std::path::Path>) -> Result<Auth> {
        let path = path.as_ref();
        let key = yup_oauth2::read_service_account_key(path)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "cannot read the service-account key {}: {e}",
                        path.display()
                    ),
                )
            })?;
        Ok(Auth::ServiceAccount(Box::new(key)))
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The Sheets API root, ending in `/` (`https://sheets.googleapis.com/`, or the emulator's).
    pub sheets_url: String,
    /// The Drive API root, ending in `/` (`https://www.googleapis.com/`, or the emulator's).
    pub drive_url: String,
    /// Credentials.
    pub auth: Auth,
    /// Read requests per minute this client may make (Google: 60 per user).
    pub reads_per_minute: u32,
    /// Write requests per minute (Google: 60 per user).
    pub writes_per_minute: u32,
    /// Retries of 429, 5xx and dropped connections.
    pub backoff: Backoff,
    /// How long one request may take (Google stops at 180 s).
    pub request_timeout: Duration,
    /// How long opening a connection may take: an address that does not answer fails in
    /// seconds, naming itself, rather than after the system's long TCP timeout.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            sheets_url: "https://sheets.googleapis.com/".into(),
            drive_url: "https://www.googleapis.com/".into(),
            auth: Auth::None,
            reads_per_minute: 60,
            writes_per_minute: 60,
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(180),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ClientConfig {
    /// Settings for an emulator (or any endpoint serving both APIs) at `base_url`.
    pub fn emulator(base_url: &str) -> Self {
        let base = if base_url.ends_with('/') {
            base_url.to_string()
        } else {
            format!("{base_url}/")
        };
        ClientConfig {
            sheets_url: base.clone(),
            drive_url: base,
            ..ClientConfig::default()
        }
    }
}

#[derive(Clone)]
struct Token(Arc<TokenSource>);

enum TokenSource {
    None,
    Bearer(String),
    Provider(Arc<dyn TokenProvider>),
    #[cfg(feature = "service-account")]
    #[cfg_attr(docsrs, doc(cfg(feature = "service-account")))]
    ServiceAccount(yup_oauth2::authenticator::DefaultAuthenticator),
}

impl Token {
    async fn get(&self, scopes: &[&str]) -> Result<Option<String>> {
        match &*self.0 {
            TokenSource::None => Ok(None),
            TokenSource::Bearer(t) => Ok(Some(t.clone())),
            TokenSource::Provider(p) => p.token(scopes).await.map(Some),
            #[cfg(feature = "service-account")]
            TokenSource::ServiceAccount(a) => a
                .token(scopes)
                .await
                .map(|t| t.token().map(str::to_owned))
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Unauthenticated,
                        format!("service-account token: {e}"),
                    )
                    .temporary()
                }),
        }
    }
}

impl GetToken for Token {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&str],
    ) -> Pin<
        Box<
            dyn Future<
                    Output = std::result::Result<
                        Option<String>,
                        Box<dyn std::error::Error + Send + Sync>,
                    >,
                > + Send
                + 'a,
        >,
    > {
        Box::pin(async move { self.get(scopes).await.map_err(|e| e.into()) })
    }
}

type Connector = HttpsConnector<HttpConnector>;

/// The Sheets (and Drive `files.get`) client the adapter uses.
pub struct SheetsClient {
    hub: Sheets<Connector>,
    http: common::Client<Connector>,
    token: Token,
    config: ClientConfig,
    reads: Arc<RateLimiter>,
    writes: Arc<RateLimiter>,
    counter: CallCounter,
    activity: WriteActivity,
}

/// This client's writes per spreadsheet, for telling its own changes of a file from others'
/// ([`crate::watch`]): the writes that ended (answered, failed or cancelled), and those in
/// flight.
#[derive(Default)]
struct WriteActivity(Mutex<HashMap<String, (u64, u64)>>);

impl WriteActivity {
    fn begin(&self, id: &str) -> WriteGuard<'_> {
        let mut m = self.0.lock().expect("activity lock");
        m.entry(id.to_string()).or_default().1 += 1;
        WriteGuard(self, id.to_string())
    }

    fn get(&self, id: &str) -> (u64, u64) {
        let m = self.0.lock().expect("activity lock");
        m.get(id).copied().unwrap_or_default()
    }
}

/// Ends a write in [`WriteActivity`] when dropped (also when the call is cancelled).
struct WriteGuard<'a>(&'a WriteActivity, String);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().expect("activity lock");
        let e = m.entry(std::mem::take(&mut self.1)).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_sub(1);
    }
}

/// What kind of request a call is: which quota it counts against, and whether it may be sent
/// again after a failure that leaves its outcome unknown.
///
/// Every request the client makes is classified here (see [`SheetsClient`]'s methods):
///
/// | request | access |
/// |---|---|
/// | `spreadsheets.get`, `values.batchGet`, `values.batchGetByDataFilter`, Drive `files.get` | [`Access::Read`] |
/// | `values.batchUpdate`, `spreadsheets.batchUpdate`, `values.append` | [`Access::WriteOnce`] |
///
/// Writes are all positional (they address rows by number, and people move rows) or not
/// idempotent (appends, row deletes), so none is re-sent blindly: a 429 means Google refused the
/// request and it is retried with backoff; a timeout, a dropped connection or a 5xx may come
/// after Google applied it, and ends the call with [`ErrorKind::OutcomeUnknown`] so the caller
/// finds out what happened (the Sheet adapter reads its scratch tab) and plans again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Counted against the read quota; retried on any temporary failure.
    Read,
    /// Counted against the write quota; retried only when Google refused it outright (429).
    WriteOnce,
}

const SCOPE_SHEETS: &str = "https://www.googleapis.com/auth/spreadsheets";
const SCOPE_DRIVE_READ: &str = "https://www.googleapis.com/auth/drive.metadata.readonly";

impl SheetsClient {
    /// A client with these settings and its own read and write limiters.
    pub async fn new(config: ClientConfig) -> Result<Self> {
        let reads = Arc::new(RateLimiter::new(config.reads_per_minute));
        let writes = Arc::new(RateLimiter::new(config.writes_per_minute));
        Self::with_limiters(config, reads, writes).await
    }

    /// A client that counts its requests against shared limiters, e.g. those of another
    /// client on the same credential (Google's quota is per user). `config.reads_per_minute`
    /// and `writes_per_minute` are then ignored.
    pub async fn with_limiters(
        config: ClientConfig,
        reads: Arc<RateLimiter>,
        writes: Arc<RateLimiter>,
    ) -> Result<Self> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(config.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::new(ErrorKind::ConfigInvalid, format!("TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let http: common::Client<Connector> =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        let source = match &config.auth {
            Auth::None => TokenSource::None,
            Auth::Bearer(t) => TokenSource::Bearer(t.clone()),
            Auth::Provider(p) => TokenSource::Provider(p.clone()),
            #[cfg(feature = "service-account")]
            Auth::ServiceAccount(key) => TokenSource::ServiceAccount(
                yup_oauth2::ServiceAccountAuthenticator::builder((**key).clone())
                    .build()
                    .await
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::ConfigInvalid,
                            format!("service-account key: {e}"),
                        )
                    })?,
            ),
        };
        let token = Token(Arc::new(source));
        let mut hub = Sheets::new(http.clone(), token.clone());
        hub.base_url(config.sheets_url.clone());
        hub.root_url(config.sheets_url.clone());
        Ok(SheetsClient {
            hub,
            http,
            token,
            reads,
            writes,
            counter: CallCounter::default(),
            activity: WriteActivity::default(),
            config,
        })
    }

    /// The calls made so far.
    pub fn counter(&self) -> &CallCounter {
        &self.counter
    }

    /// The read and write limiters (to share with another client, or for their statistics).
    pub fn limiters(&self) -> (&Arc<RateLimiter>, &Arc<RateLimiter>) {
        (&self.reads, &self.writes)
    }

    /// This client's writes to spreadsheet `id`: how many ended (answered, failed or
    /// cancelled) so far, and how many are in flight. A change of the file while none ended
    /// and none was in flight was made by someone else.
    pub fn write_activity(&self, id: &str) -> (u64, u64) {
        self.activity.get(id)
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Runs `fut` with its reads ([`batch_get`](Self::batch_get),
    /// [`get_spreadsheet`](Self::get_spreadsheet), on any client) acquiring the read limiter at
    /// [`Priority::Background`]: they leave the limiter's reserve to the reads outside, and a
    /// read outside (an edit journal poll) never waits behind them (see [`crate::quota`]).
    /// Writes keep their own limiter and order. The priority belongs to the task running
    /// `fut`: a task it spawns reads at the default, Interactive priority.
    ///
    /// ```no_run
    /// # use sheetsync_gsheets::SheetsClient;
    /// # async fn demo(client: &SheetsClient, id: &str) -> sheetsync_core::Result<()> {
    /// let ranges = vec!["Sheet1!A1:Z5000".to_string()];
    /// // A full read's chunks: they yield to the journal polls of every mapping.
    /// let chunk = SheetsClient::background(client.batch_get(id, &ranges, "UNFORMATTED_VALUE")).await?;
    /// # let _ = chunk; Ok(()) }
    /// ```
    pub async fn background<F: Future>(fut: F) -> F::Output {
        READ_PRIORITY.scope(Priority::Background, fut).await
    }

    /// Runs one API call under the quota, retrying temporary failures with backoff.
    async fn call<T, F, Fut>(&self, access: Access, method: &'static str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let (limiter, priority) = match access {
            Access::Read => (&self.reads, read_priority()),
            Access::WriteOnce => (&self.writes, Priority::Interactive),
        };
        let mut attempt = 0;
        loop {
            limiter.acquire_with(priority).await;
            self.counter.count(method);
            let result = match tokio::time::timeout(self.config.request_timeout, f()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => self.explain(e),
                Err(_) => Error::new(
                    ErrorKind::Connection,
                    format!("no answer within {:?}", self.config.request_timeout),
                ),
            }
            .with_operation(method);
            let refused = result.kind() == ErrorKind::RateLimited;
            if access == Access::WriteOnce && result.is_temporary() && !refused {
                return Err(outcome_unknown(result).with_operation(method));
            }
            if !result.is_temporary() || attempt >= self.config.backoff.max_retries {
                return Err(if result.is_temporary() {
                    result.persistent()
                } else {
                    result
                });
            }
            self.counter.retry(method);
            let delay = self.config.backoff.delay(attempt);
            tracing::debug!(method, attempt, ?delay, error = %result, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// `spreadsheets.get` with a field mask.
    pub async fn get_spreadsheet(&self, id: &str, fields: &str) -> Result<Spreadsheet> {
        self.call(Access::Read, "spreadsheets.get", || {
            self.hub
                .spreadsheets()
                .get(id)
                .param("fields", fields)
                .add_scope(SCOPE_SHEETS)
                .doit()
                .answer()
        })
        .await
    }

    /// `spreadsheets.get` of the grid data of A1 ranges, limited to a field mask (say, the
    /// notes and values of one column: `sheets.data.rowData.values(note,effectiveValue)`).
    pub async fn get_grid(&self, id: &str, ranges: &[String], fields: &str) -> Result<Spreadsheet> {
        self.call(Access::Read, "spreadsheets.get", || {
            let mut c = self
                .hub
                .spreadsheets()
                .get(id)
                .include_grid_data(true)
                .param("fields", fields)
                .add_scope(SCOPE_SHEETS);
            for r in ranges {
                c = c.add_ranges(r);
            }
            c.doit().answer()
        })
        .await
    }

    /// `values.batchGet` of A1 ranges, unformatted, dates as serial numbers.
    pub async fn batch_get(
        &self,
        id: &str,
        ranges: &[String],
        render: &str,
    ) -> Result<Vec<ValueRange>> {
        let resp: BatchGetValuesResponse = self
            .call(Access::Read, "values.batchGet", || {
                let mut c = self
                    .hub
                    .spreadsheets()
                    .values_batch_get(id)
                    .value_render_option(render)
                    .date_time_render_option("SERIAL_NUMBER")
                    .major_dimension("ROWS")
                    .add_scope(SCOPE_SHEETS);
                for r in ranges {
                    c = c.add_ranges(r);
                }
                c.doit().answer()
            })
            .await?;
        as_asked(
            "values.batchGet",
            resp.value_ranges.unwrap_or_default(),
            ranges.len(),
        )
    }

    /// `values.batchGetByDataFilter` of grid ranges: tabs named by `sheetId` (a renamed tab is
    /// still found, and another tab given its old title is not), a missing bound reaching the
    /// grid's edge; unformatted, dates as serial numbers, in the order asked. Each answer's
    /// `range` carries the tab's current title.
    pub async fn batch_get_grid(
        &self,
        id: &str,
        ranges: &[GridRange],
        render: &str,
    ) -> Result<Vec<ValueRange>> {
        const METHOD: &str = "values.batchGetByDataFilter";
        let req = BatchGetValuesByDataFilterRequest {
            data_filters: Some(
                ranges
                    .iter()
                    .map(|g| DataFilter {
                        grid_range: Some(g.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            value_render_option: Some(render.into()),
            date_time_render_option: Some("SERIAL_NUMBER".into()),
            major_dimension: Some("ROWS".into()),
        };
        let body = json_body(METHOD, &req)?;
        let url = format!(
            "{}v4/spreadsheets/{}/values:batchGetByDataFilter",
            self.config.sheets_url,
            encode_range(id)
        );
        let resp: BatchGetValuesByDataFilterResponse = self
            .call(Access::Read, METHOD, || self.post(&url, body.clone()))
            .await?;
        let got = resp.value_ranges.unwrap_or_default();
        let got = got.into_iter().filter_map(|m| m.value_range).collect();
        as_asked(METHOD, got, ranges.len())
    }

    /// `values.batchUpdate` with RAW input: text is never parsed (no formulas, no dates).
    pub async fn batch_update_values(&self, id: &str, data: Vec<ValueRange>) -> Result<()> {
        let req = BatchUpdateValuesRequest {
            data: Some(data),
            value_input_option: Some("RAW".into()),
            ..Default::default()
        };
        let path = format!("v4/spreadsheets/{}/values:batchUpdate", encode_range(id));
        self.write::<serde::de::IgnoredAny>(id, "values.batchUpdate", path, &req)
            .await
            .map(|_| ())
    }

    /// `values.append` of rows after the table anchored at `range`, inserting rows, RAW input.
    pub async fn append(
        &self,
        id: &str,
        range: &str,
        rows: Vec<Vec<serde_json::Value>>,
    ) -> Result<()> {
        let body = ValueRange {
            values: Some(rows),
            major_dimension: Some("ROWS".into()),
            range: None,
        };
        let path = format!(
            "v4/spreadsheets/{}/values/{}:append?valueInputOption=RAW&insertDataOption=INSERT_ROWS",
            encode_range(id),
            encode_range(range)
        );
        self.write::<serde::de::IgnoredAny>(id, "values.append", path, &body)
            .await
            .map(|_| ())
    }

    /// `spreadsheets.batchUpdate`: applied atomically (all requests, in order, or none).
    pub async fn batch_update(&self, id: &str, req: BatchUpdateSpreadsheetRequest) -> Result<()> {
        self.batch_update_answer(id, req, None).await.map(|_| ())
    }

    /// `spreadsheets.batchUpdate`, returning Google's answer, limited to the `fields` mask when
    /// one is given (e.g. only the grid data of the `responseRanges`).
    pub async fn batch_update_answer(
        &self,
        id: &str,
        req: BatchUpdateSpreadsheetRequest,
        fields: Option<&str>,
    ) -> Result<BatchUpdateSpreadsheetResponse> {
        let mut path = format!("v4/spreadsheets/{}:batchUpdate", encode_range(id));
        if let Some(f) = fields {
            path.push_str("?fields=");
            path.push_str(&encode_range(f));
        }
        self.write(id, "spreadsheets.batchUpdate", path, &req).await
    }

    /// Sends a write: its body serialized once ([`crate::wire`]), under the write quota, counted
    /// in [`WriteActivity`] while in flight.
    async fn write<T: DeserializeOwned>(
        &self,
        id: &str,
        method: &'static str,
        path: String,
        body: &impl Serialize,
    ) -> Result<T> {
        let body = json_body(method, body)?;
        let url = format!("{}{path}", self.config.sheets_url);
        let _writing = self.activity.begin(id);
        self.call(Access::WriteOnce, method, || self.post(&url, body.clone()))
            .await
    }

    /// One POST of a JSON body to the Sheets API, its answer parsed.
    async fn post<T: DeserializeOwned>(&self, url: &str, body: Bytes) -> Result<T> {
        let mut req = hyper::Request::post(url).header("content-type", "application/json");
        if let Some(t) = self.token.get(&[SCOPE_SHEETS]).await? {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(common::to_body(Some(body)))
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let bytes = self.send(req).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("unreadable answer: {e}")))
    }

    /// Sends a request; a status other than 2xx becomes its error.
    async fn send(&self, req: hyper::Request<common::Body>) -> Result<Bytes> {
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| connection_error(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::new(ErrorKind::Connection, e.to_string()).temporary())?
            .to_bytes();
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            let json = serde_json::from_slice(&bytes).unwrap_or_default();
            Err(status_error(status, &json))
        }
    }

    /// The Drive `version` of the spreadsheet file: it changes with every change to the file, so
    /// an unchanged version means a full read can be skipped. Costs no Sheets quota.
    pub async fn drive_version(&self, id: &str) -> Result<String> {
        let url = format!(
            "{}drive/v3/files/{}?fields=version&supportsAllDrives=true",
            self.config.drive_url,
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        );
        let mut attempt = 0;
        loop {
            self.counter.count("drive.files.get");
            let result = self.drive_get(&url).await;
            match result {
                Ok(body) => {
                    return body
                        .get("version")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::Unexpected,
                                format!("drive files.get returned no version: {body}"),
                            )
                        })
                }
                Err(e) if e.is_temporary() && attempt < self.config.backoff.max_retries => {
                    self.counter.retry("drive.files.get");
                    tokio::time::sleep(self.config.backoff.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.with_operation("drive.files.get")),
            }
        }
    }

    async fn drive_get(&self, url: &str) -> Result<serde_json::Value> {
        let mut req = hyper::Request::get(url);
        if let Some(t) = self.token.get(&[SCOPE_DRIVE_READ]).await? {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(common::to_body::<String>(None))
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let bytes = tokio::time::timeout(self.config.request_timeout, self.send(req))
            .await
            .map_err(|_| Error::new(ErrorKind::Connection, "drive files.get timed out"))?
            .map_err(|e| self.explain(e))?;
        Ok(serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// Adds what a person needs to fix an error: the server a connection failed to, or, for
    /// a spreadsheet not found or not allowed, that it must be shared with the account.
    fn explain(&self, e: Error) -> Error {
        let hint = match e.kind() {
            ErrorKind::Connection if e.message().starts_with("connection failed") => {
                format!(
                    "{} (the Sheets API at {})",
                    e.message(),
                    host_port(&self.config.sheets_url)
                )
            }
            ErrorKind::NotFound | ErrorKind::PermissionDenied => {
                let who = match &self.config.auth {
                    #[cfg(feature = "service-account")]
                    Auth::ServiceAccount(key) => {
                        format!("the service account {}", key.client_email)
                    }
                    _ => "the account sheetsync uses".to_string(),
                };
                format!(
                    "{}; check the spreadsheet id and that the spreadsheet is shared with {who} (Share, as Editor)",
                    e.message()
                )
            }
            _ => return e,
        };
        let rebuilt = Error::new(e.kind(), hint).with_operation(e.operation());
        match e.status() {
            sheetsync_core::ErrorStatus::Permanent => rebuilt.permanent(),
            _ => rebuilt.temporary(),
        }
    }
}

/// The priority of a read made now: Background inside [`SheetsClient::background`].
/// A request body, serialized once ([`crate::wire`]).
fn json_body(method: &'static str, body: &impl Serialize) -> Result<Bytes> {
    wire::to_vec(body).map(Bytes::from).map_err(|e| {
        Error::new(ErrorKind::InvalidData, format!("{method} body: {e}")).with_operation(method)
    })
}

/// The ranges of a read, which must be as many as were asked.
fn as_asked(method: &'static str, got: Vec<ValueRange>, asked: usize) -> Result<Vec<ValueRange>> {
    if got.len() == asked {
        return Ok(got);
    }
    Err(Error::new(
        ErrorKind::Unexpected,
        format!(
            "{method} returned {} ranges for {asked} requested",
            got.len()
        ),
    )
    .with_operation(method))
}

fn read_priority() -> Priority {
    READ_PRIORITY.try_with(|p| *p).unwrap_or_default()
}

/// `host:port` of a URL, the port filled in from the scheme.
fn host_port(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']'));
    if has_port {
        authority.to_string()
    } else {
        let port = if scheme.eq_ignore_ascii_case("http") {
            80
        } else {
            443
        };
        format!("{authority}:{port}")
    }
}

/// A failed connection, with every cause down to the system's error: hyper's own message
/// alone is `client error (Connect)`.
fn connection_error(e: &(dyn std::error::Error + 'static)) -> Error {
    let mut message = String::from("connection failed");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    Error::new(ErrorKind::Connection, message).temporary()
}

/// Percent-encodes a range for the path (google-sheets4 inserts it verbatim, so `#`, `?` or `/`
/// in a sheet title would otherwise break the URL: Byron/google-apis-rs#560).
pub fn encode_range(range: &str) -> String {
    percent_encoding::utf8_percent_encode(range, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A possibly-applied write failure, as [`ErrorKind::OutcomeUnknown`] with the cause kept.
fn outcome_unknown(cause: Error) -> Error {
    Error::new(
        ErrorKind::OutcomeUnknown,
        format!("the answer was lost and the request may have been applied: {cause}"),
    )
    .with_source(cause)
}

fn status_error(status: u16, body: &serde_json::Value) -> Error {
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let reason = body["error"]["status"].as_str().unwrap_or("");
    let rate =
        message.to_ascii_lowercase().contains("rate limit") || reason == "RESOURCE_EXHAUSTED";
    let kind = match status {
        401 => ErrorKind::Unauthenticated,
        403 if rate => ErrorKind::RateLimited,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        400 => ErrorKind::InvalidData,
        500..=599 => ErrorKind::Connection,
        _ => ErrorKind::Unexpected,
    };
    let e = Error::new(
        kind,
        format!("{status} {reason}: {message}").replace(" : ", ": "),
    );
    match kind {
        ErrorKind::RateLimited | ErrorKind::Connection => e.temporary(),
        _ => e.permanent(),
    }
}

/// A google-sheets4 call's answer, its error mapped to sheetsync's.
trait Answer<T> {
    async fn answer(self) -> Result<T>;
}

impl<T, F: Future<Output = common::Result<(common::Response, T)>>> Answer<T> for F {
    async fn answer(self) -> Result<T> {
        self.await.map(|(_, v)| v).map_err(map_error)
    }
}

fn map_error(e: common::Error) -> Error {
    match e {
        common::Error::BadRequest(json) => {
            let status = json["error"]["code"].as_u64().unwrap_or(400) as u16;
            status_error(status, &json)
        }
        common::Error::Failure(resp) => {
            status_error(resp.status().as_u16(), &serde_json::Value::Null)
        }
        common::Error::HttpError(e) => connection_error(&e),
        common::Error::Io(e) => Error::new(ErrorKind::Connection, e.to_string()).temporary(),
        common::Error::MissingToken(e) => {
            Error::new(ErrorKind::Unauthenticated, format!("no token: {e}")).temporary()
        }
        other => Error::new(ErrorKind::Unexpected, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds_and_retryability() {
        let e = status_error(
            429,
            &serde_json::json!({"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}),
        );
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.is_temporary());
        let e = status_error(
            403,
            &serde_json::json!({"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}),
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(!e.is_temporary());
        assert!(status_error(503, &serde_json::Value::Null).is_temporary());
        assert!(!status_error(400, &serde_json::Value::Null).is_temporary());
    }

    #[test]
    fn servers_are_named_with_their_port() {
        assert_eq!(
            host_port("https://sheets.googleapis.com/"),
            "sheets.googleapis.com:443"
        );
        assert_eq!(host_port("http://127.0.0.1:9/"), "127.0.0.1:9");
        assert_eq!(host_port("http://[::1]/x"), "[::1]:80");
    }

    #[tokio::test]
    async fn reads_inside_background_acquire_at_background_priority() {
        let emu = sheetsync_emulator::EmulatorHandle::start(sheetsync_emulator::Config::default())
            .await
            .expect("emulator starts");
        let id = emu.create_spreadsheet("priorities").expect("spreadsheet");
        let client = SheetsClient::new(ClientConfig::emulator(&emu.base_url()))
            .await
            .unwrap();
        let ranges = vec!["Sheet1!A1:B2".to_string()];
        let read = || client.batch_get(&id, &ranges, "UNFORMATTED_VALUE");
        let background = |admitted| {
            let stats = client.limiters().0.stats();
            assert_eq!(stats.admitted, admitted);
            stats.background
        };
        read().await.unwrap();
        assert_eq!(background(1), 0, "a read outside is Interactive");
        SheetsClient::background(read()).await.unwrap();
        assert_eq!(background(2), 1);
        SheetsClient::background(async {
            client.get_spreadsheet(&id, "spreadsheetId").await.unwrap();
            let row = vec![vec![serde_json::json!(1)]];
            client.append(&id, "Sheet1!A1", row).await.unwrap();
        })
        .await;
        assert_eq!(background(3), 2, "spreadsheets.get too");
        let writes = client.limiters().1.stats();
        assert_eq!(
            (writes.admitted, writes.background),
            (1, 0),
            "writes keep their order"
        );
        read().await.unwrap();
        assert_eq!(background(4), 2, "the scope ended");
    }

    #[test]
    fn ranges_are_encoded_once() {
        assert_eq!(
            encode_range("'My #1/Sheet'!A1:B2"),
            "%27My%20%231%2FSheet%27%21A1%3AB2"
        );
    }
}
