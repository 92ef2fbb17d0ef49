#!/usr/bin/env python3
"""One member of a consumer group (confluent-kafka), run as a long-lived subprocess by a test.
It subscribes to TOPIC in GROUP, reads from the earliest offset where the group has none, and
commits synchronously after every record. It prints one JSON object per line, flushed at once,
so that a test reading its stdout sees each event as it happens, even if it is killed next:

    {"e": "assigned", "partitions": [p, ...], "assignment": [p, ...]}
    {"e": "revoked",  "partitions": [p, ...], "assignment": [p, ...]}
    {"e": "lost",     "partitions": [p, ...], "assignment": [p, ...]}
        a rebalance callback: the partitions it named and the member's whole assignment after
        it (with cooperative-sticky the callbacks name only what changes)
    {"e": "record", "p": partition, "o": offset, "v": value as text}
    {"e": "committed", "p": partition, "o": next offset}
        the broker acknowledged the commit of everything before `o`
    {"e": "commit_failed", "p": partition, "o": next offset, "error": name}
    {"e": "error", "error": text}
    {"e": "closed"}
        after a clean close (which leaves the group), when stdin reaches end of file or
        after --seconds

    group_member.py BOOTSTRAP TOPIC GROUP [--assignor range|roundrobin|cooperative-sticky]
                    [--name CLIENT_ID] [--session-timeout-ms MS] [--seconds S]

Closing its stdin asks it to close cleanly; SIGKILL is a crash (no LeaveGroup, no commit).
"""

import argparse
import json
import sys
import threading

import common


def say(event):
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main():
    from confluent_kafka import Consumer, KafkaException

    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("--assignor", default="range")
    parser.add_argument("--name", default="rill-group-member")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    stop = threading.Event()

    def watch_stdin():
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    assignment = set()

    def on_assign(consumer, partitions):
        assignment.update(tp.partition for tp in partitions)
        say({"e": "assigned", "partitions": sorted(tp.partition for tp in partitions),
             "assignment": sorted(assignment)})

    def on_revoke(consumer, partitions):
        assignment.difference_update(tp.partition for tp in partitions)
        say({"e": "revoked", "partitions": sorted(tp.partition for tp in partitions),
             "assignment": sorted(assignment)})

    def on_lost(consumer, partitions):
        assignment.difference_update(tp.partition for tp in partitions)
        say({"e": "lost", "partitions": sorted(tp.partition for tp in partitions),
             "assignment": sorted(assignment)})

    def on_error(err):
        say({"e": "error", "error": str(err)})

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.name,
        "partition.assignment.strategy": args.assignor,
        "session.timeout.ms": args.session_timeout_ms,
        # Heartbeats are how a member learns of a rebalance; often, so that takeovers are quick.
        "heartbeat.interval.ms": 500,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        "error_cb": on_error,
    })
    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    deadline = common.Deadline(args.seconds)
    try:
        while not stop.is_set() and not deadline.expired():
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            if msg.error() is not None:
                say({"e": "error", "error": str(msg.error())})
                continue
            value = msg.value()
            say({"e": "record", "p": msg.partition(), "o": msg.offset(),
                 "v": None if value is None else value.decode("utf-8", "replace")})
            failed = None
            try:
                for tp in consumer.commit(message=msg, asynchronous=False) or []:
                    if tp.error is not None:
                        failed = tp.error.name()
            except KafkaException as err:
                failed = err.args[0].name()
            if failed is None:
                say({"e": "committed", "p": msg.partition(), "o": msg.offset() + 1})
            else:
                say({"e": "commit_failed", "p": msg.partition(), "o": msg.offset() + 1,
                     "error": failed})
    finally:
        consumer.close()
    say({"e": "closed"})


if __name__ == "__main__":
    main()
