//! Client errors in words a person can act on: every Kafka error code these commands can meet
//! gets its name and a short explanation; codes without one show their name and number.

use rill_client::{ClientError, ErrorCode};

/// What a Kafka error code means, in plain words, for the codes the client subcommands can
/// meet. `None` for the others, which are shown by name and number.
fn meaning(code: ErrorCode) -> Option<&'static str> {
    use ErrorCode as E;
    Some(match code {
        E::UnknownServerError => "the broker failed in an unexpected way; its log says more",
        E::OffsetOutOfRange => {
            "the offset is outside the partition's log (before its start or past its end)"
        }
        E::CorruptMessage => "a record batch failed its checksum or is malformed",
        E::UnknownTopicOrPartition => "the topic or partition does not exist",
        E::LeaderNotAvailable => {
            "the partition has no leader right now (a new topic may still be starting up)"
        }
        E::NotLeaderOrFollower => "this broker no longer leads the partition",
        E::RequestTimedOut => "the broker did not finish the request in time",
        E::BrokerNotAvailable => "the broker is not available",
        E::MessageTooLarge => {
            "a record batch is larger than the broker or topic allows (message.max.bytes, max.message.bytes)"
        }
        E::NetworkException => "the connection to the broker broke before it answered",
        E::CoordinatorLoadInProgress => {
            "the group coordinator is still loading the group; try again shortly"
        }
        E::CoordinatorNotAvailable => "no group coordinator is available right now",
        E::NotCoordinator => "this broker is not the group's coordinator (it moved)",
        E::InvalidTopicException => {
            "the topic name is not allowed (1 to 249 characters of a-z, A-Z, 0-9, '.', '_', '-'; not '.' or '..')"
        }
        E::RecordListTooLarge => "a produce request is larger than the broker allows",
        E::NotEnoughReplicas => "fewer replicas are in sync than the topic's min.insync.replicas",
        E::InvalidRequiredAcks => "acks must be 0, 1 or all (-1)",
        E::IllegalGeneration => "the group has rebalanced since this member joined",
        E::InconsistentGroupProtocol => {
            "the group's members use another protocol or assignor under the same group id"
        }
        E::InvalidGroupId => "the group id is not allowed (it must not be empty)",
        E::UnknownMemberId => {
            "the group's coordinator does not know this member: the group has active members, or it dropped this one"
        }
        E::InvalidSessionTimeout => {
            "the session timeout is outside the broker's group.min/max.session.timeout.ms"
        }
        E::RebalanceInProgress => "the group is rebalancing; try again once it is stable",
        E::TopicAuthorizationFailed => "not authorized to use this topic",
        E::GroupAuthorizationFailed => "not authorized to use this group",
        E::ClusterAuthorizationFailed => "not authorized for this cluster operation",
        E::InvalidTimestamp => "a record's timestamp is too far from the broker's clock",
        E::UnsupportedVersion => "the broker does not support this request or version",
        E::TopicAlreadyExists => "a topic with this name already exists",
        E::InvalidPartitions => {
            "the partition count is not allowed (at least 1, and when altering, more than the topic has now)"
        }
        E::InvalidReplicationFactor => {
            "the replication factor is not allowed (at most the number of brokers; a Rill broker keeps one copy)"
        }
        E::InvalidConfig => "a config name or value is not accepted",
        E::InvalidRequest => "the broker found the request malformed or inconsistent",
        E::PolicyViolation => "the broker's policy forbids this change",
        E::OutOfOrderSequenceNumber => {
            "the broker lost track of this producer's sequence (records may be missing)"
        }
        E::KafkaStorageError => "the broker could not read or write the partition's log on disk",
        E::NonEmptyGroup => "the group still has active members; stop them first",
        E::GroupIdNotFound => "the group does not exist",
        E::TopicDeletionDisabled => "the broker does not allow deleting topics",
        E::UnsupportedCompressionType => {
            "the broker or topic does not accept this compression codec"
        }
        E::GroupMaxSizeReached => "the group already has as many members as the broker allows",
        E::FencedInstanceId => "another member joined with the same static instance id",
        E::InvalidRecord => "the broker refused a record in the batch",
        E::ThrottlingQuotaExceeded => {
            "the broker's quota for this kind of change is used up; try again later"
        }
        E::UnstableOffsetCommit => {
            "an offset commit for this partition is still pending in a transaction"
        }
        E::UnknownTopicId => "no topic has this topic id",
        E::InvalidReplicaAssignment => {
            "the replica list is not allowed (empty, a broker named twice or not in the cluster, or a partition that is not replicated)"
        }
        E::ReassignmentInProgress => {
            "the partition is being reassigned; wait for the move or cancel it"
        }
        E::NoReassignmentInProgress => "the partition is not being reassigned",
        E::UnsupportedSaslMechanism => "the broker does not enable this SASL mechanism",
        E::IllegalSaslState => "the broker did not expect this SASL request now",
        E::SaslAuthenticationFailed => "wrong user name or password",
        E::ResourceNotFound => "there is no such resource (for a user: no such SCRAM credential)",
        E::DuplicateResource => "the same resource is named twice in one request",
        E::UnacceptableCredential => {
            "the broker does not accept this credential (iterations, salt or name)"
        }
        _ => return None,
    })
}

