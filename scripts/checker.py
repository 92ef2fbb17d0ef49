#!/usr/bin/env python3
"""A Jepsen-style checker for Rill's replicated partitions.

It starts a fresh cluster with scripts/cluster.sh, creates a topic, and runs an acks=all
librdkafka producer (confluent-kafka) that sends unique values without pause, recording every
delivery report, and a consumer that reads every partition from the beginning, recording every
(partition, offset, value) it sees. Meanwhile it injects faults, one a round:

  kill-leader       kill -9 the leader of a partition, wait, start it again
  kill-follower     kill -9 a follower of a partition (at RF 1, a broker that does not lead
                    it), wait, start it again
  kill-two          kill -9 a partition's leader, then its new leader (or another broker),
                    wait, start both again
  pause-leader      SIGSTOP a partition's leader for longer than the broker session timeout,
                    then SIGCONT
  partition-leader  cut a partition's leader off from the other brokers (clients still reach
                    every broker): needs root and `ip netns`; the brokers then run in network
                    namespaces of their own on a bridge, and the cut is a pair of blackhole
                    routes per broker pair. Skipped with a line saying why otherwise.
  reassign          move a partition to another set of brokers (`rill topic reassign`, Kafka's
                    AlterPartitionReassignments) and wait for the move to end; every other
                    time kill -9 its leader in the middle of the move and start it again.
                    Needs more brokers than the replication factor (skipped otherwise).

After each fault the checker waits until every partition has a live leader. At the end it
stops the faults, flushes the producer, reads every partition to its high watermark with a
fresh consumer, stops the cluster, and checks:

  * every acknowledged record is present exactly once, at its acknowledged offset
    (lost / moved / duplicated counts; duplicates of any value are failures when the producer
    is idempotent, and only reported when it is not);
  * every offset the live consumer saw holds the same value in the final read;
  * the replicas of each partition hold byte-identical record batches below the high
    watermark (each broker's segment files are parsed directly; the first divergence is
    reported).

It prints one result line, `checker: PASS ...` or `checker: FAIL ...`, writes
DIR/checker-summary.json, and exits 0 on PASS, 1 on FAIL and 2 when it could not run (the
cluster did not start, the final read did not finish, it timed out, it was interrupted).

The clients keep librdkafka's defaults except bootstrap.servers, acks=all and
enable.idempotence (and, for the consumers, the group.id librdkafka needs and no offset
commits, since they assign partitions themselves).

Run `scripts/checker.py --help` for the flags and `scripts/checker.py --self-test` to see the
checks fail on histories made wrong on purpose.
"""

import argparse
import json
import logging
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
FAULTS = ("kill-leader", "kill-follower", "kill-two", "pause-leader", "partition-leader",
          "reassign")
SUMMARY_FILE = "checker-summary.json"
# A RecordBatch v2 header up to lastOffsetDelta; a batch is 12 + batchLength bytes.
BATCH_HEADER = struct.Struct(">qiibIhi")
MIN_BATCH_LENGTH = 49
STARTED = time.monotonic()
EXAMPLES = 20
# librdkafka's own log lines go to DIR/clients.log (see Run.execute), not the terminal.
CLIENT_LOG = logging.getLogger("rill-checker.clients")
CLIENT_LOG.propagate = False


class Aborted(Exception):
    """The run was cut short: a signal, the overall time limit, or a step that timed out."""


def log(message):
    """Prints a progress line with the time since start."""
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


def elapsed():
    """Seconds since the checker started."""
    return time.monotonic() - STARTED


