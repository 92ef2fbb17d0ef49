//! One TCP connection to one broker, with requests pipelined on it.
//!
//! A [`Connection`] owns two tasks: a writer that takes encoded frames from a channel and writes
//! them to the socket, and a reader that splits response frames off the socket and hands each to
//! the caller waiting for it, found by correlation id. The api key and version of each request
//! are recorded when it is sent, because a Kafka response does not say what it answers.
//!
//! The connection is generic over its byte stream: plain TCP (split into owned halves, no
//! locking), or TLS over it (rustls, split with tokio's `split`); the SASL exchange, when
//! configured, runs right after `ApiVersions`, before the connection is handed out.
//!
//! Failure is total and loud: the first I/O error, undecodable frame, unknown correlation id or
//! request timeout closes the connection and fails every pending request with an error, so no
//! caller ever waits forever. A closed connection stays closed; [`Cluster`](crate::Cluster)
//! opens a new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use rill_protocol::kafka_protocol::messages::{RequestKind, ResponseKind};
use rill_protocol::{ApiKey, ErrorCode, Request, RequestHeader, Response, StrBytes, split_frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::api::{ApiRequest, client_range, highest_common};
use crate::error::{ClientError, Result};
use crate::security::{Security, Tls};

/// Default for [`ConnectionConfig::request_timeout`]: 30 s, Kafka's `request.timeout.ms`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ConnectionConfig::connect_timeout`]: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ConnectionConfig::max_response_size`]: 100 MiB.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 100 * 1024 * 1024;
/// The name this client gives the broker in `ApiVersions` v3+ (KIP-511).
pub const CLIENT_SOFTWARE_NAME: &str = "rill-client";
/// The version this client gives the broker in `ApiVersions` v3+.
pub const CLIENT_SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Frames queued for the writer before `send` waits.
const WRITE_QUEUE: usize = 256;

/// How a connection is opened and how long its requests may take.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Sent in every request header (Kafka's `client.id`). Default `"rill-client"`.
    pub client_id: String,
    /// How long one request may wait for its response (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]). When it passes the connection is closed, as the Java
    /// client does, because the request's fate is unknown and later responses would be out of
    /// step.
    pub request_timeout: Duration,
    /// How long the TCP connect and the `ApiVersions` exchange may take (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Largest response frame accepted (default [`DEFAULT_MAX_RESPONSE_SIZE`]); a larger size
    /// prefix closes the connection before anything is allocated.
    pub max_response_size: usize,
    /// TLS and SASL (default: neither, Kafka's `PLAINTEXT`).
    pub security: Security,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            client_id: CLIENT_SOFTWARE_NAME.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
            security: Security::default(),
        }
    }
}

/// A request waiting for its response.
struct InFlight {
    api_key: ApiKey,
    api_version: i16,
    reply: oneshot::Sender<Result<ResponseKind>>,
}

#[derive(Default)]
struct Pending {
    in_flight: HashMap<i32, InFlight>,
    /// Set once, when the connection fails; every later request fails with it.
    closed: Option<ClientError>,
}

