//! The group coordinator of the groups whose partition of `__consumer_offsets` this broker
//! hosts: one actor (a tokio task) per group owns its `rill_group::Group`,
//! reached over a channel, so a slow or silent member of one group never blocks another. The
//! actor turns the state machine's effects into answers and sleeps until its next deadline
//! (session expiry, join delay, rebalance timeout).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_group::{
    Effect, Group, GroupConfig, GroupDescription, GroupError, GroupState, JoinRequest,
    JoinResponse, MemberId, RequestId, SyncRequest, SyncResponse,
};
use tokio::sync::{mpsc, oneshot};

use rill_protocol::ErrorCode;

use super::offsets::{Committed, OffsetState, OffsetStore};
use crate::error::BrokerError;
use crate::internal::Hosted;
use crate::partition::{ReplicaSpec, Storage, now_ms};

/// The group's offsets partition is not hosted here: the client looks for its coordinator.
const NOT_HERE: GroupError = GroupError::NotCoordinator;

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

/// The groups of the offsets partitions this broker hosts, and their committed offsets.
#[derive(Debug)]
pub(crate) struct Coordinator {
    config: GroupConfig,
    groups: Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>,
    /// The hosted partitions of the offsets log.
    stores: Hosted<OffsetState>,
    /// The partition count of the offsets log.
    partitions: i32,
    /// How long the offsets of a group with no members are kept (offsets.retention.minutes).
    offsets_retention: Duration,
}

/// The actor is gone: only at shutdown.
const GONE: GroupError = GroupError::UnknownServerError;

impl Coordinator {
    /// Opens the offsets log's partitions `local`, each with its replica spec if replicated
    /// (moving the offsets of an older data directory to one log per partition first). The
    /// data directory keeps the partition count it was written with if `partitions` differs.
    pub(crate) fn open(
        data_dir: &Path,
        config: GroupConfig,
        offsets_retention: Duration,
        partitions: i32,
        local: Vec<(i32, Option<ReplicaSpec>)>,
        storage: &Arc<Storage>,
        fsync: prometheus::Histogram,
    ) -> Result<Self, BrokerError> {
        let partitions = super::layout::settle(data_dir, partitions, storage.cache())?;
        let stores = Hosted::open(
            super::OFFSETS_TOPIC,
            data_dir,
            partitions,
            local,
            storage,
            fsync,
        )?;
        Ok(Self {
            config,
            groups: Mutex::new(HashMap::new()),
            stores,
            partitions,
            offsets_retention,
        })
    }

    /// Whether this broker coordinates `group_id`: it hosts the group's offsets partition (and
    /// leads it, if replicated, with its offsets loaded). NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS otherwise, which clients retry.
    pub(crate) fn check(&self, group_id: &str) -> Result<(), ErrorCode> {
        self.store(group_id).map(|_| ())
    }

    /// Whether this broker coordinates `group_id` ([`Coordinator::check`]).
    pub(crate) fn is_local(&self, group_id: &str) -> bool {
        self.check(group_id).is_ok()
    }

    /// The store of the offsets partition of `group_id`, if hosted here, whether or not it
    /// coordinates.
    fn hosted_store(&self, group_id: &str) -> Option<Arc<OffsetStore>> {
        self.stores
            .get(super::offsets_partition(group_id, self.partitions))
    }

    /// The store of a hosted offsets partition, whether or not it coordinates (the
    /// transaction coordinator writes its markers there).
    pub(crate) fn partition_store(&self, partition: i32) -> Option<Arc<OffsetStore>> {
        self.stores.get(partition)
    }

    /// The store of the offsets partition of `group_id`, if this broker coordinates its groups.
    fn store(&self, group_id: &str) -> Result<Arc<OffsetStore>, ErrorCode> {
        let store = self
            .hosted_store(group_id)
            .ok_or(ErrorCode::NotCoordinator)?;
        store.coordinating()?;
        Ok(store)
    }

