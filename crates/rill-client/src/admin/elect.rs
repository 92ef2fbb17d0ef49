//! `ElectLeaders`: move replicated partitions' leadership back to their preferred replicas
//! (kafka-leader-election.sh). Any broker takes the request.

use rill_protocol::kafka_protocol::messages::ElectLeadersRequest;
use rill_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use rill_protocol::{ApiKey, ErrorCode};

use super::{Admin, non_empty};
use crate::error::{ClientError, Result};

/// Which election [`Admin::elect_leaders`] asks for (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElectionType {
    /// Make each partition's first replica (its preferred leader) the leader, if it is live
    /// and in sync.
    Preferred,
    /// Elect a leader out of sync if no in-sync replica is live (Kafka's unclean election;
    /// a Raft-replicated partition never needs one).
    Unclean,
}

impl ElectionType {
    fn code(self) -> i8 {
        match self {
            Self::Preferred => 0,
            Self::Unclean => 1,
        }
    }
}

/// One partition's outcome, as [`Admin::elect_leaders`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ElectionResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// `None`: the election happened. `ELECTION_NOT_NEEDED`: the partition was already led as
    /// asked. Otherwise why it did not happen (`PREFERRED_LEADER_NOT_AVAILABLE`,
    /// `UNKNOWN_TOPIC_OR_PARTITION`, ...).
    pub error: Option<ErrorCode>,
    /// The broker's explanation, when it gave one.
    pub message: Option<String>,
}

impl Admin {
    /// Runs a leader election for `partitions` (topic, partition), or for every partition of
    /// every topic (`None`; then the broker leaves out those that needed none). The broker
    /// waits up to `operation_timeout` for the new leaders. One result per partition the
    /// broker answered for, sorted by topic and partition; a refusal of the whole request
    /// (`CLUSTER_AUTHORIZATION_FAILED` without ALTER on the cluster) is the outer `Err`.
    /// Sent once, as every change is.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::ElectionType;
    /// for r in admin.elect_leaders(ElectionType::Preferred, Some(&[("orders", 0)])).await? {
    ///     println!("{}-{}: {:?}", r.topic, r.partition, r.error);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn elect_leaders<S: AsRef<str> + Sync>(
        &self,
        election: ElectionType,
        partitions: Option<&[(S, i32)]>,
    ) -> Result<Vec<ElectionResult>> {
        let conn = self.any().await?;
        let version = conn.version_for(ApiKey::ElectLeaders)?;
        let topics = partitions.map(|partitions| {
            let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
            for (topic, partition) in partitions {
                by_topic.entry(topic.as_ref()).or_default().push(*partition);
            }
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicPartitions::default()
                        .with_topic(super::topics::topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect()
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(election.code())
            .with_topic_partitions(topics)
            .with_timeout_ms(self.timeout_ms());
        let response = conn.request_at(request, version).await?;
        self.cluster.invalidate();
        ClientError::check(response.error_code, || "elect leaders".to_owned())?;
        let mut results: Vec<ElectionResult> = response
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result.iter().map(|p| ElectionResult {
                    topic: t.topic.0.to_string(),
                    partition: p.partition_id,
                    error: (p.error_code != 0).then(|| {
                        ErrorCode::from_code(p.error_code).unwrap_or(ErrorCode::UnknownServerError)
                    }),
                    message: p.error_message.as_ref().and_then(non_empty),
                })
            })
            .collect();
        results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(results)
    }
}
