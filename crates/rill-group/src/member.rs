//! One member of a group as the coordinator tracks it, and member id generation.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::types::{JoinRequest, MemberId, Protocol, RequestId};

/// A member of the group (Kafka's `ClassicGroupMember`).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) id: MemberId,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) assignment: Bytes,
    /// The JoinGroup request parked until the join phase completes.
    pub(crate) awaiting_join: Option<RequestId>,
    /// The SyncGroup request parked until the leader's assignment arrives.
    pub(crate) awaiting_sync: Option<RequestId>,
    /// Joined but has not yet seen a generation: its parked JoinGroup does not protect it
    /// from expiry (it has no id to heartbeat with yet).
    pub(crate) is_new: bool,
    /// Has not sent SyncGroup for the current generation.
    pub(crate) pending_sync: bool,
    /// When the heartbeat timer fires; `None` once it fired while the member was parked in a
    /// join or sync (Kafka's timer is then gone until something reschedules it).
    pub(crate) heartbeat_deadline: Option<Instant>,
}

impl Member {
    pub(crate) fn new(id: MemberId, join: JoinRequest, request: RequestId) -> Self {
        Self {
            id,
            group_instance_id: join.group_instance_id,
            client_id: join.client_id,
            client_host: join.client_host,
            session_timeout: join.session_timeout,
            rebalance_timeout: join.rebalance_timeout,
            protocols: join.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(request),
            awaiting_sync: None,
            is_new: true,
            pending_sync: false,
            heartbeat_deadline: None,
        }
    }

    pub(crate) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's metadata for `protocol` (empty if it does not support it).
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Same protocols, same order, same metadata.
    pub(crate) fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    pub(crate) fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// A member parked in a JoinGroup or SyncGroup needs no heartbeat, unless it is new.
    pub(crate) fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }

    /// Whether the heartbeat timer has fired (or would have by `now`) and removes the member.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.heartbeat_deadline.is_some_and(|d| d <= now) && !self.has_satisfied_heartbeat()
    }

    pub(crate) fn reschedule_heartbeat(&mut self, now: Instant) {
        self.heartbeat_deadline = Some(after(now, self.session_timeout));
    }
}

/// `now + timeout`, saturating instead of panicking on absurd timeouts.
pub(crate) fn after(now: Instant, timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    now.checked_add(timeout.min(CENTURY))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 60 * 60)))
        .unwrap_or(now)
}

/// Generates member ids shaped like Kafka's: `{client_id or group_instance_id}-{uuid}`.
///
/// The uuid-like suffix is 128 bits: 64 from a salt drawn from std's randomly keyed
/// `RandomState` when the group is created (so a recreated group never hands out an id an
/// old client may still hold) and 64 from a bijective mix of a counter, so ids are unique
/// within the group by construction.
#[derive(Debug, Clone)]
pub(crate) struct IdGenerator {
    salt: u64,
    counter: u64,
}

impl IdGenerator {
    pub(crate) fn new(group_id: &str) -> Self {
        Self {
            salt: RandomState::new().hash_one(group_id),
            counter: 0,
        }
    }

    pub(crate) fn next(&mut self, prefix: &str) -> MemberId {
        self.counter = self.counter.wrapping_add(1);
        let high = mix(self.salt ^ self.counter.rotate_left(32));
        let low = mix(self.counter.wrapping_add(self.salt));
        format!(
            "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0xffff,
            low >> 48,
            low & 0xffff_ffff_ffff
        )
    }
}

/// SplitMix64's finalizer: a bijection on `u64` that scatters nearby inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::IdGenerator;

    #[test]
    fn member_ids_are_prefixed_and_unique() {
        let mut ids = IdGenerator::new("g");
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next("client");
            assert!(id.starts_with("client-"), "{id}");
            assert_eq!(id.len(), "client-".len() + 36, "{id}");
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn two_incarnations_of_a_group_hand_out_different_ids() {
        let mut first = IdGenerator::new("g");
        let mut second = IdGenerator::new("g");
        assert_ne!(first.next("c"), second.next("c"));
    }
}
