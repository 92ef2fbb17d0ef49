//! The metadata state machine: what the cluster agreed on, rebuilt on every broker by applying
//! the committed entries of the metadata log in order. Applying is deterministic (no clock, no
//! randomness, no I/O), so every broker that has applied the same index holds the same image.
//!
//! An entry is a [`Proposal`]: a [`Command`] and who proposed it. A command that cannot apply
//! (a topic created twice, deleted while it was being changed) changes nothing and carries its
//! error back to the proposer.

use std::collections::{BTreeMap, BTreeSet};

use rill_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::authorizer::{AclBinding, AclFilter};
use crate::meta::Replayed;
use crate::sasl::scram::Credential;

/// A partition's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionImage {
    /// Its replicas; the first is the preferred leader. One replica until replication.
    pub(crate) replicas: Vec<i32>,
    /// The leading broker, or -1 while none of its replicas is live.
    pub(crate) leader: i32,
    /// Raised by every change of leader, so that a stale leader is told apart.
    pub(crate) epoch: i32,
    /// A replicated partition's in-sync replicas as its leader last reported them (empty:
    /// not reported yet, or one replica).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) isr: Vec<i32>,
    /// While the partition moves (a reassignment, KIP-455): the replicas being added, and
    /// those being removed. `replicas` is then the target followed by those being removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) adding: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) removing: Vec<i32>,
    /// The replicas it had when the move under way began (what a cancellation goes back to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) origin: Vec<i32>,
    /// A replicated partition's first replicas (its Raft group's voters when it began), once a
    /// reassignment made `replicas` differ from them; empty until then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) first: Vec<i32>,
}

impl PartitionImage {
    /// Whether a reassignment is under way.
    pub(crate) fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas it is to have: while it moves, those it moves to.
    pub(crate) fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    /// The voters its Raft group began with.
    pub(crate) fn first_replicas(&self) -> &[i32] {
        if self.first.is_empty() {
            &self.replicas
        } else {
            &self.first
        }
    }
}

/// A topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicImage {
    pub(crate) id: Uuid,
    /// Config overrides (Kafka names), validated before they were proposed.
    pub(crate) configs: BTreeMap<String, String>,
    pub(crate) partitions: Vec<PartitionImage>,
}

/// One of a broker's listeners, as clients are told to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListenerAddress {
    /// The listener's name (`PLAINTEXT`, `SSL`, ...).
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BrokerImage {
    /// Different for every start of the process: a new one means the broker restarted.
    pub(crate) incarnation: Uuid,
    /// Its first listener's advertised address.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) rack: Option<String>,
    /// With several listeners, all of them (the first is `host`/`port`); empty with one, so
    /// that images from before named listeners read the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) listeners: Vec<ListenerAddress>,
    /// Its session expired: it leads nothing until it is heard from again.
    pub(crate) fenced: bool,
}

/// The whole agreed state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Image {
    pub(crate) cluster_id: Option<String>,
    pub(crate) topics: BTreeMap<String, TopicImage>,
    pub(crate) brokers: BTreeMap<i32, BrokerImage>,
    /// Dynamic broker configs by BROKER resource name (a node id, or "" for the default).
    pub(crate) broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The first producer id no broker has been given.
    pub(crate) next_producer_id: i64,
    /// SASL users: each one's SCRAM credentials by mechanism name (`SCRAM-SHA-256`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) users: BTreeMap<String, BTreeMap<String, Credential>>,
    /// The ACLs (none in images from before them, which read and write as they did).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(crate) acls: BTreeSet<AclBinding>,
    /// What the last DeleteAcls removed, per filter, for its proposer; never stored.
    #[serde(skip)]
    pub(crate) removed_acls: Vec<Vec<AclBinding>>,
}

