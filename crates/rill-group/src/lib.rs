//! Kafka's classic consumer-group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup and
//! the membership side of OffsetCommit) as a sans-io state machine: no I/O, no async, and
//! the clock is passed in as `std::time::Instant`.
//!
//! It follows Apache Kafka's `ClassicGroup` and `GroupMetadataManager`: the states Empty,
//! PreparingRebalance, CompletingRebalance, Stable and Dead; generations; protocol election
//! by votes; the initial rebalance delay; rebalance, session and sync timeouts; KIP-394
//! (`MEMBER_ID_REQUIRED`); KIP-345 static membership; KIP-814 (`skip_assignment`);
//! `group.max.size`.
//!
//! # Layout
//! - [`Group`] (`group.rs`): one group's state; Heartbeat, LeaveGroup, OffsetCommit checks,
//!   DescribeGroups, DeleteGroups and unloading. JoinGroup is in `group/join.rs`, SyncGroup
//!   in `group/sync.rs`, the rebalance transitions and timers ([`Group::tick`],
//!   [`Group::next_deadline`]) in `group/rebalance.rs`.
//! - `member.rs`: a member as the coordinator tracks it, and member id generation
//!   (`{client_id}-{uuid-like}`, or `{group_instance_id}-…` for static members).
//! - [`types`]: configuration ([`GroupConfig`]), requests ([`JoinRequest`], [`SyncRequest`]),
//!   responses, [`Effect`]s and descriptions.
//! - [`GroupError`]: Kafka's error codes for everything a group request can be refused with.
//!
//! # Driving a group
//! The owner (the broker runs one actor per group) feeds it requests and time. JoinGroup
//! and SyncGroup answers may be parked: they come back as [`Effect`]s from that call or a
//! later one, and every [`RequestId`] fed in is answered exactly once. The owner calls
//! [`Group::tick`] when [`Group::next_deadline`] has passed, and before feeding a request
//! (`join`, `sync` and `leave` also fire due timers themselves).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use rill_group::{Effect, Group, GroupConfig, GroupState, JoinRequest, Protocol, SyncRequest};
//!
//! let config = GroupConfig { initial_rebalance_delay: Duration::ZERO, ..GroupConfig::default() };
//! let mut group = Group::new("orders", config);
//! let now = Instant::now();
//! let join = JoinRequest {
//!     member_id: String::new(),
//!     group_instance_id: None,
//!     client_id: "consumer-1".into(),
//!     client_host: "/127.0.0.1".into(),
//!     session_timeout: Duration::from_secs(10),
//!     rebalance_timeout: Duration::from_secs(60),
//!     protocol_type: "consumer".into(),
//!     protocols: vec![Protocol { name: "range".into(), metadata: Bytes::from_static(b"sub") }],
//!     require_known_member_id: false,
//!     supports_skip_assignment: true,
//!     reason: None,
//! };
//! // With no initial delay the lone member's join completes at once.
//! let effects = group.join(now, 1, join);
//! let Some(Effect::Join { request: 1, response }) = effects.first() else { panic!("{effects:?}") };
//! assert_eq!(response.leader, response.member_id);
//! assert_eq!(response.members.len(), 1);
//!
//! let sync = SyncRequest {
//!     member_id: response.member_id.clone(),
//!     generation_id: response.generation_id,
//!     group_instance_id: None,
//!     protocol_type: Some("consumer".into()),
//!     protocol_name: Some("range".into()),
//!     assignments: vec![(response.member_id.clone(), Bytes::from_static(b"p0"))],
//! };
//! let effects = group.sync(now, 2, sync);
//! let Some(Effect::Sync { request: 2, response }) = effects.first() else { panic!("{effects:?}") };
//! assert_eq!(response.assignment, Bytes::from_static(b"p0"));
//! assert_eq!(group.state(), GroupState::Stable);
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

mod error;
mod group;
mod member;
pub mod types;

pub use error::GroupError;
pub use group::Group;
pub use types::{
    DEFAULT_INITIAL_REBALANCE_DELAY, DEFAULT_MAX_SESSION_TIMEOUT, DEFAULT_MIN_SESSION_TIMEOUT,
    DEFAULT_NEW_MEMBER_JOIN_TIMEOUT, Effect, GroupConfig, GroupDescription, GroupState,
    JoinRequest, JoinResponse, JoinedMember, MemberDescription, MemberId, Protocol, RequestId,
    SyncRequest, SyncResponse,
};