    /// Every hosted store whose groups are coordinated here.
    fn hosted(&self) -> Vec<Arc<OffsetStore>> {
        self.stores
            .all()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.coordinating().is_ok())
            .collect()
    }

    /// The hosted partitions of the offsets log.
    pub(crate) fn hosting(&self) -> &Hosted<OffsetState> {
        &self.stores
    }

    /// Stops coordinating the groups of an offsets partition (their members get NOT_COORDINATOR
    /// and look for the new coordinator) and closes its log cleanly.
    pub(crate) async fn release(&self, partition: i32) {
        // Dropping a group's last sender stops its actor, which answers whoever waits with
        // NOT_COORDINATOR. No actor starts for the partition once its store is gone.
        self.stores.release(partition).await;
        if let Ok(mut groups) = self.groups.lock() {
            groups.retain(|g, _| super::offsets_partition(g, self.partitions) != partition);
        }
    }

    /// The actor of `group_id`, started on first use; none if the group is not coordinated here.
    fn actor(&self, group_id: &str) -> Option<mpsc::UnboundedSender<Command>> {
        let mut groups = self.groups.lock().ok()?;
        // Checked under the lock of the actors, so that `release` cannot miss a new one. A
        // group whose partition another replica leads now loses its actor here.
        if !self.is_local(group_id) {
            let _ = groups.remove(group_id);
            return None;
        }
        if let Some(tx) = groups.get(group_id).filter(|tx| !tx.is_closed()) {
            return Some(tx.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let group = Group::new(group_id, self.config.clone());
        drop(tokio::spawn(run(group, rx)));
        let _ = groups.insert(group_id.to_owned(), tx.clone());
        Some(tx)
    }

    /// The actor of `group_id` if it exists (no start) and the group is coordinated here.
    fn existing(&self, group_id: &str) -> Option<mpsc::UnboundedSender<Command>> {
        let mut groups = self.groups.lock().ok()?;
        if !self.is_local(group_id) {
            let _ = groups.remove(group_id);
            return None;
        }
        groups.get(group_id).cloned()
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
        let tx = self.actor(group_id);
        let error = match tx {
            None => self.here(group_id).err().unwrap_or(NOT_HERE),
            Some(_) => GONE,
        };
        Self::ask(tx, |reply| Command::Join(Box::new(join), reply))
            .await
            .unwrap_or_else(|| JoinResponse {
                error: Some(error),
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
        let error = match tx {
            None if !self.is_local(group_id) => NOT_HERE,
            None => GroupError::UnknownMemberId,
            Some(_) => GONE,
        };
        Self::ask(tx, |reply| Command::Sync(sync, reply))
            .await
            .unwrap_or_else(|| SyncResponse {
                error: Some(error),
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
        self.here(group_id)?;
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
        if let Err(err) = self.here(group_id) {
            return vec![Err(err); count];
        }
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
        self.here(group_id)?;
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

    /// NOT_COORDINATOR (or COORDINATOR_LOAD_IN_PROGRESS) unless this broker coordinates
    /// `group_id`.
    fn here(&self, group_id: &str) -> Result<(), GroupError> {
        self.check(group_id).map_err(|code| match code {
            ErrorCode::CoordinatorLoadInProgress => GroupError::CoordinatorLoadInProgress,
            _ => NOT_HERE,
        })
    }

    pub(crate) async fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        Self::ask(self.existing(group_id), Command::Describe).await
    }

    /// Every group of the hosted partitions with members or committed offsets.
    pub(crate) async fn list(&self) -> Vec<GroupListing> {
        let actors: Vec<(String, mpsc::UnboundedSender<Command>)> = self
            .groups
            .lock()
            .map(|g| g.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for (group_id, tx) in actors {
            if !self.is_local(&group_id) {
                continue;
            }
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
        for group_id in self.hosted().iter().flat_map(|s| s.groups()) {
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
    pub(crate) async fn delete_group(&self, group_id: &str) -> Result<(), ErrorCode> {
        let store = self.store(group_id)?;
        let tx = self.existing(group_id);
        let has_offsets = store.has_offsets(group_id);
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
        store.delete(group_id, None).await
    }

    pub(crate) async fn commit(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<(), ErrorCode> {
        self.store(group_id)?.commit(group_id, offsets).await
    }

    /// Stores the offsets a transactional producer commits for a group in its transaction
    /// (TxnOffsetCommit): visible once the transaction commits.
    pub(crate) async fn commit_pending(
        &self,
        group_id: &str,
        producer_id: i64,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<(), ErrorCode> {
        self.store(group_id)?
            .commit_pending(producer_id, group_id, offsets)
            .await
    }

    /// Whether `group_id` commits in transactions: an exactly-once application, whose lag
    /// counts from the last stable offset.
    pub(crate) fn is_transactional(&self, group_id: &str) -> bool {
        self.hosted_store(group_id)
            .is_some_and(|s| s.is_transactional(group_id))
    }

    /// Whether an open transaction holds an offset for this group's partition (OffsetFetch's
    /// `require_stable`).
    pub(crate) fn unstable(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.hosted_store(group_id)
            .is_some_and(|s| s.unstable(group_id, topic, partition))
    }

    /// Deletes some committed offsets of a group.
    pub(crate) async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), ErrorCode> {
        self.store(group_id)?
            .delete(group_id, Some(partitions))
            .await
    }

    /// A committed offset, if this broker has it (callers check that it coordinates the group
    /// first).
    pub(crate) fn fetch(&self, group_id: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.hosted_store(group_id)?
            .fetch(group_id, topic, partition)
    }

    /// Every committed offset of a group, sorted by topic and partition.
    pub(crate) fn group_offsets(&self, group_id: &str) -> Vec<((String, i32), Committed)> {
        self.hosted_store(group_id)
            .map(|s| s.group_offsets(group_id))
            .unwrap_or_default()
    }

    /// Whether `group_id` has any committed offset here.
    pub(crate) fn has_offsets(&self, group_id: &str) -> bool {
        self.hosted_store(group_id)
            .is_some_and(|s| s.has_offsets(group_id))
    }

    /// Every committed offset of the hosted partitions: (group, topic, partition, offset), sorted.
    pub(crate) fn all_committed(&self) -> Vec<(String, String, i32, i64)> {
        let mut all: Vec<_> = self
            .hosted()
            .iter()
            .flat_map(|s| s.all_committed())
            .collect();
        all.sort();
        all
    }

    /// Expires the offsets of groups without members and compacts the offsets logs.
    pub(crate) async fn housekeeping(&self) {
        let now = now_ms();
        let retention = i64::try_from(self.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        for store in self.hosted() {
            for group_id in store.groups() {
                let empty = match self.describe(&group_id).await {
                    Some(d) => d.members.is_empty(),
                    None => true,
                };
                if empty {
                    match store.expire(&group_id, now, retention).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(group_id, expired = n, "expired committed offsets"),
                        Err(code) => {
                            tracing::warn!(group_id, error = code.name(), "expiring offsets");
                        }
                    }
                }
            }
            if let Err(code) = store.compact().await {
                tracing::warn!(error = code.name(), "compacting an offsets log");
            }
        }
    }

    /// Stops every group actor and closes the offsets logs. Blocking.
    pub(crate) fn close_blocking(&self) {
        if let Ok(mut groups) = self.groups.lock() {
            groups.clear();
        }
        self.stores.close_blocking();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::offsets_partition;

    fn fsync() -> prometheus::Histogram {
        // Unregistered: any valid name will do.
        match prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("fsync", "test")) {
            Ok(histogram) => histogram,
            Err(err) => panic!("a histogram named fsync: {err}"),
        }
    }

    /// A group id that lands on `partition` of `partitions`.
    fn group_on(partition: i32, partitions: i32) -> String {
        (0..)
            .map(|i| format!("group-{i}"))
            .find(|g| offsets_partition(g, partitions) == partition)
            .unwrap_or_default()
    }

    fn offset(offset: i64) -> Vec<(String, i32, Committed)> {
        vec![(
            "t".to_owned(),
            0,
            Committed {
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_ms: now_ms(),
                expire_ms: None,
            },
        )]
    }

    #[tokio::test]
    async fn coordinates_only_the_groups_of_hosted_partitions()
    -> Result<(), Box<dyn std::error::Error>> {
        let storage = Arc::new(Storage::start(
            1,
            64,
            Duration::from_secs(3600),
            Arc::default(),
        )?);
        let dir = tempfile::tempdir()?;
        let open = |local: &[i32]| {
            Coordinator::open(
                dir.path(),
                GroupConfig::default(),
                Duration::from_secs(3600),
                4,
                local.iter().map(|p| (*p, None)).collect(),
                &storage,
                fsync(),
            )
        };
        let coordinator = open(&[0, 1])?;
        let (here, there) = (group_on(1, 4), group_on(2, 4));
        assert!(coordinator.is_local(&here));
        assert!(!coordinator.is_local(&there));
        assert!(dir.path().join("__consumer_offsets-1").is_dir());
        assert!(!dir.path().join("__consumer_offsets-2").exists());

        coordinator
            .commit(&here, offset(5))
            .await
            .map_err(|c| c.name())?;
        assert_eq!(
            coordinator.commit(&there, offset(5)).await,
            Err(ErrorCode::NotCoordinator)
        );
        assert_eq!(
            coordinator.heartbeat(&there, "m".into(), 1, None).await,
            Err(GroupError::NotCoordinator)
        );
        assert_eq!(
            coordinator.delete_group(&there).await,
            Err(ErrorCode::NotCoordinator)
        );

        // Hosting the partition: its groups are coordinated here now, and stored in its log.
        coordinator.hosting().host(2, None).await?;
        coordinator.hosting().host(2, None).await?;
        coordinator
            .commit(&there, offset(9))
            .await
            .map_err(|c| c.name())?;
        assert_eq!(coordinator.fetch(&there, "t", 0).map(|c| c.offset), Some(9));
        let listed: Vec<String> = coordinator
            .list()
            .await
            .into_iter()
            .map(|g| g.group_id)
            .collect();
        assert_eq!(listed.len(), 2);
        assert!(
            coordinator.hosting().host(4, None).await.is_err(),
            "there are 4 partitions"
        );

        // Released: NOT_COORDINATOR, and its groups are no longer listed nor their offsets read.
        coordinator.release(2).await;
        assert!(!coordinator.is_local(&there));
        assert_eq!(coordinator.fetch(&there, "t", 0), None);
        assert_eq!(
            coordinator
                .validate_commit(&there, String::new(), -1, None)
                .await,
            Err(GroupError::NotCoordinator)
        );
        let listed: Vec<String> = coordinator
            .list()
            .await
            .into_iter()
            .map(|g| g.group_id)
            .collect();
        assert_eq!(listed, vec![here.clone()]);
        assert_eq!(coordinator.all_committed().len(), 1);

        // Hosted again (by this broker or another): the offsets come back from its log.
        coordinator.hosting().host(2, None).await?;
        assert_eq!(coordinator.fetch(&there, "t", 0).map(|c| c.offset), Some(9));
        let closing = Arc::new(coordinator);
        let closed = closing.clone();
        tokio::task::spawn_blocking(move || closed.close_blocking()).await?;

        // Reopened hosting every partition: every offset in its place.
        let coordinator = open(&[0, 1, 2, 3])?;
        assert_eq!(coordinator.fetch(&here, "t", 0).map(|c| c.offset), Some(5));
        assert_eq!(coordinator.fetch(&there, "t", 0).map(|c| c.offset), Some(9));
        tokio::task::spawn_blocking(move || coordinator.close_blocking()).await?;
        Ok(())
    }
}