def wait_for(what, timeout, check, interval=0.2):
    """Calls `check` until it returns something other than None, for at most `timeout`
    seconds; returns that, or None on timeout. Exceptions from `check` count as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception as err:  # noqa: BLE001 - any client error means "not yet"
            value = None
            last = f"{type(err).__name__}: {err}"
        else:
            last = "not yet"
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            log(f"{what}: not within {timeout:.0f} s (last: {last})")
            return None
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# The cluster and its network


class Network:
    """Brokers in network namespaces of their own, each linked by a veth pair to one bridge in
    the checker's namespace, which has an address on the same subnet: the checker reaches every
    broker, and a broker can be cut off from the others with blackhole routes on both sides."""

    def __init__(self, brokers, cut_clients=False):
        self.brokers = brokers
        self.cut_clients = cut_clients
        tag = os.getpid() % 10000
        self.bridge = f"rck{tag}br"
        self.prefix = f"rck{tag}"
        self.subnet = None
        self.made_namespaces = []
        self.made_bridge = False
        self.cut = []  # (namespace, address) blackhole routes in place

    @staticmethod
    def unavailable_reason():
        """Why namespaces cannot be made here, or None if they can."""
        if os.geteuid() != 0:
            return "not running as root"
        if shutil.which("ip") is None:
            return "no `ip` command (iproute2)"
        probe = f"rckprobe{os.getpid() % 100000}"
        made = run_quiet(["ip", "netns", "add", probe])
        if made.returncode != 0:
            return f"`ip netns add` failed: {made.stderr.strip()}"
        run_quiet(["ip", "netns", "del", probe])
        return None

    def namespace(self, k):
        """Broker k's namespace."""
        return f"{self.prefix}-n{k}"

    def host(self, k):
        """Broker k's address."""
        return f"{self.subnet}.{k}"

    def _pick_subnet(self):
        """A 10.241.X /24 no address or route of this machine uses."""
        used = (run_quiet(["ip", "-4", "-o", "addr"]).stdout
                + run_quiet(["ip", "-4", "route"]).stdout)
        start = os.getpid() % 200
        for i in range(200):
            candidate = f"10.241.{(start + i) % 200 + 20}"
            if candidate + "." not in used:
                return candidate
        raise Aborted("no free 10.241.X.0/24 subnet for the broker namespaces")

    def setup(self):
        """Makes the bridge, the namespaces and their links."""
        self.subnet = self._pick_subnet()
        ip(["link", "add", self.bridge, "type", "bridge"])
        self.made_bridge = True
        ip(["addr", "add", f"{self.subnet}.254/24", "dev", self.bridge])
        ip(["link", "set", self.bridge, "up"])
        for k in range(1, self.brokers + 1):
            ns = self.namespace(k)
            outside, inside = f"{self.prefix}h{k}", f"{self.prefix}n{k}"
            ip(["netns", "add", ns])
            self.made_namespaces.append(ns)
            ip(["link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns])
            ip(["link", "set", outside, "master", self.bridge, "up"])
            ip(["-n", ns, "addr", "add", f"{self.host(k)}/24", "dev", inside])
            ip(["-n", ns, "link", "set", inside, "up"])
            ip(["-n", ns, "link", "set", "lo", "up"])
        log(f"network: brokers in namespaces {self.prefix}-n1..{self.brokers} on bridge "
            f"{self.bridge}, {self.subnet}.1..{self.brokers}")

    def isolate(self, k):
        """Cuts broker k off from every other broker, both ways; clients still reach it unless
        cut_clients, when it is cut off from the checker's namespace too."""
        pairs = []
        for j in range(1, self.brokers + 1):
            if j != k:
                pairs += [(self.namespace(k), self.host(j)), (self.namespace(j), self.host(k))]
        if self.cut_clients:
            pairs += [(self.namespace(k), f"{self.subnet}.254"), (None, self.host(k))]
        for ns, address in pairs:
            ip([*(["-n", ns] if ns else []), "route", "add", "blackhole", f"{address}/32"])
            self.cut.append((ns, address))

    def heal(self):
        """Removes every cut."""
        while self.cut:
            ns, address = self.cut.pop()
            run_quiet(["ip", *(["-n", ns] if ns else []), "route", "del", "blackhole",
                       f"{address}/32"])

    def teardown(self):
        """Removes the namespaces (and with them the veth pairs) and the bridge."""
        self.heal()
        while self.made_namespaces:
            run_quiet(["ip", "netns", "del", self.made_namespaces.pop()])
        if self.made_bridge:
            run_quiet(["ip", "link", "del", self.bridge])
            self.made_bridge = False


def run_quiet(argv, timeout=20):
    """Runs a command, capturing its output; never raises for its exit status."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return subprocess.CompletedProcess(argv, 1, "", str(err))


def ip(args):
    """Runs `ip ARGS`; raises Aborted if it fails."""
    done = run_quiet(["ip", *args])
    if done.returncode != 0:
        raise Aborted(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Cluster:
    """A cluster run by scripts/cluster.sh in DIR, with the pids it records."""

    def __init__(self, directory, brokers, rill, cluster_args, network):
        self.dir = Path(directory)
        self.brokers = brokers
        self.rill = rill
        self.cluster_args = cluster_args
        self.network = network
        self.bootstrap = None
        self.down = set()  # brokers this checker killed and has not started again
        self.paused = set()

    def _env(self):
        """The environment cluster.sh runs with: the binary, the broker flags, the network."""
        env = dict(os.environ)
        if self.rill:
            env["RILL_BIN"] = self.rill
        env["RILL_CLUSTER_ARGS"] = self.cluster_args
        if self.network is not None:
            env["RILL_CLUSTER_HOSTS"] = " ".join(
                self.network.host(k) for k in range(1, self.brokers + 1))
            env["RILL_CLUSTER_NETNS"] = " ".join(
                self.network.namespace(k) for k in range(1, self.brokers + 1))
        else:
            env.pop("RILL_CLUSTER_HOSTS", None)
            env.pop("RILL_CLUSTER_NETNS", None)
        return env

    def script(self, *args, timeout=120):
        """Runs `cluster.sh ARGS DIR`; returns its stdout, raises Aborted if it fails."""
        argv = ["bash", str(CLUSTER_SH), *map(str, args), str(self.dir)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=self._env(),
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            what = " ".join(map(str, args))
            raise Aborted(f"cluster.sh {what}: no answer in {timeout} s") from err
        if done.returncode != 0:
            raise Aborted(f"cluster.sh {' '.join(map(str, args))} failed: "
                          f"{done.stderr.strip()}")
        return done.stdout

    def start(self):
        """Starts brokers 1..N and waits until each lists all of them."""
        self.bootstrap = self.script("start", self.brokers).strip().splitlines()[-1]
        log(f"cluster: {self.brokers} brokers up at {self.bootstrap}")

    def pid(self, k):
        """Broker k's pid from its pid file, or None."""
        try:
            return int((self.dir / f"node-{k}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, k):
        """Whether broker k's pid names a live `rill serve`."""
        pid = self.pid(k)
        if pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"\0serve\0" in cmdline

    def live(self):
        """Brokers that run and are not paused."""
        return [k for k in range(1, self.brokers + 1) if k not in self.paused and self.running(k)]

    def kill(self, k):
        """kill -9 of broker k."""
        self.script("kill", k, timeout=30)
        self.down.add(k)

    def start_node(self, k):
        """Starts broker k again and waits until it has rejoined."""
        self.script("start-node", k)
        self.down.discard(k)

    def pause(self, k):
        """SIGSTOP of broker k."""
        pid = self.pid(k)
        if pid is None:
            raise Aborted(f"broker {k} has no pid file")
        self.paused.add(k)
        os.kill(pid, signal.SIGSTOP)

    def resume(self, k):
        """SIGCONT of broker k."""
        pid = self.pid(k)
        self.paused.discard(k)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def stop(self):
        """Stops every broker with SIGTERM (cluster.sh stop)."""
        for k in list(self.paused):
            self.resume(k)
        return self.script("stop", timeout=60).strip()

    def cleanup(self):
        """Leaves no broker behind, whatever state the run ended in."""
        for k in list(self.paused):
            self.resume(k)
        if not (self.dir / "cluster.env").exists():
            return
        if any(self.running(k) for k in range(1, self.brokers + 1)):
            try:
                self.stop()
            except Aborted as err:
                log(f"cleanup: {err}")
        for k in range(1, self.brokers + 1):
            if self.running(k):
                log(f"cleanup: broker {k} still runs: SIGKILL")
                try:
                    os.kill(self.pid(k), signal.SIGKILL)
                except ProcessLookupError:
                    pass


# ---------------------------------------------------------------------------------------------
# Clients


def kafka():
    """The confluent_kafka module, imported on first use (the self-test does not need it)."""
    import confluent_kafka  # pylint: disable=import-outside-toplevel
    import confluent_kafka.admin  # noqa: F401 pylint: disable=import-outside-toplevel
    return confluent_kafka


def partitions_view(admin, topic, timeout=3.0):
    """Metadata of `topic`: partition -> {leader, replicas, isr, error}."""
    metadata = admin.list_topics(topic=topic, timeout=timeout)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        raise RuntimeError(f"{topic}: {None if described is None else described.error}")
    return {
        p.id: {"leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs),
               "error": None if p.error is None else str(p.error)}
        for p in described.partitions.values()
    }


class ProducerWorker(threading.Thread):
    """Sends unique values round robin over the partitions at a steady rate and records every
    delivery report: value -> (partition, offset) or error."""

    def __init__(self, bootstrap, topic, partitions, rate, idempotence, tag):
        super().__init__(name="producer", daemon=True)
        self.config = {"bootstrap.servers": bootstrap, "acks": "all",
                       "enable.idempotence": idempotence}
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.tag = tag
        self.stopping = threading.Event()
        self.fatal = threading.Event()
        self.flush_timeout = 60.0
        self.sent = 0
        self.acked = {}  # value -> (partition, offset)
        self.failed = {}  # value -> error text
        self.ack_conflicts = []  # two values acknowledged at one (partition, offset)
        self.at = {}  # (partition, offset) -> value acknowledged there
        self.fatal_errors = []
        self.unresolved = 0  # no delivery report by the end
        self.crashed = None

    def _on_delivery(self, err, msg):
        """Records one delivery report."""
        value = msg.value().decode()
        if err is not None:
            self.failed[value] = str(err)
            return
        where = (msg.partition(), msg.offset())
        other = self.at.get(where)
        if other is not None and other != value:
            self.ack_conflicts.append({"partition": where[0], "offset": where[1],
                                       "values": [other, value]})
        self.at[where] = value
        self.acked[value] = where

    def _on_error(self, err):
        """Notes a fatal error (the producer must then be replaced); others are retried."""
        if err.fatal():
            self.fatal_errors.append(str(err))
            self.fatal.set()

    def _new_producer(self):
        """A producer with librdkafka's defaults but bootstrap, acks and idempotence."""
        config = dict(self.config, error_cb=self._on_error, logger=CLIENT_LOG)
        return kafka().Producer(config)

    def run(self):
        """The thread's body: any exception is kept for the verdict."""
        try:
            self._loop()
        except Exception as err:  # noqa: BLE001 - recorded and reported as a failure
            self.crashed = f"{type(err).__name__}: {err}"

    def _loop(self):
        """Produces at the rate until told to stop, then flushes."""
        producer = self._new_producer()
        started = time.monotonic()
        while not self.stopping.is_set():
            if self.fatal.is_set():
                log(f"producer: fatal error {self.fatal_errors[-1]}; a new producer takes over")
                producer.purge()
                producer.poll(1.0)
                self.fatal.clear()
                producer = self._new_producer()
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due and not self.stopping.is_set():
                value = f"{self.tag}-{self.sent:09d}"
                try:
                    producer.produce(self.topic, value=value.encode(),
                                     partition=self.sent % self.partitions,
                                     on_delivery=self._on_delivery)
                except BufferError:
                    producer.poll(0.1)
                    break
                self.sent += 1
            producer.poll(0.01)
        remaining = producer.flush(self.flush_timeout)
        if remaining:
            producer.purge()
            producer.poll(1.0)
        self.unresolved = self.sent - len(self.acked) - len(self.failed)


class ConsumerWorker(threading.Thread):
    """Reads every partition from the beginning and records (partition, offset) -> value; a
    second sighting of an offset with another value is a conflict already."""

    def __init__(self, bootstrap, topic, partitions, tag):
        super().__init__(name="consumer", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.tag = tag
        self.stopping = threading.Event()
        self.seen = {}
        self.next = {}  # partition -> the offset after the last one seen
        self.conflicts = []
        self.errors = Counter()
        self.crashed = None

    def run(self):
        """The thread's body: any exception is kept for the verdict."""
        try:
            self._loop()
        except Exception as err:  # noqa: BLE001 - recorded and reported as a failure
            self.crashed = f"{type(err).__name__}: {err}"

    def _loop(self):
        """Consumes every partition from the beginning until told to stop."""
        consumer = new_consumer(self.bootstrap, f"{self.tag}-live")
        ck = kafka()
        consumer.assign([ck.TopicPartition(self.topic, p, ck.OFFSET_BEGINNING)
                         for p in range(self.partitions)])
        try:
            while not self.stopping.is_set():
                for msg in consumer.consume(num_messages=500, timeout=0.2):
                    if msg.error() is not None:
                        self.errors[str(msg.error().code())] += 1
                        continue
                    self._saw(msg.partition(), msg.offset(), msg.value().decode())
        finally:
            consumer.close()

    def _saw(self, partition, offset, value):
        """Records one record read."""
        where = (partition, offset)
        before = self.seen.get(where)
        if before is not None and before != value:
            self.conflicts.append({"partition": partition, "offset": offset,
                                   "seen": [before, value]})
        self.seen[where] = value
        self.next[partition] = max(self.next.get(partition, 0), offset + 1)


def new_consumer(bootstrap, group):
    """A consumer with librdkafka's defaults but the group.id it needs and no commits."""
    return kafka().Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                             "enable.auto.commit": False, "logger": CLIENT_LOG})


def final_read(bootstrap, topic, partitions, timeout):
    """Every record below each partition's high watermark, read by a fresh consumer:
    ((partition, offset) -> value, partition -> high watermark). Raises Aborted if it cannot
    finish within `timeout` seconds."""
    ck = kafka()
    deadline = time.monotonic() + timeout
    consumer = new_consumer(bootstrap, f"rill-checker-final-{os.getpid()}")
    try:
        high = {}
        for p in range(partitions):
            left = max(1.0, deadline - time.monotonic())
            marks = wait_for(f"high watermark of {topic}/{p}", left,
                             lambda p=p: consumer.get_watermark_offsets(
                                 ck.TopicPartition(topic, p), timeout=5.0))
            if marks is None:
                raise Aborted(f"final read: no high watermark for {topic}/{p}")
            high[p] = marks[1]
        records = {}
        position = {p: 0 for p in range(partitions)}
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING)
                         for p in range(partitions) if high[p] > 0])
        while any(position[p] < high[p] for p in range(partitions)):
            if time.monotonic() >= deadline:
                short = {p: (position[p], high[p])
                         for p in range(partitions) if position[p] < high[p]}
                raise Aborted(f"final read: not done within {timeout:.0f} s "
                              f"(position, high): {short}")
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                p, offset = msg.partition(), msg.offset()
                if offset < high[p]:
                    records[(p, offset)] = msg.value().decode()
                position[p] = max(position[p], offset + 1)
        return records, high
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------------
# Faults


