//! What this broker tells clients about the cluster: its live brokers (id, advertised address,
//! rack), the controller, each partition's leader, leader epoch and replicas, and each group's
//! coordinator (the leader of its partition of `__consumer_offsets`). Every handler that names a broker, a leader or a coordinator asks here, so the
//! answers come from one place: the quorum's image, as this broker last applied it.

use std::sync::RwLock;

use rill_protocol::ErrorCode;

use crate::broker::Topic;
use crate::quorum::image::{Image, ListenerAddress, PartitionImage};

/// A broker of the cluster as clients are told to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) id: i32,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `broker.rack`, if set.
    pub(crate) rack: Option<String>,
    /// With several listeners, each one's name and advertised address (`host`/`port` is the
    /// first's); empty with one.
    pub(crate) listeners: Vec<ListenerAddress>,
}

/// The name of a broker's listener when it registered no names (one listener, as brokers did
/// before named listeners).
pub(crate) const UNNAMED_LISTENER: &str = "PLAINTEXT";

impl Node {
    /// Where clients of listener `name` reach this broker; `None` if it has no listener of that
    /// name (such a broker is left out of answers to those clients, as Kafka does).
    pub(crate) fn address(&self, name: &str) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return (name == UNNAMED_LISTENER).then_some((self.host.as_str(), self.port));
        }
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| (l.host.as_str(), l.port))
    }
}

/// Who leads a partition, since which leader epoch, and where its replicas are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leadership {
    /// The leader's node id; -1 when no live broker leads it.
    pub(crate) leader: i32,
    pub(crate) epoch: i32,
    pub(crate) replicas: Vec<i32>,
    /// The in-sync replicas.
    pub(crate) isr: Vec<i32>,
    /// Replicas on brokers that are not live.
    pub(crate) offline: Vec<i32>,
}

impl Leadership {
    /// The error and leader id a client of a listener is told, given the live brokers
    /// `reachable` on that listener: LEADER_NOT_AVAILABLE without a leader, and
    /// LISTENER_NOT_FOUND (leader -1) for a live leader without that listener, as Kafka answers.
    pub(crate) fn as_seen(&self, reachable: &[i32]) -> (ErrorCode, i32) {
        if self.leader == -1 {
            (ErrorCode::LeaderNotAvailable, -1)
        } else if !reachable.contains(&self.leader) {
            (ErrorCode::ListenerNotFound, -1)
        } else {
            (ErrorCode::None, self.leader)
        }
    }
}

/// The cluster as this broker sees it.
#[derive(Debug)]
pub(crate) struct ClusterView {
    local: Node,
    /// Live brokers, by id.
    live: RwLock<Vec<Node>>,
    /// Registered brokers that are fenced, by id.
    fenced: RwLock<Vec<Node>>,
    /// Where the internal topics' partitions are (`__consumer_offsets`, `__transaction_state`;
    /// none until created), by topic.
    internal: RwLock<std::collections::HashMap<&'static str, Vec<PartitionImage>>>,
}

impl ClusterView {
    /// The view of a broker that knows only itself (until the image tells it more).
    pub(crate) fn new(local: Node) -> Self {
        Self {
            live: RwLock::new(vec![local.clone()]),
            fenced: RwLock::new(Vec::new()),
            internal: RwLock::default(),
            local,
        }
    }

    /// Takes the live and the fenced brokers from the image.
    pub(crate) fn update(&self, image: &Image) {
        let (fenced, live): (Vec<_>, Vec<_>) = image.brokers.iter().partition(|(_, b)| b.fenced);
        let nodes = |brokers: Vec<(&i32, &crate::quorum::image::BrokerImage)>| -> Vec<Node> {
            brokers
                .into_iter()
                .map(|(id, b)| Node {
                    id: *id,
                    host: b.host.clone(),
                    port: b.port,
                    rack: b.rack.clone(),
                    listeners: b.listeners.clone(),
                })
                .collect()
        };
        if let Ok(mut current) = self.live.write() {
            *current = nodes(live);
        }
        if let Ok(mut current) = self.fenced.write() {
            *current = nodes(fenced);
        }
    }

