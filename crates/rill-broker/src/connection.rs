//! One task per connection: read a frame, decode it, run its handler, write the answer, and only
//! then read the next one. Requests on a connection are therefore handled and answered in the
//! order they were sent, as Kafka does (its broker mutes a connection while a request is in
//! flight).
//!
//! The loop is generic over the byte stream ([`Transport`]): a plain `TcpStream`, whose code is
//! what it was before TLS, or a TLS stream over one.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rill_protocol::{ApiKey, ProtocolError, Request, Response, SIZE_PREFIX_LEN, split_frame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::broker::Broker;
use crate::dispatch;
use crate::metrics::ConnectionGuard;

/// Bytes asked of the kernel per read when no frame size is known yet.
const READ_CHUNK: usize = 4096;

/// How long a closing TLS connection may take to send its close_notify.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a client has to finish its TLS handshake.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client's byte stream, read without waiting so that an idle connection can drop its
/// buffers before it waits.
pub(crate) trait Transport: Send + Unpin + 'static {
    /// Appends what has arrived to `buf`: `Ok(0)` at end of stream, `WouldBlock` if nothing.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize>;
    /// Waits until [`Transport::try_read_buf`] may have something.
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send + '_;
    /// Writes all of `bytes` out to the socket.
    fn send<'a>(
        &'a mut self,
        bytes: &'a [u8],
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'a;
    /// Ends the stream as its protocol wants before the socket is dropped.
    fn close(&mut self) -> impl Future<Output = ()> + Send + '_;
}

impl Transport for TcpStream {
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        TcpStream::try_read_buf(self, buf)
    }
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send + '_ {
        TcpStream::readable(self)
    }
    fn send<'a>(
        &'a mut self,
        bytes: &'a [u8],
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'a {
        self.write_all(bytes)
    }
    async fn close(&mut self) {
        // Dropping the socket closes it.
    }
}

impl Transport for TlsStream<TcpStream> {
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        // One poll with a waker that does nothing: `Pending` means rustls holds no plaintext
        // and the socket has nothing (its readiness is then cleared, so `readable` waits for
        // new bytes, with a real waker).
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match tokio_util::io::poll_read_buf(std::pin::Pin::new(self), &mut cx, buf) {
            Poll::Ready(read) => read,
            Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send + '_ {
        self.get_ref().0.readable()
    }
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes).await?;
        // rustls may still hold encrypted records the socket did not take.
        self.flush().await
    }
    async fn close(&mut self) {
        // close_notify, then the TCP write side: the client sees a clean end of the TLS
        // stream, not a truncation it must treat as an attack. Bounded: a client that reads
        // nothing must not hold the task.
        if let Err(err) = tokio::time::timeout(CLOSE_TIMEOUT, self.shutdown()).await {
            tracing::debug!(%err, "TLS close_notify not sent in time");
        }
    }
}

/// The listener a connection came in on and who its client proved to be.
#[derive(Debug)]
pub(crate) struct Session {
    /// The listener's name (`PLAINTEXT`, `SSL`, ...): answers give the brokers' addresses on it.
    pub(crate) listener: Arc<str>,
    /// `User:CN=...` of a client that showed a certificate.
    pub(crate) principal: Option<String>,
}

/// Finishes a TLS handshake (in the connection's own task, within
/// [`TLS_HANDSHAKE_TIMEOUT`]) and serves the client; a failed handshake closes the connection.
pub(crate) async fn serve_tls(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    listener: Arc<str>,
    shutdown: CancellationToken,
    open: ConnectionGuard,
) {
    let _ = stream.set_nodelay(true);
    let accepted = tokio::select! {
        accepted = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => accepted,
        () = shutdown.cancelled() => return,
    };
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::info!(%peer, %err, %listener, "closing connection: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, %listener, "closing connection: TLS handshake timed out");
            return;
        }
    };
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| crate::tls::principal(cert));
    tracing::debug!(%peer, principal = principal.as_deref().unwrap_or("User:ANONYMOUS"), "TLS handshake done");
    let session = Session {
        listener,
        principal,
    };
    serve(broker, stream, peer, session, shutdown, open).await;
}

/// Serves a plaintext client.
pub(crate) async fn serve_plain(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    shutdown: CancellationToken,
    open: ConnectionGuard,
) {
    let _ = stream.set_nodelay(true);
    let session = Session {
        listener,
        principal: None,
    };
    serve(broker, stream, peer, session, shutdown, open).await;
}

/// Serves one client until it disconnects, sends something unanswerable, or the broker stops.
/// The connection counts as open until `_open` is dropped with the task.
///
/// An idle connection holds no buffers: they are released whenever the connection waits for
/// its client with nothing half-read, so 10,000 idle clients cost their tasks and sockets only.
#[tracing::instrument(name = "connection", level = "debug", skip_all, fields(peer = %peer))]
async fn serve<S: Transport>(
    broker: Arc<Broker>,
    mut stream: S,
    peer: SocketAddr,
    session: Session,
    shutdown: CancellationToken,
    _open: ConnectionGuard,
) {
    serve_requests(&broker, &mut stream, peer, &session, &shutdown).await;
    stream.close().await;
}

