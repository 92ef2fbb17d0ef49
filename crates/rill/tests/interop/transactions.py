#!/usr/bin/env python3
"""Transactions with librdkafka's transactional API (confluent-kafka), every client setting at
its default except the transactional id (and the timeout where the scenario is about it).
Prints one JSON document describing what the clients saw.

    transactions.py BOOTSTRAP commit-abort TOPIC
        Three transactions on partition 0 of TOPIC: 10 records committed, 10 aborted, 10
        committed. Reads the partition from the start with a read_committed and a
        read_uncommitted consumer: {"committed": [[offset, value]...], "uncommitted": [...],
        "committed_end": <low/high watermarks seen>}.

    transactions.py BOOTSTRAP keyed TOPIC
        Three keyed transactions on partition 0 of TOPIC (a compacted one): c1 commits k0-k9,
        a aborts k0-k9, c2 commits k5-k14: {"done": true}.

    transactions.py BOOTSTRAP spread TOPIC PARTITIONS
        Six transactions over every partition of TOPIC (the 2nd and 5th aborted), records
        round robin: {"committed": [[partition, offset, value]...], "uncommitted": [...]}.

    transactions.py BOOTSTRAP leave-open TOPIC N
        Writes N records to partition 0 of TOPIC in a transaction and exits without ending
        it: {"left_open": N}.

    transactions.py BOOTSTRAP read TOPIC PARTITIONS ISOLATION
        Every record of TOPIC as ISOLATION (read_committed, read_uncommitted) sees them:
        {"records": [[partition, offset, value]...]}.

    transactions.py BOOTSTRAP fence TOPIC
        Producer A opens a transaction and writes; producer B initializes with the same
        transactional id; A's commit must fail as fenced. {"a_commit": <error>, "b_commit":
        "ok", "committed": [values seen by read_committed]}.

    transactions.py BOOTSTRAP timeout TOPIC
        A transaction (transaction.timeout.ms=2000) writes and then waits 6 s: the coordinator
        aborts it. {"commit": <error>, "committed": [...], "lso_moved": bool}.

    transactions.py BOOTSTRAP exactly-once INPUT OUTPUT GROUP COUNT
        Produces COUNT records to INPUT, then a consume-transform-produce loop copies them to
        OUTPUT (value upper-cased) with the input offsets committed in the same transactions.
        {"output": [values read_committed], "committed_offset": <group's offset of INPUT-0>}.
"""

import os
import sys
import time
import uuid

import common


