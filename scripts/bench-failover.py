#!/usr/bin/env python3
"""Failover of a replicated partition: how long a partition takes no writes when its leader dies.

A 3-broker cluster on this machine (scripts/cluster.sh, every broker at its defaults), a topic of
1 partition at replication factor 3, and one acks=all producer (confluent-kafka / librdkafka:
idempotent, linger 0, otherwise its defaults) sending one record every INTERVAL ms from a thread
of its own; each record carries its send time and each delivery report is timestamped. TRIES times:
  1. find the partition's leader (Metadata from a broker), wait until its in-sync replicas are
     all three;
  2. kill -9 the leader (the clock starts just before the signal);
  3. measure from the kill to
       - ack: the first successful delivery of a record sent after the kill (the partition takes
         writes again, as the producer sees it: election, the new leader's announcement through
         the metadata log, the client's metadata refresh and retry included);
       - leader: the first Metadata answer (polled every 50 ms through a surviving broker) that
         names another leader;
  4. restart the killed broker (cluster.sh start-node), wait until the partition's ISR is the
     three brokers again, then SETTLE s more.
Delivery failures (after librdkafka's own retries) are counted; there should be none.

    .venv/bin/python scripts/bench-failover.py [--rill target/release/rill] [--tries 20] \
        [--interval-ms 5] [--settle 3] [--keep]

Prints one JSON line per try and a summary (p50, max, min of each), also into --out.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from cluster_nodes import CLUSTER, ROOT, node_port, pid_of
TOPIC = "failover"








def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def dump_counters(directory, ids):
    """Prints each live broker's request and error counters (its admin /metrics)."""
    import urllib.request
    for k in ids:
        admin = node_port(directory, k, "ADMIN")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError as err:
            print(f"broker {k}: no metrics ({err})", file=sys.stderr)
            continue
        for line in text.splitlines():
            if line.startswith(("rill_errors_total", "rill_requests_total")):
                print(f"broker {k}: {line}", file=sys.stderr)


def partition_state(admin):
    """(leader, isr) of partition 0, or (None, []) if unknown."""
    try:
        md = admin.list_topics(TOPIC, timeout=1)
        p = md.topics[TOPIC].partitions[0]
        return p.leader, list(p.isrs)
    except Exception:  # a broker down, a timeout: unknown
        return None, []