class Faults:
    """Injects one fault a round and restores the cluster afterwards."""

    def __init__(self, cluster, network, admin, topic, partitions, rng, seconds, session_s):
        self.cluster = cluster
        self.network = network
        self.network_skip = None
        self.admin = admin
        self.topic = topic
        self.partitions = partitions
        self.rng = rng
        self.seconds = seconds
        self.session_s = session_s
        self.done = []
        self.unsettled = 0
        self.moves = 0

    def leader_of_some_partition(self):
        """(partition, leader, metadata) for a random partition whose leader is live."""
        def pick():
            view = partitions_view(self.admin, self.topic)
            live = self.cluster.live()
            candidates = [p for p, v in view.items() if v["leader"] in live]
            if not candidates:
                return None
            p = self.rng.choice(sorted(candidates))
            return p, view[p]["leader"], view
        found = wait_for("a partition with a live leader", 30, pick)
        if found is None:
            raise Aborted("no partition has a live leader")
        return found

    def run(self, name, number, total):
        """Runs fault `name`; returns its record."""
        started = elapsed()
        record = {"fault": name, "round": number, "start_s": round(started, 1),
                  "start_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        handler = {
            "kill-leader": self.kill_leader,
            "kill-follower": self.kill_follower,
            "kill-two": self.kill_two,
            "pause-leader": self.pause_leader,
            "partition-leader": self.partition_leader,
            "reassign": self.reassign,
        }[name]
        note = handler()
        record["note"] = note
        log(f"round {number}/{total}: {name}: {note}")
        if note.startswith("skipped"):
            record["skipped"] = True
        else:
            record["settle_s"] = self.settle()
        record["end_s"] = round(elapsed(), 1)
        self.done.append(record)
        return record

    def settle(self, timeout=60):
        """Waits until every partition has a live leader; returns the seconds it took, or None
        (counted as unsettled) if it did not happen within `timeout`."""
        began = time.monotonic()

        def settled():
            view = partitions_view(self.admin, self.topic)
            live = self.cluster.live()
            if len(view) == self.partitions and all(
                    v["leader"] in live and v["error"] is None for v in view.values()):
                return True
            return None
        if wait_for("every partition led by a live broker", timeout, settled) is None:
            self.unsettled += 1
            return None
        return round(time.monotonic() - began, 1)

    def _restart(self, brokers):
        """Starts the given brokers again, in order, each waited for."""
        for k in brokers:
            self.cluster.start_node(k)

    def kill_leader(self):
        """kill -9 of a partition's leader; it is started again after the fault time."""
        p, leader, _ = self.leader_of_some_partition()
        self.cluster.kill(leader)
        time.sleep(self.seconds)
        self._restart([leader])
        return f"partition {p}: killed leader {leader}, restarted it after {self.seconds:g} s"

    def kill_follower(self):
        """kill -9 of a follower of a partition (at RF 1, of a broker that does not lead it)."""
        p, leader, view = self.leader_of_some_partition()
        live = self.cluster.live()
        followers = [k for k in view[p]["replicas"] if k != leader and k in live]
        what = "follower"
        if not followers:
            followers = [k for k in live if k != leader]
            what = "non-leader (the partition has no live follower)"
        if not followers:
            return f"skipped: partition {p} has no live broker but its leader {leader}"
        victim = self.rng.choice(sorted(followers))
        self.cluster.kill(victim)
        time.sleep(self.seconds)
        self._restart([victim])
        return (f"partition {p} led by {leader}: killed {what} {victim}, restarted it after "
                f"{self.seconds:g} s")

    def kill_two(self):
        """kill -9 of a partition's leader, then of its next leader (or another broker)."""
        p, first, view = self.leader_of_some_partition()
        self.cluster.kill(first)
        half = self.seconds / 2
        began = time.monotonic()

        def new_leader():
            leader = partitions_view(self.admin, self.topic)[p]["leader"]
            return leader if leader in self.cluster.live() else None
        second = None
        if len(view[p]["replicas"]) > 1:
            second = wait_for(f"a new leader of partition {p}", half, new_leader)
        else:
            time.sleep(half)  # one replica: nobody else can lead it
        time.sleep(max(0.0, half - (time.monotonic() - began)))
        how = "its new leader"
        if second is None:
            others = [k for k in self.cluster.live() if k != first]
            if not others:
                self._restart([first])
                return f"skipped: no broker left to kill after {first}"
            second = self.rng.choice(sorted(others))
            how = "another broker (Metadata named no new leader)"
        self.cluster.kill(second)
        time.sleep(half)
        self._restart([first, second])
        return (f"partition {p}: killed leader {first}, then {how} {second}; restarted both "
                f"after {self.seconds:g} s")

    def pause_leader(self):
        """SIGSTOP of a partition's leader for longer than the session timeout, then SIGCONT."""
        p, leader, _ = self.leader_of_some_partition()
        pause = max(self.seconds, 2 * self.session_s)
        self.cluster.pause(leader)
        try:
            time.sleep(pause)
        finally:
            self.cluster.resume(leader)
        return f"partition {p}: paused leader {leader} for {pause:g} s, resumed it"

    def partition_leader(self):
        """Cuts a partition's leader off from the other brokers, then heals the network."""
        if self.network is None:
            return f"skipped: no network namespaces ({self.network_skip})"
        p, leader, _ = self.leader_of_some_partition()
        cut = max(self.seconds, 2 * self.session_s)
        self.network.isolate(leader)
        try:
            time.sleep(cut)
        finally:
            self.network.heal()
        clients = "and the clients" if self.network.cut_clients else "(clients still reached it)"
        return (f"partition {p}: cut leader {leader} off from the other brokers {clients} for "
                f"{cut:g} s, healed")


    def reassign(self):
        """Moves a partition to another set of brokers; every other move, kill -9 of its leader
        while the move is under way (the next leader goes on with it), started again after the
        fault time. Waits for the move to end."""
        p, leader, view = self.leader_of_some_partition()
        current = view[p]["replicas"]
        live = self.cluster.live()
        if len(current) < 2 or len(live) <= len(current):
            return (f"skipped: partition {p} has {len(current)} replica(s) and {len(live)} "
                    f"brokers are live: nowhere to move it")
        target = current
        while sorted(target) == sorted(current):
            target = self.rng.sample(sorted(live), len(current))
        move = subprocess.run(
            [rill_binary(self.cluster.rill), "topic", "reassign", "-b", self.cluster.bootstrap,
             self.topic, "--partition", str(p), "--replicas", ",".join(map(str, target))],
            capture_output=True, text=True, timeout=60, check=False)
        if move.returncode != 0:
            raise Aborted(f"rill topic reassign {p} to {target}: {move.stderr.strip()}")
        self.moves += 1
        killed = ""
        if self.moves % 2 == 0:
            time.sleep(0.2)
            self.cluster.kill(leader)
            time.sleep(self.seconds)
            self._restart([leader])
            killed = f", killed its leader {leader} during the move and restarted it"

        def moved():
            v = partitions_view(self.admin, self.topic).get(p)
            done = v is not None and v["replicas"] == target and sorted(v["isr"]) == sorted(target)
            return True if done else None
        if wait_for(f"the move of partition {p} to {target}", 60, moved) is None:
            raise Aborted(f"partition {p} did not move from {current} to {target} in 60 s")
        return f"partition {p}: moved from {current} to {target}{killed}"


