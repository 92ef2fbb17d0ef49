#!/usr/bin/env python3
"""A standalone consumer (confluent-kafka): it uses a group only to store offsets, never joins
it (no subscribe), so its commits carry generation -1 and an empty member id, which a broker
accepts for a group with no members.

    standalone.py BOOTSTRAP GROUP consume TOPIC PARTITIONS --count N
        assigns partitions 0..PARTITIONS-1 of TOPIC, starting from the group's committed
        offsets (the earliest where it has none), reads N records, commits their positions
        synchronously and reads the committed offsets back:
        {"records": [{"p", "o", "v"}], "committed": {p: offset}}
    standalone.py BOOTSTRAP GROUP commit TOPIC:PARTITION:OFFSET[:METADATA] ...
        commits those offsets (with their metadata strings) synchronously, then reads them
        back with committed(): {"committed": {"topic:p": {"offset", "metadata"}}}
    standalone.py BOOTSTRAP GROUP committed TOPIC:PARTITION ...
        {"committed": {"topic:p": {"offset", "metadata"}}} (offset -1001: none)
    standalone.py BOOTSTRAP GROUP commit-loop TOPIC PARTITIONS [--seconds S]
        commits, one synchronous commit at a time, offset n (n = 1, 2, 3, ...) with metadata
        "commit-n" to partition n % PARTITIONS, and prints `<partition> <offset>` on stdout,
        flushed, once the broker has acknowledged it; a failed commit prints `error <name>`
        on stderr and is retried after 50 ms (so offsets never go backwards); runs until
        killed or for S seconds
"""

import argparse
import sys
import time

import common

TIMEOUT = 10.0


def consumer(args, **extra):
    from confluent_kafka import Consumer

    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    }
    config.update(extra)
    return Consumer(config)


def parse(spec):
    topic, partition, *rest = spec.split(":", 3)
    return topic, int(partition), rest


def committed_json(partitions):
    out = {}
    for tp in partitions:
        if tp.error is not None:
            common.fail(f"committed({tp.topic}:{tp.partition}): {tp.error}")
        out[f"{tp.topic}:{tp.partition}"] = {"offset": tp.offset, "metadata": tp.metadata}
    return out


def commit_checked(c, **kwargs):
    from confluent_kafka import KafkaException

    try:
        answer = c.commit(asynchronous=False, **kwargs)
    except KafkaException as err:
        return err.args[0].name()
    for tp in answer or []:
        if tp.error is not None:
            return tp.error.name()
    return None


def cmd_consume(args):
    from confluent_kafka import TopicPartition

    c = consumer(args)
    try:
        partitions = [TopicPartition(args.topic, p) for p in range(args.partitions)]
        c.assign(partitions)
        records = []
        deadline = common.Deadline(args.timeout)
        while len(records) < args.count and not deadline.expired():
            msg = c.poll(0.1)
            if msg is None:
                continue
            if msg.error() is not None:
                common.fail(f"consume: {msg.error()}")
            records.append({"p": msg.partition(), "o": msg.offset(),
                            "v": msg.value().decode("utf-8", "replace")})
        if len(records) < args.count:
            common.fail(f"{len(records)} of {args.count} records before the timeout")
        # Everything read so far: the positions, committed as one OffsetCommit.
        err = commit_checked(c)
        if err is not None:
            common.fail(f"commit: {err}")
        got = c.committed(partitions, timeout=TIMEOUT)
        return {"records": records,
                "committed": {str(tp.partition): tp.offset for tp in got}}
    finally:
        c.close()


def cmd_commit(args):
    from confluent_kafka import TopicPartition

    c = consumer(args)
    try:
        offsets = []
        for spec in args.specs:
            topic, partition, rest = parse(spec)
            offset = int(rest[0])
            if len(rest) > 1:
                offsets.append(TopicPartition(topic, partition, offset, metadata=rest[1]))
            else:
                offsets.append(TopicPartition(topic, partition, offset))
        err = commit_checked(c, offsets=offsets)
        if err is not None:
            common.fail(f"commit: {err}")
        asked = [TopicPartition(tp.topic, tp.partition) for tp in offsets]
        return {"committed": committed_json(c.committed(asked, timeout=TIMEOUT))}
    finally:
        c.close()


def cmd_committed(args):
    from confluent_kafka import TopicPartition

    c = consumer(args)
    try:
        asked = [TopicPartition(topic, partition) for topic, partition, _ in map(parse, args.specs)]
        return {"committed": committed_json(c.committed(asked, timeout=TIMEOUT))}
    finally:
        c.close()


def cmd_commit_loop(args):
    from confluent_kafka import TopicPartition

    c = consumer(args, **{"reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200,
                          "socket.timeout.ms": 3000})
    deadline = common.Deadline(args.seconds)
    n = 1
    while not deadline.expired():
        p = n % args.partitions
        err = commit_checked(
            c, offsets=[TopicPartition(args.topic, p, n, metadata=f"commit-{n}")])
        if err is None:
            sys.stdout.write(f"{p} {n}\n")
            sys.stdout.flush()
            n += 1
        else:
            print(f"error {err}", file=sys.stderr, flush=True)
            time.sleep(0.05)
    c.close()
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("group")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("consume")
    p.add_argument("topic")
    p.add_argument("partitions", type=int)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=20.0)
    p.set_defaults(run=cmd_consume)
    p = sub.add_parser("commit")
    p.add_argument("specs", nargs="+")
    p.set_defaults(run=cmd_commit)
    p = sub.add_parser("committed")
    p.add_argument("specs", nargs="+")
    p.set_defaults(run=cmd_committed)
    p = sub.add_parser("commit-loop")
    p.add_argument("topic")
    p.add_argument("partitions", type=int)
    p.add_argument("--seconds", type=float, default=20.0)
    p.set_defaults(run=cmd_commit_loop)
    args = parser.parse_args()
    out = args.run(args)
    if out is not None:
        common.emit(out)


if __name__ == "__main__":
    main()
