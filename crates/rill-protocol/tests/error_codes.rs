//! Kafka error codes: the numbers never move, names are Kafka's, conversions are exact.

use rill_protocol::kafka_protocol::ResponseError;
use rill_protocol::{ErrorCode, UnknownErrorCode};

#[test]
fn codes_the_broker_uses_have_kafkas_numbers() {
    let expected = [
        (ErrorCode::UnknownServerError, -1, "UNKNOWN_SERVER_ERROR"),
        (ErrorCode::None, 0, "NONE"),
        (ErrorCode::OffsetOutOfRange, 1, "OFFSET_OUT_OF_RANGE"),
        (ErrorCode::CorruptMessage, 2, "CORRUPT_MESSAGE"),
        (
            ErrorCode::UnknownTopicOrPartition,
            3,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (ErrorCode::InvalidFetchSize, 4, "INVALID_FETCH_SIZE"),
        (ErrorCode::LeaderNotAvailable, 5, "LEADER_NOT_AVAILABLE"),
        (ErrorCode::NotLeaderOrFollower, 6, "NOT_LEADER_OR_FOLLOWER"),
        (ErrorCode::RequestTimedOut, 7, "REQUEST_TIMED_OUT"),
        (ErrorCode::MessageTooLarge, 10, "MESSAGE_TOO_LARGE"),
        (
            ErrorCode::CoordinatorLoadInProgress,
            14,
            "COORDINATOR_LOAD_IN_PROGRESS",
        ),
        (
            ErrorCode::CoordinatorNotAvailable,
            15,
            "COORDINATOR_NOT_AVAILABLE",
        ),
        (ErrorCode::NotCoordinator, 16, "NOT_COORDINATOR"),
        (
            ErrorCode::InvalidTopicException,
            17,
            "INVALID_TOPIC_EXCEPTION",
        ),
        (ErrorCode::RecordListTooLarge, 18, "RECORD_LIST_TOO_LARGE"),
        (ErrorCode::InvalidRequiredAcks, 21, "INVALID_REQUIRED_ACKS"),
        (ErrorCode::IllegalGeneration, 22, "ILLEGAL_GENERATION"),
        (
            ErrorCode::InconsistentGroupProtocol,
            23,
            "INCONSISTENT_GROUP_PROTOCOL",
        ),
        (ErrorCode::InvalidGroupId, 24, "INVALID_GROUP_ID"),
        (ErrorCode::UnknownMemberId, 25, "UNKNOWN_MEMBER_ID"),
        (
            ErrorCode::InvalidSessionTimeout,
            26,
            "INVALID_SESSION_TIMEOUT",
        ),
        (ErrorCode::RebalanceInProgress, 27, "REBALANCE_IN_PROGRESS"),
        (
            ErrorCode::InvalidCommitOffsetSize,
            28,
            "INVALID_COMMIT_OFFSET_SIZE",
        ),
        (ErrorCode::UnsupportedVersion, 35, "UNSUPPORTED_VERSION"),
        (ErrorCode::TopicAlreadyExists, 36, "TOPIC_ALREADY_EXISTS"),
        (ErrorCode::InvalidPartitions, 37, "INVALID_PARTITIONS"),
        (
            ErrorCode::InvalidReplicationFactor,
            38,
            "INVALID_REPLICATION_FACTOR",
        ),
        (ErrorCode::InvalidConfig, 40, "INVALID_CONFIG"),
        (ErrorCode::InvalidRequest, 42, "INVALID_REQUEST"),
        (
            ErrorCode::UnsupportedForMessageFormat,
            43,
            "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        ),
        (ErrorCode::PolicyViolation, 44, "POLICY_VIOLATION"),
        (
            ErrorCode::OutOfOrderSequenceNumber,
            45,
            "OUT_OF_ORDER_SEQUENCE_NUMBER",
        ),
        (
            ErrorCode::DuplicateSequenceNumber,
            46,
            "DUPLICATE_SEQUENCE_NUMBER",
        ),
        (
            ErrorCode::InvalidProducerEpoch,
            47,
            "INVALID_PRODUCER_EPOCH",
        ),
        (ErrorCode::KafkaStorageError, 56, "KAFKA_STORAGE_ERROR"),
        (ErrorCode::UnknownProducerId, 59, "UNKNOWN_PRODUCER_ID"),
        (ErrorCode::NonEmptyGroup, 68, "NON_EMPTY_GROUP"),
        (ErrorCode::GroupIdNotFound, 69, "GROUP_ID_NOT_FOUND"),
        (
            ErrorCode::FetchSessionIdNotFound,
            70,
            "FETCH_SESSION_ID_NOT_FOUND",
        ),
        (
            ErrorCode::InvalidFetchSessionEpoch,
            71,
            "INVALID_FETCH_SESSION_EPOCH",
        ),
        (ErrorCode::FencedLeaderEpoch, 74, "FENCED_LEADER_EPOCH"),
        (ErrorCode::UnknownLeaderEpoch, 75, "UNKNOWN_LEADER_EPOCH"),
        (ErrorCode::MemberIdRequired, 79, "MEMBER_ID_REQUIRED"),
        (ErrorCode::GroupMaxSizeReached, 81, "GROUP_MAX_SIZE_REACHED"),
        (ErrorCode::FencedInstanceId, 82, "FENCED_INSTANCE_ID"),
        (
            ErrorCode::GroupSubscribedToTopic,
            86,
            "GROUP_SUBSCRIBED_TO_TOPIC",
        ),
        (ErrorCode::InvalidRecord, 87, "INVALID_RECORD"),
        (ErrorCode::ProducerFenced, 90, "PRODUCER_FENCED"),
        (ErrorCode::UnknownTopicId, 100, "UNKNOWN_TOPIC_ID"),
    ];
    for (code, number, name) in expected {
        assert_eq!(code.code(), number, "{name}");
        assert_eq!(i16::from(code), number, "{name}");
        assert_eq!(ErrorCode::try_from(number), Ok(code), "{name}");
        assert_eq!(code.name(), name);
        assert_eq!(code.to_string(), name);
    }
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
fn upper_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

#[test]
fn every_code_agrees_with_kafka_protocol() {
    // kafka-protocol's ResponseError is an independent transcription of Kafka's error table
    // (through 4.1); every code it knows must have the same number, name and retriability here.
    assert_eq!(ErrorCode::ALL.len(), 135);
    for code in -1_i16..=133 {
        let ours = ErrorCode::try_from(code).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(ours.code(), code);
        match ResponseError::try_from_code(code) {
            None => assert_eq!(ours, ErrorCode::None),
            Some(theirs) => {
                assert_eq!(theirs.code(), code);
                assert_eq!(ours.name(), upper_snake(&theirs.to_string()), "code {code}");
                assert_eq!(ours.is_retriable(), theirs.is_retriable(), "code {code}");
            }
        }
    }
}

#[test]
fn unknown_codes_are_refused() {
    for code in [-2_i16, 134, i16::MAX, i16::MIN] {
        assert_eq!(ErrorCode::try_from(code), Err(UnknownErrorCode(code)));
    }
}

#[test]
fn all_is_sorted_unique_and_round_trips() {
    for pair in ErrorCode::ALL.windows(2) {
        assert!(pair[0].code() < pair[1].code(), "{pair:?}");
    }
    for &code in ErrorCode::ALL {
        assert_eq!(ErrorCode::try_from(i16::from(code)), Ok(code));
        assert_eq!(code.is_ok(), code == ErrorCode::None);
    }
}