/// State shared by the handle and its two tasks.
struct Shared {
    addr: String,
    pending: Mutex<Pending>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves the map consistent (every operation is one
        // insert or remove), so a poisoned lock is still usable.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the connection: records why and fails every pending request.
    fn fail(&self, err: ClientError) {
        let drained: Vec<InFlight> = {
            let mut pending = self.lock();
            if pending.closed.is_none() {
                tracing::debug!(addr = %self.addr, %err, "connection closed");
                pending.closed = Some(err.clone());
            }
            pending.in_flight.drain().map(|(_, f)| f).collect()
        };
        for in_flight in drained {
            let _ = in_flight.reply.send(Err(err.clone()));
        }
    }
}

/// One connection to one broker: pipelined requests, negotiated versions.
///
/// Cheap to share behind an `Arc`: every method takes `&self`, and any number of requests may
/// be in flight at once (the broker answers them in order; the reader matches them by
/// correlation id). Dropping the last handle closes the socket and fails what is pending.
///
/// ```no_run
/// use rill_client::{Connection, ConnectionConfig};
/// use rill_client::kafka_protocol::messages::MetadataRequest;
///
/// # async fn _demo() -> Result<(), rill_client::ClientError> {
/// let conn = Connection::connect("127.0.0.1:9092", &ConnectionConfig::default()).await?;
/// let metadata = conn.request(MetadataRequest::default()).await?;
/// println!("{} brokers", metadata.brokers.len());
/// # Ok(())
/// # }
/// ```
pub struct Connection {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Bytes>,
    reader: AbortHandle,
    next_correlation_id: AtomicI32,
    config: ConnectionConfig,
    /// The broker's `(api key, min, max)` from `ApiVersions`.
    broker_versions: HashMap<i16, (i16, i16)>,
    /// When a SASL session with a lifetime (KIP-368) should be replaced: the connection then
    /// reports itself closed, and its owner opens a new one (which authenticates afresh)
    /// before the broker would refuse it.
    expires_at: Option<Instant>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.shared.addr)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.shared.fail(ClientError::Closed("connection"));
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) and negotiates API versions: `ApiVersions` v3 with this
    /// client's name and version, falling back to the version the broker names (or v0) when it
    /// answers `UNSUPPORTED_VERSION` (KIP-511).
    ///
    /// ```no_run
    /// # async fn _demo() -> Result<(), rill_client::ClientError> {
    /// use rill_client::{ApiKey, Connection, ConnectionConfig};
    /// let conn = Connection::connect("127.0.0.1:9092", &ConnectionConfig::default()).await?;
    /// println!("produce v{}", conn.version_for(ApiKey::Produce)?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(addr: &str, config: &ConnectionConfig) -> Result<Self> {
        let io_err = |source| ClientError::Io {
            addr: addr.to_owned(),
            source: Arc::new(source),
        };
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_elapsed| ClientError::Timeout {
                what: format!("connect to {addr}"),
                after: config.connect_timeout,
            })?
            .map_err(io_err)?;
        stream.set_nodelay(true).map_err(io_err)?;
        let mut conn = match &config.security.tls {
            None => {
                let (read_half, write_half) = stream.into_split();
                Self::start(addr, read_half, write_half, config)
            }
            Some(tls) => {
                let name = Tls::server_name(addr)?;
                let stream = tokio::time::timeout(
                    config.connect_timeout,
                    tls.connector().connect(name, stream),
                )
                .await
                .map_err(|_elapsed| ClientError::Timeout {
                    what: format!("TLS handshake with {addr}"),
                    after: config.connect_timeout,
                })?
                .map_err(io_err)?;
                let (read_half, write_half) = tokio::io::split(stream);
                Self::start(addr, read_half, write_half, config)
            }
        };
        let versions = tokio::time::timeout(config.connect_timeout, conn.negotiate())
            .await
            .map_err(|_elapsed| ClientError::Timeout {
                what: format!("api versions exchange with {addr}"),
                after: config.connect_timeout,
            })??;
        conn.broker_versions = versions;
        if let Some(sasl) = &config.security.sasl {
            let started = Instant::now();
            let lifetime = tokio::time::timeout(
                config.connect_timeout,
                crate::security::sasl::authenticate(&conn, sasl),
            )
            .await
            .map_err(|_elapsed| ClientError::Timeout {
                what: format!("SASL authentication with {addr}"),
                after: config.connect_timeout,
            })??;
            // Replaced at 85% of its lifetime, as Kafka's clients re-authenticate at 85-95%.
            conn.expires_at = lifetime.map(|life| started + life.mul_f64(0.85));
        }
        Ok(conn)
    }

    /// Starts the reader and writer tasks on the two halves of a stream. Generic, so plain TCP
    /// pays nothing for TLS being possible.
    fn start<R, W>(addr: &str, read_half: R, write_half: W, config: &ConnectionConfig) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            addr: addr.to_owned(),
            pending: Mutex::default(),
        });
        let (writer, frames) = mpsc::channel(WRITE_QUEUE);
        drop(tokio::spawn(write_loop(
            Arc::clone(&shared),
            write_half,
            frames,
        )));
        let reader = tokio::spawn(read_loop(
            Arc::clone(&shared),
            read_half,
            config.max_response_size,
        ))
        .abort_handle();
        Self {
            shared,
            writer,
            reader,
            next_correlation_id: AtomicI32::new(0),
            config: config.clone(),
            broker_versions: HashMap::new(),
            expires_at: None,
        }
    }

    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_SOFTWARE_NAME))
            .with_client_software_version(StrBytes::from_static_str(CLIENT_SOFTWARE_VERSION));
        let (_, ours) = client_range(ApiKey::ApiVersions).unwrap_or((0, 0));
        let mut response = self.request_at(request.clone(), ours).await?;
        if response.error_code == ErrorCode::UnsupportedVersion.code() {
            // KIP-511: the answer is a v0 body listing the broker's ApiVersions range; retry at
            // the highest version both know (v0 if it listed none).
            let theirs = broker_range(&response, ApiKey::ApiVersions).unwrap_or((0, 0));
            let version = highest_common(theirs, (0, ours)).unwrap_or(0);
            response = self.request_at(request, version).await?;
        }
        ClientError::check(response.error_code, || {
            format!("api versions from {}", self.shared.addr)
        })?;
        Ok(response
            .api_keys
            .iter()
            .map(|v| (v.api_key, (v.min_version, v.max_version)))
            .collect())
    }

    /// The broker's `host:port`.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the connection has failed or been closed, or its SASL session is near its end
    /// ([`Connection::is_expired`]); a closed connection fails every request, and the owner
    /// should open a new one.
    pub fn is_closed(&self) -> bool {
        self.is_expired() || self.shared.lock().closed.is_some()
    }

    /// Whether the SASL session the broker granted (KIP-368) is near its end: the connection
    /// still works for requests already sent, but its owner should open a new one.
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| Instant::now() >= at)
    }

    /// The broker's `(min, max)` versions for `api_key`, as it listed them in `ApiVersions`.
    pub fn broker_range(&self, api_key: ApiKey) -> Option<(i16, i16)> {
        self.broker_versions.get(&(api_key as i16)).copied()
    }

    /// The highest version of `api_key` both this client and the broker support, or
    /// [`ClientError::UnsupportedApi`] when there is none.
    pub fn version_for(&self, api_key: ApiKey) -> Result<i16> {
        let broker = self.broker_range(api_key);
        let client = client_range(api_key);
        match (broker, client) {
            (Some(b), Some(c)) => highest_common(b, c),
            _ => None,
        }
        .ok_or_else(|| ClientError::UnsupportedApi {
            addr: self.shared.addr.clone(),
            api_key,
            broker,
            client,
        })
    }

    /// Sends `body` at the highest version both sides support and waits for the response
    /// (at most the request timeout).
    ///
    /// ```no_run
    /// # async fn _demo(conn: &rill_client::Connection) -> Result<(), rill_client::ClientError> {
    /// use rill_client::kafka_protocol::messages::MetadataRequest;
    /// let metadata = conn.request(MetadataRequest::default()).await?;
    /// # drop(metadata);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request<R: ApiRequest>(&self, body: R) -> Result<R::Response> {
        let version = self.version_for(R::API_KEY)?;
        self.request_at(body, version).await
    }

    /// Sends `body` at `version` (which the caller has checked) and waits for the response.
    ///
    /// ```no_run
    /// # async fn _demo(conn: &rill_client::Connection) -> Result<(), rill_client::ClientError> {
    /// use rill_client::kafka_protocol::messages::MetadataRequest;
    /// let metadata = conn.request_at(MetadataRequest::default(), 9).await?;
    /// # drop(metadata);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request_at<R: ApiRequest>(&self, body: R, version: i16) -> Result<R::Response> {
        let queued = self.queue_at(body, version).await?;
        self.response(queued).await
    }

    /// The first half of [`request_at`](Self::request_at): returns once the request is queued
    /// for the writer, so that a caller can order requests on the wire (requests queued one
    /// after the other are written, and answered, in that order) and wait for the answers
    /// concurrently with [`response`](Self::response).
    pub(crate) async fn queue_at<R: ApiRequest>(&self, body: R, version: i16) -> Result<Queued<R>> {
        let (correlation_id, rx) = self
            .send_frame(body.into(), R::API_KEY, version, true)
            .await?;
        Ok(Queued {
            correlation_id,
            rx,
            _response: std::marker::PhantomData,
        })
    }

    /// The second half of [`request_at`](Self::request_at): waits for the answer to a
    /// request queued with [`queue_at`](Self::queue_at) (at most the request timeout).
    pub(crate) async fn response<R: ApiRequest>(&self, queued: Queued<R>) -> Result<R::Response> {
        let Queued {
            correlation_id, rx, ..
        } = queued;
        let Some(rx) = rx else {
            return Err(self.closed_error());
        };
        let kind = match tokio::time::timeout(self.config.request_timeout, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_dropped)) => {
                return Err(self.closed_error());
            }
            Err(_elapsed) => {
                let err = ClientError::Timeout {
                    what: format!(
                        "{:?} request {correlation_id} to {}",
                        R::API_KEY,
                        self.shared.addr
                    ),
                    after: self.config.request_timeout,
                };
                self.shared.fail(ClientError::ConnectionClosed {
                    addr: self.shared.addr.clone(),
                    reason: err.to_string(),
                });
                return Err(err);
            }
        };
        R::from_kind(kind).ok_or_else(|| ClientError::UnexpectedResponse {
            addr: self.shared.addr.clone(),
            api_key: R::API_KEY,
        })
    }

    /// Sends `body` and does not wait for an answer: for requests the broker does not answer
    /// (a Produce with `acks = 0`). Returns once the frame is queued for the writer.
    ///
    /// ```no_run
    /// # async fn _demo(conn: &rill_client::Connection) -> Result<(), rill_client::ClientError> {
    /// use rill_client::ApiKey;
    /// use rill_client::kafka_protocol::messages::ProduceRequest;
    /// let version = conn.version_for(ApiKey::Produce)?;
    /// conn.send_oneway(ProduceRequest::default().with_acks(0), version).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_oneway<R: ApiRequest>(&self, body: R, version: i16) -> Result<()> {
        let _ = self
            .send_frame(body.into(), R::API_KEY, version, false)
            .await?;
        Ok(())
    }

    fn closed_error(&self) -> ClientError {
        self.shared
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| ClientError::ConnectionClosed {
                addr: self.shared.addr.clone(),
                reason: "the reader stopped".to_owned(),
            })
    }

    async fn send_frame(
        &self,
        body: RequestKind,
        api_key: ApiKey,
        api_version: i16,
        want_reply: bool,
    ) -> Result<(i32, Option<oneshot::Receiver<Result<ResponseKind>>>)> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::new(api_key, api_version, correlation_id)
            .with_client_id(self.config.client_id.clone());
        let mut buf = BytesMut::new();
        Request::new(header, body)
            .encode(&mut buf)
            .map_err(|source| ClientError::Protocol {
                addr: self.shared.addr.clone(),
                source: Arc::new(source),
            })?;
        let rx = {
            let mut pending = self.shared.lock();
            if let Some(err) = &pending.closed {
                return Err(err.clone());
            }
            want_reply.then(|| {
                let (reply, rx) = oneshot::channel();
                let _ = pending.in_flight.insert(
                    correlation_id,
                    InFlight {
                        api_key,
                        api_version,
                        reply,
                    },
                );
                rx
            })
        };
        if self.writer.send(buf.freeze()).await.is_err() {
            let _ = self.shared.lock().in_flight.remove(&correlation_id);
            return Err(self.closed_error());
        }
        Ok((correlation_id, rx))
    }
}

