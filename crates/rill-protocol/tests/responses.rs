//! Responses: header version by flexibility (always v0 for ApiVersions), round trips, the
//! ApiVersions answer built from the table, and the KIP-511 fallback.

#![expect(clippy::unwrap_used, reason = "a test fails by panicking")]

use bytes::{Bytes, BytesMut};
use rill_protocol::kafka_protocol::messages::DescribeLogDirsResponse;
use rill_protocol::kafka_protocol::messages::ElectLeadersResponse;
use rill_protocol::kafka_protocol::messages::OffsetForLeaderEpochResponse;
use rill_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, DescribeProducersResponse,
    DescribeTransactionsResponse, EndTxnResponse, ListTransactionsResponse,
    TxnOffsetCommitResponse, WriteTxnMarkersResponse,
};
use rill_protocol::kafka_protocol::messages::{
    AlterConfigsResponse, ApiVersionsResponse, CreateAclsResponse, CreatePartitionsResponse,
    CreateTopicsResponse, DeleteAclsResponse, DeleteGroupsResponse, DeleteRecordsResponse,
    DeleteTopicsResponse, DescribeAclsResponse, DescribeClusterResponse, DescribeConfigsResponse,
    DescribeGroupsResponse, DescribeQuorumResponse, DescribeTopicPartitionsResponse, FetchResponse,
    FindCoordinatorResponse, HeartbeatResponse, IncrementalAlterConfigsResponse,
    InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    ListOffsetsResponse, MetadataResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, ProduceResponse, SyncGroupResponse,
};
use rill_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsResponse, ListPartitionReassignmentsResponse,
};
use rill_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsResponse, DescribeUserScramCredentialsResponse,
    SaslAuthenticateResponse, SaslHandshakeResponse,
};
use rill_protocol::{
    ApiKey, DEFAULT_MAX_FRAME_SIZE, ErrorCode, ProtocolError, RequestHeader, Response,
    ResponseKind, SUPPORTED, api_versions_response, split_frame,
};