/// A change to the image, as it travels through the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub(crate) enum Command {
    /// Names the cluster; only the first one applies.
    InitCluster {
        cluster_id: String,
    },
    /// A broker (re)starts: it is live and leads its partitions again, at a higher epoch.
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        host: String,
        port: u16,
        rack: Option<String>,
        /// Every listener, when there are several (see [`BrokerImage::listeners`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        listeners: Vec<ListenerAddress>,
    },
    /// A broker's session expired.
    FenceBroker {
        id: i32,
        incarnation: Uuid,
    },
    /// A fenced broker was heard from again.
    UnfenceBroker {
        id: i32,
        incarnation: Uuid,
    },
    CreateTopic {
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
        /// Each partition's replicas.
        assignment: Vec<Vec<i32>>,
    },
    DeleteTopic {
        name: String,
        id: Uuid,
    },
    /// Adds partitions `from..` to a topic that has exactly `from`.
    CreatePartitions {
        name: String,
        id: Uuid,
        from: usize,
        assignment: Vec<Vec<i32>>,
    },
    SetTopicConfigs {
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
    },
    SetBrokerConfigs {
        resource: String,
        configs: BTreeMap<String, String>,
    },
    /// Hands the proposer a block of `count` producer ids; the outcome is its first id.
    AllocateProducerIds {
        count: i64,
    },
    /// Adds or replaces SCRAM credentials (user, mechanism, credential) and removes others
    /// (user, mechanism), checked by the proposer first.
    AlterScramCredentials {
        upsert: Vec<(String, String, Credential)>,
        delete: Vec<(String, String)>,
    },
    /// Adds ACLs (one already there stays one); the outcome is how many were new.
    CreateAcls {
        acls: Vec<AclBinding>,
    },
    /// Removes every ACL any filter matches, as they stand when it applies; the proposer gets
    /// them per filter ([`Image::removed_acls`]), the outcome is how many went.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// Replicated partitions whose Raft group elected a leader: each applies only if its epoch
    /// (the group's term) is newer than the one known, or the same while the partition has no
    /// leader (its leader was fenced and is back), so a late report never undoes a newer one.
    ElectedLeaders {
        leaders: Vec<ElectedLeader>,
    },
    /// ElectLeaders (preferred): the partition's first replica should lead it. Judged here,
    /// against the agreed state at this point of the log (the proposer's own view may lag):
    /// ELECTION_NOT_NEEDED if it leads already (or the partition has one replica),
    /// PREFERRED_LEADER_NOT_AVAILABLE if it is fenced or out of sync, else the outcome is the
    /// leader epoch it was asked at. Nothing is recorded: the broker whose replica leads at
    /// that epoch hands leadership over ([`Change::PreferLeader`]), and the new leader
    /// announces itself with [`Command::ElectedLeaders`]. Replayed later (a restart), it finds
    /// that epoch gone and does nothing.
    PreferLeader {
        topic: String,
        id: Uuid,
        partition: i32,
    },
    /// AlterPartitionReassignments for one partition: move it to `target` (`None`: cancel the
    /// move under way, back to the replicas it had). Judged here against the agreed state. The
    /// partition's replicas become the target followed by every other replica it has (each
    /// may be in its Raft group until the move ends); its leader then changes the group's
    /// membership step by step and reports [`Command::Reassigned`] when it is the target's.
    /// `keep_factor` (v1's `allow_replication_factor_change` false) refuses a target of
    /// another size with INVALID_REPLICATION_FACTOR.
    Reassign {
        topic: String,
        id: Uuid,
        partition: i32,
        target: Option<Vec<i32>>,
        #[serde(default)]
        keep_factor: bool,
    },
    /// A partition's Raft group has exactly `replicas` (the target of its move) as members:
    /// the move ends, and the replicas no longer placed are deleted. Applies only while that
    /// is still the target (a later AlterPartitionReassignments may have changed it).
    Reassigned {
        topic: String,
        id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
    },
}

/// A replicated partition's leader, as its group elected it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ElectedLeader {
    pub(crate) topic: String,
    pub(crate) id: Uuid,
    pub(crate) partition: i32,
    pub(crate) leader: i32,
    pub(crate) epoch: i32,
    /// Its in-sync replicas, as the leader sees them.
    #[serde(default)]
    pub(crate) isr: Vec<i32>,
}

/// A command and who proposed it, so that the proposer learns how it applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Proposal {
    /// The proposing process (its incarnation's low bits), and its sequence number there.
    pub(crate) origin: u64,
    pub(crate) seq: u64,
    pub(crate) command: Command,
}

/// How a command applied: a value (a producer id block's start, else 0) or the error a client
/// gets.
pub(crate) type Outcome = Result<i64, (ErrorCode, String)>;

