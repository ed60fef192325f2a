//! The accept loop and what every connection is held to: a cap below the
//! file-descriptor limit, a larger listen backlog, header / idle / minimum
//! transfer-rate timeouts, and head limits answered with the JSON error body.
//!
//! Kept apart from the routes; with TLS on, the handshake runs over the
//! watched stream (so the minimum send rate covers it too), within the
//! header timeout.

use crate::error::{ApiError, ErrorCode};
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};

/// Descriptors kept out of the connection budget at the least: the database
/// (SQLite's connections, or a PostgreSQL pool), the listener, logs, blobs.
const RESERVED_DESCRIPTORS: u64 = 128;
/// Upper bound of the derived connection cap (memory, not descriptors, is the
/// limit past it); an explicit `max_connections` may go higher.
const DERIVED_CAP_CEILING: u64 = 65_536;
/// Unsent bytes the kernel queues per socket before a write waits: keeps a
/// stalled client's buffer small and makes write readiness follow the
/// client's reading closely, which the minimum send rate relies on.
const NOTSENT_LOWAT: u32 = 64 * 1024;

/// The connection settings (see the README's configuration table).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionLimits {
    /// Most connections served at once; `None` (or 0) = derived from the file limit.
    #[serde(deserialize_with = "crate::settings::zero_is_none")]
    pub max_connections: Option<usize>,
    /// Connections the kernel queues while all `max_connections` are busy.
    #[serde(deserialize_with = "crate::settings::between::<16, 65_535, _, _>")]
    pub listen_backlog: u32,
    /// A new connection's first request head (and, on HTTP/1.1, each next
    /// one: hyper counts the wait between requests against it) must arrive
    /// within this.
    #[serde(
        rename = "header_read_timeout_secs",
        serialize_with = "crate::settings::secs",
        deserialize_with = "crate::settings::secs_at_least::<1, _>"
    )]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this (HTTP/2,
    /// and HTTP/1.1 when longer than nothing else closes it first).
    #[serde(
        rename = "idle_timeout_secs",
        serialize_with = "crate::settings::secs",
        deserialize_with = "crate::settings::secs_at_least::<1, _>"
    )]
    pub idle_timeout: Duration,
    /// Request bodies and responses must move at least this many bytes per
    /// second, measured over `transfer_window`, while the other side waits.
    pub min_transfer_rate: u64,
    #[serde(
        rename = "transfer_window_secs",
        serialize_with = "crate::settings::secs",
        deserialize_with = "crate::settings::secs_at_least::<1, _>"
    )]
    pub transfer_window: Duration,
    /// Longest request target (path and query), answered 414 past it.
    #[serde(deserialize_with = "crate::settings::at_least::<256, _, _>")]
    pub max_uri_length: usize,
    /// Largest total of the request's header lines, answered 431 past it.
    #[serde(deserialize_with = "crate::settings::at_least::<1024, _, _>")]
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: None,
            listen_backlog: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            min_transfer_rate: 256,
            transfer_window: Duration::from_secs(60),
            max_uri_length: 8 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl ConnectionLimits {
    /// Bytes the other side must move in one `transfer_window`.
    fn window_bytes(&self) -> u64 {
        let secs = self.transfer_window.as_secs_f64();
        ((self.min_transfer_rate as f64) * secs).ceil().max(1.0) as u64
    }

    /// hyper's own backstop for a head that does not fit in its buffer: it
    /// answers 431 with an empty body before this server sees the request.
    pub fn hyper_head_limit(&self) -> usize {
        (2 * (self.max_header_bytes + self.max_uri_length)).max(16 * 1024)
    }
}