def rill_binary(given):
    """The rill binary: the one given, else the build's (release first), else PATH's."""
    if given:
        return given
    for build in ("release", "debug"):
        candidate = ROOT / "target" / build / "rill"
        if candidate.is_file():
            return str(candidate)
    return "rill"


# ---------------------------------------------------------------------------------------------
# Checks


def check_history(acked, final, live_seen, live_conflicts, idempotent):
    """Compares what the producer was told and what the live consumer saw with the final read.

    acked: value -> (partition, offset); final: (partition, offset) -> value; live_seen:
    (partition, offset) -> value; live_conflicts: offsets the live consumer saw with two values.
    Returns counts and examples; `ok` is False if any check fails."""
    where_final = {}
    for place, value in final.items():
        where_final.setdefault(value, []).append(place)
    lost, moved, duplicated = [], [], []
    for value, place in sorted(acked.items(), key=lambda item: item[1]):
        places = where_final.get(value, [])
        if not places:
            lost.append({"value": value, "acked_at": list(place)})
        elif place not in places:
            moved.append({"value": value, "acked_at": list(place),
                          "found_at": [list(x) for x in sorted(places)]})
    for value, places in where_final.items():
        if len(places) > 1:
            duplicated.append({"value": value, "at": [list(x) for x in sorted(places)],
                               "acked": value in acked})
    conflicts = list(live_conflicts)
    for place, value in sorted(live_seen.items()):
        now = final.get(place)
        if now != value:
            conflicts.append({"partition": place[0], "offset": place[1], "seen": value,
                              "final": now})
    failing_duplicates = duplicated if idempotent else []
    ok = not (lost or moved or conflicts or failing_duplicates)
    return {
        "ok": ok,
        "acked": len(acked),
        "final_records": len(final),
        "live_seen": len(live_seen),
        "lost": len(lost),
        "moved": len(moved),
        "duplicated": len(duplicated),
        "duplicates_fail": idempotent,
        "consumer_conflicts": len(conflicts),
        "examples": {"lost": lost[:EXAMPLES], "moved": moved[:EXAMPLES],
                     "duplicated": duplicated[:EXAMPLES],
                     "consumer_conflicts": conflicts[:EXAMPLES]},
    }