/// What an applied command changed, for the broker to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Cluster,
    Topic(String),
    /// A topic is gone (with the id it had).
    TopicDeleted(String, Uuid),
    /// Brokers changed (registered, fenced, unfenced), and with them leaders.
    Brokers,
    BrokerConfigs,
    Acls,
    /// A replicated partition's leader at `epoch` should hand over to `to`
    /// ([`Command::PreferLeader`]).
    PreferLeader {
        topic: String,
        id: Uuid,
        partition: i32,
        to: i32,
        epoch: i32,
    },
}

impl Image {
    /// Applies one command; `changes` gets what it changed.
    pub(crate) fn apply(&mut self, command: Command, changes: &mut Vec<Change>) -> Outcome {
        match command {
            Command::InitCluster { cluster_id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(cluster_id);
                    changes.push(Change::Cluster);
                }
                Ok(0)
            }
            Command::RegisterBroker {
                id,
                incarnation,
                host,
                port,
                rack,
                listeners,
            } => {
                let restarted = self
                    .brokers
                    .get(&id)
                    .is_none_or(|b| b.incarnation != incarnation || b.fenced);
                let _ = self.brokers.insert(
                    id,
                    BrokerImage {
                        incarnation,
                        host,
                        port,
                        rack,
                        listeners,
                        fenced: false,
                    },
                );
                if restarted {
                    self.lead_again(id, changes);
                }
                changes.push(Change::Brokers);
                Ok(0)
            }
            Command::FenceBroker { id, incarnation } => {
                let Some(broker) = self
                    .brokers
                    .get_mut(&id)
                    .filter(|b| b.incarnation == incarnation && !b.fenced)
                else {
                    return Ok(0);
                };
                broker.fenced = true;
                for (name, topic) in &mut self.topics {
                    let mut changed = false;
                    for p in &mut topic.partitions {
                        // A fenced broker is out of sync at once (its leader would notice only
                        // after replica.lag.time.max.ms).
                        if p.isr.contains(&id) {
                            p.isr.retain(|r| *r != id);
                            changed = true;
                        }
                    }
                    for p in topic.partitions.iter_mut().filter(|p| p.leader == id) {
                        p.leader = -1;
                        // A replicated partition's epoch is its group's term, which only its
                        // group raises.
                        if p.replicas.len() == 1 {
                            p.epoch += 1;
                        }
                        changed = true;
                    }
                    if changed {
                        changes.push(Change::Topic(name.clone()));
                    }
                }
                changes.push(Change::Brokers);
                Ok(0)
            }
            Command::UnfenceBroker { id, incarnation } => {
                let Some(broker) = self
                    .brokers
                    .get_mut(&id)
                    .filter(|b| b.incarnation == incarnation && b.fenced)
                else {
                    return Ok(0);
                };
                broker.fenced = false;
                self.lead_again(id, changes);
                changes.push(Change::Brokers);
                Ok(0)
            }
            Command::CreateTopic {
                name,
                id,
                configs,
                assignment,
            } => {
                if self.topics.contains_key(&name) {
                    return Err((
                        ErrorCode::TopicAlreadyExists,
                        format!("topic '{name}' already exists"),
                    ));
                }
                let partitions = assignment
                    .into_iter()
                    .map(|replicas| self.place(replicas))
                    .collect();
                let topic = TopicImage {
                    id,
                    configs,
                    partitions,
                };
                let _ = self.topics.insert(name.clone(), topic);
                changes.push(Change::Topic(name));
                Ok(0)
            }
            Command::DeleteTopic { name, id } => {
                let _ = self.topic_mut(&name, id)?;
                let _ = self.topics.remove(&name);
                changes.push(Change::TopicDeleted(name, id));
                Ok(0)
            }
            Command::CreatePartitions {
                name,
                id,
                from,
                assignment,
            } => {
                let current = self.topic_mut(&name, id)?.partitions.len();
                if current != from {
                    return Err((
                        ErrorCode::InvalidPartitions,
                        format!(
                            "topic '{name}' has {current} partition(s) now, not {from}: it \
                             changed meanwhile"
                        ),
                    ));
                }
                let placed: Vec<_> = assignment.into_iter().map(|r| self.place(r)).collect();
                self.topic_mut(&name, id)?.partitions.extend(placed);
                changes.push(Change::Topic(name));
                Ok(0)
            }
            Command::SetTopicConfigs { name, id, configs } => {
                self.topic_mut(&name, id)?.configs = configs;
                changes.push(Change::Topic(name));
                Ok(0)
            }
            Command::SetBrokerConfigs { resource, configs } => {
                let _ = self.broker_configs.insert(resource, configs);
                changes.push(Change::BrokerConfigs);
                Ok(0)
            }
            Command::AllocateProducerIds { count } => {
                let first = self.next_producer_id;
                self.next_producer_id = first.saturating_add(count.max(1));
                Ok(first)
            }
            Command::AlterScramCredentials { upsert, delete } => {
                for (user, mechanism) in delete {
                    if let Some(credentials) = self.users.get_mut(&user) {
                        let _ = credentials.remove(&mechanism);
                        if credentials.is_empty() {
                            let _ = self.users.remove(&user);
                        }
                    }
                }
                for (user, mechanism, credential) in upsert {
                    let _ = self
                        .users
                        .entry(user)
                        .or_default()
                        .insert(mechanism, credential);
                }
                Ok(0)
            }
            Command::CreateAcls { acls } => {
                let added = acls
                    .into_iter()
                    .filter(|a| self.acls.insert(a.clone()))
                    .count();
                if added > 0 {
                    changes.push(Change::Acls);
                }
                Ok(i64::try_from(added).unwrap_or(i64::MAX))
            }
            Command::ElectedLeaders { leaders } => {
                // A fenced broker is out of sync whatever its leader last saw of it.
                let live: BTreeSet<i32> = self
                    .brokers
                    .iter()
                    .filter(|(_, b)| !b.fenced)
                    .map(|(id, _)| *id)
                    .collect();
                for elected in leaders {
                    let Some(topic) = self
                        .topics
                        .get_mut(&elected.topic)
                        .filter(|t| t.id == elected.id)
                    else {
                        continue;
                    };
                    let Some(p) = usize::try_from(elected.partition)
                        .ok()
                        .and_then(|i| topic.partitions.get_mut(i))
                    else {
                        continue;
                    };
                    if p.replicas.len() < 2 || !p.replicas.contains(&elected.leader) {
                        continue;
                    }
                    let newer =
                        elected.epoch > p.epoch || (elected.epoch == p.epoch && p.leader == -1);
                    let same = elected.epoch == p.epoch && elected.leader == p.leader;
                    let isr: Vec<i32> = elected
                        .isr
                        .iter()
                        .copied()
                        .filter(|r| p.replicas.contains(r) && live.contains(r))
                        .collect();
                    if newer || (same && p.isr != isr) {
                        p.leader = elected.leader;
                        p.epoch = elected.epoch;
                        p.isr = isr;
                        changes.push(Change::Topic(elected.topic.clone()));
                    }
                }
                Ok(0)
            }
            Command::PreferLeader {
                topic,
                id,
                partition,
            } => {
                let unknown = || {
                    (
                        ErrorCode::UnknownTopicOrPartition,
                        format!("topic '{topic}' has no partition {partition}"),
                    )
                };
                let p = self
                    .topics
                    .get(&topic)
                    .filter(|t| t.id == id)
                    .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                    .ok_or_else(unknown)?;
                let preferred = p.replicas.first().copied().unwrap_or(-1);
                if p.replicas.len() < 2 || p.leader == preferred {
                    return Err((
                        ErrorCode::ElectionNotNeeded,
                        format!("{topic}-{partition} is led by its preferred replica"),
                    ));
                }
                let why = if !self.is_live(preferred) {
                    Some("is not live")
                } else if !p.isr.contains(&preferred) {
                    Some("is not in sync")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err((
                        ErrorCode::PreferredLeaderNotAvailable,
                        format!(
                            "the preferred leader of {topic}-{partition} (broker {preferred}) \
                             {why}"
                        ),
                    ));
                }
                let epoch = p.epoch;
                if p.leader >= 0 {
                    changes.push(Change::PreferLeader {
                        topic,
                        id,
                        partition,
                        to: preferred,
                        epoch,
                    });
                }
                Ok(i64::from(epoch))
            }
            Command::Reassign {
                topic,
                id,
                partition,
                target,
                keep_factor,
            } => {
                let registered: BTreeSet<i32> = self.brokers.keys().copied().collect();
                let p = self.partition_mut(&topic, id, partition)?;
                let moved = reassign(p, target, keep_factor, &registered)?;
                if moved {
                    changes.push(Change::Topic(topic));
                }
                Ok(0)
            }
            Command::Reassigned {
                topic,
                id,
                partition,
                replicas,
            } => {
                let p = self.partition_mut(&topic, id, partition)?;
                if !p.reassigning() || p.target() != replicas {
                    return Ok(0);
                }
                p.isr.retain(|r| replicas.contains(r));
                if !replicas.contains(&p.leader) {
                    p.leader = -1;
                }
                p.replicas = replicas;
                p.adding.clear();
                p.removing.clear();
                p.origin.clear();
                changes.push(Change::Topic(topic));
                Ok(0)
            }
            Command::DeleteAcls { filters } => {
                let removed: Vec<Vec<AclBinding>> = filters
                    .iter()
                    .map(|f| self.acls.iter().filter(|a| f.matches(a)).cloned().collect())
                    .collect();
                let before = self.acls.len();
                self.acls.retain(|a| !filters.iter().any(|f| f.matches(a)));
                let gone = before - self.acls.len();
                if gone > 0 {
                    changes.push(Change::Acls);
                }
                self.removed_acls = removed;
                Ok(i64::try_from(gone).unwrap_or(i64::MAX))
            }
        }
    }

    fn topic_mut(&mut self, name: &str, id: Uuid) -> Result<&mut TopicImage, (ErrorCode, String)> {
        self.topics
            .get_mut(name)
            .filter(|t| t.id == id)
            .ok_or_else(|| {
                (
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                )
            })
    }

    fn partition_mut(
        &mut self,
        topic: &str,
        id: Uuid,
        partition: i32,
    ) -> Result<&mut PartitionImage, (ErrorCode, String)> {
        self.topics
            .get_mut(topic)
            .filter(|t| t.id == id)
            .and_then(|t| t.partitions.get_mut(usize::try_from(partition).ok()?))
            .ok_or_else(|| {
                (
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic '{topic}' has no partition {partition}"),
                )
            })
    }

    /// A new partition on `replicas`, led by its first live replica; a replicated one has no
    /// leader until its group elects one.
    fn place(&self, replicas: Vec<i32>) -> PartitionImage {
        let leader = replicas
            .iter()
            .copied()
            .find(|r| self.is_live(*r) && replicas.len() == 1)
            .unwrap_or(-1);
        PartitionImage {
            replicas,
            leader,
            epoch: 0,
            isr: Vec::new(),
            adding: Vec::new(),
            removing: Vec::new(),
            origin: Vec::new(),
            first: Vec::new(),
        }
    }

    /// Whether a broker is registered and not fenced.
    pub(crate) fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// A broker came (back): it leads every partition whose first replica it is, at a new
    /// epoch, and those without a leader that it holds.
    fn lead_again(&mut self, id: i32, changes: &mut Vec<Change>) {
        for (name, topic) in &mut self.topics {
            let mut changed = false;
            // A replicated partition's leader is its group's to elect.
            for p in topic
                .partitions
                .iter_mut()
                .filter(|p| p.replicas.len() == 1)
            {
                let preferred = p.replicas.first() == Some(&id);
                if preferred || (p.leader == -1 && p.replicas.contains(&id)) {
                    p.leader = id;
                    p.epoch += 1;
                    changed = true;
                }
            }
            if changed {
                changes.push(Change::Topic(name.clone()));
            }
        }
    }

    /// The image of a data directory written by a single-node Rill before the quorum: every
    /// partition on `node_id`, at epoch 0, `__consumer_offsets` (with `offsets_partitions`)
    /// included, since its committed offsets are there.
    pub(crate) fn from_legacy(
        replayed: Replayed,
        node_id: i32,
        cluster_id: String,
        offsets_partitions: i32,
    ) -> Self {
        let offsets = crate::meta::TopicRecord {
            id: Uuid::new_v4(),
            partitions: offsets_partitions,
            configs: BTreeMap::new(),
        };
        let topics = replayed
            .topics
            .into_iter()
            .chain([(crate::group::OFFSETS_TOPIC.to_owned(), offsets)])
            .map(|(name, record)| {
                let partitions = (0..record.partitions)
                    .map(|_| PartitionImage {
                        isr: Vec::new(),
                        adding: Vec::new(),
                        removing: Vec::new(),
                        origin: Vec::new(),
                        first: Vec::new(),
                        replicas: vec![node_id],
                        leader: node_id,
                        epoch: 0,
                    })
                    .collect();
                let topic = TopicImage {
                    id: record.id,
                    configs: record.configs,
                    partitions,
                };
                (name, topic)
            })
            .collect();
        Self {
            cluster_id: Some(cluster_id),
            topics,
            brokers: BTreeMap::new(),
            broker_configs: replayed.broker_configs,
            next_producer_id: replayed.producer_ids_from,
            users: BTreeMap::new(),
            acls: BTreeSet::new(),
            removed_acls: Vec::new(),
        }
    }
}

