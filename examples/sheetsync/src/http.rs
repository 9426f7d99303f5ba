//! Serving the daemon's routers with limits: how long a client may take to send a request's
//! headers and its body, how long an idle connection stays open, and how many connections are
//! open at once, in all and per peer. Without them a few hundred idle, half-sent requests use
//! up the process's file descriptors and starve the webhook, `/healthz` and the engine.
//!
//! When a new connection would pass a cap, the oldest connection with no request in progress
//! (one still sending its headers, or idle between requests) is closed to make room: a client
//! that sends its request at once always gets in, however many idle connections others hold.
//! Only when every connection is busy with a request is the new one refused.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use sheetsync::{Error, ErrorKind, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The timeouts and connection caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From a connection's opening to its first request's complete headers.
    pub header_timeout: Duration,
    /// From a request's headers to the end of its body.
    pub body_timeout: Duration,
    /// Between the end of one request and the headers of the next.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one IP address (a Unix socket's clients count as one).
    pub max_connections_per_peer: usize,
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Ip(IpAddr),
    Local,
}

/// Where a router is served: a TCP address, or a Unix socket only its owner may use.
pub enum Listener {
    /// `host:port`.
    Tcp(tokio::net::TcpListener),
    /// `unix:/path`; the file is removed when serving stops.
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// Binds `addr`: `unix:/path` (created with mode 0600, replacing a stale socket) or a TCP
    /// `host:port`.
    pub async fn bind(addr: &str) -> Result<Listener> {
        let fail = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("cannot listen on {addr}: {e}"),
            )
        };
        if let Some(path) = addr.strip_prefix("unix:") {
            #[cfg(unix)]
            return bind_unix(PathBuf::from(path)).await.map_err(|e| fail(&e));
            #[cfg(not(unix))]
            return Err(fail(&"Unix sockets need a Unix system"));
        }
        tokio::net::TcpListener::bind(addr)
            .await
            .map(Listener::Tcp)
            .map_err(|e| fail(&e))
    }

    /// What to print: `http://127.0.0.1:8787/` or `unix:/run/sheetsync/admin.sock`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("http://{a}/"),
                Err(e) => format!("a TCP listener ({e})"),
            },
            #[cfg(unix)]
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }

    /// The TCP address, for a TCP listener.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            #[cfg(unix)]
            Listener::Unix(..) => None,
        }
    }
}

#[cfg(unix)]
async fn bind_unix(path: PathBuf) -> std::io::Result<Listener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            return Err(std::io::Error::other(
                "another process answers on this socket",
            ));
        }
        // A socket nobody answers on is left over from a daemon that was killed.
        std::fs::remove_file(&path)?;
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Listener::Unix(listener, path))
}

/// Serves `app` on `listener` within `limits` until `stop` turns true; then lets requests in
/// progress finish and returns once every connection is closed.
pub async fn serve(listener: Listener, app: Router, limits: Limits, stop: watch::Receiver<bool>) {
    let tracker = Arc::new(Tracker::new(limits));
    let mut tasks = JoinSet::new();
    let mut stopped = stop.clone();
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = stopped.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((conn, peer)) => {
                if let Some(admitted) = tracker.admit(peer) {
                    let served = Served {
                        app: app.clone(),
                        conn: admitted,
                        limits,
                        stop: stop.clone(),
                    };
                    match conn {
                        Conn::Tcp(s) => tasks.spawn(served.run(s)),
                        #[cfg(unix)]
                        Conn::Unix(s) => tasks.spawn(served.run(s)),
                    };
                }
            }
            Err(e) => {
                // Out of descriptors, say: wait for connections to close instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    #[cfg(unix)]
    if let Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Conn, Peer)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Conn::Tcp(s), Peer::Ip(addr.ip().to_canonical())))
        }
        #[cfg(unix)]
        Listener::Unix(l, _) => Ok((Conn::Unix(l.accept().await?.0), Peer::Local)),
    }
}

/// One connection's state, shared by its task and the tracker.
#[derive(Default)]
struct ConnState {
    /// Requests in progress (between complete headers and the response).
    busy: AtomicUsize,
    /// Requests begun on this connection.
    requests: AtomicUsize,
    /// When the connection opened or its last request ended.
    idle_since: Mutex<Option<Instant>>,
    /// Closes the connection to make room for another.
    evict: Notify,
}

impl ConnState {
    fn begin(self: &Arc<Self>) -> BusyGuard {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard(self.clone())
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// When an idle connection is closed: `header_timeout` after it opened, `idle_timeout` after
    /// its last request; `None` while a request is in progress.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.is_busy() {
            return None;
        }
        let since = (*self.idle_since.lock().expect("idle lock"))?;
        Some(
            since
                + if self.requests.load(Ordering::Relaxed) == 0 {
                    limits.header_timeout
                } else {
                    limits.idle_timeout
                },
        )
    }
}

struct BusyGuard(Arc<ConnState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        *self.0.idle_since.lock().expect("idle lock") = Some(Instant::now());
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, oldest first.
struct Tracker {
    limits: Limits,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, (Peer, Arc<ConnState>)>>,
    /// Connections refused since the last warning, and when that was (at most one a second,
    /// so a flood does not flood the log too).
    refused: Mutex<(u64, Option<Instant>)>,
}

/// A connection the tracker counts until it is dropped.
struct Admitted {
    tracker: Arc<Tracker>,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.tracker
            .open
            .lock()
            .expect("tracker lock")
            .remove(&self.id);
    }
}