/// A request queued for the writer, its answer not yet awaited
/// ([`Connection::queue_at`]).
pub(crate) struct Queued<R> {
    correlation_id: i32,
    rx: Option<oneshot::Receiver<Result<ResponseKind>>>,
    _response: std::marker::PhantomData<fn() -> R>,
}

/// The broker's range for `api_key` in an `ApiVersions` answer.
fn broker_range(response: &ApiVersionsResponse, api_key: ApiKey) -> Option<(i16, i16)> {
    response
        .api_keys
        .iter()
        .find(|v| v.api_key == api_key as i16)
        .map(|v| (v.min_version, v.max_version))
}

async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut socket: W,
    mut frames: mpsc::Receiver<Bytes>,
) {
    while let Some(frame) = frames.recv().await {
        if let Err(source) = write_queued(&mut socket, frame, &mut frames).await {
            shared.fail(ClientError::Io {
                addr: shared.addr.clone(),
                source: Arc::new(source),
            });
            return;
        }
    }
    // Every handle is gone: close our half so the broker sees the end.
    let _ = socket.shutdown().await;
}

/// Writes `frame` and every frame queued behind it, then flushes: TLS keeps written bytes in its
/// buffer until then (for TCP the flush does nothing).
async fn write_queued<W: AsyncWrite + Unpin>(
    socket: &mut W,
    frame: Bytes,
    frames: &mut mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    socket.write_all(&frame).await?;
    while let Ok(frame) = frames.try_recv() {
        socket.write_all(&frame).await?;
    }
    socket.flush().await
}

