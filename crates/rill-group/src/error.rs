//! The one error type of this crate.

/// Why the coordinator refused a group request.
///
/// Every variant is one of Kafka's protocol errors, so the broker can put
/// [`GroupError::kafka_code`] on the wire unchanged. The codes are Kafka's and are never
/// renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The member id is not (or no longer) a member of the group (`UNKNOWN_MEMBER_ID`, 25).
    #[error("the coordinator is not aware of this member")]
    UnknownMemberId,
    /// The request's generation is not the group's current one (`ILLEGAL_GENERATION`, 22).
    #[error("the generation id is not the group's current generation")]
    IllegalGeneration,
    /// The group is rebalancing; the member must rejoin (`REBALANCE_IN_PROGRESS`, 27).
    #[error("the group is rebalancing, so a rejoin is needed")]
    RebalanceInProgress,
    /// The protocol type differs from the group's, or no protocol is supported by every
    /// member (`INCONSISTENT_GROUP_PROTOCOL`, 23).
    #[error("the member's protocol type or protocols are incompatible with the group's")]
    InconsistentGroupProtocol,
    /// The session timeout is outside the broker's allowed range (`INVALID_SESSION_TIMEOUT`, 26).
    #[error("the session timeout is outside the allowed range")]
    InvalidSessionTimeout,
    /// KIP-394: a new member must rejoin with the member id it was just given
    /// (`MEMBER_ID_REQUIRED`, 79).
    #[error("the member must rejoin with the member id it was given")]
    MemberIdRequired,
    /// KIP-345: another member id now holds this group instance id (`FENCED_INSTANCE_ID`, 82).
    #[error("this static member's instance id was taken over by a newer member id")]
    FencedInstanceId,
    /// The group already has `group.max.size` members (`GROUP_MAX_SIZE_REACHED`, 81).
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    /// The group was deleted or unloaded while the request was under way
    /// (`COORDINATOR_NOT_AVAILABLE`, 15); the client rediscovers the coordinator and retries.
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    /// The coordinator is still loading the group's offsets, as a new leader of its offsets
    /// partition does (`COORDINATOR_LOAD_IN_PROGRESS`, 14); the client retries.
    #[error("the coordinator is loading the group's offsets")]
    CoordinatorLoadInProgress,
    /// The group was unloaded (broker shutdown) while the request waited (`NOT_COORDINATOR`, 16).
    #[error("this broker is not the group's coordinator")]
    NotCoordinator,
    /// DeleteGroups on a group that still has members (`NON_EMPTY_GROUP`, 68).
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// DeleteGroups on a group that is already dead (`GROUP_ID_NOT_FOUND`, 69).
    #[error("the group id does not exist")]
    GroupIdNotFound,
    /// A request the state machine cannot make sense of (`UNKNOWN_SERVER_ERROR`, -1).
    #[error("unexpected server error")]
    UnknownServerError,
}

impl GroupError {
    /// Kafka's numeric error code for this error.
    pub fn kafka_code(self) -> i16 {
        match self {
            Self::UnknownServerError => -1,
            Self::CoordinatorLoadInProgress => 14,
            Self::CoordinatorNotAvailable => 15,
            Self::NotCoordinator => 16,
            Self::IllegalGeneration => 22,
            Self::InconsistentGroupProtocol => 23,
            Self::UnknownMemberId => 25,
            Self::InvalidSessionTimeout => 26,
            Self::RebalanceInProgress => 27,
            Self::NonEmptyGroup => 68,
            Self::GroupIdNotFound => 69,
            Self::MemberIdRequired => 79,
            Self::GroupMaxSizeReached => 81,
            Self::FencedInstanceId => 82,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GroupError;

    /// Codes as listed in Kafka's protocol guide (`Errors.java`).
    #[test]
    fn kafka_codes_match_the_protocol_guide() {
        let expected = [
            (GroupError::UnknownServerError, -1),
            (GroupError::CoordinatorLoadInProgress, 14),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::NotCoordinator, 16),
            (GroupError::IllegalGeneration, 22),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::UnknownMemberId, 25),
            (GroupError::InvalidSessionTimeout, 26),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::MemberIdRequired, 79),
            (GroupError::GroupMaxSizeReached, 81),
            (GroupError::FencedInstanceId, 82),
        ];
        for (error, code) in expected {
            assert_eq!(error.kafka_code(), code, "{error:?}");
            let message = error.to_string();
            assert!(
                message.chars().next().is_some_and(char::is_lowercase),
                "{message}"
            );
        }
    }
}
