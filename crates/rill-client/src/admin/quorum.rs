//! The cluster as a whole: its brokers (Metadata) and its metadata quorum (DescribeQuorum,
//! which only the quorum's leader answers; another broker names the leader, and the question
//! goes there).

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use rill_protocol::kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};

use super::Admin;
use crate::error::{ClientError, Result};

/// A broker as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Its node id.
    pub id: i32,
    /// Where clients reach it.
    pub host: String,
    /// Its Kafka port.
    pub port: i32,
    /// Its rack, if it has one.
    pub rack: Option<String>,
}

/// The cluster's live brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: Option<String>,
    /// The node id the brokers name as controller.
    pub controller: i32,
    /// Every live broker, by id.
    pub brokers: Vec<BrokerInfo>,
}

/// One voter of the metadata quorum, as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterState {
    /// Its node id.
    pub id: i32,
    /// The end of its copy of the metadata log (-1: unknown).
    pub log_end_offset: i64,
    /// When the leader last heard from it, ms since the epoch (-1: never).
    pub last_fetch_ms: i64,
    /// When it last had the whole log, ms since the epoch (-1: never).
    pub last_caught_up_ms: i64,
}

/// The metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The leader's node id.
    pub leader: i32,
    /// The leader's epoch (Raft's term).
    pub epoch: i32,
    /// The last entry the quorum agreed on (its commit index).
    pub high_watermark: i64,
    /// Every voter.
    pub voters: Vec<VoterState>,
}

impl Admin {
    /// The cluster's id, controller and live brokers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let response = self.metadata(Some(&[])).await?;
        let mut brokers: Vec<BrokerInfo> = response
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(ToString::to_string),
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterDescription {
            cluster_id: response.cluster_id.map(|id| id.to_string()),
            controller: response.controller_id.0,
            brokers,
        })
    }

    /// The metadata quorum: its leader, epoch, high watermark and voters, from the leader.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription> {
        let request = DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(super::topics::topic_name("__cluster_metadata"))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]);
        let first = self.any().await?.request(request.clone()).await?;
        let answer = match quorum_of(&first) {
            Err(ClientError::Kafka {
                code: ErrorCode::NotLeaderOrFollower,
                ..
            }) => {
                let leader = leader_named(&first).ok_or_else(|| ClientError::Kafka {
                    code: ErrorCode::NotLeaderOrFollower,
                    context: "the metadata quorum has no leader".to_owned(),
                })?;
                let connection = self.cluster.broker_connection(leader).await?;
                connection.request(request).await?
            }
            _ => first,
        };
        quorum_of(&answer)
    }
}

fn leader_named(response: &DescribeQuorumResponse) -> Option<i32> {
    let p = response.topics.first()?.partitions.first()?;
    (p.leader_id.0 >= 0).then_some(p.leader_id.0)
}

fn quorum_of(response: &DescribeQuorumResponse) -> Result<QuorumDescription> {
    ClientError::check(response.error_code, || {
        "describe the metadata quorum".to_owned()
    })?;
    let p = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| ClientError::Kafka {
            code: ErrorCode::UnknownServerError,
            context: "a DescribeQuorum answer without its partition".to_owned(),
        })?;
    ClientError::check(p.error_code, || "describe the metadata quorum".to_owned())?;
    Ok(QuorumDescription {
        leader: p.leader_id.0,
        epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters: p
            .current_voters
            .iter()
            .map(|v| VoterState {
                id: v.replica_id.0,
                log_end_offset: v.log_end_offset,
                last_fetch_ms: v.last_fetch_timestamp,
                last_caught_up_ms: v.last_caught_up_timestamp,
            })
            .collect(),
    })
}