class Load:
    """One record every interval from a thread; deliveries timestamped."""

    def __init__(self, bootstrap, interval, debug=False):
        config = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
        }
        if debug:
            # librdkafka's idempotence and request logs, to stderr with a timestamp.
            config["debug"] = "eos,protocol"
        # librdkafka's statistics every 2 s (its idempotence state, queues and requests in
        # flight per broker), the last kept for a stall report.
        self.stats = None
        config["statistics.interval.ms"] = 2000
        config["stats_cb"] = self.keep_stats
        self.producer = Producer(config)
        self.interval = interval
        self.lock = threading.Lock()
        self.acks = []  # (send time, ack time) of successful deliveries
        self.failed = 0
        self.first_error = None
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        next_send = time.monotonic()
        while not self.stopping:
            sent = time.monotonic()

            def on_delivery(err, _msg, sent=sent):
                now = time.monotonic()
                with self.lock:
                    if err is None:
                        self.acks.append((sent, now))
                    else:
                        self.failed += 1
                        self.first_error = self.first_error or str(err)

            try:
                self.producer.produce(TOPIC, value=b"x" * 100, on_delivery=on_delivery)
            except BufferError:
                pass
            self.producer.poll(0)
            next_send += self.interval
            delay = next_send - time.monotonic()
            if delay > 0:
                self.producer.poll(delay)
        self.producer.flush(30)

    def keep_stats(self, text):
        self.stats = text

    def stall_report(self):
        """What librdkafka's last statistics say of the producer: idempotence state, and per
        broker and partition what is queued and in flight."""
        if not self.stats:
            return "no statistics"
        stats = json.loads(self.stats)
        lines = [f"eos: {stats.get('eos')}", f"msg_cnt {stats.get('msg_cnt')}"]
        for name, b in stats.get("brokers", {}).items():
            lines.append(f"broker {name}: state {b.get('state')} outbuf {b.get('outbuf_cnt')} "
                         f"waitresp {b.get('waitresp_cnt')} req_timeouts {b.get('req_timeouts')} "
                         f"txerrs {b.get('txerrs')} rxerrs {b.get('rxerrs')}")
        for topic in stats.get("topics", {}).values():
            for p, tp in topic.get("partitions", {}).items():
                if p == "-1":
                    continue
                lines.append(f"partition {p}: leader {tp.get('leader')} msgq {tp.get('msgq_cnt')} "
                             f"xmit_msgq {tp.get('xmit_msgq_cnt')} txmsgs {tp.get('txmsgs')} "
                             f"acked_msgid {tp.get('acked_msgid')} next_ack_seq "
                             f"{tp.get('next_ack_seq')} next_err_seq {tp.get('next_err_seq')}")
        return "\n".join(lines)

    def first_ack_sent_after(self, t):
        with self.lock:
            times = [a for s, a in self.acks if s >= t]
        return min(times) if times else None

    def stop(self):
        self.stopping = True
        self.thread.join()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rill", default=os.path.join(ROOT, "target", "release", "rill"))
    p.add_argument("--tries", type=int, default=20)
    p.add_argument("--interval-ms", type=float, default=5)
    p.add_argument("--settle", type=float, default=3)
    p.add_argument("--out", default=os.path.join(ROOT, "target", "bench-failover.jsonl"))
    p.add_argument("--keep", action="store_true", help="keep the cluster dir (logs) afterwards")
    p.add_argument("--debug", action="store_true",
                   help="librdkafka's eos and protocol logs on stderr")
    args = p.parse_args()
    rill = os.path.abspath(args.rill)
    env = dict(os.environ, RILL_BIN=rill)
    tmp = tempfile.mkdtemp(prefix="bench-failover-")
    out = open(args.out, "a")
    results = []

    def emit(**fields):
        line = json.dumps(fields)
        print(line, flush=True)
        out.write(line + "\n")
        out.flush()

    def cluster(*a):
        return subprocess.run([CLUSTER, *a, tmp], env=env, check=True, capture_output=True,
                              text=True).stdout.strip().splitlines()

    bootstrap = cluster("start", "3")[-1]
    ids = [1, 2, 3]
    load = None
    try:
        subprocess.run([rill, "topic", "create", TOPIC, "-p", "1", "-r", "3", "-b", bootstrap],
                       check=True, capture_output=True)
        admins = {k: AdminClient({"bootstrap.servers": f"127.0.0.1:{node_port(tmp, k, 'KAFKA')}"})
                  for k in ids}
        load = Load(bootstrap, args.interval_ms / 1000, args.debug)
        emit(machine={"nproc": os.cpu_count(), "kernel": os.uname().release,
                      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
             interval_ms=args.interval_ms)
        for attempt in range(args.tries):
            # 1. A leader, all three in sync, and the producer getting acknowledgements.
            deadline = time.monotonic() + 120
            while True:
                leader, isr = partition_state(admins[ids[attempt % 3]])
                if leader in ids and sorted(isr) == ids:
                    mark = time.monotonic()
                    time.sleep(0.2)
                    if load.first_ack_sent_after(mark) is not None:
                        break
                if time.monotonic() > deadline:
                    dump_counters(tmp, ids)
                    print(load.stall_report(), file=sys.stderr)
                    raise RuntimeError(f"no settled leader: leader {leader}, isr {isr}")
                time.sleep(0.1)
            with load.lock:
                failed_before = load.failed
            survivor = next(k for k in ids if k != leader)
            pid = pid_of(tmp, leader)
            # 2. kill -9.
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            # 3. The new leader in metadata, then the first acknowledged write sent after the kill.
            new_leader_at = new_leader = None
            ack = None
            deadline = killed + 60
            while time.monotonic() < deadline and (new_leader_at is None or ack is None):
                if new_leader_at is None:
                    l, _ = partition_state(admins[survivor])
                    if l in ids and l != leader:
                        new_leader_at, new_leader = time.monotonic(), l
                if ack is None:
                    ack = load.first_ack_sent_after(killed)
                time.sleep(0.05)
            while alive(pid):
                time.sleep(0.01)
            with load.lock:
                failed = load.failed - failed_before
            row = {
                "attempt": attempt,
                "killed": leader,
                "new_leader": new_leader,
                "ack_ms": round((ack - killed) * 1000, 1) if ack else None,
                "leader_in_metadata_ms": round((new_leader_at - killed) * 1000, 1)
                if new_leader_at else None,
                "failed_deliveries": failed,
            }
            results.append(row)
            emit(**row)
            # 4. Back to three brokers.
            cluster("start-node", str(leader))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                _, isr = partition_state(admins[survivor])
                if sorted(isr) == ids:
                    break
                time.sleep(0.2)
            else:
                emit(warning=f"attempt {attempt}: ISR not back to 3 within 120 s: {isr}")
            time.sleep(args.settle)
        load.stop()
        with load.lock:
            total, failed, first_error = len(load.acks), load.failed, load.first_error
        load = None
        summary = {"tries": len(results), "acked": total, "failed_deliveries": failed,
                   "first_error": first_error}
        for key in ("ack_ms", "leader_in_metadata_ms"):
            v = sorted(r[key] for r in results if r[key] is not None)
            if v:
                summary[key] = {"p50": round(statistics.median(v), 1), "max": v[-1], "min": v[0],
                                "n": len(v)}
        emit(summary=summary)
    finally:
        if load is not None:
            load.stopping = True
        subprocess.run([CLUSTER, "stop", tmp], env=env, capture_output=True)
        if args.keep:
            print(f"cluster dir kept: {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