/// The file-descriptor limit, after raising the soft limit to the hard one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLimit {
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (every connection is a
/// descriptor; the default soft limit of 1,024 is far below what a server
/// needs, the hard one is what the administrator allows).
pub fn raise_file_limit() -> io::Result<FileLimit> {
    let (before, hard) = rlimit::Resource::NOFILE.get()?;
    let soft = rlimit::increase_nofile_limit(hard)?;
    Ok(FileLimit { before, soft, hard })
}

/// The default connection cap for a soft file limit: every connection may
/// hold a second descriptor (a download's file or object-store socket, an
/// upload's partial file), and a reserve stays for the database and blobs.
pub fn derived_max_connections(soft_limit: u64) -> usize {
    let reserve = RESERVED_DESCRIPTORS.max(soft_limit / 16);
    let cap = soft_limit.saturating_sub(reserve) / 2;
    cap.clamp(16, DERIVED_CAP_CEILING) as usize
}

/// The connection cap in force: the setting, else the derived one; never
/// more than the descriptors left after the reserve (past that, accepting
/// would fail with EMFILE instead of waiting in the backlog).
pub fn effective_max_connections(configured: Option<usize>, soft_limit: u64) -> usize {
    let ceiling = soft_limit.saturating_sub(RESERVED_DESCRIPTORS).max(16) as usize;
    match configured {
        Some(n) if n > ceiling => {
            tracing::warn!(
                max_connections = n,
                file_limit = soft_limit,
                used = ceiling,
                "max_connections is above what the file limit allows; using the lower value"
            );
            ceiling
        }
        Some(n) => n.max(1),
        None => derived_max_connections(soft_limit),
    }
}

/// Binds with an explicit listen backlog (the standard library's is 128).
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accept errors that concern one connection (retry at once) rather than
/// the process (out of descriptors or memory: back off).
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then lets open connections finish (each closes once its
/// request in flight is answered).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    max_connections: usize,
    metrics: Arc<crate::metrics::Metrics>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = Arc::new(limits);
    let builder = Arc::new(builder(&limits));
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_error_log: Option<Instant> = None;
    let mut at_cap_logged: Option<Instant> = None;
    loop {
        if permits.available_permits() == 0
            && at_cap_logged.is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_EVERY)
        {
            tracing::warn!(
                max_connections,
                "connection limit reached; new connections wait in the listen backlog"
            );
            at_cap_logged = Some(Instant::now());
        }
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // EMFILE / ENFILE / ENOMEM: the pending connection stays in
                    // the backlog; wait for descriptors to come back.
                    metrics.record_accept_error();
                    if last_error_log.is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                        tracing::warn!(error = %err, "cannot accept connections; retrying");
                        last_error_log = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let connection = ConnectionTask {
            app: app.clone(),
            builder: Arc::clone(&builder),
            limits: Arc::clone(&limits),
            metrics: Arc::clone(&metrics),
            stop: stop_rx.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection.accept(stream, peer, tls).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.hyper_head_limit().max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.hyper_head_limit()).unwrap_or(u32::MAX))
        .max_concurrent_streams(128);
    builder
}

struct ConnectionTask {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<crate::metrics::Metrics>,
    stop: watch::Receiver<bool>,
}

impl ConnectionTask {
    async fn accept(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        let _ = stream.set_nodelay(true);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
        }
        let _open = self.metrics.connection_opened();
        let watched = Watched::new(stream, &self.limits, Arc::clone(&self.metrics));
        match tls {
            None => self.run(watched, peer, false).await,
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(watched))
                        .await;
                match handshake {
                    Ok(Ok(stream)) => self.run(stream, peer, true).await,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    }
                    Err(_) => {
                        self.metrics
                            .record_connection_timeout(crate::metrics::connection_timeout::IDLE);
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                }
            }
        }
    }

    async fn run<S>(mut self, stream: S, peer: SocketAddr, tls: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let service = ConnService {
            app: self.app.clone(),
            activity: Arc::clone(&activity),
            limits: Arc::clone(&self.limits),
            connection: crate::proxy::Connection { peer, tls },
        };
        let io = TokioIo::new(stream);
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        // The first request must come within the header timeout, later
        // ones within the idle timeout of the last answer.
        let idle = tokio::time::sleep(self.limits.header_read_timeout);
        let mut idle = std::pin::pin!(idle);
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                    break;
                }
                changed = self.stop.changed(), if !closing => {
                    let _ = changed;
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = idle.as_mut(), if !closing => {
                    match activity.idle_deadline(&self.limits) {
                        Some(deadline) => idle.as_mut().reset(deadline),
                        None => {
                            self.metrics
                                .record_connection_timeout(crate::metrics::connection_timeout::IDLE);
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        }
    }
}

/// What a connection's requests are doing, for the idle timeout: two
/// atomics touched per request, no lock.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `started` of the last request start or answer end.
    last_active_ms: AtomicU64,
    requests: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// When to look again, or `None` when the connection has been idle long
    /// enough to close.
    fn idle_deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Some(Instant::now() + limits.idle_timeout);
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            // No request head in the header timeout (the HTTP/2 preface or a
            // silent socket, which hyper's HTTP/1 timer does not see).
            return None;
        }
        let last =
            self.started + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        let deadline = last + limits.idle_timeout;
        (deadline > Instant::now()).then_some(deadline)
    }
}

