//! The admin HTTP listener: `/metrics` (Prometheus text format), `/health/live`,
//! `/health/ready` and `/status` (JSON), over HTTP/1.1 with hyper on the broker's runtime;
//! HTTPS with the SSL listeners' TLS settings if asked, and `/status` behind a bearer token if
//! one is set (`/metrics` and `/health/*` stay open, for scrapers and probes).
//!
//! It starts before the data directory is opened, so `/health/live` answers during recovery.
//! A client of this port cannot hurt the Kafka side: connections are capped, a request head must
//! arrive within [`HEADER_TIMEOUT`] and fit in [`MAX_HEAD_BYTES`], and a connection is closed
//! after [`MAX_CONNECTION_AGE`] even if it keeps sending requests. Every answer is built from
//! shared state without touching the disk.

mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::{AdminListener, TlsConfig};

/// Admin connections open at once; more are closed as soon as they are accepted.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request head (also the idle keep-alive limit).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers); larger ones get 431 and a close.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A connection is asked to close after this long, so none is held forever.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// How long a closing connection may take to finish the answer it is sending.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

/// What the endpoints read, shared by `run` and the admin connections.
#[derive(Debug)]
pub(crate) struct AdminState {
    metrics: Arc<Metrics>,
    /// Set once the data directory is open.
    broker: OnceLock<Arc<Broker>>,
    phase: AtomicU8,
    /// The Kafka listener's address.
    listener: SocketAddr,
    /// `/status` answers only a request with `Authorization: Bearer <this>`.
    token: Option<Box<[u8]>>,
}

impl AdminState {
    pub(crate) fn new(metrics: Arc<Metrics>, listener: SocketAddr, token: Option<&str>) -> Self {
        Self {
            metrics,
            broker: OnceLock::new(),
            phase: AtomicU8::new(STARTING),
            listener,
            token: token.map(|t| t.as_bytes().into()),
        }
    }

    /// Whether `request` may read `/status`: no token is set, or it sends the token as a bearer
    /// credential. Compared in constant time, so the answer's timing does not tell a guesser
    /// how much of the token it got right.
    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(given) = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, credential)| credential.trim())
        else {
            return false;
        };
        bool::from(given.as_bytes().ct_eq(token))
    }

    /// The data directory is open and the Kafka listener accepts: `/health/ready` says 200.
    pub(crate) fn ready(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
        self.phase.store(READY, Ordering::Release);
    }

    /// Shutdown has begun: `/health/ready` says 503 from now on.
    pub(crate) fn stopping(&self) {
        self.phase.store(STOPPING, Ordering::Release);
    }
}

/// Serves the admin endpoints on `admin` until `stop` is cancelled, then lets open
/// connections finish the answer they are sending.
pub(crate) async fn serve(admin: AdminListener, state: Arc<AdminState>, stop: CancellationToken) {
    let AdminListener {
        socket: listener,
        tls,
        ..
    } = admin;
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "admin listener: too many connections, closing a new one");
            continue;
        };
        drop(connections.spawn(handshake(
            stream,
            tls.clone(),
            peer,
            Arc::clone(&state),
            stop.clone(),
            slot,
        )));
    }
    drop(listener);
    let _ = connections.close();
    connections.wait().await;
}

/// Serves plain HTTP on `stream`, or HTTPS once a TLS handshake (within [`HEADER_TIMEOUT`])
/// succeeds.
async fn handshake(
    stream: tokio::net::TcpStream,
    tls: Option<TlsConfig>,
    peer: SocketAddr,
    state: Arc<AdminState>,
    stop: CancellationToken,
    slot: OwnedSemaphorePermit,
) {
    let Some(tls) = tls else {
        return connection(stream, peer, state, stop, slot).await;
    };
    let accepted = tokio::select! {
        accepted = tokio::time::timeout(HEADER_TIMEOUT, tls.acceptor().accept(stream)) => accepted,
        () = stop.cancelled() => return,
    };
    match accepted {
        Ok(Ok(stream)) => connection(stream, peer, state, stop, slot).await,
        Ok(Err(err)) => tracing::debug!(%err, %peer, "admin listener: TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "admin listener: TLS handshake timed out"),
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    state: Arc<AdminState>,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(route(&state, &request).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%err, %peer, "admin listener: connection ended");
            }
            return;
        }
        () = stop.cancelled() => {}
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
    }
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout(CLOSE_GRACE, conn).await.is_err() {
        tracing::debug!(%peer, "admin listener: connection did not close in time");
    }
}

/// Answers one request. Unknown paths are 404 whatever the method; known ones take GET (and
/// HEAD, which hyper answers without the body).
async fn route(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(
        path,
        "/metrics" | "/health/live" | "/health/ready" | "/status"
    ) {
        return text(
            StatusCode::NOT_FOUND,
            "not found; the endpoints are /metrics, /health/live, /health/ready and /status\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET\n",
        );
        let _ = response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path == "/status" && !state.authorized(request) {
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            "unauthorized: /status needs the admin token (Authorization: Bearer <token>)\n",
        );
        let _ = response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rill\""),
        );
        return response;
    }
    match path {
        "/metrics" => match state.metrics.encode() {
            Ok(text) => body(StatusCode::OK, Metrics::content_type(), text.into()),
            Err(err) => {
                tracing::error!(%err, "admin listener: encoding metrics");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "could not encode the metrics\n",
                )
            }
        },
        "/health/live" => text(StatusCode::OK, "live\n"),
        "/health/ready" => match state.phase.load(Ordering::Acquire) {
            READY => text(StatusCode::OK, "ready\n"),
            STARTING => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: opening the data directory\n",
            ),
            _ => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        },
        _ => match state.broker.get() {
            Some(broker) => {
                let status = status::build(state, broker).await;
                match serde_json::to_vec_pretty(&status) {
                    Ok(json) => body(StatusCode::OK, "application/json", json.into()),
                    Err(err) => {
                        tracing::error!(%err, "admin listener: encoding the status");
                        text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "could not encode the status\n",
                        )
                    }
                }
            }
            None => body(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                Bytes::from_static(b"{\"error\": \"starting: opening the data directory\"}\n"),
            ),
        },
    }
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    body(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(message.as_bytes()),
    )
}

fn body(status: StatusCode, content_type: &'static str, bytes: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    let _ = response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