impl Tracker {
    fn new(limits: Limits) -> Tracker {
        Tracker {
            limits,
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
            refused: Mutex::new((0, None)),
        }
    }

    /// Makes room for a connection from `peer` (closing the oldest idle one past a cap), or
    /// refuses it when every connection in its way is busy.
    fn admit(self: &Arc<Self>, peer: Peer) -> Option<Admitted> {
        let mut open = self.open.lock().expect("tracker lock");
        let of_peer = open.values().filter(|(p, _)| *p == peer).count();
        let room = if of_peer >= self.limits.max_connections_per_peer {
            evict_oldest_idle(&mut open, Some(peer))
        } else if open.len() >= self.limits.max_connections {
            evict_oldest_idle(&mut open, None)
        } else {
            true
        };
        if !room {
            self.note_refusal(peer);
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::default());
        *state.idle_since.lock().expect("idle lock") = Some(Instant::now());
        open.insert(id, (peer, state.clone()));
        Some(Admitted {
            tracker: self.clone(),
            id,
            state,
        })
    }

    fn note_refusal(&self, peer: Peer) {
        let mut r = self.refused.lock().expect("refusal lock");
        r.0 += 1;
        if r.1.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(
                ?peer,
                refused = r.0,
                limit = self.limits.max_connections,
                per_peer = self.limits.max_connections_per_peer,
                "refused connections: every connection in the way is busy with a request"
            );
            *r = (0, Some(Instant::now()));
        }
    }
}

fn evict_oldest_idle(open: &mut BTreeMap<u64, (Peer, Arc<ConnState>)>, of: Option<Peer>) -> bool {
    let victim = open
        .iter()
        .find(|(_, (p, s))| of.is_none_or(|of| of == *p) && !s.is_busy())
        .map(|(id, _)| *id);
    match victim.and_then(|id| open.remove(&id)) {
        Some((peer, state)) => {
            tracing::debug!(?peer, "closed an idle connection to make room");
            state.evict.notify_one();
            true
        }
        None => false,
    }
}

/// Everything one connection's task needs.
struct Served {
    app: Router,
    conn: Admitted,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl Served {
    async fn run<IO>(mut self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (app, state, body_timeout) = (
            self.app.clone(),
            self.conn.state.clone(),
            self.limits.body_timeout,
        );
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (app, state) = (app.clone(), state.clone());
            async move {
                let _busy = state.begin();
                let req = req.map(|body| Body::new(Deadline::new(body, body_timeout)));
                app.oneshot(req).await
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            // While a request is in progress, look again a little later.
            let deadline = self
                .conn
                .state
                .deadline(&self.limits)
                .unwrap_or_else(|| Instant::now() + self.limits.header_timeout);
            tokio::select! {
                _ = conn.as_mut() => break,
                _ = self.conn.state.evict.notified() => break,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if self.conn.state.deadline(&self.limits).is_some_and(|d| d <= Instant::now()) {
                        break;
                    }
                }
                _ = self.stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A request body that fails once `limit` has passed since the request's headers arrived, so
/// a client sending a byte a second cannot hold a connection and a handler for long.
struct Deadline {
    inner: Incoming,
    timer: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    expired: bool,
}

impl Deadline {
    fn new(inner: Incoming, limit: Duration) -> Deadline {
        Deadline {
            inner,
            timer: Box::pin(tokio::time::sleep(limit)),
            limit,
            expired: false,
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(None);
        }
        // What has arrived counts, even when the timer has just run out.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            this.expired = true;
            let message = format!(
                "the request body did not arrive within {} ms",
                this.limit.as_millis()
            );
            return Poll::Ready(Some(Err(message.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_peer: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: total,
            max_connections_per_peer: per_peer,
        }
    }

    fn ip(last: u8) -> Peer {
        Peer::Ip(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_peer_past_its_cap_loses_its_oldest_idle_connection() {
        let t = Arc::new(Tracker::new(limits(10, 2)));
        let a1 = t.admit(ip(1)).unwrap();
        let a2 = t.admit(ip(1)).unwrap();
        let _b = t.admit(ip(2)).unwrap();
        let _busy = a1.state.begin();
        let _a3 = t.admit(ip(1)).expect("room made by closing a2");
        assert!(!t.open.lock().unwrap().contains_key(&a2.id));
        assert!(t.open.lock().unwrap().contains_key(&a1.id));
        // Both of ip(1)'s connections busy now: the next one is refused.
        let _busy3 = _a3.state.begin();
        assert!(t.admit(ip(1)).is_none());
        assert!(t.admit(ip(3)).is_some());
    }

    #[test]
    fn past_the_total_cap_the_oldest_idle_connection_of_anyone_closes() {
        let t = Arc::new(Tracker::new(limits(2, 2)));
        let a = t.admit(ip(1)).unwrap();
        let _b = t.admit(ip(2)).unwrap();
        let _c = t.admit(ip(3)).unwrap();
        assert!(!t.open.lock().unwrap().contains_key(&a.id));
        assert_eq!(t.open.lock().unwrap().len(), 2);
        drop(a);
        assert_eq!(t.open.lock().unwrap().len(), 2);
    }
}
