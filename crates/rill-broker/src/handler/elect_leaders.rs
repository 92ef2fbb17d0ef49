//! ElectLeaders (KIP-183, KIP-460): preferred leader election for replicated partitions. Any
//! broker takes the request; the partitions' leaders may be elsewhere. For each replicated
//! partition asked, this broker puts a `PreferLeader` command into the metadata log, where it is
//! judged against the agreed state (this broker's own view may lag, as after a restart): if the
//! first replica (the preferred leader) is live, in sync and not leading, the broker whose
//! replica leads at that epoch hands leadership over (raft-rs's leader transfer), and the
//! preferred replica, once elected, announces itself. The answer waits (up to the request's
//! `timeout_ms`) until this broker's metadata shows it leading.
//!
//! Per partition, as Kafka answers: NONE once the preferred replica leads, ELECTION_NOT_NEEDED
//! if it already did (and for a partition with one replica), PREFERRED_LEADER_NOT_AVAILABLE if
//! it is still not live or not in sync at the request's deadline (a replica just back may be
//! catching up: it is asked about again meanwhile), or did not become leader in time, UNKNOWN_TOPIC_OR_PARTITION
//! for one that does not exist. An UNCLEAN election is never needed with Raft, which elects no
//! replica that could lose committed records: ELECTION_NOT_NEEDED while the partition has a
//! leader, ELIGIBLE_LEADERS_NOT_AVAILABLE while it has none. With no partitions named (null),
//! every partition of every topic is asked, and those answering ELECTION_NOT_NEEDED are left
//! out, as Kafka does.

use std::collections::BTreeMap;
use std::time::Duration;

use rill_protocol::ErrorCode;
use rill_protocol::kafka_protocol::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use rill_protocol::kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use tokio::time::Instant;

use crate::broker::{Broker, Topic};

/// Kafka's election types.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;
/// How often the metadata is looked at while an election is under way.
const POLL: Duration = Duration::from_millis(20);
/// How often a partition whose preferred replica is not available is asked about again.
const RETRY: Duration = Duration::from_millis(200);

/// One partition asked about, and where its election stands.
struct Asked {
    topic: String,
    partition: i32,
    /// The answer, once known, with the broker's explanation.
    code: Option<ErrorCode>,
    message: Option<String>,
    /// The (leader, epoch) this broker saw when it last asked for the election.
    asked_at: Option<(i32, i32)>,
    /// Not available when last asked (not live, or not in sync yet: a replica just back is
    /// catching up): asked again from this time on, until the request's deadline.
    retry_at: Option<Instant>,
}

