//! Partition reassignment (KIP-455, kafka-reassign-partitions.sh):
//! `AlterPartitionReassignments` moves partitions' replicas to other brokers or cancels a move,
//! `ListPartitionReassignments` lists the moves under way. Any broker takes both.

use std::collections::BTreeMap;

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use rill_protocol::kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use rill_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::topics::{node_ids, topic_name};
use super::{Admin, check, non_empty};
use crate::error::Result;

/// One partition's new replica list, or the cancellation of its move, for
/// [`Admin::alter_partition_reassignments`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reassignment {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The broker ids the partition should end up on, the first one its preferred leader;
    /// `None` cancels the partition's move under way (its replicas go back to what they were).
    pub replicas: Option<Vec<i32>>,
}

impl Reassignment {
    /// Moves `topic`'s `partition` onto `replicas`.
    ///
    /// ```no_run
    /// use rill_client::Reassignment;
    /// let to_2_3_4 = Reassignment::new("orders", 0, [2, 3, 4]);
    /// # drop(to_2_3_4);
    /// ```
    pub fn new(topic: impl Into<String>, partition: i32, replicas: impl Into<Vec<i32>>) -> Self {
        Self {
            topic: topic.into(),
            partition,
            replicas: Some(replicas.into()),
        }
    }

    /// Cancels the move of `topic`'s `partition` that is under way.
    ///
    /// ```no_run
    /// use rill_client::Reassignment;
    /// let cancel = Reassignment::cancel("orders", 0);
    /// # drop(cancel);
    /// ```
    pub fn cancel(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
            replicas: None,
        }
    }
}

/// One partition's answer to [`Admin::alter_partition_reassignments`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReassignmentResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// `None`: the move was accepted (it goes on in the background: the new replicas are added
    /// and catch up, then the old ones are removed) or the cancellation done. Otherwise why
    /// not: `UNKNOWN_TOPIC_OR_PARTITION`, `INVALID_REPLICA_ASSIGNMENT` (an empty list, a broker
    /// listed twice or unknown), `NO_REASSIGNMENT_IN_PROGRESS` (nothing to cancel), ...
    /// A code this crate does not know is `UNKNOWN_SERVER_ERROR`, its number in `message`.
    pub error: Option<ErrorCode>,
    /// The broker's explanation, when it gave one.
    pub message: Option<String>,
}

/// A partition move under way, as [`Admin::list_partition_reassignments`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OngoingReassignment {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Every replica the partition has while it moves (Kafka lists the target replicas
    /// followed by those being removed).
    pub replicas: Vec<i32>,
    /// The replicas being added: in the target list but not in the original one.
    pub adding_replicas: Vec<i32>,
    /// The replicas being removed: in the original list but not in the target one.
    pub removing_replicas: Vec<i32>,
}

impl Admin {
    /// Moves partitions to new replica lists, or cancels their moves
    /// ([`Reassignment::cancel`]). One result per reassignment, **in the order given**;
    /// a refusal of the whole request (`CLUSTER_AUTHORIZATION_FAILED` without ALTER on the
    /// cluster) is the outer `Err`. The call returns once the broker has accepted the moves,
    /// not when they are done: [`list_partition_reassignments`](Self::list_partition_reassignments)
    /// shows them until they are. Changing a partition's replica count is allowed (Kafka's
    /// default). Sent once, as every change is.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::Reassignment;
    /// let moves = [Reassignment::new("orders", 0, [2, 3, 4]), Reassignment::cancel("orders", 1)];
    /// for r in admin.alter_partition_reassignments(&moves).await? {
    ///     println!("{}-{}: {:?}", r.topic, r.partition, r.error);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[Reassignment],
    ) -> Result<Vec<ReassignmentResult>> {
        let request = alter_request(moves, self.timeout_ms());
        let response = self.any().await?.request(request).await?;
        self.cluster.invalidate();
        alter_results(moves, &response)
    }

    /// The partition moves under way: of the partitions in `only` (topic, partitions), or of
    /// every partition (`None`). A partition that is not moving (or does not exist) is left
    /// out. Sorted by topic and partition. Retried like every read.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for r in admin.list_partition_reassignments(None).await? {
    ///     println!("{}-{}: adding {:?}, removing {:?}", r.topic, r.partition,
    ///         r.adding_replicas, r.removing_replicas);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_partition_reassignments(
        &self,
        only: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<OngoingReassignment>> {
        let request = list_request(only, self.timeout_ms());
        let response = self
            .retrying(|| {
                let request = request.clone();
                async move { self.any().await?.request(request).await }
            })
            .await?;
        ongoing(&response)
    }
}

