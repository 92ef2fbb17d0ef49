#!/usr/bin/env python3
"""Transactions with kafka-python's transactional producer (KafkaProducer(transactional_id=...))
and its read_committed / read_uncommitted consumers, every setting at its default except the
transactional id and the isolation level. Prints one JSON document describing what the clients
saw. Records travel as [partition, offset, value].

    transactions_kafka_python.py BOOTSTRAP commit-abort TOPIC PARTITIONS
        Three transactions, each writing 10 records to every partition of TOPIC: committed,
        aborted, committed (values c1-P-I, a-P-I, c2-P-I). While the second is still open its
        records are flushed and the end offsets both isolations see are noted. Then every
        partition is read from the start by a read_committed and a read_uncommitted consumer:
        {"committed": [...], "uncommitted": [...], "end": {"read_committed": {P: offset},
        "read_uncommitted": {P: offset}}, "open_end": {same, while the 2nd was open}}.

    transactions_kafka_python.py BOOTSTRAP fence TOPIC
        Producer A opens a transaction and writes "zombie"; producer B initializes with the
        same transactional id (aborting A's transaction), writes "successor" and commits; A
        then writes "zombie-2", commits, and a second later aborts. {"a_send": <error class
        or "ok">, "a_commit": <error class or "ok">, "a_abort": "<class>: <message>" or "ok",
        "committed": [...], "uncommitted": [...], "end": ...}.

    transactions_kafka_python.py BOOTSTRAP exactly-once INPUT OUTPUT GROUP COUNT
        Produces COUNT records to INPUT-0 (rec-I) with a plain producer, then a read_committed
        group consumer and a transactional producer copy them to OUTPUT-0 upper-cased, the
        input offsets sent with send_offsets_to_transaction. The first transaction is aborted
        after its records are flushed (its output and its offsets must vanish) and the consumer
        seeks back to redo it. {"output": [...read_committed], "uncommitted": [...],
        "sizes": [records in each transaction, the aborted one first], "committed_after_abort":
        offset or null, "committed_offset": <group's offset of INPUT-0 at the end>}.
"""

import sys
import time
import uuid

import common


def producer(bootstrap, transactional_id):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id)
    p.init_transactions()
    return p


def consumer(bootstrap, isolation, topic, partitions):
    """A group-less consumer assigned partitions 0..`partitions` of `topic` from the start."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      isolation_level=isolation)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    return c, tps


def ends(c, tps):
    return {tp.partition: offset for tp, offset in c.end_offsets(tps).items()}


def read_up_to(c, tps, end, deadline):
    """Polls until the consumer's position reaches `end` in every partition: [[p, o, v]...]."""
    got = []
    while any(c.position(tp) < end[tp.partition] for tp in tps):
        if deadline.expired():
            positions = {tp.partition: c.position(tp) for tp in tps}
            common.fail(f"timed out at positions {positions}, end offsets {end}")
        batches = c.poll(timeout_ms=500)
        for tp in sorted(batches, key=lambda tp: tp.partition):
            for msg in batches[tp]:
                got.append([msg.partition, msg.offset, msg.value.decode()])
    got.sort()
    return got


def read_both(bootstrap, topic, partitions, seconds=30.0):
    """Waits until no transaction is open in the partitions (the end offsets of both isolations
    agree: every marker is written), then reads them with each isolation."""
    deadline = common.Deadline(seconds)
    committed, tps = consumer(bootstrap, "read_committed", topic, partitions)
    uncommitted, _ = consumer(bootstrap, "read_uncommitted", topic, partitions)
    while True:
        end_c, end_u = ends(committed, tps), ends(uncommitted, tps)
        if end_c == end_u:
            break
        if deadline.expired():
            common.fail(f"the end offsets never agreed: read_committed {end_c}, "
                        f"read_uncommitted {end_u}")
        time.sleep(0.1)
    out = {
        "committed": read_up_to(committed, tps, end_c, deadline),
        "uncommitted": read_up_to(uncommitted, tps, end_u, deadline),
        "end": {"read_committed": end_c, "read_uncommitted": end_u},
    }
    committed.close()
    uncommitted.close()
    return out