def read_batches(partition_dir):
    """The record batches of one replica, in offset order, from its segment files:
    ([(base offset, last offset, batch bytes)], problems)."""
    batches, problems = [], []
    segments = sorted(f for f in Path(partition_dir).iterdir()
                      if f.suffix == ".log" and f.stem.isdigit() and len(f.stem) == 20)
    for n, segment in enumerate(segments):
        data = segment.read_bytes()
        last_segment = n == len(segments) - 1
        pos = 0
        while pos < len(data):
            if len(data) - pos < BATCH_HEADER.size:
                torn = "torn last batch" if last_segment else "trailing bytes"
                problems.append(f"{segment.name}: {torn} ({len(data) - pos} bytes) at byte {pos}")
                break
            base, length, _epoch, magic, _crc, _attrs, delta = BATCH_HEADER.unpack_from(data, pos)
            if length == 0 and not any(data[pos:]):
                break  # zero padding past the last batch
            if magic != 2 or length < MIN_BATCH_LENGTH or delta < 0:
                problems.append(f"{segment.name}: no batch at byte {pos} (magic {magic}, "
                                f"length {length})")
                break
            end = pos + 12 + length
            if end > len(data):
                torn = "torn last batch" if last_segment else "batch past the segment's end"
                problems.append(f"{segment.name}: {torn} at byte {pos}")
                break
            if batches and base <= batches[-1][1]:
                problems.append(f"{segment.name}: batch at offset {base} after one ending at "
                                f"{batches[-1][1]}")
            batches.append((base, base + delta, data[pos:end]))
            pos = end
    return batches, problems


def compare_replicas(replica_dirs, high):
    """Compares the replicas of each partition batch by batch below its high watermark.

    replica_dirs: partition -> {broker: directory}; high: partition -> high watermark.
    A replica shorter than the high watermark is reported as lagging (it may not be in sync);
    batches both replicas hold below the high watermark must be byte-identical, and a replica
    that holds a batch where another holds a different one (or none, inside the common
    prefix) diverges. Returns {ok, first_divergence, lagging, problems, batches}."""
    divergences, lagging, problems, compared, most = [], [], [], 0, 0
    for p in sorted(replica_dirs):
        logs = {}
        for broker, directory in sorted(replica_dirs[p].items()):
            batches, trouble = read_batches(directory)
            problems.extend(f"partition {p} broker {broker}: {t}" for t in trouble)
            logs[broker] = [b for b in batches if b[0] < high.get(p, 0)]
        if not logs:
            problems.append(f"partition {p}: no replica on disk")
            continue
        most = max(most, len(logs))
        ends = {b: (batches[-1][1] + 1 if batches else 0) for b, batches in logs.items()}
        for broker, end in ends.items():
            if end < high.get(p, 0):
                lagging.append({"partition": p, "broker": broker, "end": end,
                                "high": high.get(p, 0)})
        common = min(ends.values())
        reference_broker = max(ends, key=lambda b: (ends[b], -b))
        reference = {b[0]: b for b in logs[reference_broker] if b[0] < common}
        compared += len(reference)
        for broker, batches in logs.items():
            if broker == reference_broker:
                continue
            mine = {b[0]: b for b in batches if b[0] < common}
            for base in sorted(set(reference) | set(mine)):
                theirs, ours = reference.get(base), mine.get(base)
                if theirs is None or ours is None or theirs[2] != ours[2]:
                    if theirs is None or ours is None:
                        detail = f"missing on broker {broker if ours is None else reference_broker}"
                    else:
                        detail = "different batch bytes"
                    divergences.append({"partition": p, "offset": base,
                                        "brokers": [reference_broker, broker], "detail": detail})
                    break
    divergences.sort(key=lambda d: (d["partition"], d["offset"]))
    return {"ok": not divergences and not [x for x in problems if "torn" not in x],
            "first_divergence": divergences[0] if divergences else None,
            "divergences": divergences[:EXAMPLES], "lagging": lagging,
            "problems": problems[:EXAMPLES], "batches": compared, "most_replicas": most}


def replica_dirs_of(cluster_dir, brokers, topic, partitions):
    """partition -> {broker: its directory for the partition}, for the replicas on disk."""
    found = {p: {} for p in range(partitions)}
    for k in range(1, brokers + 1):
        for p in range(partitions):
            directory = Path(cluster_dir) / f"node-{k}" / f"{topic}-{p}"
            if directory.is_dir():
                found[p][k] = directory
    return found