fn default_response(key: ApiKey) -> ResponseKind {
    match key {
        ApiKey::Produce => ProduceResponse::default().into(),
        ApiKey::Fetch => FetchResponse::default().into(),
        ApiKey::ListOffsets => ListOffsetsResponse::default().into(),
        ApiKey::Metadata => MetadataResponse::default().into(),
        ApiKey::OffsetCommit => OffsetCommitResponse::default().into(),
        ApiKey::OffsetFetch => OffsetFetchResponse::default().into(),
        ApiKey::FindCoordinator => FindCoordinatorResponse::default().into(),
        ApiKey::JoinGroup => JoinGroupResponse::default().into(),
        ApiKey::Heartbeat => HeartbeatResponse::default().into(),
        ApiKey::LeaveGroup => LeaveGroupResponse::default().into(),
        ApiKey::SyncGroup => SyncGroupResponse::default().into(),
        ApiKey::DescribeGroups => DescribeGroupsResponse::default().into(),
        ApiKey::ListGroups => ListGroupsResponse::default().into(),
        ApiKey::ApiVersions => ApiVersionsResponse::default().into(),
        ApiKey::CreateTopics => CreateTopicsResponse::default().into(),
        ApiKey::DeleteTopics => DeleteTopicsResponse::default().into(),
        ApiKey::DeleteRecords => DeleteRecordsResponse::default().into(),
        ApiKey::InitProducerId => InitProducerIdResponse::default().into(),
        ApiKey::DescribeConfigs => DescribeConfigsResponse::default().into(),
        ApiKey::AlterConfigs => AlterConfigsResponse::default().into(),
        ApiKey::CreatePartitions => CreatePartitionsResponse::default().into(),
        ApiKey::DeleteGroups => DeleteGroupsResponse::default().into(),
        ApiKey::ElectLeaders => ElectLeadersResponse::default().into(),
        ApiKey::AlterPartitionReassignments => {
            AlterPartitionReassignmentsResponse::default().into()
        }
        ApiKey::ListPartitionReassignments => ListPartitionReassignmentsResponse::default().into(),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsResponse::default().into(),
        ApiKey::OffsetDelete => OffsetDeleteResponse::default().into(),
        ApiKey::DescribeQuorum => DescribeQuorumResponse::default().into(),
        ApiKey::DescribeCluster => DescribeClusterResponse::default().into(),
        ApiKey::DescribeTopicPartitions => DescribeTopicPartitionsResponse::default().into(),
        ApiKey::SaslHandshake => SaslHandshakeResponse::default().into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateResponse::default().into(),
        ApiKey::DescribeUserScramCredentials => {
            DescribeUserScramCredentialsResponse::default().into()
        }
        ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsResponse::default().into(),
        ApiKey::DescribeAcls => DescribeAclsResponse::default().into(),
        ApiKey::CreateAcls => CreateAclsResponse::default().into(),
        ApiKey::DeleteAcls => DeleteAclsResponse::default().into(),
        ApiKey::DescribeLogDirs => DescribeLogDirsResponse::default().into(),
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochResponse::default().into(),
        ApiKey::AddPartitionsToTxn => AddPartitionsToTxnResponse::default().into(),
        ApiKey::AddOffsetsToTxn => AddOffsetsToTxnResponse::default().into(),
        ApiKey::EndTxn => EndTxnResponse::default().into(),
        ApiKey::WriteTxnMarkers => WriteTxnMarkersResponse::default().into(),
        ApiKey::TxnOffsetCommit => TxnOffsetCommitResponse::default().into(),
        ApiKey::DescribeProducers => DescribeProducersResponse::default().into(),
        ApiKey::DescribeTransactions => DescribeTransactionsResponse::default().into(),
        ApiKey::ListTransactions => ListTransactionsResponse::default().into(),
        other => panic!("no default response for {other:?}"),
    }
}

/// Encodes `response` and returns the frame contents (no size prefix), checking the prefix.
fn frame_of(response: &Response) -> Bytes {
    let mut buf = BytesMut::new();
    response
        .encode(&mut buf)
        .unwrap_or_else(|err| panic!("{:?} v{}: {err:?}", response.api_key, response.api_version));
    let frame = split_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    frame
}

#[test]
fn header_version_follows_flexibility_except_api_versions() {
    for &(key, min, max) in SUPPORTED {
        for v in min..=max {
            let request = RequestHeader::new(key, v, 77);
            let response = Response::new(&request, default_response(key));
            let flexible = request.header_version() == 2;
            let expected = if key == ApiKey::ApiVersions {
                0
            } else {
                i16::from(flexible)
            };
            assert_eq!(response.header_version(), expected, "{key:?} v{v}");
            assert_eq!(request.response_header_version(), expected, "{key:?} v{v}");

            let frame = frame_of(&response);
            assert_eq!(frame[..4], 77_i32.to_be_bytes(), "{key:?} v{v}");
            let decoded = Response::decode(key, v, frame).unwrap();
            assert_eq!(decoded, response, "{key:?} v{v}");
        }
    }
}

#[test]
fn flexible_response_header_has_an_empty_tagged_field_section() {
    // Metadata v9 is flexible: correlation id, then 0 tagged fields, then the body.
    let request = RequestHeader::new(ApiKey::Metadata, 9, 5);
    let frame = frame_of(&Response::new(&request, MetadataResponse::default()));
    assert_eq!(frame[..5], [0, 0, 0, 5, 0]);
    // ApiVersions v3 is flexible too, but its response header stays v0: the body starts at once
    // with the error code (0) and the compact array length of the table (len + 1).
    let request = RequestHeader::new(ApiKey::ApiVersions, 3, 6);
    let frame = frame_of(&Response::new(&request, api_versions_response()));
    assert_eq!(frame[..7], [0, 0, 0, 6, 0, 0, SUPPORTED.len() as u8 + 1]);
}