def commit_abort(bootstrap, topic, partitions):
    p = producer(bootstrap, f"txn-{uuid.uuid4()}")
    open_end = None
    for prefix, commit in (("c1", True), ("a", False), ("c2", True)):
        p.begin_transaction()
        for part in range(partitions):
            for i in range(10):
                p.send(topic, value=f"{prefix}-{part}-{i}".encode(), partition=part)
        p.flush()
        if not commit:
            # The transaction is open and its records written: what each isolation's end is.
            c, tps = consumer(bootstrap, "read_committed", topic, partitions)
            u, _ = consumer(bootstrap, "read_uncommitted", topic, partitions)
            open_end = {"read_committed": ends(c, tps), "read_uncommitted": ends(u, tps)}
            c.close()
            u.close()
            p.abort_transaction()
        else:
            p.commit_transaction()
    p.close()
    out = read_both(bootstrap, topic, partitions)
    out["open_end"] = open_end
    common.emit(out)


def fence(bootstrap, topic):
    tid = f"txn-{uuid.uuid4()}"
    a = producer(bootstrap, tid)
    a.begin_transaction()
    a.send(topic, value=b"zombie", partition=0)
    a.flush()
    b = producer(bootstrap, tid)
    b.begin_transaction()
    b.send(topic, value=b"successor", partition=0)
    b.commit_transaction()
    b.close()
    a_send = "ok"
    try:
        a.send(topic, value=b"zombie-2", partition=0).get(timeout=20)
    except Exception as err:  # noqa: BLE001 - the class is the answer
        a_send = type(err).__name__
    a_commit = "ok"
    try:
        a.commit_transaction()
    except Exception as err:  # noqa: BLE001
        a_commit = type(err).__name__
    # kafka-python answers INVALID_PRODUCER_EPOCH by bumping its epoch (KIP-360), which the
    # coordinator refuses as fenced: once that answer is in, the producer is in a fatal state.
    # Until then every transactional call fails as an invalid transition from the bump.
    a_abort = "ok"
    deadline = common.Deadline(20)
    while True:
        try:
            a.abort_transaction()
            a_abort = "ok"
        except Exception as err:  # noqa: BLE001
            a_abort = f"{type(err).__name__}: {err}"
        if "BUMPING_PRODUCER_EPOCH" not in a_abort or deadline.expired():
            break
        time.sleep(0.1)
    a.close(timeout=5)
    out = read_both(bootstrap, topic, 1)
    out["a_send"] = a_send
    out["a_commit"] = a_commit
    out["a_abort"] = a_abort
    common.emit(out)


def exactly_once(bootstrap, source, sink, group, count):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    plain = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(count):
        plain.send(source, value=f"rec-{i}".encode(), partition=0)
    plain.flush()
    plain.close()

    c = KafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      isolation_level="read_committed", max_poll_records=50)
    tp = TopicPartition(source, 0)
    p = producer(bootstrap, f"eos-{uuid.uuid4()}")
    copied = 0
    sizes = []
    aborted = False
    committed_after_abort = "unset"
    deadline = common.Deadline(60)
    while copied < count and not deadline.expired():
        batches = c.poll(timeout_ms=1000)
        msgs = [m for part in batches.values() for m in part]
        if not msgs:
            continue
        first = min(m.offset for m in msgs)
        p.begin_transaction()
        for m in msgs:
            p.send(sink, value=m.value.upper(), partition=0)
        p.send_offsets_to_transaction({tp: OffsetAndMetadata(c.position(tp), "", -1)},
                                      c.group_metadata())
        sizes.append(len(msgs))
        if not aborted:
            aborted = True
            p.flush()
            p.abort_transaction()
            committed_after_abort = c.committed(tp)
            c.seek(tp, first)
            continue
        p.commit_transaction()
        copied += len(msgs)
    # The last commit's marker in the group's offsets log may still be on its way.
    committed = None
    while not deadline.expired():
        committed = c.committed(tp)
        if committed == count:
            break
        time.sleep(0.1)
    c.close()
    p.close()
    out = read_both(bootstrap, sink, 1)
    common.emit({
        "output": [v for _, _, v in out["committed"]],
        "uncommitted": out["uncommitted"],
        "sizes": sizes,
        "committed_after_abort": committed_after_abort,
        "committed_offset": committed,
    })


def main():
    bootstrap, scenario = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if scenario == "commit-abort":
        commit_abort(bootstrap, args[0], int(args[1]))
    elif scenario == "fence":
        fence(bootstrap, args[0])
    elif scenario == "exactly-once":
        exactly_once(bootstrap, args[0], args[1], args[2], int(args[3]))
    else:
        common.fail(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