/// Marks a request in flight until its response body is finished or dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The per-connection service: head limits, the request body's minimum
/// rate, then the router.
#[derive(Clone)]
struct ConnService {
    app: Router,
    activity: Arc<Activity>,
    limits: Arc<ConnectionLimits>,
    /// The peer and whether the connection is TLS, handed to the router as
    /// an extension (and the peer as axum's `ConnectInfo`); see `proxy`.
    connection: crate::proxy::Connection,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ConnFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(&self.activity);
        if let Some(refusal) = check_head(&request, &self.limits) {
            return ConnFuture {
                state: ConnFutureState::Ready(Some(refusal)),
                guard: Some(guard),
            };
        }
        let window = self.limits.transfer_window;
        let need = self.limits.window_bytes();
        let mut request = request.map(|body| Body::new(MinRateBody::new(body, window, need)));
        let extensions = request.extensions_mut();
        extensions.insert(axum::extract::ConnectInfo(self.connection.peer));
        extensions.insert(self.connection);
        let mut app = self.app.clone();
        let future = tower::Service::call(&mut app, request);
        ConnFuture {
            state: ConnFutureState::Routing(future),
            guard: Some(guard),
        }
    }
}

/// The request line and headers against the configured limits, answered
/// with the usual JSON error body (hyper's own backstop has none).
fn check_head<B>(request: &Request<B>, limits: &ConnectionLimits) -> Option<Response<Body>> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > limits.max_uri_length {
        return Some(refusal(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!(
                "the request target is {target} bytes; at most {} are accepted",
                limits.max_uri_length
            ),
        ));
    }
    let mut header_bytes = 0usize;
    for (name, value) in request.headers() {
        // "name: value\r\n"
        header_bytes += name.as_str().len() + value.len() + 4;
    }
    if header_bytes > limits.max_header_bytes {
        return Some(refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::HeadersTooLarge,
            format!(
                "the request's headers take {header_bytes} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        ));
    }
    None
}

fn refusal(status: StatusCode, code: ErrorCode, message: String) -> Response<Body> {
    let mut response =
        axum::response::IntoResponse::into_response(ApiError::new(status, code, message));
    // The body (if any) is left unread.
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

struct ConnFuture {
    state: ConnFutureState,
    guard: Option<InFlight>,
}

enum ConnFutureState {
    Ready(Option<Response<Body>>),
    Routing(axum::routing::future::RouteFuture<Infallible>),
}

impl Future for ConnFuture {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = match &mut this.state {
            ConnFutureState::Ready(response) => match response.take() {
                Some(response) => response,
                None => return Poll::Pending,
            },
            ConnFutureState::Routing(future) => match ready!(Pin::new(future).poll(cx)) {
                Ok(response) => response,
                Err(never) => match never {},
            },
        };
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| TrackedBody {
            inner,
            _guard: guard,
        })))
    }
}

