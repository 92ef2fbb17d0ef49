//! The APIs this client speaks, and at which versions: [`CLIENT_VERSIONS`] lists, for each API,
//! the versions whose request and response shapes the client actually fills in and reads.
//! [`Connection::version_for`](crate::Connection::version_for) intersects them with the broker's.

use rill_protocol::ApiKey;
use rill_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestKind, ResponseKind,
};
// The admin client's APIs.
use rill_protocol::kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ListGroupsRequest, ListGroupsResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};
// ACLs (`admin/acls.rs`).
use rill_protocol::kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
// The cluster's metadata quorum (`admin/quorum.rs`) and brokers' log dirs (`admin/log_dirs.rs`).
use rill_protocol::kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeQuorumRequest, DescribeQuorumResponse,
};
// Preferred leader election (`admin/elect.rs`).
use rill_protocol::kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
// Partition reassignment (`admin/reassign.rs`).
use rill_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
// SASL (`security/sasl.rs`) and SCRAM credentials (`admin/users.rs`).
use rill_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
// The group consumer's APIs (`group/`).
use rill_protocol::kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, SyncGroupRequest,
    SyncGroupResponse,
};

// The transactional producer's APIs (`producer/transaction.rs`).
use rill_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

/// A request body this client can send: its API, and how to take its typed response out of
/// `rill-protocol`'s [`ResponseKind`] enum.
pub trait ApiRequest: Into<RequestKind> + Send + 'static {
    /// The request's API.
    const API_KEY: ApiKey;
    /// The typed response body.
    type Response: Send + std::fmt::Debug + 'static;
    /// The typed body, if `kind` is a response to this API.
    fn from_kind(kind: ResponseKind) -> Option<Self::Response>;
}

macro_rules! api_requests {
    ($( $key:ident $req:ident $resp:ident $min:literal ..= $max:literal; )*) => {
        /// Every API this client speaks, with the lowest and highest version it handles.
        pub const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[$( (ApiKey::$key, $min, $max), )*];

        $(
            impl ApiRequest for $req {
                const API_KEY: ApiKey = ApiKey::$key;
                type Response = $resp;
                fn from_kind(kind: ResponseKind) -> Option<$resp> {
                    match kind {
                        ResponseKind::$key(body) => Some(body),
                        _ => None,
                    }
                }
            }
        )*
    };
}

