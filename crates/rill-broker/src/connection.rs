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
use rill_protocol::kafka_protocol::messages::{
    RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use rill_protocol::{
    ApiKey, ErrorCode, ProtocolError, Request, Response, SIZE_PREFIX_LEN, StrBytes, split_frame,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::broker::Broker;
use crate::dispatch;
use crate::metrics::ConnectionGuard;
use crate::sasl::{Admit, Authenticator, MAX_RECEIVE_BEFORE_AUTH, SaslConfig};

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
    /// `User:...`: the SASL user, else the subject of a TLS client's certificate.
    pub(crate) principal: Option<String>,
    /// On SASL listeners, where the client is in authenticating (boxed: a plaintext
    /// connection pays a pointer for it, not the exchange's state).
    sasl: Option<Box<Authenticator>>,
}

impl Session {
    pub(crate) fn new(listener: Arc<str>, sasl: bool, config: &SaslConfig) -> Self {
        Self {
            listener,
            principal: None,
            sasl: sasl.then(|| Box::new(Authenticator::new(config))),
        }
    }

    /// The largest frame the client may send now: small until it has authenticated.
    fn frame_limit(&self, max_request_bytes: usize) -> usize {
        match &self.sasl {
            Some(sasl) if !sasl.authenticated() => MAX_RECEIVE_BEFORE_AUTH.min(max_request_bytes),
            _ => max_request_bytes,
        }
    }

    /// When the connection closes unless the client has authenticated by then.
    fn deadline(&self) -> Option<Instant> {
        self.sasl.as_deref().and_then(Authenticator::deadline)
    }
}

/// Finishes a TLS handshake (in the connection's own task, within
/// [`TLS_HANDSHAKE_TIMEOUT`]) and serves the client; a failed handshake closes the connection.
pub(crate) async fn serve_tls(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    mut session: Session,
    shutdown: CancellationToken,
    open: ConnectionGuard,
) {
    let _ = stream.set_nodelay(true);
    let listener = session.listener.clone();
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
    session.principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| crate::tls::principal(cert));
    tracing::debug!(%peer, principal = session.principal.as_deref().unwrap_or("User:ANONYMOUS"), "TLS handshake done");
    serve(broker, stream, peer, session, shutdown, open).await;
}

/// Serves a plaintext client.
pub(crate) async fn serve_plain(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    session: Session,
    shutdown: CancellationToken,
    open: ConnectionGuard,
) {
    let _ = stream.set_nodelay(true);
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
    mut session: Session,
    shutdown: CancellationToken,
    _open: ConnectionGuard,
) {
    serve_requests(&broker, &mut stream, peer, &mut session, &shutdown).await;
    stream.close().await;
}