    /// Every registered broker that is fenced (its session ran out), by id.
    pub(crate) fn fenced_nodes(&self) -> Vec<Node> {
        self.fenced.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// This broker.
    pub(crate) fn local(&self) -> &Node {
        &self.local
    }

    /// Every live broker, by id.
    pub(crate) fn nodes(&self) -> Vec<Node> {
        self.live.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// The ids of the live brokers that have listener `name`.
    pub(crate) fn reachable_on(&self, name: &str) -> Vec<i32> {
        self.live
            .read()
            .map(|l| {
                l.iter()
                    .filter(|n| n.address(name).is_some())
                    .map(|n| n.id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The node id clients are given as the controller: this broker, which takes every admin
    /// request and proposes it to the metadata quorum (Kafka's brokers forward them too).
    pub(crate) fn controller(&self) -> i32 {
        self.local.id
    }

    /// The ids of the live brokers, sorted.
    fn live_ids(&self) -> Vec<i32> {
        self.live
            .read()
            .map(|l| l.iter().map(|n| n.id).collect())
            .unwrap_or_default()
    }

    /// A partition's leadership.
    pub(crate) fn leadership(&self, topic: &Topic, partition: i32) -> Leadership {
        leadership_among(&self.live_ids(), topic, partition)
    }

    /// Every partition's leadership, in partition order (the live brokers read once).
    pub(crate) fn leaderships(&self, topic: &Topic) -> Vec<Leadership> {
        let live = self.live_ids();
        (0..topic.partition_count())
            .map(|p| leadership_among(&live, topic, p))
            .collect()
    }

    /// Takes the placements of an internal topic's partitions from the image.
    pub(crate) fn update_internal(&self, topic: &'static str, placements: Vec<PartitionImage>) {
        if let Ok(mut current) = self.internal.write() {
            let _ = current.insert(topic, placements);
        }
    }

    /// How many partitions an internal topic has; 0 until it is created.
    pub(crate) fn internal_partitions(&self, topic: &str) -> i32 {
        self.internal.read().map_or(0, |o| {
            o.get(topic)
                .map_or(0, |p| i32::try_from(p.len()).unwrap_or(i32::MAX))
        })
    }

    /// The leader of a partition of an internal topic, which coordinates its groups or
    /// transactional ids; `None` while it has none.
    pub(crate) fn internal_leader(&self, topic: &str, partition: i32) -> Option<Node> {
        let leader = usize::try_from(partition).ok().and_then(|p| {
            let internal = self.internal.read().ok()?;
            internal.get(topic)?.get(p).map(|p| p.leader)
        })?;
        self.live
            .read()
            .ok()?
            .iter()
            .find(|node| node.id == leader)
            .cloned()
    }
}

/// A partition's leadership, given the sorted ids of the live brokers.
fn leadership_among(live: &[i32], topic: &Topic, partition: i32) -> Leadership {
    let Some(placement) = usize::try_from(partition)
        .ok()
        .and_then(|i| topic.placements.get(i))
    else {
        return Leadership {
            leader: -1,
            epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            offline: Vec::new(),
        };
    };
    let is_live = |id: &i32| live.binary_search(id).is_ok();
    let offline: Vec<i32> = placement
        .replicas
        .iter()
        .copied()
        .filter(|r| !is_live(r))
        .collect();
    // A replicated partition's ISR is what its leader reported. With one replica and none
    // live, the last leader stays in the ISR (as Kafka keeps it).
    let isr = if placement.replicas.len() > 1 && !placement.isr.is_empty() {
        placement.isr.clone()
    } else if placement.leader == -1 {
        placement.replicas.clone()
    } else {
        placement.replicas.iter().copied().filter(is_live).collect()
    };
    Leadership {
        leader: placement.leader,
        epoch: placement.epoch,
        replicas: placement.replicas.clone(),
        isr,
        offline,
    }
}