api_requests! {
    // v3 is the first with record format v2; v13 names topics by id only.
    Produce ProduceRequest ProduceResponse 3..=12;
    // v4 is the first returning record format v2; v13 names topics by id only.
    Fetch FetchRequest FetchResponse 4..=12;
    // v1 is the first with one offset per timestamp; v7 adds MAX_TIMESTAMP (-3), which this
    // client does not ask for; v8+ add tiered-storage specs and a timeout.
    ListOffsets ListOffsetsRequest ListOffsetsResponse 1..=7;
    // v4 adds allow_auto_topic_creation; v13 only adds a top-level error code.
    Metadata MetadataRequest MetadataResponse 4..=12;
    // v3 is the first with client software name and version (KIP-511).
    ApiVersions ApiVersionsRequest ApiVersionsResponse 0..=3;
    InitProducerId InitProducerIdRequest InitProducerIdResponse 0..=5;
    // The admin client's APIs (`admin/`), each read and filled in across the whole range.
    // v8 asks for several groups at once in `groups`; v1-7 name one group.
    OffsetFetch OffsetFetchRequest OffsetFetchResponse 1..=9;
    // v4 asks for several keys at once in `coordinator_keys`; v0-3 name one key.
    FindCoordinator FindCoordinatorRequest FindCoordinatorResponse 0..=6;
    // v6 reports an unknown group as GROUP_ID_NOT_FOUND (before: state Dead, no error).
    DescribeGroups DescribeGroupsRequest DescribeGroupsResponse 0..=6;
    // v4 adds the states filter (applied client-side below v4), v5 the types filter.
    ListGroups ListGroupsRequest ListGroupsResponse 0..=5;
    // v1 adds the voters' timestamps, v2 the nodes' listeners (not read).
    DescribeQuorum DescribeQuorumRequest DescribeQuorumResponse 1..=2;
    // v1 is the lowest Kafka 4 keeps; v3 adds the top-level error code, v4 total and usable
    // bytes.
    DescribeLogDirs DescribeLogDirsRequest DescribeLogDirsResponse 1..=4;
    // v2 is the lowest Kafka 4 keeps; v5 returns the new topic's configs, v7 its id.
    CreateTopics CreateTopicsRequest CreateTopicsResponse 2..=7;
    // v6 names topics in `topics` (by name or id) rather than `topic_names`.
    DeleteTopics DeleteTopicsRequest DeleteTopicsResponse 1..=6;
    DescribeConfigs DescribeConfigsRequest DescribeConfigsResponse 1..=4;
    CreatePartitions CreatePartitionsRequest CreatePartitionsResponse 0..=3;
    // v1 adds the election type and a top-level error code (KIP-460).
    ElectLeaders ElectLeadersRequest ElectLeadersResponse 1..=2;
    // v1 adds allow_replication_factor_change (KIP-860), left at its default (true).
    AlterPartitionReassignments AlterPartitionReassignmentsRequest AlterPartitionReassignmentsResponse 0..=1;
    ListPartitionReassignments ListPartitionReassignmentsRequest ListPartitionReassignmentsResponse 0..=0;
    DeleteGroups DeleteGroupsRequest DeleteGroupsResponse 0..=2;
    IncrementalAlterConfigs IncrementalAlterConfigsRequest IncrementalAlterConfigsResponse 0..=1;
    // v1 (KIP-290) is the first with pattern types; v2 is flexible.
    DescribeAcls DescribeAclsRequest DescribeAclsResponse 1..=3;
    CreateAcls CreateAclsRequest CreateAclsResponse 1..=3;
    DeleteAcls DeleteAclsRequest DeleteAclsResponse 1..=3;
    // The group consumer's APIs (`group/`). JoinGroup v1 adds the rebalance timeout, v4
    // MEMBER_ID_REQUIRED, v5 static membership (also SyncGroup v3, Heartbeat v3, LeaveGroup
    // v3, OffsetCommit v7).
    JoinGroup JoinGroupRequest JoinGroupResponse 1..=9;
    SyncGroup SyncGroupRequest SyncGroupResponse 0..=5;
    Heartbeat HeartbeatRequest HeartbeatResponse 0..=4;
    LeaveGroup LeaveGroupRequest LeaveGroupResponse 0..=5;
    // v2 is the lowest Kafka 4 keeps; v9 is the last before topic ids.
    OffsetCommit OffsetCommitRequest OffsetCommitResponse 2..=9;
    // v1 is followed by SaslAuthenticate requests (KIP-152); v0's raw SASL frames are not
    // spoken.
    SaslHandshake SaslHandshakeRequest SaslHandshakeResponse 1..=1;
    // v1 adds the session lifetime (KIP-368), v2 is flexible.
    SaslAuthenticate SaslAuthenticateRequest SaslAuthenticateResponse 0..=2;
    AlterUserScramCredentials AlterUserScramCredentialsRequest AlterUserScramCredentialsResponse 0..=0;
    DescribeUserScramCredentials DescribeUserScramCredentialsRequest DescribeUserScramCredentialsResponse 0..=0;
    // The transactional producer's APIs (`producer/transaction.rs`). AddPartitionsToTxn v4+
    // is for brokers (KIP-890's batched verification); v4 of the others adds
    // TRANSACTION_ABORTABLE (handled as any error that leaves the transaction to abort), and
    // EndTxn v5 / TxnOffsetCommit v5 belong to KIP-890 part 2, used only once a broker
    // announces `transaction.version` 2. TxnOffsetCommit v3 names the group member (KIP-447).
    AddPartitionsToTxn AddPartitionsToTxnRequest AddPartitionsToTxnResponse 0..=3;
    AddOffsetsToTxn AddOffsetsToTxnRequest AddOffsetsToTxnResponse 0..=4;
    EndTxn EndTxnRequest EndTxnResponse 0..=4;
    TxnOffsetCommit TxnOffsetCommitRequest TxnOffsetCommitResponse 0..=4;
}

/// The `(min, max)` versions this client handles for `api_key`, if it speaks it at all.
pub fn client_range(api_key: ApiKey) -> Option<(i16, i16)> {
    CLIENT_VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// The highest version in both ranges, if they overlap.
pub(crate) fn highest_common(a: (i16, i16), b: (i16, i16)) -> Option<i16> {
    let (min, max) = (a.0.max(b.0), a.1.min(b.1));
    (min <= max).then_some(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_versions_are_within_what_rill_protocol_encodes() {
        for &(key, min, max) in CLIENT_VERSIONS {
            let valid = key.valid_versions();
            assert!(
                valid.min <= min && min <= max && max <= valid.max,
                "{key:?}"
            );
        }
    }

    #[test]
    fn highest_common_picks_the_top_of_the_overlap() {
        assert_eq!(highest_common((3, 12), (0, 9)), Some(9));
        assert_eq!(highest_common((3, 12), (0, 2)), None);
        assert_eq!(highest_common((0, 3), (0, 4)), Some(3));
    }
}