/// A response body that keeps its request counted in flight until sent.
pub struct TrackedBody {
    inner: Body,
    _guard: Option<InFlight>,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails when the client sends less than the minimum
/// while the handler waits for it (a slow but progressing upload passes:
/// only each window's total counts, never the whole body's time).
struct MinRateBody {
    inner: Incoming,
    window: Duration,
    need: u64,
    stall: Stall,
}

impl MinRateBody {
    fn new(inner: Incoming, window: Duration, need: u64) -> Self {
        MinRateBody {
            inner,
            window,
            need,
            stall: Stall::default(),
        }
    }
}

/// The request body stopped coming: fewer bytes than the minimum rate in a
/// whole window while the server waited.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than the minimum transfer rate")]
pub struct BodyTooSlow;

impl http_body::Body for MinRateBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.stall.progress(data.len() as u64, this.need);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Box::new(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.stall.waiting(cx, this.window) {
                    Poll::Ready(Some(Err(Box::new(BodyTooSlow))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One direction's minimum-rate window: opened when the server first waits
/// on the client, closed once the client has moved `need` bytes in it; the
/// timer exists only for clients that made the server wait.
#[derive(Default)]
struct Stall {
    timer: Option<Pin<Box<Sleep>>>,
    open: bool,
    bytes: u64,
}

impl Stall {
    /// The client moved `n` bytes.
    fn progress(&mut self, n: u64, need: u64) {
        if !self.open {
            return;
        }
        self.bytes += n;
        let window_over = self
            .timer
            .as_ref()
            .is_some_and(|timer| timer.deadline() <= Instant::now());
        // Enough in this window, or the client moved bytes after the window
        // ended while the server was busy elsewhere: start afresh.
        if self.bytes >= need || window_over {
            self.open = false;
        }
    }

    /// The server waits on the client; true once a whole window went by
    /// with too little.
    fn waiting(&mut self, cx: &mut Context<'_>, window: Duration) -> bool {
        if !self.open {
            self.open = true;
            self.bytes = 0;
            let deadline = Instant::now() + window;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

/// The accepted socket, failing writes to a client that stopped reading
/// (less than the minimum rate over a window while the response waits).
struct Watched {
    inner: TcpStream,
    window: Duration,
    need: u64,
    stall: Stall,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Watched {
    fn new(
        inner: TcpStream,
        limits: &ConnectionLimits,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Watched {
            inner,
            window: limits.transfer_window,
            need: limits.window_bytes(),
            stall: Stall::default(),
            metrics,
        }
    }

    fn on_write(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(n)) => {
                self.stall.progress(n as u64, self.need);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                if self.stall.waiting(cx, self.window) {
                    self.metrics
                        .record_connection_timeout(crate::metrics::connection_timeout::SEND);
                    // Drop what the kernel still holds for this client
                    // instead of keeping it queued after the close.
                    let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client read the response slower than the minimum transfer rate",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.on_write(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.on_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Whether a body-read error is the minimum-rate timeout.
pub fn is_body_too_slow(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyTooSlow>() {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_cap_leaves_room_for_a_second_descriptor_and_a_reserve() {
        assert_eq!(derived_max_connections(1024), 448);
        assert_eq!(derived_max_connections(65_536), (65_536 - 4096) / 2);
        assert_eq!(derived_max_connections(1 << 20), 65_536);
        assert_eq!(derived_max_connections(100), 16);
        assert_eq!(effective_max_connections(Some(5000), 1024), 1024 - 128);
        assert_eq!(effective_max_connections(Some(300), 1024), 300);
        assert_eq!(effective_max_connections(None, 1024), 448);
    }

    #[test]
    fn a_window_needs_rate_times_window_bytes() {
        let limits = ConnectionLimits::default();
        assert_eq!(limits.window_bytes(), 256 * 60);
        let limits = ConnectionLimits {
            min_transfer_rate: 0,
            ..ConnectionLimits::default()
        };
        assert_eq!(limits.window_bytes(), 1);
    }

    #[test]
    fn head_limits_answer_with_the_json_error_body() {
        let limits = ConnectionLimits {
            max_uri_length: 20,
            max_header_bytes: 40,
            ..ConnectionLimits::default()
        };
        let ok = Request::get("/updates").body(()).unwrap();
        assert!(check_head(&ok, &limits).is_none());
        let long = Request::get(format!("/updates?{}", "a".repeat(20)))
            .body(())
            .unwrap();
        let refused = check_head(&long, &limits).unwrap();
        assert_eq!(refused.status(), StatusCode::URI_TOO_LONG);
        let big = Request::get("/updates")
            .header("x-filler", "b".repeat(40))
            .body(())
            .unwrap();
        let refused = check_head(&big, &limits).unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(refused.headers()["content-type"], "application/json");
    }
}
