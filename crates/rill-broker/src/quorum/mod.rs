//! The metadata quorum: the brokers named by `controller.quorum.voters` replicate the
//! metadata log (`__rill_metadata-0`) with raft-rs, and every broker applies its committed
//! entries to the same [`image::Image`]: the cluster id, topics with their partitions'
//! replicas, leaders and leader epochs, registered brokers, dynamic broker configs and producer
//! id blocks. Any broker may propose a change; raft-rs forwards it to the leader, and the
//! proposer learns its outcome when it applies the entry itself.
//!
//! With no voters configured, the broker is a quorum of one: it elects itself at start (no
//! timeout) and every change costs the fsyncs of its own log, as before the quorum.
//!
//! - `image.rs`: the state machine (commands, deterministic apply);
//! - `store.rs`: the Raft log on `rill-log`, the hard state and the snapshot;
//! - `node.rs`: the thread running raft-rs's Ready loop, session fencing on the leader;
//! - `transport.rs`: the voters' TCP connections; `codec.rs`: our encoding of raft-rs's
//!   messages on them (never protobuf from the network);
//! - `voters.rs`: `controller.quorum.voters`.

pub(crate) mod codec;
pub(crate) mod image;
pub(crate) mod node;
pub(crate) mod rejoin;
pub(crate) mod store;
pub(crate) mod transport;
pub(crate) mod voters;

use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rill_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::broker::TopicError;
use crate::error::BrokerError;
use crate::meta::{self, METADATA_LOG};
use image::{Command, Image};
use node::{Applied, Input, Node, NodeConfig, Shared, Status};
use store::QuorumStore;
use transport::{Hello, KnownClusterId, Transport};
pub use voters::Voters;

/// What the quorum needs to start.
#[derive(Debug, Clone)]
pub(crate) struct QuorumConfig {
    pub(crate) node_id: i32,
    /// Empty: a quorum of this broker alone.
    pub(crate) voters: Voters,
    pub(crate) session_timeout: Duration,
    pub(crate) proposal_timeout: Duration,
    /// `offsets.topic.num.partitions`, for the offsets of a data directory being upgraded.
    pub(crate) offsets_partitions: i32,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    pub(crate) snapshot_bytes: u64,
}

/// This broker's member of the metadata quorum.
#[derive(Debug)]
pub(crate) struct Quorum {
    inputs: Mutex<Sender<Input>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    transport: Mutex<Option<Transport>>,
    /// The voters, this broker alone when none were configured.
    pub(crate) voters: Voters,
    cluster_id: KnownClusterId,
    /// Where peers' messages for replicated partitions are delivered.
    pub(crate) router: Arc<crate::partition::Router>,
    /// Where replicated partitions send messages for peers.
    pub(crate) partition_outbox: crate::partition::Outbox,
    /// Calls to and from the other brokers.
    pub(crate) rpc: Arc<crate::rpc::Rpc>,
}