/// One client error as a sentence: `create topic 'a': TOPIC_ALREADY_EXISTS: a topic with this
/// name already exists`; Kafka codes without an explanation as `NAME (number)`.
pub(crate) fn explain(err: &ClientError) -> String {
    match err {
        ClientError::Kafka { code, context } => match meaning(*code) {
            Some(meaning) => format!("{context}: {code}: {meaning}"),
            None => format!("{context}: {code} ({})", *code as i16),
        },
        // A SASL listener closes a client that skips authentication after ApiVersions.
        ClientError::ConnectionClosed { reason, .. }
            if reason == "the broker closed the connection" =>
        {
            format!(
                "{err} (a listener that wants TLS or SASL does that to clients without it: \
                 see -X security.protocol)"
            )
        }
        other => {
            // The library's message plus its causes (an i/o error's own text, ...).
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// A Kafka error code reported for one item (a partition, ...) in words:
/// `NAME: the broker's message`, else `NAME: what it means`, else `NAME (number)`.
pub(crate) fn code_words(code: ErrorCode, message: Option<&str>) -> String {
    match (message, meaning(code)) {
        (Some(message), _) => format!("{code}: {message}"),
        (None, Some(meaning)) => format!("{code}: {meaning}"),
        (None, None) => format!("{code} ({})", code as i16),
    }
}

/// A client error for `topic`: `topic 'x' does not exist` when that is what it says,
/// otherwise [`explain`]ed.
pub(crate) fn topic_error(topic: &str, err: &ClientError) -> anyhow::Error {
    match err {
        ClientError::Kafka {
            code: ErrorCode::UnknownTopicOrPartition,
            context,
        } if !context.contains("partition ") => anyhow::anyhow!("topic '{topic}' does not exist"),
        _ => anyhow::anyhow!(explain(err)),
    }
}

/// `.explain()` on a client result: its error as [`explain`] words it.
pub(crate) trait Explain<T> {
    /// The result with its error [`explain`]ed.
    fn explain(self) -> anyhow::Result<T>;
}

impl<T> Explain<T> for Result<T, ClientError> {
    fn explain(self) -> anyhow::Result<T> {
        self.map_err(|err| anyhow::anyhow!(explain(&err)))
    }
}

#[cfg(test)]
mod tests {
    use rill_client::{ClientError, ErrorCode};

    use super::{code_words, explain, meaning};

    fn kafka(code: ErrorCode) -> ClientError {
        ClientError::Kafka {
            code,
            context: "create partitions of topic 'a' up to 1".to_owned(),
        }
    }

    #[test]
    fn kafka_errors_are_named_and_explained() {
        assert_eq!(
            explain(&kafka(ErrorCode::InvalidPartitions)),
            "create partitions of topic 'a' up to 1: INVALID_PARTITIONS: the partition count is \
             not allowed (at least 1, and when altering, more than the topic has now)"
        );
        // A code without an explanation: its name and number.
        assert_eq!(
            explain(&kafka(ErrorCode::DelegationTokenExpired)),
            "create partitions of topic 'a' up to 1: DELEGATION_TOKEN_EXPIRED (66)"
        );
        let explained = ErrorCode::ALL
            .iter()
            .filter(|c| meaning(**c).is_some())
            .count();
        assert!(explained >= 30, "{explained} codes explained");
    }

    #[test]
    fn item_codes_prefer_the_brokers_message() {
        assert_eq!(
            code_words(
                ErrorCode::InvalidReplicaAssignment,
                Some("broker 9 is not registered")
            ),
            "INVALID_REPLICA_ASSIGNMENT: broker 9 is not registered"
        );
        assert_eq!(
            code_words(ErrorCode::NoReassignmentInProgress, None),
            "NO_REASSIGNMENT_IN_PROGRESS: the partition is not being reassigned"
        );
        assert_eq!(
            code_words(ErrorCode::DelegationTokenExpired, None),
            "DELEGATION_TOKEN_EXPIRED (66)"
        );
    }

    #[test]
    fn other_errors_keep_their_causes() {
        let err = ClientError::Io {
            addr: "127.0.0.1:1".to_owned(),
            source: std::sync::Arc::new(std::io::Error::other("boom")),
        };
        assert_eq!(explain(&err), "i/o error talking to 127.0.0.1:1: boom");
    }
}