#[test]
fn api_versions_answer_lists_exactly_the_table() {
    for v in 0..=4 {
        let request = RequestHeader::new(ApiKey::ApiVersions, v, 1);
        let frame = frame_of(&Response::new(&request, api_versions_response()));
        let decoded = Response::decode(ApiKey::ApiVersions, v, frame).unwrap();
        let ResponseKind::ApiVersions(body) = decoded.body else {
            panic!("not ApiVersions");
        };
        assert_eq!(body.error_code, 0);
        let listed: Vec<_> = body
            .api_keys
            .iter()
            .map(|api| (api.api_key, api.min_version, api.max_version))
            .collect();
        let table: Vec<_> = SUPPORTED
            .iter()
            .map(|&(key, min, max)| (key as i16, min, max))
            .collect();
        assert_eq!(listed, table, "v{v}");
    }
}

#[test]
fn unsupported_api_versions_answer_is_v0_with_error_and_table() {
    let mut frame = Bytes::from_static(&[0, 18, 0, 127, 0, 0, 0x30, 0x39, 0xff, 0xff]);
    let err = RequestHeader::decode(&mut frame).unwrap_err();
    let ProtocolError::UnsupportedVersion {
        api_key: ApiKey::ApiVersions,
        correlation_id,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    let response = Response::unsupported_api_versions(correlation_id);
    assert_eq!((response.api_version, response.header_version()), (0, 0));
    let frame = frame_of(&response);
    // v0: correlation id, error code 35, then a classic (i32-length) array of the table.
    assert_eq!(frame[..6], [0, 0, 0x30, 0x39, 0, 35]);
    assert_eq!(frame[6..10], (SUPPORTED.len() as i32).to_be_bytes());
    let decoded = Response::decode(ApiKey::ApiVersions, 0, frame).unwrap();
    assert_eq!(decoded.correlation_id, 12345);
    let ResponseKind::ApiVersions(body) = decoded.body else {
        panic!("not ApiVersions");
    };
    assert_eq!(body.error_code, ErrorCode::UnsupportedVersion.code());
    let own = body
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((own.min_version, own.max_version), (0, 4));
}

#[test]
fn body_of_another_api_is_refused() {
    let request = RequestHeader::new(ApiKey::Produce, 9, 1);
    let response = Response::new(&request, MetadataResponse::default());
    let mut buf = BytesMut::new();
    assert!(matches!(
        response.encode(&mut buf),
        Err(ProtocolError::MismatchedBody {
            api_key: ApiKey::Produce,
            ..
        })
    ));
    assert!(buf.is_empty());
}

#[test]
fn field_missing_from_the_version_is_an_encode_error_and_leaves_dst_alone() {
    // Only Metadata v8-10 carry cluster authorized operations, and the field is not ignorable:
    // kafka-protocol refuses to drop it silently.
    let request = RequestHeader::new(ApiKey::Metadata, 11, 1);
    let body = MetadataResponse::default().with_cluster_authorized_operations(0);
    let mut buf = BytesMut::from(&b"earlier frame"[..]);
    let err = Response::new(&request, body).encode(&mut buf).unwrap_err();
    assert!(matches!(err, ProtocolError::Encode { .. }), "{err:?}");
    assert_eq!(&buf[..], b"earlier frame");
}

#[test]
fn truncated_response_is_an_error() {
    let request = RequestHeader::new(ApiKey::ApiVersions, 3, 1);
    let frame = frame_of(&Response::new(&request, api_versions_response()));
    for cut in 0..frame.len() {
        assert!(
            matches!(
                Response::decode(ApiKey::ApiVersions, 3, frame.slice(..cut)),
                Err(ProtocolError::Truncated { .. })
            ),
            "cut {cut}"
        );
    }
}