# ---------------------------------------------------------------------------------------------
# The run


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Jepsen-style checker for Rill's replicated partitions (see the docstring "
                    "of this file and docs/reliability.md).")
    parser.add_argument("--brokers", type=int, default=3, help="brokers in the cluster (3)")
    parser.add_argument("--rf", type=int, default=3, help="replication factor of the topic (3)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the topic (3)")
    parser.add_argument("--faults", default="kill-leader,kill-follower,kill-two,pause-leader",
                        help=f"comma-separated faults taken in turn, from {', '.join(FAULTS)} "
                             "(default: all but partition-leader)")
    parser.add_argument("--order", choices=("cycle", "random"), default="cycle",
                        help="take the faults in the given order, over and over, or at random")
    parser.add_argument("--rounds", type=int, default=4, help="faults to inject in all (4)")
    parser.add_argument("--seconds-per-fault", type=float, default=5.0,
                        help="how long a broker stays killed, paused (at least twice the "
                             "session timeout) or cut off (5)")
    parser.add_argument("--quiet-seconds", type=float, default=1.0,
                        help="calm between a settled cluster and the next fault (1)")
    parser.add_argument("--warmup-seconds", type=float, default=2.0,
                        help="producing before the first fault (2)")
    parser.add_argument("--rate", type=float, default=250.0,
                        help="records a second the producer sends (250)")
    parser.add_argument("--no-idempotence", dest="idempotence", action="store_false",
                        help="enable.idempotence=false: duplicates are reported, not failures")
    parser.add_argument("--session-timeout-ms", type=int, default=1500,
                        help="the brokers' --broker-session-timeout-ms (1500)")
    parser.add_argument("--cluster-args", default="",
                        help="more `rill serve` arguments for every broker")
    parser.add_argument("--rill", default=os.environ.get("RILL_BIN"),
                        help="the rill binary (default: $RILL_BIN, else cluster.sh's choice)")
    parser.add_argument("--dir", help="where the cluster and the summary go (default: a temporary "
                                      "directory, removed on PASS)")
    parser.add_argument("--netns", choices=("auto", "on", "off"), default="auto",
                        help="run the brokers in network namespaces: auto does when "
                             "partition-leader is asked for and the machine allows it")
    parser.add_argument("--cut-clients", action="store_true",
                        help="partition-leader cuts the leader off from the clients too")
    parser.add_argument("--topic", default="checker", help="topic name (checker)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up (exit 2) after this many seconds (default: from the rounds)")
    parser.add_argument("--self-test", action="store_true",
                        help="check the checks on made-up histories and exit")
    # Hidden: drops acked records from the final read before checking, to show a loss fails.
    parser.add_argument("--inject-loss", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown or not faults:
        parser.error(f"unknown faults {unknown}; choose from {', '.join(FAULTS)}")
    args.faults = faults
    if args.rf > args.brokers or args.brokers < 1 or args.partitions < 1 or args.rounds < 0:
        parser.error("need 1 <= --rf <= --brokers, --partitions >= 1, --rounds >= 0")
    return args


def fault_plan(args, rng):
    """The faults to inject, in order."""
    if args.order == "random":
        return [rng.choice(args.faults) for _ in range(args.rounds)]
    return [args.faults[i % len(args.faults)] for i in range(args.rounds)]


def time_limit(args):
    """Seconds after which the run gives up."""
    if args.timeout:
        return args.timeout
    per_fault = 2 * max(args.seconds_per_fault, 2 * args.session_timeout_ms / 1000) + 120
    return 300 + args.warmup_seconds + args.rounds * (per_fault + args.quiet_seconds)


def create_topic(admin, topic, partitions, rf):
    """Creates the topic and waits until each partition has a leader."""
    ck_admin = kafka().admin
    futures = admin.create_topics([ck_admin.NewTopic(topic, partitions, rf)], request_timeout=15)
    try:
        futures[topic].result(30)
    except kafka().KafkaException as err:
        raise Aborted(f"creating topic {topic} ({partitions} partitions, RF {rf}): {err}") from err

    def ready():
        view = partitions_view(admin, topic)
        if len(view) == partitions and all(v["leader"] > 0 for v in view.values()):
            return view
        return None
    view = wait_for(f"leaders for {topic}", 30, ready)
    if view is None:
        raise Aborted(f"{topic}: not every partition got a leader")
    for p, v in sorted(view.items()):
        if len(v["replicas"]) != rf:
            raise Aborted(f"{topic}/{p} has replicas {v['replicas']}, not {rf}")
    log(f"topic {topic}: " + ", ".join(f"{p}: leader {v['leader']} replicas {v['replicas']}"
                                        for p, v in sorted(view.items())))


def wait_in_sync(admin, topic, timeout=30):
    """Waits until every partition's ISR holds all its replicas; returns whether it did."""
    def in_sync():
        view = partitions_view(admin, topic)
        whole = all(sorted(v["isr"]) == sorted(v["replicas"]) for v in view.values())
        return True if whole else None
    return wait_for("every replica in sync", timeout, in_sync) is not None


def result_line(verdict, history, replicas, faults, seconds, extra):
    """The one line that says how the run went."""
    counts = Counter(f["fault"] + (" skipped" if f.get("skipped") else "") for f in faults)
    done = sum(1 for f in faults if not f.get("skipped"))
    listing = ", ".join(f"{name} x{n}" for name, n in counts.items())
    if not replicas["ok"]:
        same = "replicas DIVERGE"
    elif replicas["most_replicas"] > 1:
        same = f"replicas identical ({replicas['batches']} batches)"
    else:
        same = f"one replica a partition ({replicas['batches']} batches parsed)"
    dup = "duplicated" if history["duplicates_fail"] else "duplicated (reported only)"
    text = (f"checker: {verdict} {history['acked']} acked, {history['lost']} lost, "
            f"{history['duplicated']} {dup}, {history['moved']} moved, "
            f"{history['consumer_conflicts']} consumer conflicts, {same}, "
            f"{done} faults ({listing or 'none'}), {seconds:.0f} s")
    return text + "".join(f"; {e}" for e in extra)


class Run:
    """One checker run: owns the cluster, the network and the clients, and cleans up."""

    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed if args.seed is not None else time.time_ns())
        self.seed = args.seed
        self.temp = args.dir is None
        self.dir = Path(args.dir or tempfile.mkdtemp(prefix="rill-checker-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.network = None
        self.network_skip = None
        self.cluster = None
        self.producer = None
        self.consumer = None
        self.summary = {}

    def prepare_network(self):
        """Decides whether the brokers run in namespaces and makes them if so."""
        wanted = self.args.netns == "on" or (
            self.args.netns == "auto" and "partition-leader" in self.args.faults)
        if self.args.netns == "off":
            self.network_skip = "--netns off"
            return
        if not wanted:
            return
        reason = Network.unavailable_reason()
        if reason is not None:
            self.network_skip = reason
            if self.args.netns == "on":
                raise Aborted(f"--netns on: {reason}")
            log(f"network: partition-leader will be skipped: {reason}")
            return
        self.network = Network(self.args.brokers, self.args.cut_clients)
        self.network.setup()

    def execute(self):
        """Runs the cluster, the clients and the faults; returns the exit status."""
        args = self.args
        cluster_dir = self.dir / "cluster"
        if (cluster_dir / "cluster.env").exists():
            shutil.rmtree(cluster_dir)
        handler = logging.FileHandler(self.dir / "clients.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        CLIENT_LOG.addHandler(handler)
        self.prepare_network()
        cluster_args = (f"--broker-session-timeout-ms {args.session_timeout_ms} "
                        f"{args.cluster_args}").strip()
        self.cluster = Cluster(cluster_dir, args.brokers, args.rill, cluster_args, self.network)
        self.cluster.start()
        ck = kafka()
        admin = ck.admin.AdminClient({"bootstrap.servers": self.cluster.bootstrap,
                                      "logger": CLIENT_LOG})
        create_topic(admin, args.topic, args.partitions, args.rf)
        tag = f"r{os.getpid()}"
        self.producer = ProducerWorker(self.cluster.bootstrap, args.topic, args.partitions,
                                       args.rate, args.idempotence, tag)
        self.consumer = ConsumerWorker(self.cluster.bootstrap, args.topic, args.partitions, tag)
        self.producer.start()
        self.consumer.start()
        time.sleep(args.warmup_seconds)
        faults = Faults(self.cluster, self.network, admin, args.topic, args.partitions, self.rng,
                        args.seconds_per_fault, args.session_timeout_ms / 1000)
        faults.network_skip = self.network_skip
        plan = fault_plan(args, self.rng)
        for number, name in enumerate(plan, start=1):
            self.check_workers()
            faults.run(name, number, len(plan))
            time.sleep(args.quiet_seconds)
        log(f"faults done; producer sent {self.producer.sent}, "
            f"{len(self.producer.acked)} acked so far; flushing")
        self.producer.stopping.set()
        self.producer.join(self.producer.flush_timeout + 15)
        if self.producer.is_alive():
            raise Aborted("the producer did not finish flushing")
        final, high = final_read(self.cluster.bootstrap, args.topic, args.partitions, 120)
        # The live consumer gets to catch up with the final high watermarks before it stops.
        wait_for("the live consumer to reach the high watermarks", 20,
                 lambda: True if all(self.consumer.next.get(p, 0) >= high[p] for p in high)
                 else None)
        self.consumer.stopping.set()
        self.consumer.join(15)
        in_sync = wait_in_sync(admin, args.topic) if args.rf > 1 else True
        log(f"final read: {len(final)} records, high watermarks {high}; stopping the cluster")
        log(self.cluster.stop())
        return self.verdict(final, high, faults, in_sync)

    def check_workers(self):
        """Aborts if a client thread died."""
        for worker in (self.producer, self.consumer):
            if worker.crashed:
                raise Aborted(f"the {worker.name} crashed: {worker.crashed}")

    def verdict(self, final, high, faults, in_sync):
        """Checks the history and the replicas; prints the result line; returns the status."""
        args = self.args
        acked = dict(self.producer.acked)
        if args.inject_loss:
            dropped = sorted(acked.items(), key=lambda item: item[1])[:args.inject_loss]
            for _value, place in dropped:
                final.pop(place, None)
            log(f"--inject-loss: removed {len(dropped)} acknowledged records from the final read")
        history = check_history(acked, final, self.consumer.seen, self.consumer.conflicts,
                                args.idempotence)
        replicas = compare_replicas(
            replica_dirs_of(self.cluster.dir, args.brokers, args.topic, args.partitions), high)
        extra = []
        failed = not history["ok"] or not replicas["ok"]
        for item in self.producer.ack_conflicts[:1]:
            extra.append(f"two values acked at {item['partition']}/{item['offset']}")
            failed = True
        if self.producer.fatal_errors:
            extra.append(f"{len(self.producer.fatal_errors)} fatal producer errors "
                         f"(first: {self.producer.fatal_errors[0]})")
            failed = True
        if replicas["first_divergence"]:
            d = replicas["first_divergence"]
            extra.append(f"first divergence: partition {d['partition']} offset {d['offset']} "
                         f"brokers {d['brokers']}: {d['detail']}")
        if faults.unsettled:
            extra.append(f"{faults.unsettled} faults after which the cluster did not settle")
        if not in_sync:
            extra.append("replicas not all in sync at the end")
        for worker in (self.producer, self.consumer):
            if worker.crashed:
                extra.append(f"{worker.name} crashed: {worker.crashed}")
                failed = True
        verdict = "FAIL" if failed else "PASS"
        line = result_line(verdict, history, replicas, faults.done, elapsed(), extra)
        self.summary = {
            "result": line, "verdict": verdict, "seconds": round(elapsed(), 1),
            "args": {k: v for k, v in vars(args).items() if k != "self_test"}, "seed": self.seed,
            "producer": {"sent": self.producer.sent, "acked": len(acked),
                         "failed": len(self.producer.failed),
                         "failed_errors": dict(Counter(self.producer.failed.values())),
                         "unresolved": self.producer.unresolved,
                         "fatal_errors": self.producer.fatal_errors,
                         "ack_conflicts": self.producer.ack_conflicts[:EXAMPLES]},
            "consumer": {"seen": len(self.consumer.seen), "errors": dict(self.consumer.errors)},
            "high_watermarks": high, "history": history, "replicas": replicas,
            "faults": faults.done, "unsettled": faults.unsettled,
            "network": None if self.network is None else {"subnet": self.network.subnet},
            "network_skip": self.network_skip, "replicas_in_sync_at_end": in_sync,
        }
        self.write_summary()
        if failed:
            self.write_history(acked, final)
        for kind in ("lost", "moved", "duplicated", "consumer_conflicts"):
            for example in history["examples"][kind][:3]:
                log(f"{kind}: {json.dumps(example)}")
        for problem in replicas["problems"][:5]:
            log(f"replicas: {problem}")
        for lag in replicas["lagging"][:5]:
            log(f"replicas: lagging {json.dumps(lag)}")
        print(line, flush=True)
        return 1 if failed else 0

    def write_history(self, acked, final):
        """Writes DIR/history.jsonl, every event the verdict was made from, for a post-mortem:
        acknowledgements, failed deliveries, the live consumer's reads and the final read."""
        path = self.dir / "history.jsonl"
        with path.open("w") as out:
            for value, (p, offset) in sorted(acked.items(), key=lambda item: item[1]):
                out.write(json.dumps({"ack": value, "p": p, "o": offset}) + "\n")
            for value, error in sorted(self.producer.failed.items()):
                out.write(json.dumps({"failed": value, "error": error}) + "\n")
            for (p, offset), value in sorted(self.consumer.seen.items()):
                out.write(json.dumps({"seen": value, "p": p, "o": offset}) + "\n")
            for (p, offset), value in sorted(final.items()):
                out.write(json.dumps({"final": value, "p": p, "o": offset}) + "\n")
        log(f"history: {path}")

    def write_summary(self):
        """Writes DIR/checker-summary.json."""
        path = self.dir / SUMMARY_FILE
        path.write_text(json.dumps(self.summary, indent=1, default=str) + "\n")
        log(f"summary: {path}")

    def cleanup(self, status):
        """Stops the clients, the brokers and the network, whatever happened."""
        for worker in (self.producer, self.consumer):
            if worker is not None:
                worker.stopping.set()
        if self.network is not None:
            self.network.heal()
        if self.cluster is not None:
            self.cluster.cleanup()
        if self.network is not None:
            self.network.teardown()
        if self.temp and status == 0:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.temp:
            log(f"kept {self.dir} for inspection")


def on_signal(signum, _frame):
    """Turns SIGTERM, SIGINT and the time limit into Aborted, so cleanup runs."""
    raise Aborted(f"signal {signal.Signals(signum).name}")


def main(argv):
    """Parses the flags, runs the checker or its self-test; returns the exit status."""
    args = parse_args(argv)
    if args.self_test:
        return self_test()
    limit = time_limit(args)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    signal.alarm(int(limit) + 1)
    run = Run(args)
    status = 2
    log(f"checker: {args.brokers} brokers, RF {args.rf}, {args.partitions} partitions, "
        f"{args.rounds} faults from {','.join(args.faults)}, {args.seconds_per_fault:g} s each, "
        f"idempotence {'on' if args.idempotence else 'off'}, limit {limit:.0f} s, dir {run.dir}")
    try:
        status = run.execute()
    except Aborted as err:
        reason = "time limit" if "SIGALRM" in str(err) else str(err)
        print(f"checker: ERROR {reason} after {elapsed():.0f} s (could not check; dir {run.dir})",
              flush=True)
    except Exception:  # noqa: BLE001 - a bug here must still clean up and exit 2, not 1
        traceback.print_exc()
        print(f"checker: ERROR unexpected exception after {elapsed():.0f} s (dir {run.dir})",
              flush=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.cleanup(status)
    return status


# ---------------------------------------------------------------------------------------------
# Self-test: the checks must fail on histories made wrong on purpose


def make_batch(base, count, payload, epoch=0):
    """A fake RecordBatch v2 (header fields right, contents arbitrary) of `count` records."""
    body = struct.pack(">ibIhi", epoch, 2, 0, 0, count - 1) + payload.ljust(40, b".")
    return struct.pack(">qi", base, len(body)) + body


def self_test():
    """Runs the checks on good and bad made-up inputs; returns 0 if each verdict is right."""
    acked = {f"v{i}": (i % 2, i // 2) for i in range(10)}
    final = {place: value for value, place in acked.items()}
    cases = []

    def case(name, want_ok, got):
        cases.append((name, want_ok, got["ok"]))
        shown = ("lost", "moved", "duplicated", "consumer_conflicts", "first_divergence")
        counts = json.dumps({k: got[k] for k in shown if k in got})
        print(f"self-test: {name}: {'ok' if got['ok'] else 'FAIL'} "
              f"(want {'ok' if want_ok else 'FAIL'}) {counts}")

    case("clean history", True, check_history(acked, dict(final), dict(final), [], True))
    lossy = dict(final)
    del lossy[(0, 2)]
    case("an acked record missing", False, check_history(acked, lossy, {}, [], True))
    moved = dict(final)
    moved[(0, 9)] = moved.pop((0, 3))
    case("an acked record at another offset", False, check_history(acked, moved, {}, [], True))
    dup = dict(final)
    dup[(1, 7)] = "v1"
    case("a duplicate, idempotent", False, check_history(acked, dup, {}, [], True))
    case("a duplicate, not idempotent", True, check_history(acked, dup, {}, [], False))
    unacked = dict(final)
    unacked[(1, 7)] = "v-unacked"
    case("an unacknowledged record present", True, check_history(acked, unacked, {}, [], True))
    seen = dict(final)
    seen[(1, 8)] = "v-read-then-gone"
    case("consumer saw an offset later gone", False, check_history(acked, final, seen, [], True))
    seen = dict(final)
    seen[(0, 1)] = "v-other"
    case("consumer saw other data at an offset", False, check_history(acked, final, seen, [], True))

    with tempfile.TemporaryDirectory(prefix="rill-checker-selftest-") as tmp:
        def replica(name, batches, tail=b""):
            directory = Path(tmp) / name
            directory.mkdir()
            (directory / f"{0:020d}.log").write_bytes(b"".join(batches[:2]))
            (directory / f"{2 * 5:020d}.log").write_bytes(b"".join(batches[2:]) + tail)
            return directory
        good = [make_batch(5 * i, 5, f"batch{i}".encode()) for i in range(4)]
        bad = list(good)
        bad[2] = make_batch(10, 5, b"something else")
        dirs = {0: {1: replica("a", good), 2: replica("b", good, tail=good[3][:30]),
                    3: replica("c", good[:3])}}
        case("identical replicas (one torn tail, one lagging)", True,
             compare_replicas(dirs, {0: 20}))
        dirs[0][4] = replica("d", bad)
        case("a replica with other bytes at offset 10", False, compare_replicas(dirs, {0: 20}))
        above = {0: {1: replica("e", good), 2: replica("f", good[:3] + [make_batch(15, 5, b"x")])}}
        case("replicas differing above the high watermark only", True,
             compare_replicas(above, {0: 15}))
        garbled = {0: {1: replica("g", good), 2: replica("h", [good[0], b"\x01" * 70] + good[2:])}}
        case("a replica with a garbled batch", False, compare_replicas(garbled, {0: 20}))
    wrong = [name for name, want, got in cases if want != got]
    print(f"self-test: {'PASS' if not wrong else 'FAIL'} {len(cases) - len(wrong)}/{len(cases)} "
          f"verdicts right{'; wrong: ' + ', '.join(wrong) if wrong else ''}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