async fn read_loop<R: AsyncRead + Unpin>(shared: Arc<Shared>, mut socket: R, max_frame: usize) {
    let err = match read_frames(&shared, &mut socket, max_frame).await {
        Ok(()) => ClientError::ConnectionClosed {
            addr: shared.addr.clone(),
            reason: "the broker closed the connection".to_owned(),
        },
        Err(err) => err,
    };
    shared.fail(err);
}

async fn read_frames<R: AsyncRead + Unpin>(
    shared: &Shared,
    socket: &mut R,
    max_frame: usize,
) -> Result<()> {
    let protocol = |source| ClientError::Protocol {
        addr: shared.addr.clone(),
        source: Arc::new(source),
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        while let Some(frame) = split_frame(&mut buf, max_frame)
            .map_err(|err| protocol(rill_protocol::ProtocolError::Frame(err)))?
        {
            let Some(&[c0, c1, c2, c3]) = frame.get(..4) else {
                return Err(ClientError::ConnectionClosed {
                    addr: shared.addr.clone(),
                    reason: format!("response frame of {} bytes has no header", frame.len()),
                });
            };
            let correlation_id = i32::from_be_bytes([c0, c1, c2, c3]);
            let Some(in_flight) = shared.lock().in_flight.remove(&correlation_id) else {
                return Err(ClientError::ConnectionClosed {
                    addr: shared.addr.clone(),
                    reason: format!("response to unknown correlation id {correlation_id}"),
                });
            };
            let decoded = decode(in_flight.api_key, in_flight.api_version, frame).map_err(protocol);
            let _ = in_flight.reply.send(decoded.map(|r| r.body));
        }
        let read = socket
            .read_buf(&mut buf)
            .await
            .map_err(|source| ClientError::Io {
                addr: shared.addr.clone(),
                source: Arc::new(source),
            })?;
        if read == 0 {
            return Ok(());
        }
    }
}

/// Decodes a response; an `ApiVersions` answer that does not decode at the version asked is
/// tried at v0, which is how a broker answers a version it does not know (KIP-511).
fn decode(
    api_key: ApiKey,
    api_version: i16,
    frame: Bytes,
) -> Result<Response, rill_protocol::ProtocolError> {
    match Response::decode(api_key, api_version, frame.clone()) {
        Err(_) if api_key == ApiKey::ApiVersions && api_version > 0 => {
            Response::decode(api_key, 0, frame)
        }
        other => other,
    }
}