def read_all(bootstrap, topic, isolation, seconds=20.0, partitions=1, with_partition=False):
    """Every record of partitions 0..`partitions` of `topic` as [offset, value] (with
    `with_partition`, [partition, offset, value]) from a consumer with
    `isolation.level=isolation`, read until it reaches the end it is allowed to see in each."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"reader-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    ended = set()
    deadline = common.Deadline(seconds)
    while len(ended) < partitions and not deadline.expired():
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                ended.add(msg.partition())
                continue
            common.fail(f"consume from {topic}: {msg.error()}")
        record = [msg.offset(), msg.value().decode()]
        got.append([msg.partition()] + record if with_partition else record)
    consumer.close()
    if len(ended) < partitions:
        common.fail(f"{topic}: only partitions {sorted(ended)} reached their end")
    return got


def producer(bootstrap, transactional_id, **extra):
    from confluent_kafka import Producer

    config = {"bootstrap.servers": bootstrap, "transactional.id": transactional_id}
    config.update(extra)
    p = Producer(config)
    p.init_transactions(30)
    return p


def commit_abort(bootstrap, topic):
    p = producer(bootstrap, f"txn-{uuid.uuid4()}")
    for prefix, commit in (("c1", True), ("a", False), ("c2", True)):
        p.begin_transaction()
        for i in range(10):
            p.produce(topic, value=f"{prefix}-{i}".encode(), partition=0)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    committed = read_all(bootstrap, topic, "read_committed")
    uncommitted = read_all(bootstrap, topic, "read_uncommitted")
    common.emit({"committed": committed, "uncommitted": uncommitted})


def keyed(bootstrap, topic):
    p = producer(bootstrap, f"txn-{uuid.uuid4()}")
    for prefix, keys, commit in (("c1", range(0, 10), True), ("a", range(0, 10), False),
                                 ("c2", range(5, 15), True)):
        p.begin_transaction()
        for i in keys:
            p.produce(topic, key=f"k{i}".encode(), value=f"{prefix}-{i}".encode(), partition=0)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    common.emit({"done": True})


def spread(bootstrap, topic, partitions):
    """Transactions over every partition of TOPIC: 4 committed and 2 aborted, each of 30
    records spread round robin."""
    p = producer(bootstrap, f"txn-{uuid.uuid4()}")
    for t, commit in enumerate((True, False, True, True, False, True)):
        p.begin_transaction()
        for i in range(30):
            p.produce(topic, value=f"t{t}-{i}".encode(), partition=i % partitions)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    committed = read_all(bootstrap, topic, "read_committed", partitions=partitions,
                         with_partition=True)
    uncommitted = read_all(bootstrap, topic, "read_uncommitted", partitions=partitions,
                           with_partition=True)
    common.emit({"committed": committed, "uncommitted": uncommitted})


def fence(bootstrap, topic):
    from confluent_kafka import KafkaException

    tid = f"txn-{uuid.uuid4()}"
    a = producer(bootstrap, tid)
    a.begin_transaction()
    a.produce(topic, value=b"zombie", partition=0)
    a.flush(30)
    b = producer(bootstrap, tid)
    b.begin_transaction()
    b.produce(topic, value=b"successor", partition=0)
    b.flush(30)
    b.commit_transaction(30)
    a_commit = "ok"
    try:
        a.produce(topic, value=b"zombie-2", partition=0)
        a.flush(10)
        a.commit_transaction(10)
    except KafkaException as err:
        e = err.args[0]
        a_commit = {"fatal": e.fatal(), "name": e.name()}
    committed = [v for _, v in read_all(bootstrap, topic, "read_committed")]
    common.emit({"a_commit": a_commit, "b_commit": "ok", "committed": committed})


def timeout(bootstrap, topic):
    from confluent_kafka import KafkaException

    p = producer(bootstrap, f"txn-{uuid.uuid4()}", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"late-{i}".encode(), partition=0)
    p.flush(30)
    time.sleep(6)
    commit = "ok"
    try:
        p.commit_transaction(10)
    except KafkaException as err:
        e = err.args[0]
        commit = {"fatal": e.fatal(), "abortable": e.txn_requires_abort(), "name": e.name()}
    # A new transaction from a fresh producer commits after the aborted one: a read_committed
    # reader gets past the aborted records to it (the last stable offset moved on).
    q = producer(bootstrap, f"txn-{uuid.uuid4()}")
    q.begin_transaction()
    q.produce(topic, value=b"after", partition=0)
    q.commit_transaction(30)
    committed = [v for _, v in read_all(bootstrap, topic, "read_committed")]
    common.emit({"commit": commit, "committed": committed})


def exactly_once(bootstrap, source, sink, group, count):
    from confluent_kafka import Consumer, Producer, TopicPartition

    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        plain.produce(source, value=f"rec-{i}".encode(), partition=0)
    plain.flush(30)

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })
    consumer.subscribe([source])
    p = producer(bootstrap, f"eos-{uuid.uuid4()}")
    copied = 0
    deadline = common.Deadline(60)
    while copied < count and not deadline.expired():
        msgs = consumer.consume(50, 1.0)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            continue
        p.begin_transaction()
        for m in msgs:
            p.produce(sink, value=m.value().upper(), partition=0)
        positions = consumer.position(consumer.assignment())
        p.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        copied += len(msgs)
    consumer.close()
    output = [v for _, v in read_all(bootstrap, sink, "read_committed")]
    check = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committed = check.committed([TopicPartition(source, 0)], 10)[0].offset
    check.close()
    common.emit({"output": output, "committed_offset": committed})


def main():
    bootstrap, scenario = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if scenario == "commit-abort":
        commit_abort(bootstrap, args[0])
    elif scenario == "leave-open":
        # A transaction left open by a client that goes away (its timeout: 60 s, librdkafka's).
        p = producer(bootstrap, f"txn-{uuid.uuid4()}")
        p.begin_transaction()
        for i in range(int(args[1])):
            p.produce(args[0], value=f"open-{i}".encode(), partition=0)
        p.flush(30)
        common.emit({"left_open": int(args[1])})
        sys.stdout.flush()
        os._exit(0)
    elif scenario == "read":
        records = read_all(bootstrap, args[0], args[2], seconds=60.0, partitions=int(args[1]),
                           with_partition=True)
        common.emit({"records": records})
    elif scenario == "keyed":
        keyed(bootstrap, *args)
    elif scenario == "spread":
        spread(bootstrap, args[0], int(args[1]))
    elif scenario == "fence":
        fence(bootstrap, args[0])
    elif scenario == "timeout":
        timeout(bootstrap, args[0])
    elif scenario == "exactly-once":
        exactly_once(bootstrap, args[0], args[1], args[2], int(args[3]))
    else:
        common.fail(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
