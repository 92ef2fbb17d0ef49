//! openraft 0.9.25 spike: 3 Raft nodes in one process on a current-thread tokio runtime,
//! in-memory log store + state machine (storage-v2 traits), in-memory network (a router
//! that hands each RPC to the target's `Raft` handle, itself an mpsc channel to its core task).
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, Config, Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftNetwork, RaftNetworkFactory,
    RaftSnapshotBuilder, ServerState, Snapshot, SnapshotMeta, StorageError, StoredMembership, Vote,
};

openraft::declare_raft_types!(pub TC); // D = String ("k=v"), R = String, NodeId = u64
type Raft = openraft::Raft<TC>;

// ---------------- log store ----------------
#[derive(Default)]
struct LogInner {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    last_purged: Option<LogId<u64>>,
    log: BTreeMap<u64, Entry<TC>>,
}
#[derive(Clone, Default)]
struct LogStore(Arc<Mutex<LogInner>>);

impl RaftLogReader<TC> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TC>>, StorageError<u64>> {
        Ok(self.0.lock().unwrap().log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TC> for LogStore {
    type LogReader = LogStore;
    async fn get_log_state(&mut self) -> Result<LogState<TC>, StorageError<u64>> {
        let g = self.0.lock().unwrap();
        let last = g.log.values().next_back().map(|e| e.log_id).or(g.last_purged);
        Ok(LogState { last_purged_log_id: g.last_purged, last_log_id: last })
    }
    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }
    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.0.lock().unwrap().vote = Some(*vote); // real store: write + fsync before returning
        Ok(())
    }
    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.0.lock().unwrap().vote)
    }
    async fn save_committed(&mut self, c: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        self.0.lock().unwrap().committed = c;
        Ok(())
    }
    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.0.lock().unwrap().committed)
    }
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TC>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        let mut g = self.0.lock().unwrap();
        for e in entries {
            g.log.insert(e.log_id.index, e);
        }
        callback.log_io_completed(Ok(())); // real store: call once the fsync is done (may be later)
        Ok(())
    }
    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.0.lock().unwrap().log.split_off(&log_id.index);
        Ok(())
    }
    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut g = self.0.lock().unwrap();
        g.last_purged = Some(log_id);
        g.log = g.log.split_off(&(log_id.index + 1));
        Ok(())
    }
}

// ---------------- state machine ----------------
#[derive(Default)]
struct SmInner {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    kv: BTreeMap<String, String>,
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
}
#[derive(Clone, Default)]
struct Sm(Arc<Mutex<SmInner>>);

fn encode(kv: &BTreeMap<String, String>) -> Vec<u8> {
    kv.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>().into_bytes()
}

impl RaftSnapshotBuilder<TC> for Sm {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TC>, StorageError<u64>> {
        let mut g = self.0.lock().unwrap();
        let data = encode(&g.kv);
        let meta = SnapshotMeta {
            last_log_id: g.last_applied,
            last_membership: g.membership.clone(),
            snapshot_id: format!("{:?}", g.last_applied),
        };
        g.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TC> for Sm {
    type SnapshotBuilder = Sm;
    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let g = self.0.lock().unwrap();
        Ok((g.last_applied, g.membership.clone()))
    }
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        let mut g = self.0.lock().unwrap();
        let mut out = Vec::new();
        for e in entries {
            g.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(s) => {
                    let (k, v) = s.split_once('=').unwrap();
                    g.kv.insert(k.to_string(), v.to_string());
                }
                EntryPayload::Membership(m) => g.membership = StoredMembership::new(Some(e.log_id), m),
            }
            out.push(String::new());
        }
        Ok(out)
    }
    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }
    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let mut g = self.0.lock().unwrap();
        g.kv = String::from_utf8(data.clone())
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        g.last_applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some((meta.clone(), data));
        Ok(())
    }
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TC>>, StorageError<u64>> {
        let g = self.0.lock().unwrap();
        Ok(g.snapshot.as_ref().map(|(m, d)| Snapshot { meta: m.clone(), snapshot: Box::new(Cursor::new(d.clone())) }))
    }
}

// ---------------- network ----------------
#[derive(Clone, Default)]
struct Router(Arc<Mutex<BTreeMap<u64, Raft>>>);
struct Conn {
    router: Router,
    target: u64,
}

#[derive(Debug)]
struct Down;
impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node down")
    }
}
impl std::error::Error for Down {}

impl Conn {
    fn get(&self) -> Option<Raft> {
        self.router.0.lock().unwrap().get(&self.target).cloned()
    }
}

impl RaftNetworkFactory<TC> for Router {
    type Network = Conn;
    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Conn {
        Conn { router: self.clone(), target }
    }
}

