//! [`ClientError`], the one error type of this crate.

use std::sync::Arc;
use std::time::Duration;

use rill_protocol::{ApiKey, ErrorCode, ProtocolError};
use rill_record::RecordError;

/// A `Result` whose error is [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a Kafka-compatible broker.
///
/// It is `Clone` (sources are kept behind `Arc`) because one failure often has many victims: a
/// connection that breaks fails every request pipelined on it, and a refused batch fails every
/// record in it, each with the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker answered with a Kafka error code.
    #[error("{context}: {code}")]
    Kafka {
        /// The code, e.g. `NOT_LEADER_OR_FOLLOWER`.
        code: ErrorCode,
        /// What was being done, naming the topic or broker (e.g. `produce to topic 'a'
        /// partition 0`).
        context: String,
    },
    /// The broker answered with an error code this crate does not know.
    #[error("{context}: unknown kafka error code {code}")]
    UnknownErrorCode {
        /// The raw code.
        code: i16,
        /// What was being done.
        context: String,
    },
    /// Connecting to, reading from or writing to a broker failed.
    #[error("i/o error talking to {addr}")]
    Io {
        /// The broker's `host:port`.
        addr: String,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What timed out, naming the broker or topic.
        what: String,
        /// The limit that passed.
        after: Duration,
    },
    /// The bytes a broker sent (or would be sent) do not follow the protocol.
    #[error("protocol error talking to {addr}")]
    Protocol {
        /// The broker's `host:port`.
        addr: String,
        /// What `rill-protocol` reported.
        #[source]
        source: Arc<ProtocolError>,
    },
    /// A record batch could not be built or read.
    #[error("record batch for topic '{topic}' is invalid")]
    Record {
        /// The topic the batch is for.
        topic: String,
        /// What `rill-record` reported.
        #[source]
        source: Arc<RecordError>,
    },
    /// No broker in the list could be reached.
    #[error("no broker available (tried {})", tried.join(", "))]
    NoBrokerAvailable {
        /// The addresses tried, each with why it failed.
        tried: Vec<String>,
    },
    /// The connection closed (or failed earlier) while the request was pending.
    #[error("connection to {addr} closed: {reason}")]
    ConnectionClosed {
        /// The broker's `host:port`.
        addr: String,
        /// Why it closed.
        reason: String,
    },
    /// The broker does not support any version of this API that the client speaks.
    #[error(
        "broker {addr} does not support {api_key:?} (broker versions {broker:?}, client versions {client:?})"
    )]
    UnsupportedApi {
        /// The broker's `host:port`.
        addr: String,
        /// The API.
        api_key: ApiKey,
        /// The broker's range, if it lists the API at all.
        broker: Option<(i16, i16)>,
        /// The range this client handles.
        client: Option<(i16, i16)>,
    },
    /// The broker answered a request with a response to a different API.
    #[error("broker {addr} answered {api_key:?} with a different response")]
    UnexpectedResponse {
        /// The broker's `host:port`.
        addr: String,
        /// The API of the request.
        api_key: ApiKey,
    },
    /// A record is larger than `max_request_size` (or the broker's limit).
    #[error("record for topic '{topic}' is {size} bytes, over the limit of {max}")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The record's encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The record names a partition the topic does not have, or none where one is required.
    #[error("topic '{topic}' has no partition {partition:?} ({partitions} partitions)")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for (`None`: the `Manual` partitioner got no partition).
        partition: Option<i32>,
        /// How many partitions the topic has.
        partitions: i32,
    },
    /// SASL authentication failed: the broker refused it (with its error code and message), or
    /// it could not prove that it knows the user's credential.
    #[error(
        "SASL authentication with {addr} failed: {}{message}",
        code.map(|c| format!("{c}: ")).unwrap_or_default()
    )]
    Authentication {
        /// The broker's `host:port`.
        addr: String,
        /// The broker's code (`SASL_AUTHENTICATION_FAILED`, `UNSUPPORTED_SASL_MECHANISM`,
        /// `ILLEGAL_SASL_STATE`), or `None` when the client refused the broker.
        code: Option<ErrorCode>,
        /// The broker's message, or what the client found wrong.
        message: String,
    },
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The producer (or client) was closed before the operation could run.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// A transactional producer could not do what was asked: a call out of turn (a send or
    /// `commit_transaction` with no transaction open, `begin_transaction` twice), a
    /// transaction that can only be aborted now because part of it failed (`cause`), a record
    /// dropped because its transaction was aborted, or, with `fatal`, a producer that cannot
    /// go on (fenced by a newer instance with the same transactional id, or not authorized to
    /// use it) and must be closed.
    #[error("transactional producer '{transactional_id}': {message}")]
    Transaction {
        /// The producer's `transactional_id`.
        transactional_id: String,
        /// What went wrong, and what to do about it.
        message: String,
        /// The producer cannot be used any more: close it (a new instance with the same
        /// transactional id takes over).
        fatal: bool,
        /// The failure behind it, when there is one (the broker's answer, a failed send).
        #[source]
        cause: Option<Arc<ClientError>>,
    },
}

