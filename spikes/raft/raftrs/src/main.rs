//! raft-rs (TiKV `raft` 0.7.0) spike: 3 nodes in one process, all driven by ONE thread
//! (the step-driven core needs no runtime), messages over in-memory mailboxes.
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use raft::eraftpb::{EntryType, Message};
use raft::prelude::*;
use raft::storage::MemStorage;
use raft::StateRole;

const TICK: Duration = Duration::from_millis(10);

struct Node {
    raw: RawNode<MemStorage>,
    kv: BTreeMap<String, String>,
}

struct Cluster {
    nodes: Vec<Option<Node>>, // index = id - 1
    inbox: Vec<VecDeque<Message>>,
    next_tick: Instant,
}

fn cpu_secs() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

/// G independent 3-replica groups in one process, all driven by ONE thread:
/// every 10 ms tick + pump each group. Measures idle CPU and RSS once all have leaders.
fn scale(g: usize) {
    let rss0 = rss_mib();
    let mut cs: Vec<Cluster> = (0..g).map(|_| Cluster::new(3)).collect();
    let t0 = Instant::now();
    let mut next = Instant::now();
    let drive = |cs: &mut Vec<Cluster>, next: &mut Instant| {
        let now = Instant::now();
        if now < *next {
            std::thread::sleep(*next - now);
        }
        *next += TICK;
        for c in cs.iter_mut() {
            c.tick();
            c.pump();
        }
    };
    while !cs.iter().all(|c| c.leader().is_some()) {
        drive(&mut cs, &mut next);
        assert!(t0.elapsed() < Duration::from_secs(30));
    }
    println!("{g} groups x 3 replicas: all have leaders after {:.0} ms", t0.elapsed().as_secs_f64() * 1e3);
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let mut late = 0u32;
    while t.elapsed() < Duration::from_secs(10) {
        drive(&mut cs, &mut next);
        if Instant::now() > next {
            late += 1;
        }
    }
    let cpu = cpu_secs() - cpu0;
    let wall = t.elapsed().as_secs_f64();
    let changed = cs.iter().filter(|c| c.nodes.iter().flatten().any(|n| n.raw.raft.term != 1)).count();
    println!("RESULT raft-rs scale groups={g} replicas={} idle_cpu_pct_total={:.1} per_replica_pct={:.4} rss_mib={:.1} (+{:.1}) late_rounds={late} groups_with_term_change={changed}",
        3 * g, 100.0 * cpu / wall, 100.0 * cpu / wall / (3 * g) as f64, rss_mib(), rss_mib() - rss0);
}

impl Cluster {
    fn new(n: u64) -> Self {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let voters: Vec<u64> = (1..=n).collect();
        let mut nodes = Vec::new();
        for id in 1..=n {
            let cfg = Config {
                id,
                // 10 ms tick: election timeout randomized in [15, 30) ticks = 150-300 ms,
                // heartbeat every 5 ticks = 50 ms
                election_tick: 15,
                heartbeat_tick: 5,
                pre_vote: true,
                check_quorum: true,
                ..Default::default()
            };
            cfg.validate().unwrap();
            let store = MemStorage::new_with_conf_state((voters.clone(), vec![]));
            let raw = RawNode::new(&cfg, store, &logger).unwrap();
            nodes.push(Some(Node { raw, kv: BTreeMap::new() }));
        }
        Cluster { nodes, inbox: (0..n).map(|_| VecDeque::new()).collect(), next_tick: Instant::now() + TICK }
    }

    fn route(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = (m.to - 1) as usize;
            if self.nodes[to].is_some() {
                self.inbox[to].push_back(m); // a stopped node's messages are dropped
            }
        }
    }

    /// Deliver messages and handle Readys until the cluster is quiescent.
    fn pump(&mut self) {
        for _round in 0..1000 {
            let mut work = false;
            for i in 0..self.nodes.len() {
                let Some(node) = self.nodes[i].as_mut() else { continue };
                while let Some(m) = self.inbox[i].pop_front() {
                    let _ = node.raw.step(m);
                    work = true;
                }
                if !node.raw.has_ready() {
                    continue;
                }
                work = true;
                let out = handle_ready(node);
                self.route(out);
            }
            if !work {
                return;
            }
        }
    }

    fn tick(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            n.raw.tick();
        }
    }

    /// Tick every 10 ms and pump, until `cond` holds or `timeout`.
    fn run_until(&mut self, timeout: Duration, mut cond: impl FnMut(&Cluster) -> bool) -> Option<Duration> {
        let start = Instant::now();
        loop {
            self.pump();
            if cond(self) {
                return Some(start.elapsed());
            }
            if start.elapsed() > timeout {
                return None;
            }
            let now = Instant::now();
            if now < self.next_tick {
                std::thread::sleep(self.next_tick - now);
            }
            self.next_tick += TICK;
            self.tick();
        }
    }

    fn leader(&self) -> Option<u64> {
        self.nodes.iter().flatten().find(|n| n.raw.raft.state == StateRole::Leader).map(|n| n.raw.raft.id)
    }
}