/// The request loop of [`serve`]; returning closes the connection.
async fn serve_requests<S: Transport>(
    broker: &Broker,
    stream: &mut S,
    peer: SocketAddr,
    session: &mut Session,
    shutdown: &CancellationToken,
) {
    let mut read_buf = BytesMut::new();
    let mut write_buf = BytesMut::new();
    loop {
        let limit = session.frame_limit(broker.config.max_request_bytes);
        let frame = match split_frame(&mut read_buf, limit) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let deadline = session.deadline();
                let read = read_more(stream, &mut read_buf, &mut write_buf, shutdown);
                let read = match deadline {
                    None => read.await,
                    Some(at) => match tokio::time::timeout_at(at.into(), read).await {
                        Ok(read) => read,
                        Err(_) => {
                            tracing::info!(%peer, "closing connection: not authenticated in time");
                            return;
                        }
                    },
                };
                match read {
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
                }
            }
            Err(err) => {
                tracing::warn!(%err, %peer, "closing connection: bad frame");
                return;
            }
        };
        if let Some(sasl) = session.sasl.as_mut().filter(|s| s.raw()) {
            // After a v0 handshake the frames are bare SASL tokens (KIP-43), answered in kind.
            let token = match sasl.raw_token(broker, &frame).await {
                Ok(token) => token,
                Err(why) => {
                    tracing::info!(%peer, %why, "closing connection: SASL authentication failed");
                    return;
                }
            };
            session.principal = sasl.user().map(|u| format!("User:{u}"));
            write_buf.clear();
            let written = rill_protocol::write_frame(&mut write_buf, |dst| {
                dst.extend_from_slice(&token);
                Ok::<_, rill_protocol::FrameError>(())
            });
            if written.is_err() || stream.send(&write_buf).await.is_err() {
                return;
            }
            continue;
        }
        let started = Instant::now();
        let (metrics, outcome) = match Request::decode_frame(frame) {
            // Boxed: the handlers' futures are large, and inline they would make every
            // connection's task that large for its whole life, idle or not.
            Ok(request) => (
                broker.metrics.api(request.header.api_key),
                Box::pin(handle(broker, peer, session, request)).await,
            ),
            Err(err) => match answer_undecodable(&err) {
                Some(response) => (
                    broker.metrics.api(response.api_key),
                    Outcome::Answer(response, false),
                ),
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
        let (response, close) = match outcome {
            Outcome::Answer(response, close) => (response, close),
            Outcome::Close => {
                finished();
                return;
            }
            Outcome::Silent => {
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
        if close {
            return;
        }
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

/// What the connection does after a request.
#[expect(
    clippy::large_enum_variant,
    reason = "one per request, moved once; boxing the answer would allocate per request"
)]
enum Outcome {
    /// Send the answer, then close the connection if `true`.
    Answer(Response, bool),
    /// No answer (acks=0).
    Silent,
    /// Close the connection without answering.
    Close,
}

/// Runs a request: the SASL ones here, since they change the session; the others once the
/// session admits them.
async fn handle(
    broker: &Broker,
    peer: SocketAddr,
    session: &mut Session,
    request: Request,
) -> Outcome {
    let span = tracing::debug_span!(
        "request",
        api_key = ?request.header.api_key,
        api_version = request.header.api_version,
        correlation_id = request.header.correlation_id,
    );
    let header = request.header.clone();
    let version = header.api_version;
    if let Some(sasl) = &mut session.sasl
        && let Admit::No(why) = sasl.admits(header.api_key, Instant::now())
    {
        tracing::info!(%peer, api_key = ?header.api_key, why, "closing connection");
        return Outcome::Close;
    }
    let answer = |body: ResponseKind, close| Outcome::Answer(Response::new(&header, body), close);
    match (&request.body, session.sasl.as_deref_mut()) {
        (RequestKind::SaslHandshake(req), Some(sasl)) => {
            let a = sasl.handshake(&broker.config.sasl, req, version);
            answer(a.body.into(), a.close)
        }
        (RequestKind::SaslAuthenticate(req), Some(sasl)) => {
            let a = sasl
                .authenticate(broker, &req.auth_bytes, version)
                .instrument(span)
                .await;
            if a.close {
                tracing::info!(%peer, message = ?a.body.error_message, "closing connection: SASL authentication failed");
            }
            session.principal = sasl.user().map(|u| format!("User:{u}"));
            answer(a.body.into(), a.close)
        }
        (RequestKind::SaslHandshake(_), None) => {
            let body = SaslHandshakeResponse::default()
                .with_error_code(ErrorCode::IllegalSaslState.code());
            answer(body.into(), false)
        }
        (RequestKind::SaslAuthenticate(_), None) => {
            let body = SaslAuthenticateResponse::default()
                .with_error_code(ErrorCode::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "this listener does not use SASL",
                )));
            answer(body.into(), false)
        }
        _ => {
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
                dispatch::Reply::Answer(body) => answer(body, false),
                dispatch::Reply::Silent => Outcome::Silent,
                dispatch::Reply::Close => {
                    tracing::debug!("closing connection: an acks=0 produce failed");
                    Outcome::Close
                }
            }
        }
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
