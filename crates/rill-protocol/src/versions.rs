//! The version table: which APIs Rill serves and at which versions. [`SUPPORTED`] is the single
//! source of truth: request headers are checked against it and the `ApiVersions` answer is built
//! from it.
//!
//! The ranges are the union of Kafka 3.9's and Kafka 4.1's, capped at what the `kafka-protocol`
//! crate (0.18, generated from Kafka 4.1's schemas) can decode and encode: Kafka 4 dropped many
//! old versions (KIP-896) that old clients still send, and Rill serves them through Kafka 3.9's
//! schemas (see [`legacy`](crate::legacy)). librdkafka enables features when the
//! broker's range *overlaps* these probes (`rdkafka_feature.c`): Produce 3 + Fetch 4 (record
//! format v2), Produce 7 + Fetch 10 (zstd), ListOffsets 1 (offsets by time), FindCoordinator 0,
//! OffsetCommit 1..2, OffsetFetch 1, JoinGroup/SyncGroup/Heartbeat/LeaveGroup 0 (its classic group
//! consumer), InitProducerId 0 (idempotence).

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

macro_rules! supported_apis {
    ($( $key:ident $min:literal ..= $max:literal, )*) => {
        /// Every API Rill serves, with the lowest and highest version it accepts, in api-key
        /// order. The `ApiVersions` answer lists exactly these entries.
        pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[$( (ApiKey::$key, $min, $max), )*];

        /// The api key of a request body, if it is one of the [`SUPPORTED`] APIs.
        pub(crate) fn request_api_key(body: &RequestKind) -> Option<ApiKey> {
            match body {
                $( RequestKind::$key(_) => Some(ApiKey::$key), )*
                _ => None,
            }
        }

        /// The api key of a response body, if it is one of the [`SUPPORTED`] APIs.
        pub(crate) fn response_api_key(body: &ResponseKind) -> Option<ApiKey> {
            match body {
                $( ResponseKind::$key(_) => Some(ApiKey::$key), )*
                _ => None,
            }
        }
    };
}

supported_apis! {
    // v0-2 (Kafka 3.9; Kafka 4 dropped them) carry magic 0/1 message sets, converted to v2
    // batches on append. librdkafka before 2.11.1 compresses only when v0 is advertised.
    // v13 (Kafka 4.1) names topics by id only.
    Produce 0..=13,
    // v0-3 (Kafka 3.9) get the stored batches converted down to magic 0/1 message sets.
    // v13+ name topics by id only. v18 (Kafka 4.1) adds a follower's high watermark as a tagged
    // field, which a consumer never sends and Rill (one replica) does not need.
    Fetch 0..=18,
    ListOffsets 0..=10,
    Metadata 0..=13,
    // Kafka 4.1 lists v10 but marks it unstable; kafka-protocol 0.18 decodes requests up to v9.
    // v0-1 (Kafka 3.9): sarama's consumer groups commit with v1.
    OffsetCommit 0..=9,
    // As for OffsetCommit: v10 is unstable in Kafka 4.1 and kafka-protocol decodes up to v9.
    OffsetFetch 0..=9,
    FindCoordinator 0..=6,
    JoinGroup 0..=9,
    Heartbeat 0..=4,
    LeaveGroup 0..=5,
    SyncGroup 0..=5,
    DescribeGroups 0..=6,
    ListGroups 0..=5,
    // v0 is followed by bare SASL tokens (KIP-43), v1 by SaslAuthenticate requests (KIP-152).
    SaslHandshake 0..=1,
    ApiVersions 0..=4,
    CreateTopics 0..=7,
    DeleteTopics 0..=6,
    DeleteRecords 0..=2,
    // Kafka 4.1 lists v6 (KIP-939, unstable); kafka-protocol 0.18 decodes requests up to v5.
    InitProducerId 0..=5,
    // v0-1 (Kafka 3.9) through Kafka 3.9's schemas; v2 adds the current leader epoch.
    OffsetForLeaderEpoch 0..=4,
    // Transactions (KIP-98). AddPartitionsToTxn v4+ is KIP-890's batched form for brokers,
    // with `verify_only`; EndTxn v5, Produce v12 and TxnOffsetCommit v5 belong to KIP-890
    // part 2 (an epoch bump per transaction, partitions added by the produce or commit
    // itself), which clients use when the broker announces `transaction.version` 2 (see
    // [`with_features`]).
    AddPartitionsToTxn 0..=5,
    AddOffsetsToTxn 0..=4,
    EndTxn 0..=5,
    // Coordinator to partition leaders; Kafka 4 serves v1 only.
    WriteTxnMarkers 1..=1,
    TxnOffsetCommit 0..=5,
    // ACLs: Kafka 3.9 serves v0-3 and Kafka 4 v1-3; v0 (before KIP-290's pattern types, what
    // sarama sends at its default version) through Kafka 3.9's schemas, as LITERAL patterns.
    DescribeAcls 0..=3,
    CreateAcls 0..=3,
    DeleteAcls 0..=3,
    DescribeConfigs 0..=4,
    AlterConfigs 0..=2,
    // Kafka 4 serves v1-4 (KIP-896 dropped v0); v3 adds a top-level error code, v4 the data
    // dir's total and usable bytes (KIP-827).
    DescribeLogDirs 1..=4,
    // v1 adds the session lifetime (KIP-368), v2 flexible versions.
    SaslAuthenticate 0..=2,
    CreatePartitions 0..=3,
    DeleteGroups 0..=2,
    // Preferred leader election for replicated partitions (KIP-460's v1 adds the election
    // type and a top-level error code); Kafka 3.9 and 4.1 serve v0-2.
    ElectLeaders 0..=2,
    IncrementalAlterConfigs 0..=1,
    // Moving replicated partitions to other brokers (KIP-455); v1 adds
    // `allow_replication_factor_change` (KIP-860). Kafka 4.1 serves both.
    AlterPartitionReassignments 0..=1,
    ListPartitionReassignments 0..=0,
    OffsetDelete 0..=0,
    DescribeUserScramCredentials 0..=0,
    AlterUserScramCredentials 0..=0,
    // The metadata quorum (KIP-595, KIP-836's v1 timestamps, KIP-853's v2 nodes), for
    // kafka-metadata-quorum and `rill cluster status`.
    DescribeQuorum 0..=2,
    DescribeCluster 0..=2,
    DescribeProducers 0..=0,
    DescribeTransactions 0..=0,
    ListTransactions 0..=2,
    DescribeTopicPartitions 0..=0,
}