impl Quorum {
    /// Opens (upgrading a single-node metadata log written before the quorum, or making a new
    /// one) and starts this broker's replica. `controller` is the listener for the other
    /// voters, needed when there are any. Blocking.
    pub(crate) fn start(
        data_dir: &Path,
        config: &QuorumConfig,
        incarnation: Uuid,
        controller: Option<tokio::net::TcpListener>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Applied>), BrokerError> {
        let me = config.node_id;
        let voters = if config.voters.is_empty() {
            Voters::alone(me)
        } else {
            config.voters.clone()
        };
        if !voters.contains(me) {
            return Err(BrokerError::Config(format!(
                "node.id {me} is not one of controller.quorum.voters ({})",
                config.voters
            )));
        }
        let voter_ids: Vec<u64> = voters.ids().map(voters::raft_id).collect();
        let dir = data_dir.join(METADATA_LOG);
        let stored_cluster_id = meta::read_cluster_id(data_dir)?;
        let created = initialize(data_dir, me, voter_ids.clone(), config.offsets_partitions)?;
        let store = QuorumStore::open(&dir)?;
        let stored = store
            .snapshot_ref()
            .get_metadata()
            .get_conf_state()
            .get_voters()
            .to_vec();
        let mut stored_sorted = stored.clone();
        stored_sorted.sort_unstable();
        if stored_sorted != voter_ids {
            let ids = |v: &[u64]| {
                v.iter()
                    .map(|id| voters::node_id(*id).to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(BrokerError::Config(format!(
                "controller.quorum.voters names nodes {} but the quorum in {} is nodes {}",
                ids(&voter_ids),
                dir.display(),
                ids(&stored_sorted)
            )));
        }
        let image: Image = serde_json::from_slice(&store.snapshot_ref().data)
            .map_err(|e| BrokerError::Metadata(format!("{}: snapshot: {e}", dir.display())))?;
        let known = image.cluster_id.clone().or(stored_cluster_id.clone());
        let cluster_id: KnownClusterId = Arc::new(Mutex::new(known));
        let (applied_tx, _) = watch::channel(store.snapshot_ref().get_metadata().index);
        let shared = Arc::new(Shared {
            image: RwLock::new(image),
            status: Mutex::new(Status {
                leader: -1,
                role: "follower",
                ..Status::default()
            }),
            applied: applied_tx,
        });
        let (inputs, receiver) = std::sync::mpsc::channel();
        let peers: Vec<i32> = voters.ids().filter(|id| *id != me).collect();
        let router = Arc::new(crate::partition::Router::default());
        let rpc = crate::rpc::Rpc::new(me);
        let (transport, outbox, partition_outbox): (
            Option<Transport>,
            node::Outbox,
            crate::partition::Outbox,
        ) = if peers.is_empty() {
            (
                None,
                Box::new(|_| {}),
                crate::partition::Outbox(Arc::new(|_, _, _| {})),
            )
        } else {
            let listener = controller.ok_or_else(|| {
                BrokerError::Config("the quorum has other voters but no controller listener".into())
            })?;
            let hello = Hello {
                node_id: me,
                incarnation,
                voters: voters.to_string(),
                cluster_id: None,
            };
            let (transport, outbox, partition_outbox) = transport::start(
                runtime,
                listener,
                hello,
                &voters,
                inputs.clone(),
                cluster_id.clone(),
                transport::Delivery {
                    router: router.clone(),
                    rpc: rpc.clone(),
                },
            );
            (Some(transport), outbox, partition_outbox)
        };
        let node_config = NodeConfig {
            node_id: me,
            origin: incarnation.as_u64_pair().0,
            peers,
            session_timeout: config.session_timeout,
            proposal_timeout: config.proposal_timeout,
            cluster_id: stored_cluster_id.unwrap_or_else(|| Uuid::new_v4().simple().to_string()),
            snapshot_bytes: config.snapshot_bytes,
            recovering: created && voter_ids.len() > 1,
        };
        let (changes_tx, changes_rx) = mpsc::unbounded_channel();
        let node = Node::new(store, node_config, shared.clone(), outbox, changes_tx)?;
        let thread = std::thread::Builder::new()
            .name("rill-quorum".into())
            .spawn(move || node.run(&receiver))
            .map_err(|source| BrokerError::Io {
                path: dir.clone(),
                source,
            })?;
        Ok((
            Self {
                inputs: Mutex::new(inputs),
                shared,
                thread: Mutex::new(Some(thread)),
                transport: Mutex::new(transport),
                voters,
                cluster_id,
                router,
                partition_outbox,
                rpc,
            },
            changes_rx,
        ))
    }

    fn send(&self, input: Input) -> bool {
        self.inputs
            .lock()
            .is_ok_and(|inputs| inputs.send(input).is_ok())
    }

    /// Proposes a change and waits until this broker has applied it: the index it applied at,
    /// and its value.
    pub(crate) async fn propose(&self, command: Command) -> Result<(u64, i64), TopicError> {
        self.propose_acls(command)
            .await
            .map(|(index, value, _)| (index, value))
    }

    /// [`Self::propose`], with the ACLs a DeleteAcls removed, per filter.
    pub(crate) async fn propose_acls(
        &self,
        command: Command,
    ) -> Result<(u64, i64, Vec<Vec<crate::authorizer::AclBinding>>), TopicError> {
        let (reply, answer) = oneshot::channel();
        let gone = || {
            (
                ErrorCode::NotController,
                "the metadata quorum has stopped".to_owned(),
            )
        };
        if !self.send(Input::Propose(command, reply)) {
            return Err(gone());
        }
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// The last applied index, to wait on its changes.
    pub(crate) fn applied(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }

    /// The agreed state, read-locked: never hold it across an `.await`.
    pub(crate) fn image(&self) -> RwLockReadGuard<'_, Image> {
        self.shared
            .image
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How this replica stands.
    pub(crate) fn status(&self) -> Status {
        self.shared
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Tells the transport the agreed cluster id, checked in every hello from now on.
    pub(crate) fn set_cluster_id(&self, id: &str) {
        if let Ok(mut known) = self.cluster_id.lock() {
            *known = Some(id.to_owned());
        }
    }

    /// Stops the node thread and the transport. Blocking.
    pub(crate) fn stop(&self) {
        let _ = self.send(Input::Stop);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        drop(self.transport.lock().ok().and_then(|mut t| t.take()));
    }
}

/// Makes `data_dir`'s metadata log a quorum store if it is not one yet: empty for a new
/// directory, or holding the image of the metadata log a single-node Rill wrote before the
/// quorum (upgraded in place: its records become the first snapshot). True when it made an
/// empty one.
fn initialize(
    data_dir: &Path,
    me: i32,
    voter_ids: Vec<u64>,
    offsets_partitions: i32,
) -> Result<bool, BrokerError> {
    let dir = data_dir.join(METADATA_LOG);
    if QuorumStore::initialized(&dir) {
        return Ok(false);
    }
    let stored_cluster_id = meta::read_cluster_id(data_dir)?;
    let (store, replayed) = meta::MetaStore::open(data_dir)?;
    let index = u64::try_from(store.end()).unwrap_or(0);
    store.close()?;
    let image = if index > 0 {
        let cluster_id = match stored_cluster_id {
            Some(id) => id,
            None => meta::cluster_id(data_dir, me)?,
        };
        tracing::info!(
            topics = replayed.topics.len(),
            entries = index,
            "upgrading the single-node metadata log to the quorum's format"
        );
        Image::from_legacy(replayed, me, cluster_id, offsets_partitions)
    } else {
        Image::default()
    };
    let data = serde_json::to_vec(&image).map_err(|e| BrokerError::Internal(e.to_string()))?;
    QuorumStore::initialize(&dir, &store::make_snapshot(index, 0, voter_ids, data))?;
    Ok(index == 0)
}

/// raft-rs logs through slog; this forwards its records to `tracing` (debug, or warn for its
/// warnings and errors) with their key-values.
#[derive(Debug)]
pub(crate) struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<Self::Ok, Self::Err> {
        use slog::KV as _;
        let mut kv = KvText(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let message = record.msg();
        if record.level().is_at_least(slog::Level::Warning) {
            tracing::warn!(target: "raft", "{message}{}", kv.0);
        } else {
            tracing::debug!(target: "raft", "{message}{}", kv.0);
        }
        Ok(())
    }
}

struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::meta::{MetaStore, TopicRecord};

    #[test]
    fn a_single_node_metadata_log_is_upgraded_in_place() -> Result<(), Box<dyn std::error::Error>> {
        let data_dir = tempfile::tempdir()?;
        let orders = TopicRecord {
            id: Uuid::new_v4(),
            partitions: 3,
            configs: BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]),
        };
        let cluster_id = meta::cluster_id(data_dir.path(), 0)?;
        {
            let (mut legacy, _) = MetaStore::open(data_dir.path())?;
            legacy.put("orders", Some(&orders))?;
            legacy.put("doomed", Some(&orders))?;
            legacy.put("doomed", None)?;
            legacy
                .put_broker_configs("0", &BTreeMap::from([("log.roll.ms".into(), "5".into())]))?;
            legacy.reserve_producer_ids(2000)?;
            legacy.close()?;
        }
        // An upgrade is not an empty store: not a voter that lost its state.
        assert!(!initialize(data_dir.path(), 0, vec![1], 50)?);
        // A second start finds it done.
        assert!(!initialize(data_dir.path(), 0, vec![1], 50)?);
        let store = QuorumStore::open(&data_dir.path().join(METADATA_LOG))?;
        let image: Image = serde_json::from_slice(&store.snapshot_ref().data)?;
        assert_eq!(image.cluster_id.as_deref(), Some(cluster_id.as_str()));
        assert_eq!(
            image.topics.keys().collect::<Vec<_>>(),
            ["__consumer_offsets", "orders"]
        );
        let topic = &image.topics["orders"];
        assert_eq!((topic.id, &topic.configs), (orders.id, &orders.configs));
        assert!(
            topic
                .partitions
                .iter()
                .all(|p| p.replicas == [0] && p.leader == 0)
        );
        assert_eq!(image.topics["__consumer_offsets"].partitions.len(), 50);
        assert_eq!(image.broker_configs["0"]["log.roll.ms"], "5");
        assert_eq!(image.next_producer_id, 2000);
        // The legacy records are behind the snapshot: the Raft log starts after them.
        assert_eq!(store.snapshot_ref().get_metadata().index, 5);
        assert_eq!(raft::Storage::first_index(&store)?, 6);
        Ok(())
    }
}
