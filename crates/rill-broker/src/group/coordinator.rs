//! The group coordinator: one actor (a tokio task) per group owns its `rill_group::Group`,
//! reached over a channel, so a slow or silent member of one group never blocks another. The
//! actor turns the state machine's effects into answers and sleeps until its next deadline
//! (session expiry, join delay, rebalance timeout).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rill_group::{
    Effect, Group, GroupConfig, GroupDescription, GroupError, GroupState, JoinRequest,
    JoinResponse, MemberId, RequestId, SyncRequest, SyncResponse,
};
use tokio::sync::{mpsc, oneshot};

use super::offsets::{Committed, OffsetStore};
use crate::error::BrokerError;
use crate::partition::Storage;
use crate::partition::now_ms;

#[derive(Debug)]
enum Command {
    Join(Box<JoinRequest>, oneshot::Sender<JoinResponse>),
    Sync(SyncRequest, oneshot::Sender<SyncResponse>),
    Heartbeat {
        member_id: String,
        generation_id: i32,
        instance_id: Option<String>,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    Leave(
        Vec<(MemberId, Option<String>)>,
        oneshot::Sender<Vec<Result<(), GroupError>>>,
    ),
    ValidateCommit {
        member_id: String,
        generation_id: i32,
        instance_id: Option<String>,
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    Describe(oneshot::Sender<GroupDescription>),
    Delete(oneshot::Sender<Result<(), GroupError>>),
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub(crate) struct GroupListing {
    pub(crate) group_id: String,
    pub(crate) protocol_type: String,
    pub(crate) state: GroupState,
}

/// All groups of this broker and their committed offsets.
#[derive(Debug)]
pub(crate) struct Coordinator {
    config: GroupConfig,
    groups: Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>,
    pub(crate) offsets: OffsetStore,
    /// How long the offsets of a group with no members are kept (offsets.retention.minutes).
    offsets_retention: Duration,
}

/// The actor is gone: only at shutdown.
const GONE: GroupError = GroupError::UnknownServerError;

impl Coordinator {
    pub(crate) fn open(
        data_dir: &Path,
        config: GroupConfig,
        offsets_retention: Duration,
        storage: &Storage,
        fsync: prometheus::Histogram,
    ) -> Result<Self, BrokerError> {
        Ok(Self {
            config,
            groups: Mutex::new(HashMap::new()),
            offsets: OffsetStore::open(data_dir, storage, fsync)?,
            offsets_retention,
        })
    }

    /// The actor of `group_id`, started on first use.
    fn actor(&self, group_id: &str) -> Option<mpsc::UnboundedSender<Command>> {
        let mut groups = self.groups.lock().ok()?;
        if let Some(tx) = groups.get(group_id).filter(|tx| !tx.is_closed()) {
            return Some(tx.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let group = Group::new(group_id, self.config.clone());
        drop(tokio::spawn(run(group, rx)));
        let _ = groups.insert(group_id.to_owned(), tx.clone());
        Some(tx)
    }

    /// The actor of `group_id` if it exists (no start).
    fn existing(&self, group_id: &str) -> Option<mpsc::UnboundedSender<Command>> {
        self.groups.lock().ok()?.get(group_id).cloned()
    }

    async fn ask<T>(
        tx: Option<mpsc::UnboundedSender<Command>>,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        tx?.send(command(reply)).ok()?;
        rx.await.ok()
    }

    pub(crate) async fn join(&self, group_id: &str, join: JoinRequest) -> JoinResponse {
        let member_id = join.member_id.clone();
        Self::ask(self.actor(group_id), |reply| {
            Command::Join(Box::new(join), reply)
        })
        .await
        .unwrap_or_else(|| JoinResponse {
            error: Some(GONE),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            skip_assignment: false,
            members: Vec::new(),
        })
    }

    pub(crate) async fn sync(&self, group_id: &str, sync: SyncRequest) -> SyncResponse {
        let tx = self.existing(group_id);
        let unknown = tx.is_none();
        Self::ask(tx, |reply| Command::Sync(sync, reply))
            .await
            .unwrap_or_else(|| SyncResponse {
                error: Some(if unknown {
                    GroupError::UnknownMemberId
                } else {
                    GONE
                }),
                protocol_type: None,
                protocol_name: None,
                assignment: bytes::Bytes::new(),
            })
    }

    pub(crate) async fn heartbeat(
        &self,
        group_id: &str,
        member_id: String,
        generation_id: i32,
        instance_id: Option<String>,
    ) -> Result<(), GroupError> {
        let Some(tx) = self.existing(group_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        Self::ask(Some(tx), |reply| Command::Heartbeat {
            member_id,
            generation_id,
            instance_id,
            reply,
        })
        .await
        .unwrap_or(Err(GONE))
    }

    pub(crate) async fn leave(
        &self,
        group_id: &str,
        members: Vec<(MemberId, Option<String>)>,
    ) -> Vec<Result<(), GroupError>> {
        let count = members.len();
        let Some(tx) = self.existing(group_id) else {
            return vec![Err(GroupError::UnknownMemberId); count];
        };
        Self::ask(Some(tx), |reply| Command::Leave(members, reply))
            .await
            .unwrap_or_else(|| vec![Err(GONE); count])
    }

    /// Checks that a commit comes from a current member (or from a standalone consumer, with
    /// generation -1, on a group with no members).
    pub(crate) async fn validate_commit(
        &self,
        group_id: &str,
        member_id: String,
        generation_id: i32,
        instance_id: Option<String>,
    ) -> Result<(), GroupError> {
        let Some(tx) = self.existing(group_id) else {
            // No live group: only standalone commits make sense.
            return if generation_id < 0 {
                Ok(())
            } else {
                Err(GroupError::IllegalGeneration)
            };
        };
        Self::ask(Some(tx), |reply| Command::ValidateCommit {
            member_id,
            generation_id,
            instance_id,
            reply,
        })
        .await
        .unwrap_or(Err(GONE))
    }

    pub(crate) async fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        Self::ask(self.existing(group_id), Command::Describe).await
    }

    /// Every group with members or committed offsets.
    pub(crate) async fn list(&self) -> Vec<GroupListing> {
        let actors: Vec<(String, mpsc::UnboundedSender<Command>)> = self
            .groups
            .lock()
            .map(|g| g.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for (group_id, tx) in actors {
            if let Some(description) = Self::ask(Some(tx), Command::Describe).await {
                if description.state == GroupState::Dead {
                    continue;
                }
                out.push(GroupListing {
                    group_id,
                    protocol_type: description.protocol_type,
                    state: description.state,
                });
            }
        }
        for group_id in self.offsets.groups() {
            if !out.iter().any(|g| g.group_id == group_id) {
                out.push(GroupListing {
                    group_id,
                    protocol_type: "consumer".to_owned(),
                    state: GroupState::Empty,
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Deletes an empty group and its offsets.
    pub(crate) async fn delete_group(
        &self,
        group_id: &str,
    ) -> Result<(), rill_protocol::ErrorCode> {
        use rill_protocol::ErrorCode;
        let tx = self.existing(group_id);
        let has_offsets = self.offsets.has_offsets(group_id);
        if tx.is_none() && !has_offsets {
            return Err(ErrorCode::GroupIdNotFound);
        }
        if let Some(tx) = tx {
            match Self::ask(Some(tx), Command::Delete).await {
                Some(Ok(())) => {}
                Some(Err(_)) => return Err(ErrorCode::NonEmptyGroup),
                None => return Err(ErrorCode::CoordinatorNotAvailable),
            }
            if let Ok(mut groups) = self.groups.lock() {
                let _ = groups.remove(group_id);
            }
        }
        self.offsets.delete(group_id, None).await
    }

    pub(crate) async fn commit(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<(), rill_protocol::ErrorCode> {
        self.offsets.commit(group_id, offsets).await
    }

    /// Expires the offsets of groups without members and compacts the offsets log.
    pub(crate) async fn housekeeping(&self) {
        let now = now_ms();
        let retention = i64::try_from(self.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        for group_id in self.offsets.groups() {
            let empty = match self.describe(&group_id).await {
                Some(d) => d.members.is_empty(),
                None => true,
            };
            if empty {
                match self.offsets.expire(&group_id, now, retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(group_id, expired = n, "expired committed offsets"),
                    Err(code) => tracing::warn!(group_id, error = code.name(), "expiring offsets"),
                }
            }
        }
        if let Err(code) = self.offsets.compact().await {
            tracing::warn!(error = code.name(), "compacting the offsets log");
        }
    }

    /// Stops every group actor and closes the offsets log. Blocking.
    pub(crate) fn close_blocking(&self) {
        if let Ok(mut groups) = self.groups.lock() {
            groups.clear();
        }
        self.offsets.close_blocking();
    }
}

/// The actor: owns the group, answers commands, and wakes for the group's deadlines.
async fn run(mut group: Group, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut joins: HashMap<RequestId, oneshot::Sender<JoinResponse>> = HashMap::new();
    let mut syncs: HashMap<RequestId, oneshot::Sender<SyncResponse>> = HashMap::new();
    let mut next_request: RequestId = 0;
    loop {
        let deadline = group.next_deadline();
        let command = tokio::select! {
            command = rx.recv() => match command {
                Some(command) => command,
                None => {
                    // The broker is stopping: answer everyone still waiting (NOT_COORDINATOR,
                    // so clients look for the coordinator again).
                    deliver(group.unload(), &mut joins, &mut syncs);
                    break;
                }
            },
            () = sleep_until(deadline) => {
                let effects = group.tick(Instant::now());
                deliver(effects, &mut joins, &mut syncs);
                continue;
            }
        };
        let now = Instant::now();
        match command {
            Command::Join(join, reply) => {
                next_request += 1;
                let _ = joins.insert(next_request, reply);
                let effects = group.join(now, next_request, *join);
                deliver(effects, &mut joins, &mut syncs);
            }
            Command::Sync(sync, reply) => {
                next_request += 1;
                let _ = syncs.insert(next_request, reply);
                let effects = group.sync(now, next_request, sync);
                deliver(effects, &mut joins, &mut syncs);
            }
            Command::Heartbeat {
                member_id,
                generation_id,
                instance_id,
                reply,
            } => {
                let _ = reply.send(group.heartbeat(
                    now,
                    &member_id,
                    generation_id,
                    instance_id.as_deref(),
                ));
            }
            Command::Leave(members, reply) => {
                let (results, effects) = group.leave(now, &members);
                let _ = reply.send(results);
                deliver(effects, &mut joins, &mut syncs);
            }
            Command::ValidateCommit {
                member_id,
                generation_id,
                instance_id,
                reply,
            } => {
                // As Kafka does, a commit from a member also keeps its session alive.
                let _ = reply.send(group.offset_commit(
                    now,
                    &member_id,
                    generation_id,
                    instance_id.as_deref(),
                ));
            }
            Command::Describe(reply) => {
                let _ = reply.send(group.describe());
            }
            Command::Delete(reply) => {
                let result = group.delete();
                let dead = result.is_ok();
                let _ = reply.send(result);
                if dead {
                    break;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

fn deliver(
    effects: Vec<Effect>,
    joins: &mut HashMap<RequestId, oneshot::Sender<JoinResponse>>,
    syncs: &mut HashMap<RequestId, oneshot::Sender<SyncResponse>>,
) {
    for effect in effects {
        match effect {
            Effect::Join { request, response } => {
                if let Some(reply) = joins.remove(&request) {
                    let _ = reply.send(response);
                }
            }
            Effect::Sync { request, response } => {
                if let Some(reply) = syncs.remove(&request) {
                    let _ = reply.send(response);
                }
            }
        }
    }
}
