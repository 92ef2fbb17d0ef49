//! The request versions Kafka 3.9 serves and Kafka 4 dropped (KIP-896): Produce v0-2, Fetch
//! v0-3, ListOffsets v0, OffsetCommit v0-1, OffsetFetch v0, CreateTopics v0-1, DeleteTopics v0,
//! DescribeConfigs v0, the ACL APIs' v0 and OffsetForLeaderEpoch v0-1. Old clients still send them (sarama before 1.40 speaks Kafka 0.8.2's
//! protocol by default, Debian's librdkafka turns compression on only when Produce v0 is
//! advertised), so Rill serves them as Kafka 3.9 does.
//!
//! The current `kafka-protocol` types know only Kafka 4's versions. Kafka 3.9's types (the same
//! crate at 0.15, generated from Kafka 3.9.0's schemas) know the old ones, and every field an
//! old version has is also in the *bridge* version, the lowest one Kafka 4 kept (Produce v3,
//! Fetch v4, ...), apart from the few handled below. So an old body is translated, never
//! hand-decoded: decoded with Kafka 3.9's types at its own version, written again at the bridge
//! version, and decoded at the bridge version with the current types; answers go the other way.
//! Fields a newer version added get their schema defaults (Fetch's isolation level:
//! read_uncommitted). The copies fall on the old clients alone.
//!
//! What an old version carries and the bridge version has no field for:
//! - OffsetCommit v1's per-partition commit timestamp: kept beside the body, in
//!   [`LegacyFields::commit_timestamps`].
//! - ListOffsets v0 answers with a list of offsets (`old_style_offsets`): the bridge answer's
//!   single offset becomes a one-element list (none on error).
//! - DescribeConfigs v0 answers `is_default` instead of a config source: true for the
//!   `DEFAULT_CONFIG` source.
//!
//! Record batches inside Produce and Fetch bodies pass through untouched: converting between
//! message formats (magic 0/1 message sets and v2 batches) is the broker's job, per version.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol_39::messages as old;
use kafka_protocol_39::protocol::{Decodable as OldDecodable, Encodable as OldEncodable};

use crate::error::{ProtocolError, decode_error};

/// `DescribeConfigs` config source for a default value.
const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// What an old request version carried that the current request types have no field for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LegacyFields {
    /// OffsetCommit v1: each partition's commit timestamp, per topic then per partition in
    /// request order; -1 means "the broker's time". Empty for every other request.
    pub commit_timestamps: Vec<Vec<i64>>,
}

/// The version below which `api_key` is served through Kafka 3.9's types: the lowest version
/// the current types know.
pub(crate) fn bridge_version(api_key: ApiKey) -> i16 {
    api_key.valid_versions().min
}

/// Whether `version` of `api_key` is one the current types do not know.
pub(crate) fn is_legacy(api_key: ApiKey, version: i16) -> bool {
    version < bridge_version(api_key)
}

