#!/usr/bin/env python3
"""kafka-python's KafkaAdminClient.alter_partition_reassignments() and
list_partition_reassignments(), at the client's defaults; prints what the broker answered.

    reassign.py BOOTSTRAP alter TOPIC PARTITIONS TARGET
        PARTITIONS is one partition or a comma list (0 or 0,1); TARGET is the replicas every one
        of them should move to, a comma list of broker ids (2,3,4), or `cancel` to cancel their
        moves (null replicas).
        Prints {"error": top-level code, "results": {"topic-partition": code}}: the partitions
        the broker answered for, 0 for accepted. A top-level error (kafka-python raises it)
        prints its code with "results": {}.
    reassign.py BOOTSTRAP list [TOPIC PARTITIONS]
        The moves under way, of every partition or of these.
        Prints {"error": top-level code, "reassignments": [{"topic", "partition", "replicas",
        "adding", "removing"}, ...]}, sorted by topic and partition.
"""

import argparse

import common


def ids(text):
    """`"2,3,4"` -> [2, 3, 4]."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        common.fail(f"expected a comma list of numbers, got {text!r}")


def alter(admin, args):
    from kafka import TopicPartition

    replicas = None if args.target == "cancel" else ids(args.target)
    asked = {TopicPartition(args.topic, p): replicas for p in ids(args.partitions)}
    results = admin.alter_partition_reassignments(asked)
    # kafka-python maps each partition to None (accepted) or its error class.
    return {
        "error": 0,
        "results": {
            f"{tp.topic}-{tp.partition}": 0 if error is None else error.errno
            for tp, error in results.items()
        },
    }


def listed(admin, args):
    only = {args.topic: ids(args.partitions)} if args.topic is not None else None
    ongoing = admin.list_partition_reassignments(only)
    moves = [
        {
            "topic": tp.topic,
            "partition": tp.partition,
            "replicas": move["replicas"],
            "adding": move["adding_replicas"],
            "removing": move["removing_replicas"],
        }
        for tp, move in ongoing.items()
    ]
    moves.sort(key=lambda m: (m["topic"], m["partition"]))
    return {"error": 0, "reassignments": moves}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    modes = parser.add_subparsers(dest="mode", required=True)
    alter_args = modes.add_parser("alter")
    alter_args.add_argument("topic")
    alter_args.add_argument("partitions")
    alter_args.add_argument("target")
    list_args = modes.add_parser("list")
    list_args.add_argument("topic", nargs="?")
    list_args.add_argument("partitions", nargs="?")
    args = parser.parse_args()
    if args.mode == "list" and (args.topic is None) != (args.partitions is None):
        common.fail("list takes both TOPIC and PARTITIONS, or neither")

    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    try:
        result = alter(admin, args) if args.mode == "alter" else listed(admin, args)
    except KafkaError as err:
        # A top-level error code, raised as its error class; anything else is a failure.
        if getattr(err, "errno", None) is None:
            raise
        empty = "results" if args.mode == "alter" else "reassignments"
        result = {"error": err.errno, empty: {} if args.mode == "alter" else []}
    finally:
        admin.close()
    common.emit(result)


if __name__ == "__main__":
    main()
