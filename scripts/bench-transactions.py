#!/usr/bin/env python3
"""What transactions cost, measured with librdkafka (confluent-kafka) against one `rill serve`
at its defaults (acks=all answered after fsync), side by side in one run:

  - produce: RECORDS records of SIZE bytes to a 1-partition topic, acks=all and idempotent
    (librdkafka's settings for transactions, without them), then transactional with a commit
    every 1, 10 and 100 batches (a batch is BATCH bytes: batch.size, linger 5 ms), each as a
    ratio of the non-transactional run;
  - read_committed catch-up: the 10-batch topic read from the start with read_committed and
    with read_uncommitted (the same records; read_committed also drops nothing here);
  - the aborted-transaction index on the fetch path when there are no aborts: a topic written
    without transactions read both ways.
Each measurement is the median of ROUNDS rounds, interleaved. Prints one JSON line per
measurement and a summary, also into --out.

    .venv/bin/python scripts/bench-transactions.py [--rill target/release/rill] \
        [--records 200000] [--size 1024] [--batch 65536] [--rounds 3] [--out FILE]
"""

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(rill, data_dir):
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [rill, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, bootstrap
        except OSError:
            time.sleep(0.1)
    sys.exit("rill did not start")


def create(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result()


def produce(bootstrap, topic, records, size, batch, per_txn):
    """Seconds to produce `records`, committing every `per_txn` records (0: no transactions)."""
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.size": batch,
        "queue.buffering.max.messages": 1000000,
        "queue.buffering.max.kbytes": 1048576,
    }
    if per_txn:
        config["transactional.id"] = f"bench-{uuid.uuid4()}"
    p = Producer(config)
    if per_txn:
        p.init_transactions(30)
    value = b"x" * size
    start_time = time.monotonic()
    sent = 0
    while sent < records:
        n = min(per_txn or records, records - sent)
        if per_txn:
            p.begin_transaction()
        for _ in range(n):
            while True:
                try:
                    p.produce(topic, value=value, partition=0)
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
        if per_txn:
            p.commit_transaction(60)
        sent += n
    p.flush(120)
    return time.monotonic() - start_time


def consume(bootstrap, topic, records, isolation):
    """Seconds to read `records` records of `topic` from the start."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "fetch.max.bytes": 52428800,
        "max.partition.fetch.bytes": 1048576,
    })
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    start_time = time.monotonic()
    while got < records:
        for m in c.consume(10000, 1.0):
            if m.error() is None:
                got += 1
    seconds = time.monotonic() - start_time
    c.close()
    return seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rill", default="target/release/rill")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    per_batch = max(1, args.batch // args.size)
    kinds = [("plain", 0), ("txn-1-batch", per_batch), ("txn-10-batches", 10 * per_batch),
             ("txn-100-batches", 100 * per_batch)]
    results = {name: [] for name, _ in kinds}
    reads = {k: [] for k in ("committed", "uncommitted", "plain-committed", "plain-uncommitted")}
    lines = []
    with tempfile.TemporaryDirectory(prefix="rill-bench-txn-") as data:
        proc, bootstrap = start(args.rill, data)
        try:
            for r in range(args.rounds):
                topics = {}
                for name, per_txn in kinds:
                    topic = f"{name}-{r}"
                    create(bootstrap, topic)
                    topics[name] = topic
                    s = produce(bootstrap, topic, args.records, args.size, args.batch, per_txn)
                    results[name].append(args.records / s)
                    line = {"op": "produce", "kind": name, "round": r,
                            "records_per_s": round(args.records / s)}
                    lines.append(line)
                    print(json.dumps(line), flush=True)
                for key, topic, isolation in (
                        ("committed", topics["txn-10-batches"], "read_committed"),
                        ("uncommitted", topics["txn-10-batches"], "read_uncommitted"),
                        ("plain-committed", topics["plain"], "read_committed"),
                        ("plain-uncommitted", topics["plain"], "read_uncommitted")):
                    s = consume(bootstrap, topic, args.records, isolation)
                    reads[key].append(args.records / s)
                    line = {"op": "consume", "kind": key, "round": r,
                            "records_per_s": round(args.records / s)}
                    lines.append(line)
                    print(json.dumps(line), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    med = {k: statistics.median(v) for k, v in results.items()}
    rmed = {k: statistics.median(v) for k, v in reads.items()}
    summary = {
        "records": args.records, "size": args.size, "batch_records": per_batch,
        "produce_records_per_s": {k: round(v) for k, v in med.items()},
        "produce_ratio_to_plain": {k: round(v / med["plain"], 3) for k, v in med.items()},
        "read_committed_over_uncommitted": round(rmed["committed"] / rmed["uncommitted"], 3),
        "no_aborts_read_committed_over_uncommitted":
            round(rmed["plain-committed"] / rmed["plain-uncommitted"], 3),
        "consume_records_per_s": {k: round(v) for k, v in rmed.items()},
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
            f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
