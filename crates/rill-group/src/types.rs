//! What goes into and comes out of a [`Group`](crate::Group): configuration, requests,
//! responses, effects and descriptions. Plain data, no behaviour.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::GroupError;

/// A member id as Kafka sends it; `""` means "not known yet".
pub type MemberId = String;

/// Identifies a request whose answer may come later (the broker maps it to a reply channel).
pub type RequestId = u64;

/// Kafka's `group.initial.rebalance.delay.ms` default.
pub const DEFAULT_INITIAL_REBALANCE_DELAY: Duration = Duration::from_secs(3);
/// Kafka's `group.min.session.timeout.ms` default.
pub const DEFAULT_MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// Kafka's `group.max.session.timeout.ms` default.
pub const DEFAULT_MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long a new member's JoinGroup may wait before the member is dropped (Kafka's
/// `classicGroupNewMemberJoinTimeoutMs`, five minutes).
pub const DEFAULT_NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The coordinator settings that shape a group's behaviour.
///
/// Build it from [`Default`] and override fields with `..GroupConfig::default()`, so new
/// fields do not break callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long a rebalance that starts from an empty
    /// group waits for more members, extended (up to the rebalance timeout) while new members
    /// keep arriving.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`: shorter session timeouts get `INVALID_SESSION_TIMEOUT`.
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`: longer session timeouts get `INVALID_SESSION_TIMEOUT`.
    pub max_session_timeout: Duration,
    /// `group.max.size`: `None` means unlimited (Kafka's default, `Integer.MAX_VALUE`).
    pub max_size: Option<usize>,
    /// How long a brand-new member's JoinGroup may stay parked before the member is dropped
    /// and answered `UNKNOWN_MEMBER_ID` (Kafka: five minutes, not configurable there).
    pub new_member_join_timeout: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: DEFAULT_INITIAL_REBALANCE_DELAY,
            min_session_timeout: DEFAULT_MIN_SESSION_TIMEOUT,
            max_session_timeout: DEFAULT_MAX_SESSION_TIMEOUT,
            max_size: None,
            new_member_join_timeout: DEFAULT_NEW_MEMBER_JOIN_TIMEOUT,
        }
    }
}

/// One protocol a member supports, in its order of preference (for consumers the name is
/// the assignor, e.g. `range` or `cooperative-sticky`, and the metadata its subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// The protocol's name.
    pub name: String,
    /// Opaque to the broker; handed to the leader if this protocol is chosen.
    pub metadata: Bytes,
}

/// A JoinGroup request, any version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// `""` for a member joining for the first time.
    pub member_id: MemberId,
    /// KIP-345 static membership (v5+).
    pub group_instance_id: Option<String>,
    /// The client id from the request header.
    pub client_id: String,
    /// The client's address, for DescribeGroups.
    pub client_host: String,
    /// How long the member may go without a heartbeat.
    pub session_timeout: Duration,
    /// How long a rebalance may wait for this member to rejoin (v0 has none: pass the
    /// session timeout).
    pub rebalance_timeout: Duration,
    /// E.g. `consumer` or `connect`; must match the group's.
    pub protocol_type: String,
    /// Supported protocols, most preferred first.
    pub protocols: Vec<Protocol>,
    /// KIP-394: true for JoinGroup v4+. Ignored for static members, as in Kafka.
    pub require_known_member_id: bool,
    /// KIP-814: true for JoinGroup v9+, which lets a rejoining static leader skip assignment.
    pub supports_skip_assignment: bool,
    /// KIP-800 (v8+), for operators; not interpreted.
    pub reason: Option<String>,
}

/// One member's entry in the leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// The member's id.
    pub member_id: MemberId,
    /// The member's group instance id, if static.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the group's chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// `None` on success.
    pub error: Option<GroupError>,
    /// The generation joined; -1 on error.
    pub generation_id: i32,
    /// The group's protocol type (v7+); `None` on error.
    pub protocol_type: Option<String>,
    /// The chosen protocol; `None` on error.
    pub protocol_name: Option<String>,
    /// The leader's member id; `""` on error.
    pub leader: MemberId,
    /// The member's id (the new one with `MEMBER_ID_REQUIRED`; `""` when the member should
    /// forget its id).
    pub member_id: MemberId,
    /// KIP-814: the (static, rejoining) leader should not compute a new assignment.
    pub skip_assignment: bool,
    /// Every member's metadata: non-empty only for the leader.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// The response Kafka sends with an error: generation -1, no leader, no protocol.
    pub fn from_error(error: GroupError, member_id: impl Into<MemberId>) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: MemberId::new(),
            member_id: member_id.into(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request, any version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    /// The member's id.
    pub member_id: MemberId,
    /// The generation the member joined.
    pub generation_id: i32,
    /// KIP-345 static membership (v3+).
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_name: Option<String>,
    /// The leader's assignment per member; ignored from followers.
    pub assignments: Vec<(MemberId, Bytes)>,
}

/// A SyncGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// `None` on success.
    pub error: Option<GroupError>,
    /// The group's protocol type (v5+); `None` on error.
    pub protocol_type: Option<String>,
    /// The group's protocol (v5+); `None` on error.
    pub protocol_name: Option<String>,
    /// This member's assignment; empty on error.
    pub assignment: Bytes,
}

impl SyncResponse {
    /// The response Kafka sends with an error: no protocol, empty assignment.
    pub fn from_error(error: GroupError) -> Self {
        Self {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Something the broker must do on the group's behalf: so far, always "send this answer".
///
/// Every [`RequestId`] passed to [`Group::join`](crate::Group::join) or
/// [`Group::sync`](crate::Group::sync) comes back in exactly one effect, at once or from a
/// later call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer a JoinGroup request.
    Join {
        /// The request being answered.
        request: RequestId,
        /// The answer.
        response: JoinResponse,
    },
    /// Answer a SyncGroup request.
    Sync {
        /// The request being answered.
        request: RequestId,
        /// The answer.
        response: SyncResponse,
    },
}

impl Effect {
    /// The request this effect answers.
    pub fn request(&self) -> RequestId {
        match self {
            Self::Join { request, .. } | Self::Sync { request, .. } => *request,
        }
    }
}

/// Kafka's classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members (offsets may still be committed with generation -1).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted or unloaded; the broker should drop this group.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in ListGroups and DescribeGroups.
    pub fn kafka_name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kafka_name())
    }
}

/// One member, as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member's id.
    pub member_id: MemberId,
    /// The member's group instance id, if static.
    pub group_instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The address it joined from.
    pub client_host: String,
    /// Metadata for the chosen protocol; empty unless the group is Stable (as in Kafka).
    pub metadata: Bytes,
    /// The member's current assignment.
    pub assignment: Bytes,
}

/// A group, as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group's state.
    pub state: GroupState,
    /// `""` if no member ever joined.
    pub protocol_type: String,
    /// The chosen protocol while Stable, `""` otherwise (as in Kafka).
    pub protocol: String,
    /// Members in the order they joined.
    pub members: Vec<MemberDescription>,
}