/// The request loop of [`serve`]; returning closes the connection.
async fn serve_requests<S: Transport>(
    broker: &Broker,
    stream: &mut S,
    peer: SocketAddr,
    session: &Session,
    shutdown: &CancellationToken,
) {
    let mut read_buf = BytesMut::new();
    let mut write_buf = BytesMut::new();
    loop {
        let frame = match split_frame(&mut read_buf, broker.config.max_request_bytes) {
            Ok(Some(frame)) => frame,
            Ok(None) => match read_more(stream, &mut read_buf, &mut write_buf, shutdown).await {
                Ok(0) => {
                    if !read_buf.is_empty() {
                        tracing::debug!(left = read_buf.len(), "connection closed mid-frame");
                    }
                    return;
                }
                Ok(_) => continue,
                Err(err) => {
                    tracing::debug!(%err, "read failed");
                    return;
                }
            },
            Err(err) => {
                tracing::warn!(%err, %peer, "closing connection: bad frame");
                return;
            }
        };
        let started = Instant::now();
        let (metrics, outcome) = match Request::decode_frame(frame) {
            // Boxed: the handlers' futures are large, and inline they would make every
            // connection's task that large for its whole life, idle or not.
            Ok(request) => (
                broker.metrics.api(request.header.api_key),
                Box::pin(handle(broker, peer, session, request)).await,
            ),
            Err(err) => match answer_undecodable(&err) {
                Some(response) => (broker.metrics.api(response.api_key), Some(Ok(response))),
                None => {
                    tracing::warn!(%err, %peer, "closing connection: undecodable request");
                    return;
                }
            },
        };
        let finished = || {
            if let Some(metrics) = metrics {
                metrics.finished(started);
            }
        };
        let response = match outcome {
            Some(Ok(response)) => response,
            Some(Err(())) => {
                finished();
                tracing::debug!("closing connection: an acks=0 produce failed");
                return;
            }
            None => {
                finished(); // acks=0: no answer
                continue;
            }
        };
        if let Some(metrics) = metrics {
            metrics.count_errors(&response.body);
        }
        write_buf.clear();
        if let Err(err) = response.encode(&mut write_buf) {
            tracing::error!(%err, api_key = ?response.api_key, "could not encode a response");
            return;
        }
        drop(response);
        if let Err(err) = stream.send(&write_buf).await {
            tracing::debug!(%err, "write failed");
            return;
        }
        finished();
    }
}

/// Reads what the socket has into `read_buf` (`Ok(0)` at end of stream). Room is made for the
/// whole frame once its size prefix is in, so a large produce is read without regrowing. When
/// there is nothing to read and no frame is half-read, both buffers are released before
/// waiting.
async fn read_more<S: Transport>(
    stream: &mut S,
    read_buf: &mut BytesMut,
    write_buf: &mut BytesMut,
    shutdown: &CancellationToken,
) -> std::io::Result<usize> {
    loop {
        let wanted = match read_buf.get(..SIZE_PREFIX_LEN) {
            Some(&[b0, b1, b2, b3]) => {
                // split_frame has checked the size against the limit.
                let size = usize::try_from(i32::from_be_bytes([b0, b1, b2, b3])).unwrap_or(0);
                (SIZE_PREFIX_LEN + size).saturating_sub(read_buf.len())
            }
            _ => READ_CHUNK,
        };
        if read_buf.capacity() - read_buf.len() < wanted.min(READ_CHUNK) {
            read_buf.reserve(wanted.max(READ_CHUNK));
        }
        match stream.try_read_buf(read_buf) {
            Ok(n) => return Ok(n),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                if read_buf.is_empty() {
                    *read_buf = BytesMut::new();
                    *write_buf = BytesMut::new();
                }
                tokio::select! {
                    ready = stream.readable() => ready?,
                    () = shutdown.cancelled() => return Ok(0),
                }
            }
            Err(err) => return Err(err),
        }
    }
}

/// Runs a request: `Some(Ok(answer))`, `None` for no answer, `Some(Err(()))` to close.
async fn handle(
    broker: &Broker,
    peer: SocketAddr,
    session: &Session,
    request: Request,
) -> Option<Result<Response, ()>> {
    let span = tracing::debug_span!(
        "request",
        api_key = ?request.header.api_key,
        api_version = request.header.api_version,
        correlation_id = request.header.correlation_id,
    );
    let header = request.header.clone();
    let ctx = dispatch::Context {
        peer,
        client_id: header.client_id.as_deref().unwrap_or_default().to_owned(),
        listener: &session.listener,
        principal: session.principal.as_deref(),
    };
    match dispatch::dispatch(broker, &ctx, request)
        .instrument(span)
        .await
    {
        dispatch::Reply::Answer(body) => Some(Ok(Response::new(&header, body))),
        dispatch::Reply::Silent => None,
        dispatch::Reply::Close => Some(Err(())),
    }
}

/// The answer Kafka gives to a request it cannot decode, where it gives one: an ApiVersions
/// request of a version it does not know gets the v0 answer with UNSUPPORTED_VERSION and the
/// versions it does (KIP-511). Anything else closes the connection, as Kafka does.
fn answer_undecodable(err: &ProtocolError) -> Option<Response> {
    match err {
        ProtocolError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        } => Some(Response::unsupported_api_versions(*correlation_id)),
        _ => None,
    }
}
