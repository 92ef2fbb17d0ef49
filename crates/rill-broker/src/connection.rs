//! One task per connection: read a frame, decode it, run its handler, write the answer, and only
//! then read the next one. Requests on a connection are therefore handled and answered in the
//! order they were sent, as Kafka does (its broker mutes a connection while a request is in
//! flight).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rill_protocol::{ApiKey, ProtocolError, Request, Response, split_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::broker::Broker;
use crate::dispatch;
use crate::metrics::ConnectionGuard;

/// Serves one client until it disconnects, sends something unanswerable, or the broker stops.
/// The connection counts as open until `_open` is dropped with the task.
#[tracing::instrument(name = "connection", skip_all, fields(peer = %peer))]
pub(crate) async fn serve(
    broker: Arc<Broker>,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    _open: ConnectionGuard,
) {
    let _ = stream.set_nodelay(true);
    let mut read_buf = BytesMut::with_capacity(4096);
    let mut write_buf = BytesMut::new();
    loop {
        let frame = match split_frame(&mut read_buf, broker.config.max_request_bytes) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let read = tokio::select! {
                    read = stream.read_buf(&mut read_buf) => read,
                    () = shutdown.cancelled() => return,
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
                tracing::warn!(%err, "closing connection: bad frame");
                return;
            }
        };
        let started = Instant::now();
        let (metrics, outcome) = match Request::decode_frame(frame) {
            Ok(request) => (
                broker.metrics.api(request.header.api_key),
                handle(&broker, peer, request).await,
            ),
            Err(err) => match answer_undecodable(&err) {
                Some(response) => (broker.metrics.api(response.api_key), Some(Ok(response))),
                None => {
                    tracing::warn!(%err, "closing connection: undecodable request");
                    return;
                }
            },
        };
        let response = match outcome {
            Some(Ok(response)) => response,
            Some(Err(())) => {
                if let Some(metrics) = metrics {
                    metrics.finished(started);
                }
                tracing::debug!("closing connection: an acks=0 produce failed");
                return;
            }
            None => {
                // acks=0: no answer.
                if let Some(metrics) = metrics {
                    metrics.finished(started);
                }
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
        if let Err(err) = stream.write_all(&write_buf).await {
            tracing::debug!(%err, "write failed");
            return;
        }
        if let Some(metrics) = metrics {
            metrics.finished(started);
        }
        // A large response buffer is not kept for an idle connection.
        if write_buf.capacity() > 1 << 20 {
            write_buf = BytesMut::new();
        }
    }
}

/// Runs a request: `Some(Ok(answer))`, `None` for no answer, `Some(Err(()))` to close.
async fn handle(
    broker: &Broker,
    peer: SocketAddr,
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
