//! Errors: [`ProtocolError`] for what goes wrong while framing, decoding or encoding, and
//! [`ErrorCode`], Kafka's numeric error codes as they travel in responses.

use std::error::Error as StdError;

use bytes::TryGetError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::buf::NotEnoughBytesError;

use crate::frame::FrameError;

/// A boxed error from the `kafka-protocol` crate, kept as the source of a [`ProtocolError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong between a frame's bytes and a typed request or response.
///
/// The variants that a broker must answer rather than just drop carry the correlation id, so
/// the answer can be matched to the request: [`ProtocolError::UnsupportedVersion`] for an
/// `ApiVersions` request is answered with a v0 `ApiVersionsResponse` (KIP-511, see
/// [`Response::unsupported_api_versions`](crate::Response::unsupported_api_versions)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The size prefix of a frame was invalid, or a frame was too large to write.
    #[error(transparent)]
    Frame(#[from] FrameError),

    /// A request frame ended before the fixed part of its header (api key, api version,
    /// correlation id).
    #[error("request header truncated: need {need} bytes, have {have}")]
    TruncatedHeader {
        /// Bytes needed for the fixed part of the header.
        need: usize,
        /// Bytes the frame had.
        have: usize,
    },

    /// The api key is not one Kafka defines (as far as the `kafka-protocol` crate knows).
    #[error(
        "unknown api key {api_key} (api version {api_version}, correlation id {correlation_id})"
    )]
    UnknownApiKey {
        /// The api key as sent.
        api_key: i16,
        /// The api version as sent.
        api_version: i16,
        /// The correlation id as sent.
        correlation_id: i32,
    },

    /// The api key is known but this version of it is not in [`SUPPORTED`](crate::SUPPORTED)
    /// (this includes APIs that Rill does not serve at all).
    #[error("unsupported version {api_version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// The api key.
        api_key: ApiKey,
        /// The api version as sent.
        api_version: i16,
        /// The correlation id as sent.
        correlation_id: i32,
    },

    /// A header or body ended before the message did.
    #[error("{what} of {api_key:?} v{api_version} is truncated")]
    Truncated {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// Which part was truncated: "request header", "request body", "response body", ...
        what: &'static str,
    },

    /// A header or body is malformed (other than truncated).
    #[error("cannot decode {what} of {api_key:?} v{api_version}")]
    Decode {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// Which part failed: "request header", "request body", "response body", ...
        what: &'static str,
        /// What the `kafka-protocol` decoder reported.
        #[source]
        source: BoxError,
    },

    /// A body decoded but bytes were left over after it: the frame and the message disagree.
    #[error("{what} of {api_key:?} v{api_version} has {trailing} trailing bytes")]
    TrailingBytes {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// Which part had bytes left over.
        what: &'static str,
        /// How many bytes were left over.
        trailing: usize,
    },

    /// A message could not be encoded at this version (for example a field set that the
    /// version does not have, or a version the message type does not know).
    #[error("cannot encode {what} of {api_key:?} v{api_version}")]
    Encode {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// Which part failed.
        what: &'static str,
        /// What the `kafka-protocol` encoder reported.
        #[source]
        source: BoxError,
    },

    /// A body is not of the API its header names (or not of an API in
    /// [`SUPPORTED`](crate::SUPPORTED)), so encoding it would put the wrong bytes on the wire.
    #[error("{what} is not a {api_key:?} body")]
    MismatchedBody {
        /// The api key the header names.
        api_key: ApiKey,
        /// "request body" or "response body".
        what: &'static str,
    },
}