/// The standard Ready loop. Persistence to MemStorage stands in for "append + fsync":
/// entries and HardState (term, vote, commit) are persisted BEFORE persisted_messages
/// (e.g. vote answers, append acks) are sent.
fn handle_ready(node: &mut Node) -> Vec<Message> {
    let mut out = Vec::new();
    let mut rd = node.raw.ready();
    out.extend(rd.take_messages()); // leader's messages may go out before its own fsync
    if !rd.snapshot().is_empty() {
        node.raw.mut_store().wl().apply_snapshot(rd.snapshot().clone()).unwrap();
    }
    apply(&mut node.kv, rd.take_committed_entries());
    if !rd.entries().is_empty() {
        node.raw.mut_store().wl().append(rd.entries()).unwrap();
    }
    if let Some(hs) = rd.hs() {
        node.raw.mut_store().wl().set_hardstate(hs.clone()); // the vote: fsync here
    }
    out.extend(rd.take_persisted_messages()); // only after the above is durable
    let mut light = node.raw.advance(rd);
    if let Some(commit) = light.commit_index() {
        node.raw.mut_store().wl().mut_hard_state().set_commit(commit);
    }
    out.extend(light.take_messages());
    apply(&mut node.kv, light.take_committed_entries());
    node.raw.advance_apply();
    out
}

fn apply(kv: &mut BTreeMap<String, String>, entries: Vec<Entry>) {
    for e in entries {
        if e.data.is_empty() || e.get_entry_type() != EntryType::EntryNormal {
            continue; // leader's empty entry on election; conf changes would go to apply_conf_change
        }
        let s = std::str::from_utf8(&e.data).unwrap();
        let (k, v) = s.split_once('=').unwrap();
        kv.insert(k.to_string(), v.to_string());
    }
}

fn main() {
    if let Ok(g) = std::env::var("RAFT_GROUPS") {
        return scale(g.parse().unwrap());
    }
    let t0 = Instant::now();
    let mut c = Cluster::new(3);
    if std::env::var("CAMPAIGN").is_ok() {
        c.nodes[0].as_mut().unwrap().raw.campaign().unwrap(); // like openraft's initialize(): elect at once
    }
    // 1. first leader
    c.run_until(Duration::from_secs(5), |c| c.leader().is_some()).expect("no leader");
    let first_leader_ms = t0.elapsed().as_secs_f64() * 1e3;
    let l1 = c.leader().unwrap();
    println!("first leader: node {l1} after {first_leader_ms:.1} ms");

    // 100 writes through the leader, each waits until the leader has applied it
    let t = Instant::now();
    for i in 0..100 {
        let key = format!("k{i:03}");
        let li = (l1 - 1) as usize;
        c.nodes[li].as_mut().unwrap().raw.propose(vec![], format!("{key}=v{i}").into_bytes()).unwrap();
        c.run_until(Duration::from_secs(5), |c| c.nodes[li].as_ref().unwrap().kv.contains_key(&key))
            .expect("write not committed");
    }
    let writes_ms = t.elapsed().as_secs_f64() * 1e3;
    c.run_until(Duration::from_secs(5), |c| c.nodes.iter().flatten().all(|n| n.kv.len() == 100)).expect("no convergence");
    let kv0 = c.nodes[0].as_ref().unwrap().kv.clone();
    assert!(c.nodes.iter().flatten().all(|n| n.kv == kv0), "state machines differ");
    println!("100 sequential writes committed+applied on leader in {writes_ms:.1} ms; all 3 state machines equal ({} keys)", kv0.len());

    // 3. idle CPU, 10 s of heartbeats only (before killing the leader, 3 nodes)
    let cpu0 = cpu_secs();
    let t = Instant::now();
    c.run_until(Duration::from_secs(10), |_| false);
    let cpu = cpu_secs() - cpu0;
    let wall = t.elapsed().as_secs_f64();
    println!("idle 3 nodes {wall:.1} s: process CPU {cpu:.3} s = {:.3}% of one core total, {:.3}% per node", 100.0 * cpu / wall, 100.0 * cpu / wall / 3.0);
    assert_eq!(c.leader(), Some(l1), "leader changed while idle");

    // 2. stop the leader
    let old_term = c.nodes[(l1 - 1) as usize].as_ref().unwrap().raw.raft.term;
    c.nodes[(l1 - 1) as usize] = None;
    c.inbox[(l1 - 1) as usize].clear();
    let reelect = c
        .run_until(Duration::from_secs(5), |c| c.leader().is_some())
        .expect("no new leader");
    let l2 = c.leader().unwrap();
    let new_term = c.nodes[(l2 - 1) as usize].as_ref().unwrap().raw.raft.term;
    println!("stopped node {l1} (term {old_term}); new leader node {l2} (term {new_term}) after {:.1} ms", reelect.as_secs_f64() * 1e3);
    let li = (l2 - 1) as usize;
    c.nodes[li].as_mut().unwrap().raw.propose(vec![], b"after=failover".to_vec()).unwrap();
    c.run_until(Duration::from_secs(5), |c| c.nodes.iter().flatten().all(|n| n.kv.get("after").map(String::as_str) == Some("failover")))
        .expect("write after failover not applied");
    let kv = c.nodes[li].as_ref().unwrap().kv.clone();
    assert!(c.nodes.iter().flatten().all(|n| n.kv == kv) && kv.len() == 101);
    println!("new leader accepted a write; both survivors have 101 equal keys");
    println!("RESULT raft-rs first_leader_ms={first_leader_ms:.1} writes100_ms={writes_ms:.1} reelect_ms={:.1} idle_cpu_pct_per_node={:.3}", reelect.as_secs_f64() * 1e3, 100.0 * cpu / wall / 3.0);
}
