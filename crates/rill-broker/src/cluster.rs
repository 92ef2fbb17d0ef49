//! What this broker knows of the cluster: its brokers (id, advertised address, rack), the
//! controller, and each partition's leader, leader epoch and replicas. Every handler that names
//! a broker, a leader or a coordinator asks here, so that the answers come from one place.
//!
//! Today the cluster is this one broker: it leads every partition at epoch 0 and coordinates
//! every group. The metadata quorum (a replicated metadata log on a Raft library) will publish
//! this view from the log instead, and the handlers stay as they are.

use crate::broker::Topic;

/// A broker of the cluster as clients are told to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) id: i32,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `broker.rack`, if set.
    pub(crate) rack: Option<String>,
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
}

/// The cluster as this broker sees it.
#[derive(Debug)]
pub(crate) struct ClusterView {
    local: Node,
}

impl ClusterView {
    /// A cluster of this one broker.
    pub(crate) fn single(local: Node) -> Self {
        Self { local }
    }

    /// This broker.
    pub(crate) fn local(&self) -> &Node {
        &self.local
    }

    /// Every live broker.
    pub(crate) fn nodes(&self) -> &[Node] {
        std::slice::from_ref(&self.local)
    }

    /// The node id clients are given as the controller.
    pub(crate) fn controller(&self) -> i32 {
        self.local.id
    }

    /// A partition's leadership.
    pub(crate) fn leadership(&self, _topic: &Topic, _partition: i32) -> Leadership {
        Leadership {
            leader: self.local.id,
            epoch: 0,
            replicas: vec![self.local.id],
            isr: vec![self.local.id],
        }
    }

    /// The leader of a partition of `__consumer_offsets`, which coordinates its groups; `None`
    /// while it has none.
    pub(crate) fn offsets_partition_leader(&self, _partition: i32) -> Option<&Node> {
        Some(&self.local)
    }
}