/// Applies a reassignment (or its cancellation, `target` `None`) to a partition; returns
/// whether anything changed.
fn reassign(
    p: &mut PartitionImage,
    target: Option<Vec<i32>>,
    keep_factor: bool,
    registered: &BTreeSet<i32>,
) -> Result<bool, (ErrorCode, String)> {
    let invalid = |why: String| Err((ErrorCode::InvalidReplicaAssignment, why));
    // The replicas it had before the move under way, if any.
    let original = if p.reassigning() {
        p.origin.clone()
    } else {
        p.replicas.clone()
    };
    let target = match target {
        Some(target) => target,
        None if p.reassigning() => original.clone(),
        None => {
            return Err((
                ErrorCode::NoReassignmentInProgress,
                "no reassignment is in progress".to_owned(),
            ));
        }
    };
    if p.replicas.len() < 2 {
        return invalid(
            "it has one replica; Rill moves only partitions created with a replication factor              above 1"
                .to_owned(),
        );
    }
    if target.len() < 2 {
        return invalid(format!(
            "a replicated partition keeps at least 2 replicas, not {}",
            target.len()
        ));
    }
    if let Some(r) = target.iter().find(|r| !registered.contains(r)) {
        return invalid(format!("broker {r} is not registered"));
    }
    let distinct: BTreeSet<i32> = target.iter().copied().collect();
    if distinct.len() != target.len() {
        return invalid(format!("the replicas {target:?} name a broker twice"));
    }
    if keep_factor && target.len() != original.len() {
        return Err((
            ErrorCode::InvalidReplicationFactor,
            format!(
                "the move would change the replication factor from {} to {}",
                original.len(),
                target.len()
            ),
        ));
    }
    let same_set = |a: &[i32], b: &[i32]| a.len() == b.len() && a.iter().all(|r| b.contains(r));
    if !p.reassigning() && same_set(&target, &p.replicas) {
        // Only the order changes (the preferred leader): the group stays as it is.
        let changed = p.replicas != target;
        p.replicas = target;
        return Ok(changed);
    }
    if p.first.is_empty() {
        p.first = p.replicas.clone();
    }
    // Every replica it has may be in its group until the move ends: they stay listed.
    let staying: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    p.adding = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    p.removing = staying.clone();
    p.origin = original;
    p.replicas = target.into_iter().chain(staying).collect();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(id: i32, incarnation: Uuid) -> Command {
        Command::RegisterBroker {
            id,
            incarnation,
            host: "127.0.0.1".into(),
            port: 9000 + u16::try_from(id).unwrap_or(0),
            rack: None,
            listeners: Vec::new(),
        }
    }

    #[test]
    fn fencing_and_return_move_leadership_with_rising_epochs() {
        let mut image = Image::default();
        let mut changes = Vec::new();
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(image.apply(register(1, one), &mut changes), Ok(0));
        assert_eq!(image.apply(register(2, two), &mut changes), Ok(0));
        let topic = Uuid::new_v4();
        let create = Command::CreateTopic {
            name: "t".into(),
            id: topic,
            configs: BTreeMap::new(),
            assignment: vec![vec![1], vec![2]],
        };
        assert_eq!(image.apply(create.clone(), &mut changes), Ok(0));
        assert!(matches!(
            image.apply(create, &mut changes),
            Err((ErrorCode::TopicAlreadyExists, _))
        ));
        let leaders = |image: &Image| -> Vec<(i32, i32)> {
            image.topics["t"]
                .partitions
                .iter()
                .map(|p| (p.leader, p.epoch))
                .collect()
        };
        assert_eq!(leaders(&image), [(1, 0), (2, 0)]);

        let fence = Command::FenceBroker {
            id: 2,
            incarnation: two,
        };
        assert_eq!(image.apply(fence.clone(), &mut changes), Ok(0));
        assert_eq!(leaders(&image), [(1, 0), (-1, 1)]);
        // A second fence of the same session changes nothing.
        assert_eq!(image.apply(fence, &mut changes), Ok(0));
        assert_eq!(leaders(&image), [(1, 0), (-1, 1)]);
        // A stale unfence (an older incarnation) changes nothing either.
        let stale = Command::UnfenceBroker {
            id: 2,
            incarnation: one,
        };
        assert_eq!(image.apply(stale, &mut changes), Ok(0));
        assert_eq!(leaders(&image), [(1, 0), (-1, 1)]);
        // Broker 2 restarts: it leads again at a higher epoch.
        assert_eq!(
            image.apply(register(2, Uuid::new_v4()), &mut changes),
            Ok(0)
        );
        assert_eq!(leaders(&image), [(1, 0), (2, 2)]);
    }

    #[test]
    fn a_reassignment_lists_every_member_until_done_and_cancels_back() {
        let mut image = Image::default();
        let mut changes = Vec::new();
        for id in 1..=5 {
            let _ = image.apply(register(id, Uuid::new_v4()), &mut changes);
        }
        let id = Uuid::new_v4();
        let create = Command::CreateTopic {
            name: "t".into(),
            id,
            configs: BTreeMap::new(),
            assignment: vec![vec![1, 2, 3], vec![4]],
        };
        assert_eq!(image.apply(create, &mut changes), Ok(0));
        let reassign = |partition, target: Option<Vec<i32>>, keep_factor| Command::Reassign {
            topic: "t".into(),
            id,
            partition,
            target,
            keep_factor,
        };
        let code = |image: &mut Image, command| match image.apply(command, &mut Vec::new()) {
            Ok(_) => ErrorCode::None,
            Err((code, _)) => code,
        };
        let p0 = |image: &Image| image.topics["t"].partitions[0].clone();
        // Refused: nothing to cancel, one replica, unknown brokers, twice the same, a factor
        // change when asked to keep it, a partition that does not exist.
        for (command, expected) in [
            (
                reassign(0, None, false),
                ErrorCode::NoReassignmentInProgress,
            ),
            (
                reassign(1, Some(vec![4, 5]), false),
                ErrorCode::InvalidReplicaAssignment,
            ),
            (
                reassign(0, Some(vec![2, 9]), false),
                ErrorCode::InvalidReplicaAssignment,
            ),
            (
                reassign(0, Some(vec![2, 2, 4]), false),
                ErrorCode::InvalidReplicaAssignment,
            ),
            (
                reassign(0, Some(vec![2]), false),
                ErrorCode::InvalidReplicaAssignment,
            ),
            (
                reassign(0, Some(vec![2, 4]), true),
                ErrorCode::InvalidReplicationFactor,
            ),
            (
                reassign(7, Some(vec![2, 4]), false),
                ErrorCode::UnknownTopicOrPartition,
            ),
        ] {
            assert_eq!(code(&mut image, command), expected);
        }
        assert!(!p0(&image).reassigning());
        // Only the order: no move.
        assert_eq!(
            code(&mut image, reassign(0, Some(vec![2, 1, 3]), true)),
            ErrorCode::None
        );
        assert_eq!(p0(&image).replicas, [2, 1, 3]);
        assert!(!p0(&image).reassigning() && p0(&image).first.is_empty());
        // 2,1,3 -> 3,4,5: the target first, then those leaving.
        assert_eq!(
            code(&mut image, reassign(0, Some(vec![3, 4, 5]), true)),
            ErrorCode::None
        );
        let moving = p0(&image);
        assert_eq!(moving.replicas, [3, 4, 5, 2, 1]);
        assert_eq!(moving.target(), [3, 4, 5]);
        assert_eq!(moving.first, [2, 1, 3]);
        assert_eq!((moving.adding, moving.removing), (vec![4, 5], vec![2, 1]));
        // Replaced by another target: everything listed stays until the group is there.
        assert_eq!(
            code(&mut image, reassign(0, Some(vec![1, 4]), false)),
            ErrorCode::None
        );
        let moving = p0(&image);
        assert_eq!(moving.replicas, [1, 4, 3, 5, 2]);
        assert_eq!((moving.adding, moving.removing), (vec![4], vec![3, 5, 2]));
        // A report for the old target changes nothing; one for the current one ends the move.
        let done = |replicas: Vec<i32>| Command::Reassigned {
            topic: "t".into(),
            id,
            partition: 0,
            replicas,
        };
        let _ = image.apply(done(vec![3, 4, 5]), &mut changes);
        assert!(p0(&image).reassigning());
        // Cancelled: back to the replicas it had (those not being added).
        assert_eq!(code(&mut image, reassign(0, None, false)), ErrorCode::None);
        let cancelling = p0(&image);
        assert_eq!(cancelling.target(), [2, 1, 3]);
        assert_eq!(cancelling.removing, [4, 5]);
        assert!(cancelling.adding.is_empty());
        let _ = image.apply(done(vec![2, 1, 3]), &mut changes);
        let done = p0(&image);
        assert!(!done.reassigning());
        assert_eq!(done.replicas, [2, 1, 3]);
        assert_eq!(done.first_replicas(), [2, 1, 3]);
    }

    #[test]
    fn partitions_are_added_only_to_the_count_they_were_planned_for() {
        let mut image = Image::default();
        let mut changes = Vec::new();
        let id = Uuid::new_v4();
        let _ = image.apply(register(1, Uuid::new_v4()), &mut changes);
        let create = Command::CreateTopic {
            name: "t".into(),
            id,
            configs: BTreeMap::new(),
            assignment: vec![vec![1]],
        };
        assert_eq!(image.apply(create, &mut changes), Ok(0));
        let grow = |from| Command::CreatePartitions {
            name: "t".into(),
            id,
            from,
            assignment: vec![vec![1]],
        };
        assert_eq!(image.apply(grow(1), &mut changes), Ok(0));
        assert!(matches!(
            image.apply(grow(1), &mut changes),
            Err((ErrorCode::InvalidPartitions, _))
        ));
        assert_eq!(image.topics["t"].partitions.len(), 2);
        let delete_other = Command::DeleteTopic {
            name: "t".into(),
            id: Uuid::new_v4(),
        };
        assert!(image.apply(delete_other, &mut changes).is_err());
        let first = image.apply(Command::AllocateProducerIds { count: 1000 }, &mut changes);
        let second = image.apply(Command::AllocateProducerIds { count: 1000 }, &mut changes);
        assert_eq!((first, second), (Ok(0), Ok(1000)));
    }

    #[test]
    fn acls_are_added_once_and_deleted_by_filter_with_what_matched() {
        use crate::authorizer::{AclBinding, AclFilter};
        let mut image = Image::default();
        let mut changes = Vec::new();
        let binding = |name: &str, principal: &str| {
            AclBinding::from_codes(2, name, 3, principal, "*", 3, 3)
                .unwrap_or_else(|e| panic!("{e:?}"))
        };
        let create = Command::CreateAcls {
            acls: vec![
                binding("a", "User:x"),
                binding("b", "User:x"),
                binding("a", "User:y"),
            ],
        };
        assert_eq!(image.apply(create.clone(), &mut changes), Ok(3));
        assert_eq!(image.apply(create, &mut changes), Ok(0));
        assert_eq!(image.acls.len(), 3);
        let by_principal = |p: &str| {
            AclFilter::from_codes(1, None, 1, Some(p), None, 1, 1)
                .unwrap_or_else(|e| panic!("{e:?}"))
        };
        let on_a = AclFilter::from_codes(2, Some("a"), 3, None, None, 1, 1)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let delete = Command::DeleteAcls {
            filters: vec![by_principal("User:x"), on_a],
        };
        changes.clear();
        assert_eq!(image.apply(delete, &mut changes), Ok(3));
        assert_eq!(changes, [Change::Acls]);
        let removed = std::mem::take(&mut image.removed_acls);
        assert_eq!(removed.len(), 2);
        assert_eq!(removed[0], [binding("a", "User:x"), binding("b", "User:x")]);
        assert_eq!(removed[1], [binding("a", "User:x"), binding("a", "User:y")]);
        assert!(image.acls.is_empty());
        // An image from before ACLs reads without them, and one without ACLs writes as before.
        let json = serde_json::to_string(&Image::default()).unwrap_or_default();
        assert!(!json.contains("acls"), "{json}");
        let old: Image = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert!(old.acls.is_empty());
    }
}