impl RaftNetwork<TC> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TC>,
        _o: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let r = self.get().ok_or_else(|| RPCError::Unreachable(Unreachable::new(&Down)))?;
        r.append_entries(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TC>,
        _o: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        let r = self.get().ok_or_else(|| RPCError::Network(NetworkError::new(&Down)))?;
        r.install_snapshot(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _o: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let r = self.get().ok_or_else(|| RPCError::Unreachable(Unreachable::new(&Down)))?;
        r.vote(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

// ---------------- demo ----------------
fn cpu_secs() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

async fn wait_leader(nodes: &BTreeMap<u64, (Raft, Sm)>, not: Option<u64>) -> u64 {
    loop {
        for (id, (r, _)) in nodes {
            let m = r.metrics().borrow().clone();
            if m.state == ServerState::Leader && Some(*id) != not {
                return *id;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn wait_kv(nodes: &BTreeMap<u64, (Raft, Sm)>, f: impl Fn(&BTreeMap<String, String>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !nodes.values().all(|(_, sm)| f(&sm.0.lock().unwrap().kv)) {
        assert!(Instant::now() < deadline, "state machines did not converge");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

/// G independent 3-replica groups on the same single-thread runtime.
async fn scale(g: usize, config: Arc<Config>) {
    let rss0 = rss_mib();
    let t0 = Instant::now();
    let mut groups = Vec::new();
    for _ in 0..g {
        let router = Router::default();
        let mut nodes = BTreeMap::new();
        for id in 1..=3u64 {
            let sm = Sm::default();
            let raft = Raft::new(id, config.clone(), router.clone(), LogStore::default(), sm.clone()).await.unwrap();
            router.0.lock().unwrap().insert(id, raft.clone());
            nodes.insert(id, (raft, sm));
        }
        let members: BTreeMap<u64, BasicNode> = (1..=3).map(|i| (i, BasicNode::default())).collect();
        nodes[&1].0.initialize(members).await.unwrap();
        groups.push(nodes);
    }
    for nodes in &groups {
        tokio::time::timeout(Duration::from_secs(30), wait_leader(nodes, None)).await.expect("no leader");
    }
    println!("{g} groups x 3 replicas: all have leaders after {:.0} ms", t0.elapsed().as_secs_f64() * 1e3);
    let cpu0 = cpu_secs();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = cpu_secs() - cpu0;
    let wall = t.elapsed().as_secs_f64();
    let changed = groups.iter().filter(|n| n.values().any(|(r, _)| r.metrics().borrow().current_term != 1)).count();
    println!("RESULT openraft scale groups={g} replicas={} idle_cpu_pct_total={:.1} per_replica_pct={:.4} rss_mib={:.1} (+{:.1}) groups_with_term_change={changed}",
        3 * g, 100.0 * cpu / wall, 100.0 * cpu / wall / (3 * g) as f64, rss_mib(), rss_mib() - rss0);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = Arc::new(
        Config {
            cluster_name: "spike".into(),
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    if let Ok(g) = std::env::var("RAFT_GROUPS") {
        return scale(g.parse().unwrap(), config).await;
    }
    let router = Router::default();
    let t0 = Instant::now();
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let sm = Sm::default();
        let raft = Raft::new(id, config.clone(), router.clone(), LogStore::default(), sm.clone()).await.unwrap();
        router.0.lock().unwrap().insert(id, raft.clone());
        nodes.insert(id, (raft, sm));
    }
    // one-time cluster bootstrap on one node (the others learn membership by replication)
    let members: BTreeMap<u64, BasicNode> = (1..=3).map(|i| (i, BasicNode::default())).collect();
    nodes[&1].0.initialize(members).await.unwrap();
    let l1 = tokio::time::timeout(Duration::from_secs(5), wait_leader(&nodes, None)).await.expect("no leader");
    let first_leader_ms = t0.elapsed().as_secs_f64() * 1e3;
    println!("first leader: node {l1} after {first_leader_ms:.1} ms");

    let t = Instant::now();
    for i in 0..100 {
        // client_write returns once the entry is committed and applied on the leader
        nodes[&l1].0.client_write(format!("k{i:03}=v{i}")).await.unwrap();
    }
    let writes_ms = t.elapsed().as_secs_f64() * 1e3;
    wait_kv(&nodes, |kv| kv.len() == 100).await;
    let kv0 = nodes[&1].1 .0.lock().unwrap().kv.clone();
    assert!(nodes.values().all(|(_, sm)| sm.0.lock().unwrap().kv == kv0));
    println!("100 sequential writes committed+applied on leader in {writes_ms:.1} ms; all 3 state machines equal ({} keys)", kv0.len());

    let cpu0 = cpu_secs();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = cpu_secs() - cpu0;
    let wall = t.elapsed().as_secs_f64();
    let per_node = 100.0 * cpu / wall / 3.0;
    println!("idle 3 nodes {wall:.1} s: process CPU {cpu:.3} s = {:.3}% of one core total, {per_node:.3}% per node", 100.0 * cpu / wall);
    assert_eq!(nodes[&l1].0.metrics().borrow().state, ServerState::Leader, "leader changed while idle");

    // stop the leader: unreachable from the others, then shut its core down
    let old_term = nodes[&l1].0.metrics().borrow().current_term;
    let t = Instant::now();
    router.0.lock().unwrap().remove(&l1);
    let (old, _) = nodes.remove(&l1).unwrap();
    old.shutdown().await.unwrap();
    let l2 = tokio::time::timeout(Duration::from_secs(5), wait_leader(&nodes, Some(l1))).await.expect("no new leader");
    let reelect_ms = t.elapsed().as_secs_f64() * 1e3;
    let new_term = nodes[&l2].0.metrics().borrow().current_term;
    println!("stopped node {l1} (term {old_term}); new leader node {l2} (term {new_term}) after {reelect_ms:.1} ms");
    nodes[&l2].0.client_write("after=failover".to_string()).await.unwrap();
    wait_kv(&nodes, |kv| kv.get("after").map(String::as_str) == Some("failover")).await;
    let kv = nodes[&l2].1 .0.lock().unwrap().kv.clone();
    assert!(kv.len() == 101 && nodes.values().all(|(_, sm)| sm.0.lock().unwrap().kv == kv));
    println!("new leader accepted a write; both survivors have 101 equal keys");
    let _voters: BTreeSet<u64> = nodes.keys().copied().collect();
    println!("RESULT openraft first_leader_ms={first_leader_ms:.1} writes100_ms={writes_ms:.1} reelect_ms={reelect_ms:.1} idle_cpu_pct_per_node={per_node:.3}");
    for (_, (r, _)) in nodes {
        r.shutdown().await.unwrap();
    }
}