pub(crate) async fn handle(
    broker: &Broker,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let election_type = if version >= 1 {
        req.election_type
    } else {
        PREFERRED
    };
    let all = req.topic_partitions.is_none();
    let mut asked: Vec<Asked> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    match req.topic_partitions {
        Some(topics) => {
            for t in topics {
                for partition in t.partitions {
                    if seen.insert((t.topic.0.to_string(), partition)) {
                        asked.push(Asked::new(t.topic.0.to_string(), partition));
                    }
                }
            }
        }
        None => {
            let mut topics = broker.all_topics();
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            for topic in topics {
                for partition in 0..topic.partition_count() {
                    asked.push(Asked::new(topic.name.clone(), partition));
                }
            }
        }
    }

    let deadline =
        Instant::now() + Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    loop {
        for a in asked.iter_mut().filter(|a| a.code.is_none()) {
            a.step(broker, election_type, all).await;
        }
        if asked.iter().all(|a| a.code.is_some()) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }

    // Grouped by topic, in the order asked.
    let mut order: Vec<String> = Vec::new();
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for a in asked {
        let code = a.code.unwrap_or(ErrorCode::PreferredLeaderNotAvailable);
        if all && code == ErrorCode::ElectionNotNeeded {
            continue;
        }
        let message = match (code, a.code) {
            (ErrorCode::None | ErrorCode::ElectionNotNeeded, _) => None,
            (_, None) => a.message.or_else(|| {
                Some(format!(
                    "the preferred leader of {}-{} did not take over in time",
                    a.topic, a.partition
                ))
            }),
            (ErrorCode::UnknownTopicOrPartition, _) if a.message.is_none() => Some(format!(
                "topic '{}' has no partition {}",
                a.topic, a.partition
            )),
            (ErrorCode::EligibleLeadersNotAvailable, _) => Some(format!(
                "no replica of {}-{} can lead without losing records",
                a.topic, a.partition
            )),
            _ => a.message,
        };
        if !by_topic.contains_key(&a.topic) {
            order.push(a.topic.clone());
        }
        by_topic.entry(a.topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(a.partition)
                .with_error_code(code.code())
                .with_error_message(message.and_then(super::message)),
        );
    }
    let results = order
        .into_iter()
        .filter_map(|name| {
            let partitions = by_topic.remove(&name)?;
            Some(
                ReplicaElectionResult::default()
                    .with_topic(super::topic_name(&name))
                    .with_partition_result(partitions),
            )
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

impl Asked {
    fn new(topic: String, partition: i32) -> Self {
        Self {
            topic,
            partition,
            code: None,
            message: None,
            asked_at: None,
            retry_at: None,
        }
    }

    /// Looks at the partition as this broker sees it now: answers it, or asks for its election
    /// (again, if its leader changed since).
    async fn step(&mut self, broker: &Broker, election_type: i8, all: bool) {
        let Some(topic) = broker.topic(&self.topic) else {
            self.code = Some(ErrorCode::UnknownTopicOrPartition);
            return;
        };
        let Some(placement) = usize::try_from(self.partition)
            .ok()
            .and_then(|i| topic.placements.get(i))
        else {
            self.code = Some(ErrorCode::UnknownTopicOrPartition);
            return;
        };
        let Some(&preferred) = placement.replicas.first() else {
            self.code = Some(ErrorCode::UnknownTopicOrPartition);
            return;
        };
        if placement.replicas.len() < 2 {
            self.code = Some(ErrorCode::ElectionNotNeeded);
            return;
        }
        match election_type {
            PREFERRED => {}
            UNCLEAN => {
                self.code = Some(if placement.leader >= 0 {
                    ErrorCode::ElectionNotNeeded
                } else {
                    ErrorCode::EligibleLeadersNotAvailable
                });
                return;
            }
            _ => {
                self.code = Some(ErrorCode::InvalidRequest);
                self.message = Some(format!("unknown election type {election_type}"));
                return;
            }
        }
        let seen = (placement.leader, placement.epoch);
        match self.asked_at {
            // Every partition asked (null): those led as they should be as this broker sees
            // them are left out without asking the quorum.
            None if all && placement.leader == preferred => {
                self.code = Some(ErrorCode::ElectionNotNeeded);
            }
            None if self.retry_at.is_some_and(|at| Instant::now() < at) => {}
            None => self.ask(broker, &topic, seen).await,
            Some(_) if placement.leader == preferred => self.code = Some(ErrorCode::None),
            // Led by someone else since it was asked: ask that one.
            Some(at) if at != seen && placement.leader >= 0 => {
                self.ask(broker, &topic, seen).await;
            }
            Some(_) => {}
        }
    }

    async fn ask(&mut self, broker: &Broker, topic: &Topic, seen: (i32, i32)) {
        match broker.prefer_leader(topic, self.partition).await {
            Ok(_) => self.asked_at = Some(seen),
            // Asked again and it leads meanwhile: done.
            Err((ErrorCode::ElectionNotNeeded, _)) if self.asked_at.is_some() => {
                self.code = Some(ErrorCode::None);
            }
            // Its preferred replica may be catching up: the answer stands only if it still
            // is not available at the deadline.
            Err((ErrorCode::PreferredLeaderNotAvailable, why)) => {
                self.message = Some(why);
                self.retry_at = Some(Instant::now() + RETRY);
            }
            Err((code, why)) => {
                self.code = Some(code);
                self.message = Some(why);
            }
        }
    }
}