/// Decodes an old-version request body into the current types.
pub(crate) fn decode_request(
    api_key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<(RequestKind, Option<LegacyFields>), ProtocolError> {
    const WHAT: &str = "request body";
    let mut legacy = None;
    let kind = match api_key {
        ApiKey::Produce => {
            RequestKind::Produce(up::<old::ProduceRequest, _>(body, api_key, version, WHAT)?)
        }
        ApiKey::Fetch => {
            RequestKind::Fetch(up::<old::FetchRequest, _>(body, api_key, version, WHAT)?)
        }
        ApiKey::ListOffsets => {
            let mut request = old::ListOffsetsRequest::decode(body, version)
                .map_err(decode_error!(api_key, version, WHAT))?;
            // v0 asks for up to this many offsets; Rill answers at most one, as for the
            // "latest" and "earliest" asks that clients make.
            for partition in request.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                partition.max_num_offsets = 1;
            }
            RequestKind::ListOffsets(bridge_up(&request, api_key, version, WHAT)?)
        }
        ApiKey::OffsetCommit => {
            let mut request = old::OffsetCommitRequest::decode(body, version)
                .map_err(decode_error!(api_key, version, WHAT))?;
            if version == 1 {
                let stamps = request
                    .topics
                    .iter_mut()
                    .map(|t| {
                        t.partitions
                            .iter_mut()
                            .map(|p| std::mem::replace(&mut p.commit_timestamp, -1))
                            .collect()
                    })
                    .collect();
                legacy = Some(LegacyFields {
                    commit_timestamps: stamps,
                });
            }
            RequestKind::OffsetCommit(bridge_up(&request, api_key, version, WHAT)?)
        }
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(up::<old::OffsetFetchRequest, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::CreateTopics => RequestKind::CreateTopics(up::<old::CreateTopicsRequest, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(up::<old::DeleteTopicsRequest, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(up::<old::DescribeConfigsRequest, _>(
                body, api_key, version, WHAT,
            )?)
        }
        // v0 (before KIP-290) has no pattern type: Kafka 3.9's types fill in LITERAL.
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(up::<old::DescribeAclsRequest, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::CreateAcls => RequestKind::CreateAcls(up::<old::CreateAclsRequest, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(up::<old::DeleteAclsRequest, _>(
            body, api_key, version, WHAT,
        )?),
        // v0-1 carry no current leader epoch (-1 in the bridge version: not checked).
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(up::<old::OffsetForLeaderEpochRequest, _>(
                body, api_key, version, WHAT,
            )?)
        }
        _ => return Err(unsupported(api_key, version)),
    };
    Ok((kind, legacy))
}

/// Encodes a request body (current types) at an old version.
pub(crate) fn encode_request(
    body: &RequestKind,
    legacy: Option<&LegacyFields>,
    api_key: ApiKey,
    version: i16,
    dst: &mut BytesMut,
) -> Result<(), ProtocolError> {
    const WHAT: &str = "request body";
    match body {
        RequestKind::Produce(b) => {
            down::<old::ProduceRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::Fetch(b) => {
            down::<old::FetchRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::ListOffsets(b) => {
            down::<old::ListOffsetsRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::OffsetCommit(b) => {
            let mut request = down::<old::OffsetCommitRequest>(b, api_key, version, WHAT)?;
            if let Some(legacy) = legacy {
                for (topic, stamps) in request.topics.iter_mut().zip(&legacy.commit_timestamps) {
                    for (partition, stamp) in topic.partitions.iter_mut().zip(stamps) {
                        partition.commit_timestamp = *stamp;
                    }
                }
            }
            request.encode(dst, version)
        }
        RequestKind::OffsetFetch(b) => {
            down::<old::OffsetFetchRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::CreateTopics(b) => {
            down::<old::CreateTopicsRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::DeleteTopics(b) => {
            down::<old::DeleteTopicsRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::DescribeConfigs(b) => {
            down::<old::DescribeConfigsRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::DescribeAcls(b) => {
            down::<old::DescribeAclsRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::CreateAcls(b) => {
            down::<old::CreateAclsRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::DeleteAcls(b) => {
            down::<old::DeleteAclsRequest>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        RequestKind::OffsetForLeaderEpoch(b) => {
            down::<old::OffsetForLeaderEpochRequest>(b, api_key, version, WHAT)?
                .encode(dst, version)
        }
        _ => return Err(unsupported(api_key, version)),
    }
    .map_err(|err| ProtocolError::encode(api_key, version, WHAT, err))
}

/// Encodes a response body (current types) at an old version.
pub(crate) fn encode_response(
    body: &ResponseKind,
    api_key: ApiKey,
    version: i16,
    dst: &mut BytesMut,
) -> Result<(), ProtocolError> {
    const WHAT: &str = "response body";
    match body {
        ResponseKind::Produce(b) => {
            down::<old::ProduceResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::Fetch(b) => {
            down::<old::FetchResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::ListOffsets(b) => {
            let mut response = down::<old::ListOffsetsResponse>(b, api_key, version, WHAT)?;
            for partition in response.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                let offset = std::mem::replace(&mut partition.offset, -1);
                partition.timestamp = -1;
                partition.old_style_offsets = if partition.error_code == 0 && offset >= 0 {
                    vec![offset]
                } else {
                    Vec::new()
                };
            }
            response.encode(dst, version)
        }
        ResponseKind::OffsetCommit(b) => {
            down::<old::OffsetCommitResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::OffsetFetch(b) => {
            down::<old::OffsetFetchResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::CreateTopics(b) => {
            down::<old::CreateTopicsResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::DeleteTopics(b) => {
            down::<old::DeleteTopicsResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::DescribeConfigs(b) => {
            let mut response = down::<old::DescribeConfigsResponse>(b, api_key, version, WHAT)?;
            for config in response.results.iter_mut().flat_map(|r| &mut r.configs) {
                config.is_default = config.config_source == SOURCE_DEFAULT_CONFIG;
            }
            response.encode(dst, version)
        }
        ResponseKind::DescribeAcls(b) => {
            down::<old::DescribeAclsResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::CreateAcls(b) => {
            down::<old::CreateAclsResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::DeleteAcls(b) => {
            down::<old::DeleteAclsResponse>(b, api_key, version, WHAT)?.encode(dst, version)
        }
        ResponseKind::OffsetForLeaderEpoch(b) => {
            down::<old::OffsetForLeaderEpochResponse>(b, api_key, version, WHAT)?
                .encode(dst, version)
        }
        _ => return Err(unsupported(api_key, version)),
    }
    .map_err(|err| ProtocolError::encode(api_key, version, WHAT, err))
}

/// Decodes an old-version response body into the current types (client side).
pub(crate) fn decode_response(
    api_key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<ResponseKind, ProtocolError> {
    const WHAT: &str = "response body";
    Ok(match api_key {
        ApiKey::Produce => {
            ResponseKind::Produce(up::<old::ProduceResponse, _>(body, api_key, version, WHAT)?)
        }
        ApiKey::Fetch => {
            ResponseKind::Fetch(up::<old::FetchResponse, _>(body, api_key, version, WHAT)?)
        }
        ApiKey::ListOffsets => {
            let mut response = old::ListOffsetsResponse::decode(body, version)
                .map_err(decode_error!(api_key, version, WHAT))?;
            for partition in response.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                partition.offset = partition.old_style_offsets.first().copied().unwrap_or(-1);
                partition.old_style_offsets.clear();
            }
            ResponseKind::ListOffsets(bridge_up(&response, api_key, version, WHAT)?)
        }
        ApiKey::OffsetCommit => ResponseKind::OffsetCommit(up::<old::OffsetCommitResponse, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::OffsetFetch => ResponseKind::OffsetFetch(up::<old::OffsetFetchResponse, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::CreateTopics => ResponseKind::CreateTopics(up::<old::CreateTopicsResponse, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::DeleteTopics => ResponseKind::DeleteTopics(up::<old::DeleteTopicsResponse, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::DescribeConfigs => {
            let mut response = old::DescribeConfigsResponse::decode(body, version)
                .map_err(decode_error!(api_key, version, WHAT))?;
            for config in response.results.iter_mut().flat_map(|r| &mut r.configs) {
                config.config_source = if config.is_default {
                    SOURCE_DEFAULT_CONFIG
                } else {
                    -1
                };
                config.is_default = false;
            }
            ResponseKind::DescribeConfigs(bridge_up(&response, api_key, version, WHAT)?)
        }
        ApiKey::DescribeAcls => ResponseKind::DescribeAcls(up::<old::DescribeAclsResponse, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::CreateAcls => ResponseKind::CreateAcls(up::<old::CreateAclsResponse, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::DeleteAcls => ResponseKind::DeleteAcls(up::<old::DeleteAclsResponse, _>(
            body, api_key, version, WHAT,
        )?),
        ApiKey::OffsetForLeaderEpoch => {
            ResponseKind::OffsetForLeaderEpoch(up::<old::OffsetForLeaderEpochResponse, _>(
                body, api_key, version, WHAT,
            )?)
        }
        _ => return Err(unsupported(api_key, version)),
    })
}

/// Decodes `body` at `version` with Kafka 3.9's type `O`, then translates it into the current
/// type.
fn up<O, N>(
    body: &mut Bytes,
    api_key: ApiKey,
    version: i16,
    what: &'static str,
) -> Result<N, ProtocolError>
where
    O: OldDecodable + OldEncodable,
    N: Decodable,
{
    let message = O::decode(body, version).map_err(decode_error!(api_key, version, what))?;
    bridge_up(&message, api_key, version, what)
}

/// Translates a Kafka 3.9 message into the current type, through the bridge version.
fn bridge_up<O: OldEncodable, N: Decodable>(
    message: &O,
    api_key: ApiKey,
    version: i16,
    what: &'static str,
) -> Result<N, ProtocolError> {
    let bridge = bridge_version(api_key);
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, bridge)
        .and_then(|()| N::decode(&mut buf.freeze(), bridge))
        .map_err(|err| ProtocolError::decode(api_key, version, what, false, err))
}

/// Translates a current message into Kafka 3.9's type, through the bridge version, ready to be
/// encoded at an old version.
fn down<O: OldDecodable>(
    message: &impl Encodable,
    api_key: ApiKey,
    version: i16,
    what: &'static str,
) -> Result<O, ProtocolError> {
    let bridge = bridge_version(api_key);
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, bridge)
        .and_then(|()| O::decode(&mut buf.freeze(), bridge))
        .map_err(|err| ProtocolError::encode(api_key, version, what, err))
}

fn unsupported(api_key: ApiKey, version: i16) -> ProtocolError {
    ProtocolError::UnsupportedVersion {
        api_key,
        api_version: version,
        correlation_id: -1,
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use bytes::BufMut as _;
    use kafka_protocol::messages::describe_configs_response::{
        DescribeConfigsResourceResult, DescribeConfigsResult,
    };
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use kafka_protocol::messages::{DescribeConfigsResponse, ListOffsetsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn string(buf: &mut BytesMut, text: &str) {
        buf.put_i16(i16::try_from(text.len()).unwrap());
        buf.put_slice(text.as_bytes());
    }

    /// A Produce v0 body as sarama writes it: no transactional id, a message set per partition.
    #[test]
    fn produce_v0_request_decodes_into_current_types() {
        let mut wire = BytesMut::new();
        wire.put_i16(1); // acks
        wire.put_i32(10_000); // timeout
        wire.put_i32(1); // one topic
        string(&mut wire, "t");
        wire.put_i32(1); // one partition
        wire.put_i32(2);
        wire.put_i32(3);
        wire.put_slice(b"abc"); // the message set, opaque here
        let (RequestKind::Produce(req), None) =
            decode_request(ApiKey::Produce, 0, &mut wire.freeze()).unwrap()
        else {
            panic!("a produce request");
        };
        assert_eq!(
            (req.acks, req.timeout_ms, req.transactional_id),
            (1, 10_000, None)
        );
        let partition = &req.topic_data[0].partition_data[0];
        assert_eq!(req.topic_data[0].name.0.as_str(), "t");
        assert_eq!(partition.index, 2);
        assert_eq!(partition.records.as_deref(), Some(&b"abc"[..]));
    }

    /// OffsetCommit v1 carries a commit timestamp per partition; it survives the translation
    /// beside the body and is written back on encode.
    #[test]
    fn offset_commit_v1_keeps_commit_timestamps() {
        let mut wire = BytesMut::new();
        string(&mut wire, "g");
        wire.put_i32(5); // generation
        string(&mut wire, "m");
        wire.put_i32(1);
        string(&mut wire, "t");
        wire.put_i32(2);
        for (partition, offset, stamp) in [(0, 10_i64, 1_000_i64), (1, 20, -1)] {
            wire.put_i32(partition);
            wire.put_i64(offset);
            wire.put_i64(stamp);
            string(&mut wire, "meta");
        }
        let wire = wire.freeze();
        let (RequestKind::OffsetCommit(req), Some(legacy)) =
            decode_request(ApiKey::OffsetCommit, 1, &mut wire.clone()).unwrap()
        else {
            panic!("an offset commit with legacy fields");
        };
        assert_eq!(legacy.commit_timestamps, vec![vec![1_000, -1]]);
        assert_eq!(req.generation_id_or_member_epoch, 5);
        assert_eq!(req.member_id.as_str(), "m");
        assert_eq!(req.topics[0].partitions[1].committed_offset, 20);
        let mut again = BytesMut::new();
        encode_request(
            &RequestKind::OffsetCommit(req),
            Some(&legacy),
            ApiKey::OffsetCommit,
            1,
            &mut again,
        )
        .unwrap();
        assert_eq!(again.freeze(), wire);
    }

    /// ListOffsets v0 answers a list of offsets; one entry for the found offset, none on error.
    #[test]
    fn list_offsets_v0_answers_old_style_offsets() {
        let response = ListOffsetsResponse::default().with_topics(vec![
            ListOffsetsTopicResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(0)
                        .with_offset(42)
                        .with_timestamp(-1),
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(1)
                        .with_error_code(3)
                        .with_offset(-1),
                ]),
        ]);
        let mut wire = BytesMut::new();
        encode_response(
            &ResponseKind::ListOffsets(response.clone()),
            ApiKey::ListOffsets,
            0,
            &mut wire,
        )
        .unwrap();
        let mut expected = BytesMut::new();
        expected.put_i32(1);
        string(&mut expected, "t");
        expected.put_i32(2);
        expected.put_i32(0);
        expected.put_i16(0);
        expected.put_i32(1);
        expected.put_i64(42);
        expected.put_i32(1);
        expected.put_i16(3);
        expected.put_i32(0);
        assert_eq!(wire, expected);
        let ResponseKind::ListOffsets(back) =
            decode_response(ApiKey::ListOffsets, 0, &mut wire.freeze()).unwrap()
        else {
            panic!("a list offsets response");
        };
        assert_eq!(back.topics[0].partitions[0].offset, 42);
        assert_eq!(back.topics[0].partitions[1].offset, -1);
    }

    /// DescribeConfigs v0 says `is_default` where later versions give a config source.
    #[test]
    fn describe_configs_v0_answers_is_default() {
        let config = |name: &'static str, source: i8| {
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(name))
                .with_value(Some(StrBytes::from_static_str("1")))
                .with_config_source(source)
        };
        let response = DescribeConfigsResponse::default().with_results(vec![
            DescribeConfigsResult::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_configs(vec![config("a", 5), config("b", 1)]),
        ]);
        let mut wire = BytesMut::new();
        encode_response(
            &ResponseKind::DescribeConfigs(response),
            ApiKey::DescribeConfigs,
            0,
            &mut wire,
        )
        .unwrap();
        let old = old::DescribeConfigsResponse::decode(&mut wire.freeze(), 0).unwrap();
        let defaults: Vec<bool> = old.results[0]
            .configs
            .iter()
            .map(|c| c.is_default)
            .collect();
        assert_eq!(defaults, [true, false]);
    }

    #[test]
    fn bridge_versions_are_kafka_4s_lowest() {
        assert_eq!(bridge_version(ApiKey::Produce), 3);
        assert_eq!(bridge_version(ApiKey::Fetch), 4);
        assert!(is_legacy(ApiKey::OffsetCommit, 1));
        assert!(!is_legacy(ApiKey::OffsetCommit, 2));
        assert!(!is_legacy(ApiKey::Metadata, 0));
    }
}