impl ClientError {
    /// `Ok(())` for [`ErrorCode::None`], otherwise [`ClientError::Kafka`] (or
    /// [`ClientError::UnknownErrorCode`]) with `context`.
    pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<()> {
        match ErrorCode::from_code(code) {
            Some(ErrorCode::None) => Ok(()),
            Some(code) => Err(Self::Kafka {
                code,
                context: context(),
            }),
            None => Err(Self::UnknownErrorCode {
                code,
                context: context(),
            }),
        }
    }

    /// The Kafka error code, if this error is one (or, for [`ClientError::Transaction`], is
    /// caused by one).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Kafka { code, .. } => Some(*code),
            Self::Authentication { code, .. } => *code,
            Self::Transaction { cause, .. } => cause.as_ref().and_then(|c| c.code()),
            _ => None,
        }
    }

    /// Whether a transactional producer that returned this error cannot go on and must be
    /// closed: it was fenced by a newer instance with the same transactional id
    /// (`PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`) or is not authorized
    /// (`TRANSACTIONAL_ID_AUTHORIZATION_FAILED`). Other transaction errors are cured by
    /// `abort_transaction` (or by calling in the right order).
    ///
    /// ```no_run
    /// # async fn _demo(producer: &rill_client::Producer) {
    /// if let Err(err) = producer.commit_transaction().await {
    ///     if err.is_fatal() {
    ///         producer.close().await;
    ///     } else {
    ///         let _ = producer.abort_transaction().await;
    ///     }
    /// }
    /// # }
    /// ```
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Transaction { fatal: true, .. })
    }

    /// Whether trying again (after a metadata refresh and a backoff) may succeed: retriable
    /// Kafka codes, broken connections, timeouts and unreachable brokers.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Kafka { code, .. } => code.is_retriable(),
            Self::Io { .. }
            | Self::Timeout { .. }
            | Self::ConnectionClosed { .. }
            | Self::NoBrokerAvailable { .. } => true,
            _ => false,
        }
    }

    /// The message followed by its causes, `: `-separated (`i/o error talking to
    /// 127.0.0.1:1: Connection refused (os error 111)`), for an error that is kept as text.
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            text.push_str(": ");
            text.push_str(&err.to_string());
            cause = err.source();
        }
        text
    }

    /// Whether the error means the client's metadata (leaders, partitions) may be stale.
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            Self::Kafka { code, .. } => matches!(
                code,
                ErrorCode::NotLeaderOrFollower
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::LeaderNotAvailable
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::UnknownLeaderEpoch
            ),
            Self::Io { .. } | Self::ConnectionClosed { .. } | Self::NoBrokerAvailable { .. } => {
                true
            }
            _ => false,
        }
    }
}