/// The `(min, max)` versions Rill accepts for `api_key`, or `None` if it does not serve it.
pub fn version_range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// Whether Rill accepts `version` of `api_key`.
pub fn supported(api_key: ApiKey, version: i16) -> bool {
    version_range(api_key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The body of Rill's `ApiVersions` answer: error `NONE`, one entry per [`SUPPORTED`] row,
/// no throttle and no feature flags. It encodes at every `ApiVersions` version (0-4).
pub fn api_versions_response() -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// The name of Kafka's transaction protocol feature (KIP-890 part 2 at level 2).
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// `response` with the feature flags of ApiVersions v3+ (KIP-584): Rill supports
/// `transaction.version` 0 to 2 and has finalized `transaction_version` (omitted at 0, as
/// Kafka omits a feature at level 0), as of `epoch` (clients keep the newest epoch's levels).
pub fn with_features(
    response: ApiVersionsResponse,
    transaction_version: i16,
    epoch: i64,
) -> ApiVersionsResponse {
    let name = StrBytes::from_static_str(TRANSACTION_VERSION);
    let supported = SupportedFeatureKey::default()
        .with_name(name.clone())
        .with_min_version(0)
        .with_max_version(2);
    let finalized = (transaction_version > 0).then(|| {
        FinalizedFeatureKey::default()
            .with_name(name)
            .with_min_version_level(transaction_version)
            .with_max_version_level(transaction_version)
    });
    response
        .with_supported_features(vec![supported])
        .with_finalized_features_epoch(epoch)
        .with_finalized_features(finalized.into_iter().collect())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_within_kafka_protocol_ranges() {
        for pair in SUPPORTED.windows(2) {
            assert!((pair[0].0 as i16) < (pair[1].0 as i16), "{pair:?}");
        }
        for &(key, min, max) in SUPPORTED {
            let valid = key.valid_versions();
            assert!(0 <= min && min <= max, "{key:?}");
            assert!(max <= valid.max, "{key:?} {valid:?}");
            // Below the current types' range, Kafka 3.9's types must know the version.
            if min < valid.min {
                let old = kafka_protocol_39::messages::ApiKey::try_from(key as i16).unwrap();
                assert!(old.valid_versions().min <= min, "{key:?}");
            }
        }
    }

    #[test]
    fn supported_checks_both_ends() {
        assert!(supported(ApiKey::Produce, 0));
        assert!(supported(ApiKey::Produce, 13));
        assert!(!supported(ApiKey::Produce, -1));
        assert!(!supported(ApiKey::Produce, 14));
        assert!(supported(ApiKey::SaslHandshake, 1));
        assert!(!supported(ApiKey::SaslHandshake, 2));
        assert_eq!(version_range(ApiKey::Fetch), Some((0, 18)));
        assert_eq!(version_range(ApiKey::EndTxn), Some((0, 5)));
        assert_eq!(version_range(ApiKey::CreateDelegationToken), None);
    }

    #[test]
    fn librdkafka_feature_probes_overlap() {
        // (api, probe min, probe max) from librdkafka's rdkafka_feature.c: a feature is on when
        // the broker's range overlaps the probe.
        let probes = [
            (ApiKey::Produce, 3, 3),
            (ApiKey::Fetch, 4, 4),
            (ApiKey::Produce, 7, 7),
            (ApiKey::Fetch, 10, 10),
            (ApiKey::ApiVersions, 0, 0),
            (ApiKey::FindCoordinator, 0, 0),
            (ApiKey::OffsetCommit, 1, 2),
            (ApiKey::OffsetFetch, 1, 1),
            (ApiKey::JoinGroup, 0, 0),
            (ApiKey::SyncGroup, 0, 0),
            (ApiKey::Heartbeat, 0, 0),
            (ApiKey::LeaveGroup, 0, 0),
            (ApiKey::ListOffsets, 1, 1),
            (ApiKey::InitProducerId, 0, 0),
        ];
        for (key, lo, hi) in probes {
            let (min, max) = version_range(key).unwrap();
            assert!(lo <= max && min <= hi, "{key:?} {lo}..{hi} vs {min}..{max}");
        }
    }
}