impl ProtocolError {
    /// The correlation id of the request this error is about, where the error carries it.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            Self::UnknownApiKey { correlation_id, .. }
            | Self::UnsupportedVersion { correlation_id, .. } => Some(*correlation_id),
            _ => None,
        }
    }

    /// Wraps an error from the `kafka-protocol` encoder.
    pub(crate) fn encode(
        api_key: ApiKey,
        api_version: i16,
        what: &'static str,
        err: impl Into<BoxError>,
    ) -> Self {
        Self::Encode {
            api_key,
            api_version,
            what,
            source: err.into(),
        }
    }

    /// Classifies an error from the `kafka-protocol` decoder: running out of bytes becomes
    /// [`ProtocolError::Truncated`], anything else [`ProtocolError::Decode`] with the source kept.
    pub(crate) fn decode(
        api_key: ApiKey,
        api_version: i16,
        what: &'static str,
        truncated: bool,
        source: impl Into<BoxError>,
    ) -> Self {
        if truncated {
            Self::Truncated {
                api_key,
                api_version,
                what,
            }
        } else {
            Self::Decode {
                api_key,
                api_version,
                what,
                source: source.into(),
            }
        }
    }
}

/// Whether a `kafka-protocol` error's cause chain (outermost first) says the input ran out.
pub(crate) fn is_truncation<'a>(
    mut chain: impl Iterator<Item = &'a (dyn StdError + 'static)>,
) -> bool {
    chain.any(|err| {
        err.is::<NotEnoughBytesError>()
            || err.is::<kafka_protocol_39::protocol::buf::NotEnoughBytesError>()
            || err.is::<TryGetError>()
    })
}

/// Builds the `map_err` closure for a `kafka-protocol` decode error (an `anyhow::Error`, whose
/// cause chain is only reachable through its own `chain()` before it is boxed).
macro_rules! decode_error {
    ($api_key:expr, $api_version:expr, $what:expr) => {
        |err| {
            let truncated = $crate::error::is_truncation(err.chain());
            $crate::error::ProtocolError::decode($api_key, $api_version, $what, truncated, err)
        }
    };
}
pub(crate) use decode_error;

/// An `i16` that is not one of Kafka's error codes (as of Kafka 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown kafka error code {0}")]
pub struct UnknownErrorCode(pub i16);