/// The request for `moves`, one entry per topic (in name order), its partitions in the order
/// given.
fn alter_request(moves: &[Reassignment], timeout_ms: i32) -> AlterPartitionReassignmentsRequest {
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for m in moves {
        by_topic.entry(m.topic.as_str()).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(m.partition)
                .with_replicas(
                    m.replicas
                        .as_ref()
                        .map(|ids| ids.iter().copied().map(BrokerId).collect()),
                ),
        );
    }
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    ReassignableTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// A partition's error code (`None` for none) and the broker's message.
type Outcome = (Option<ErrorCode>, Option<String>);

/// One result per move, in the order of `moves`; a move the broker left out of its answer is
/// `UNKNOWN_SERVER_ERROR`.
fn alter_results(
    moves: &[Reassignment],
    response: &AlterPartitionReassignmentsResponse,
) -> Result<Vec<ReassignmentResult>> {
    check(response.error_code, response.error_message.as_ref(), || {
        "alter partition reassignments".to_owned()
    })?;
    let mut answered: BTreeMap<(&str, i32), Outcome> = BTreeMap::new();
    for t in &response.responses {
        for p in &t.partitions {
            let message = p.error_message.as_ref().and_then(non_empty);
            let outcome = match (p.error_code, ErrorCode::from_code(p.error_code)) {
                (0, _) => (None, message),
                (_, Some(code)) => (Some(code), message),
                (raw, None) => (
                    Some(ErrorCode::UnknownServerError),
                    Some(match message {
                        Some(m) => format!("unknown error code {raw}: {m}"),
                        None => format!("unknown error code {raw}"),
                    }),
                ),
            };
            let _ = answered.insert((&t.name.0, p.partition_index), outcome);
        }
    }
    Ok(moves
        .iter()
        .map(|m| {
            let (error, message) = answered
                .get(&(m.topic.as_str(), m.partition))
                .cloned()
                .unwrap_or_else(|| {
                    (
                        Some(ErrorCode::UnknownServerError),
                        Some("the broker's answer has no result for this partition".to_owned()),
                    )
                });
            ReassignmentResult {
                topic: m.topic.clone(),
                partition: m.partition,
                error,
                message,
            }
        })
        .collect())
}