macro_rules! error_codes {
    ($( $variant:ident = $code:literal, $name:literal, $retriable:literal; )*) => {
        /// Kafka's error codes, as sent in the `error_code` fields of responses.
        ///
        /// The numbers are Kafka's (its protocol guide's error table, through 4.1) and are never
        /// renumbered; [`ErrorCode::name`] gives Kafka's upper-snake name. Convert with
        /// `i16::from(code)` and `ErrorCode::try_from(i16)`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i16)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(
                #[doc = concat!("`", $name, "` (", stringify!($code), ")")]
                $variant = $code,
            )*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// Kafka's upper-snake name, e.g. `"UNKNOWN_TOPIC_OR_PARTITION"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// Whether Kafka classes this error as retriable (its protocol guide's column).
            pub const fn is_retriable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retriable,)*
                }
            }

            /// The code for `code`, if Kafka defines one.
            pub const fn from_code(code: i16) -> Option<Self> {
                match code {
                    $($code => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    UnknownServerError = -1, "UNKNOWN_SERVER_ERROR", false;
    None = 0, "NONE", false;
    OffsetOutOfRange = 1, "OFFSET_OUT_OF_RANGE", false;
    CorruptMessage = 2, "CORRUPT_MESSAGE", true;
    UnknownTopicOrPartition = 3, "UNKNOWN_TOPIC_OR_PARTITION", true;
    InvalidFetchSize = 4, "INVALID_FETCH_SIZE", false;
    LeaderNotAvailable = 5, "LEADER_NOT_AVAILABLE", true;
    NotLeaderOrFollower = 6, "NOT_LEADER_OR_FOLLOWER", true;
    RequestTimedOut = 7, "REQUEST_TIMED_OUT", true;
    BrokerNotAvailable = 8, "BROKER_NOT_AVAILABLE", false;
    ReplicaNotAvailable = 9, "REPLICA_NOT_AVAILABLE", true;
    MessageTooLarge = 10, "MESSAGE_TOO_LARGE", false;
    StaleControllerEpoch = 11, "STALE_CONTROLLER_EPOCH", false;
    OffsetMetadataTooLarge = 12, "OFFSET_METADATA_TOO_LARGE", false;
    NetworkException = 13, "NETWORK_EXCEPTION", true;
    CoordinatorLoadInProgress = 14, "COORDINATOR_LOAD_IN_PROGRESS", true;
    CoordinatorNotAvailable = 15, "COORDINATOR_NOT_AVAILABLE", true;
    NotCoordinator = 16, "NOT_COORDINATOR", true;
    InvalidTopicException = 17, "INVALID_TOPIC_EXCEPTION", false;
    RecordListTooLarge = 18, "RECORD_LIST_TOO_LARGE", false;
    NotEnoughReplicas = 19, "NOT_ENOUGH_REPLICAS", true;
    NotEnoughReplicasAfterAppend = 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", true;
    InvalidRequiredAcks = 21, "INVALID_REQUIRED_ACKS", false;
    IllegalGeneration = 22, "ILLEGAL_GENERATION", false;
    InconsistentGroupProtocol = 23, "INCONSISTENT_GROUP_PROTOCOL", false;
    InvalidGroupId = 24, "INVALID_GROUP_ID", false;
    UnknownMemberId = 25, "UNKNOWN_MEMBER_ID", false;
    InvalidSessionTimeout = 26, "INVALID_SESSION_TIMEOUT", false;
    RebalanceInProgress = 27, "REBALANCE_IN_PROGRESS", false;
    InvalidCommitOffsetSize = 28, "INVALID_COMMIT_OFFSET_SIZE", false;
    TopicAuthorizationFailed = 29, "TOPIC_AUTHORIZATION_FAILED", false;
    GroupAuthorizationFailed = 30, "GROUP_AUTHORIZATION_FAILED", false;
    ClusterAuthorizationFailed = 31, "CLUSTER_AUTHORIZATION_FAILED", false;
    InvalidTimestamp = 32, "INVALID_TIMESTAMP", false;
    UnsupportedSaslMechanism = 33, "UNSUPPORTED_SASL_MECHANISM", false;
    IllegalSaslState = 34, "ILLEGAL_SASL_STATE", false;
    UnsupportedVersion = 35, "UNSUPPORTED_VERSION", false;
    TopicAlreadyExists = 36, "TOPIC_ALREADY_EXISTS", false;
    InvalidPartitions = 37, "INVALID_PARTITIONS", false;
    InvalidReplicationFactor = 38, "INVALID_REPLICATION_FACTOR", false;
    InvalidReplicaAssignment = 39, "INVALID_REPLICA_ASSIGNMENT", false;
    InvalidConfig = 40, "INVALID_CONFIG", false;
    NotController = 41, "NOT_CONTROLLER", true;
    InvalidRequest = 42, "INVALID_REQUEST", false;
    UnsupportedForMessageFormat = 43, "UNSUPPORTED_FOR_MESSAGE_FORMAT", false;
    PolicyViolation = 44, "POLICY_VIOLATION", false;
    OutOfOrderSequenceNumber = 45, "OUT_OF_ORDER_SEQUENCE_NUMBER", false;
    DuplicateSequenceNumber = 46, "DUPLICATE_SEQUENCE_NUMBER", false;
    InvalidProducerEpoch = 47, "INVALID_PRODUCER_EPOCH", false;
    InvalidTxnState = 48, "INVALID_TXN_STATE", false;
    InvalidProducerIdMapping = 49, "INVALID_PRODUCER_ID_MAPPING", false;
    InvalidTransactionTimeout = 50, "INVALID_TRANSACTION_TIMEOUT", false;
    ConcurrentTransactions = 51, "CONCURRENT_TRANSACTIONS", false;
    TransactionCoordinatorFenced = 52, "TRANSACTION_COORDINATOR_FENCED", false;
    TransactionalIdAuthorizationFailed = 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", false;
    SecurityDisabled = 54, "SECURITY_DISABLED", false;
    OperationNotAttempted = 55, "OPERATION_NOT_ATTEMPTED", false;
    KafkaStorageError = 56, "KAFKA_STORAGE_ERROR", true;
    LogDirNotFound = 57, "LOG_DIR_NOT_FOUND", false;
    SaslAuthenticationFailed = 58, "SASL_AUTHENTICATION_FAILED", false;
    UnknownProducerId = 59, "UNKNOWN_PRODUCER_ID", false;
    ReassignmentInProgress = 60, "REASSIGNMENT_IN_PROGRESS", false;
    DelegationTokenAuthDisabled = 61, "DELEGATION_TOKEN_AUTH_DISABLED", false;
    DelegationTokenNotFound = 62, "DELEGATION_TOKEN_NOT_FOUND", false;
    DelegationTokenOwnerMismatch = 63, "DELEGATION_TOKEN_OWNER_MISMATCH", false;
    DelegationTokenRequestNotAllowed = 64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", false;
    DelegationTokenAuthorizationFailed = 65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED", false;
    DelegationTokenExpired = 66, "DELEGATION_TOKEN_EXPIRED", false;
    InvalidPrincipalType = 67, "INVALID_PRINCIPAL_TYPE", false;
    NonEmptyGroup = 68, "NON_EMPTY_GROUP", false;
    GroupIdNotFound = 69, "GROUP_ID_NOT_FOUND", false;
    FetchSessionIdNotFound = 70, "FETCH_SESSION_ID_NOT_FOUND", true;
    InvalidFetchSessionEpoch = 71, "INVALID_FETCH_SESSION_EPOCH", true;
    ListenerNotFound = 72, "LISTENER_NOT_FOUND", true;
    TopicDeletionDisabled = 73, "TOPIC_DELETION_DISABLED", false;
    FencedLeaderEpoch = 74, "FENCED_LEADER_EPOCH", true;
    UnknownLeaderEpoch = 75, "UNKNOWN_LEADER_EPOCH", true;
    UnsupportedCompressionType = 76, "UNSUPPORTED_COMPRESSION_TYPE", false;
    StaleBrokerEpoch = 77, "STALE_BROKER_EPOCH", false;
    OffsetNotAvailable = 78, "OFFSET_NOT_AVAILABLE", true;
    MemberIdRequired = 79, "MEMBER_ID_REQUIRED", false;
    PreferredLeaderNotAvailable = 80, "PREFERRED_LEADER_NOT_AVAILABLE", true;
    GroupMaxSizeReached = 81, "GROUP_MAX_SIZE_REACHED", false;
    FencedInstanceId = 82, "FENCED_INSTANCE_ID", false;
    EligibleLeadersNotAvailable = 83, "ELIGIBLE_LEADERS_NOT_AVAILABLE", true;
    ElectionNotNeeded = 84, "ELECTION_NOT_NEEDED", true;
    NoReassignmentInProgress = 85, "NO_REASSIGNMENT_IN_PROGRESS", false;
    GroupSubscribedToTopic = 86, "GROUP_SUBSCRIBED_TO_TOPIC", false;
    InvalidRecord = 87, "INVALID_RECORD", false;
    UnstableOffsetCommit = 88, "UNSTABLE_OFFSET_COMMIT", true;
    ThrottlingQuotaExceeded = 89, "THROTTLING_QUOTA_EXCEEDED", true;
    ProducerFenced = 90, "PRODUCER_FENCED", false;
    ResourceNotFound = 91, "RESOURCE_NOT_FOUND", false;
    DuplicateResource = 92, "DUPLICATE_RESOURCE", false;
    UnacceptableCredential = 93, "UNACCEPTABLE_CREDENTIAL", false;
    InconsistentVoterSet = 94, "INCONSISTENT_VOTER_SET", false;
    InvalidUpdateVersion = 95, "INVALID_UPDATE_VERSION", false;
    FeatureUpdateFailed = 96, "FEATURE_UPDATE_FAILED", false;
    PrincipalDeserializationFailure = 97, "PRINCIPAL_DESERIALIZATION_FAILURE", false;
    SnapshotNotFound = 98, "SNAPSHOT_NOT_FOUND", false;
    PositionOutOfRange = 99, "POSITION_OUT_OF_RANGE", false;
    UnknownTopicId = 100, "UNKNOWN_TOPIC_ID", true;
    DuplicateBrokerRegistration = 101, "DUPLICATE_BROKER_REGISTRATION", false;
    BrokerIdNotRegistered = 102, "BROKER_ID_NOT_REGISTERED", false;
    InconsistentTopicId = 103, "INCONSISTENT_TOPIC_ID", true;
    InconsistentClusterId = 104, "INCONSISTENT_CLUSTER_ID", false;
    TransactionalIdNotFound = 105, "TRANSACTIONAL_ID_NOT_FOUND", false;
    FetchSessionTopicIdError = 106, "FETCH_SESSION_TOPIC_ID_ERROR", true;
    IneligibleReplica = 107, "INELIGIBLE_REPLICA", false;
    NewLeaderElected = 108, "NEW_LEADER_ELECTED", false;
    OffsetMovedToTieredStorage = 109, "OFFSET_MOVED_TO_TIERED_STORAGE", false;
    FencedMemberEpoch = 110, "FENCED_MEMBER_EPOCH", false;
    UnreleasedInstanceId = 111, "UNRELEASED_INSTANCE_ID", false;
    UnsupportedAssignor = 112, "UNSUPPORTED_ASSIGNOR", false;
    StaleMemberEpoch = 113, "STALE_MEMBER_EPOCH", false;
    MismatchedEndpointType = 114, "MISMATCHED_ENDPOINT_TYPE", false;
    UnsupportedEndpointType = 115, "UNSUPPORTED_ENDPOINT_TYPE", false;
    UnknownControllerId = 116, "UNKNOWN_CONTROLLER_ID", false;
    UnknownSubscriptionId = 117, "UNKNOWN_SUBSCRIPTION_ID", false;
    TelemetryTooLarge = 118, "TELEMETRY_TOO_LARGE", false;
    InvalidRegistration = 119, "INVALID_REGISTRATION", false;
    TransactionAbortable = 120, "TRANSACTION_ABORTABLE", false;
    InvalidRecordState = 121, "INVALID_RECORD_STATE", false;
    ShareSessionNotFound = 122, "SHARE_SESSION_NOT_FOUND", true;
    InvalidShareSessionEpoch = 123, "INVALID_SHARE_SESSION_EPOCH", true;
    FencedStateEpoch = 124, "FENCED_STATE_EPOCH", false;
    InvalidVoterKey = 125, "INVALID_VOTER_KEY", false;
    DuplicateVoter = 126, "DUPLICATE_VOTER", false;
    VoterNotFound = 127, "VOTER_NOT_FOUND", false;
    InvalidRegularExpression = 128, "INVALID_REGULAR_EXPRESSION", false;
    RebootstrapRequired = 129, "REBOOTSTRAP_REQUIRED", false;
    StreamsInvalidTopology = 130, "STREAMS_INVALID_TOPOLOGY", false;
    StreamsInvalidTopologyEpoch = 131, "STREAMS_INVALID_TOPOLOGY_EPOCH", false;
    StreamsTopologyFenced = 132, "STREAMS_TOPOLOGY_FENCED", false;
    ShareSessionLimitReached = 133, "SHARE_SESSION_LIMIT_REACHED", true;
}

impl ErrorCode {
    /// The wire value.
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// `true` for [`ErrorCode::None`].
    pub const fn is_ok(self) -> bool {
        matches!(self, ErrorCode::None)
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> i16 {
        code.code()
    }
}

impl TryFrom<i16> for ErrorCode {
    type Error = UnknownErrorCode;

    fn try_from(code: i16) -> Result<Self, Self::Error> {
        Self::from_code(code).ok_or(UnknownErrorCode(code))
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