/// The request for the moves of `only`'s partitions, or of every partition (null topics).
fn list_request(
    only: Option<&[(String, Vec<i32>)]>,
    timeout_ms: i32,
) -> ListPartitionReassignmentsRequest {
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(only.map(|only| {
            only.iter()
                .map(|(topic, partitions)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        }))
}

/// The moves in `response`, sorted by topic and partition, or its top-level error.
fn ongoing(response: &ListPartitionReassignmentsResponse) -> Result<Vec<OngoingReassignment>> {
    check(response.error_code, response.error_message.as_ref(), || {
        "list partition reassignments".to_owned()
    })?;
    let mut moves: Vec<OngoingReassignment> = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OngoingReassignment {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                replicas: node_ids(&p.replicas),
                adding_replicas: node_ids(&p.adding_replicas),
                removing_replicas: node_ids(&p.removing_replicas),
            })
        })
        .collect();
    moves.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(moves)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use rill_protocol::ErrorCode;
    use rill_protocol::StrBytes;
    use rill_protocol::kafka_protocol::messages::alter_partition_reassignments_response::{
        ReassignablePartitionResponse, ReassignableTopicResponse,
    };
    use rill_protocol::kafka_protocol::messages::list_partition_reassignments_response::{
        OngoingPartitionReassignment, OngoingTopicReassignment,
    };
    use rill_protocol::kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
        ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
    };
    use rill_protocol::kafka_protocol::protocol::{Decodable, Encodable};

    use super::{
        OngoingReassignment, Reassignment, ReassignmentResult, alter_request, alter_results,
        list_request, ongoing,
    };

    fn name(topic: &str) -> TopicName {
        TopicName(StrBytes::from_string(topic.to_owned()))
    }

    fn ids(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().copied().map(BrokerId).collect()
    }

    /// `request` encoded at `version` and decoded again.
    fn round_trip<T: Encodable + Decodable>(request: &T, version: i16) -> T {
        let mut buf = BytesMut::new();
        request
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode at v{version}: {e}"));
        let mut bytes = buf.freeze();
        let decoded =
            T::decode(&mut bytes, version).unwrap_or_else(|e| panic!("decode at v{version}: {e}"));
        assert!(bytes.is_empty(), "v{version}: {} bytes left", bytes.len());
        decoded
    }

    fn answer(
        error_code: i16,
        partitions: &[(&str, i32, i16, Option<&str>)],
    ) -> AlterPartitionReassignmentsResponse {
        let mut by_topic: Vec<ReassignableTopicResponse> = Vec::new();
        for (topic, partition, code, message) in partitions {
            let p = ReassignablePartitionResponse::default()
                .with_partition_index(*partition)
                .with_error_code(*code)
                .with_error_message(message.map(|m| StrBytes::from_string(m.to_owned())));
            match by_topic.iter_mut().find(|t| t.name.0.as_str() == *topic) {
                Some(t) => t.partitions.push(p),
                None => by_topic.push(
                    ReassignableTopicResponse::default()
                        .with_name(name(topic))
                        .with_partitions(vec![p]),
                ),
            }
        }
        AlterPartitionReassignmentsResponse::default()
            .with_error_code(error_code)
            .with_responses(by_topic)
    }

    fn result(
        topic: &str,
        partition: i32,
        error: Option<ErrorCode>,
        message: Option<&str>,
    ) -> ReassignmentResult {
        ReassignmentResult {
            topic: topic.to_owned(),
            partition,
            error,
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn alter_request_groups_partitions_by_topic_and_cancels_with_null() {
        let moves = [
            Reassignment::new("orders", 0, [2, 3, 4]),
            Reassignment::new("audit", 1, vec![1]),
            Reassignment::cancel("orders", 2),
        ];
        let request = alter_request(&moves, 30_000);
        assert_eq!(request.timeout_ms, 30_000);
        assert!(request.allow_replication_factor_change, "Kafka's default");
        type Asked = Vec<(i32, Option<Vec<BrokerId>>)>;
        let topics: Vec<(String, Asked)> = request
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.replicas.clone()))
                    .collect();
                (t.name.0.to_string(), partitions)
            })
            .collect();
        assert_eq!(
            topics,
            vec![
                ("audit".to_owned(), vec![(1, Some(ids(&[1])))]),
                (
                    "orders".to_owned(),
                    vec![(0, Some(ids(&[2, 3, 4]))), (2, None)]
                ),
            ]
        );
        // Both versions carry it (v1 with allow_replication_factor_change at its default).
        for version in 0..=1 {
            let decoded: AlterPartitionReassignmentsRequest = round_trip(&request, version);
            assert_eq!(decoded, request, "v{version}");
        }
    }

    #[test]
    fn alter_results_follow_the_order_given_with_codes_and_messages() {
        let moves = [
            Reassignment::new("orders", 1, [1, 2]),
            Reassignment::new("orders", 0, [2, 3, 4]),
            Reassignment::cancel("audit", 0),
            Reassignment::new("gone", 0, [1]),
        ];
        let response = answer(
            0,
            &[
                ("orders", 0, 0, None),
                ("orders", 1, 39, Some("broker 9 is not registered")),
                ("audit", 0, 85, Some("")),
                ("gone", 0, 3, None),
            ],
        );
        let results = alter_results(&moves, &response).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            results,
            vec![
                result(
                    "orders",
                    1,
                    Some(ErrorCode::InvalidReplicaAssignment),
                    Some("broker 9 is not registered")
                ),
                result("orders", 0, None, None),
                result("audit", 0, Some(ErrorCode::NoReassignmentInProgress), None),
                result("gone", 0, Some(ErrorCode::UnknownTopicOrPartition), None),
            ]
        );
    }

    #[test]
    fn alter_results_report_left_out_partitions_and_unknown_codes() {
        let moves = [
            Reassignment::new("orders", 0, [1, 2]),
            Reassignment::new("orders", 1, [1, 2]),
        ];
        let response = answer(0, &[("orders", 0, 31_000, Some("odd"))]);
        let results = alter_results(&moves, &response).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            results,
            vec![
                result(
                    "orders",
                    0,
                    Some(ErrorCode::UnknownServerError),
                    Some("unknown error code 31000: odd")
                ),
                result(
                    "orders",
                    1,
                    Some(ErrorCode::UnknownServerError),
                    Some("the broker's answer has no result for this partition")
                ),
            ]
        );
    }

    #[test]
    fn a_top_level_error_fails_the_whole_alter() {
        let moves = [Reassignment::new("orders", 0, [1, 2])];
        let response = answer(31, &[]).with_error_message(Some(StrBytes::from_static_str(
            "ALTER on the cluster is needed",
        )));
        match alter_results(&moves, &response) {
            Err(err) => {
                assert_eq!(err.code(), Some(ErrorCode::ClusterAuthorizationFailed));
                assert_eq!(
                    err.to_string(),
                    "alter partition reassignments (ALTER on the cluster is needed): \
                     CLUSTER_AUTHORIZATION_FAILED"
                );
            }
            Ok(results) => panic!("expected an error, got {results:?}"),
        }
    }

    #[test]
    fn list_request_asks_for_everything_with_null_topics() {
        let request = list_request(None, 30_000);
        assert_eq!(request.topics, None);
        assert_eq!(request.timeout_ms, 30_000);
        let only = [
            ("orders".to_owned(), vec![0, 2]),
            ("audit".to_owned(), vec![1]),
        ];
        let request = list_request(Some(&only), 5_000);
        let asked: Option<Vec<(String, Vec<i32>)>> = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        assert_eq!(asked.as_deref(), Some(&only[..]));
        let decoded: ListPartitionReassignmentsRequest = round_trip(&request, 0);
        assert_eq!(decoded, request);
    }

    #[test]
    fn ongoing_moves_are_sorted_and_keep_their_replica_lists() {
        let partition = |p: i32, replicas: &[i32], adding: &[i32], removing: &[i32]| {
            OngoingPartitionReassignment::default()
                .with_partition_index(p)
                .with_replicas(ids(replicas))
                .with_adding_replicas(ids(adding))
                .with_removing_replicas(ids(removing))
        };
        let response = ListPartitionReassignmentsResponse::default().with_topics(vec![
            OngoingTopicReassignment::default()
                .with_name(name("orders"))
                .with_partitions(vec![
                    partition(2, &[3, 1], &[3], &[]),
                    partition(0, &[2, 3, 4, 1], &[3, 4], &[1]),
                ]),
            OngoingTopicReassignment::default()
                .with_name(name("audit"))
                .with_partitions(vec![partition(0, &[1, 2], &[], &[2])]),
        ]);
        let decoded: ListPartitionReassignmentsResponse = round_trip(&response, 0);
        let moves = ongoing(&decoded).unwrap_or_else(|e| panic!("{e}"));
        let row = |topic: &str, p: i32, replicas: &[i32], adding: &[i32], removing: &[i32]| {
            OngoingReassignment {
                topic: topic.to_owned(),
                partition: p,
                replicas: replicas.to_vec(),
                adding_replicas: adding.to_vec(),
                removing_replicas: removing.to_vec(),
            }
        };
        assert_eq!(
            moves,
            vec![
                row("audit", 0, &[1, 2], &[], &[2]),
                row("orders", 0, &[2, 3, 4, 1], &[3, 4], &[1]),
                row("orders", 2, &[3, 1], &[3], &[]),
            ]
        );
    }

    #[test]
    fn a_top_level_error_fails_the_list() {
        let response = ListPartitionReassignmentsResponse::default().with_error_code(31);
        match ongoing(&response) {
            Err(err) => assert_eq!(err.code(), Some(ErrorCode::ClusterAuthorizationFailed)),
            Ok(moves) => panic!("expected an error, got {moves:?}"),
        }
    }
}
