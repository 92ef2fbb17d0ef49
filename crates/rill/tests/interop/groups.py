#!/usr/bin/env python3
"""Consumer-group administration with confluent-kafka's AdminClient (and kafka-python's
KafkaAdminClient for OffsetDelete, which confluent-kafka's Python API does not offer); prints
one JSON document. Errors are Kafka error names (null: none).

    groups.py BOOTSTRAP list [--state STABLE|EMPTY|... ...]
        {"error", "groups": {group id: {"state": name, "simple": bool}}}
    groups.py BOOTSTRAP describe GROUP
        {"error", "state", "simple", "assignor",
         "members": [{"member_id", "client_id", "host", "assignment": [[topic, p], ...]}]}
    groups.py BOOTSTRAP offsets GROUP [TOPIC:PARTITION ...]
        {"error", "offsets": {topic: {partition: {"offset", "metadata"}}}}: the committed
        offsets (all of the group's, or those named; -1001, "no offset", is left out)
    groups.py BOOTSTRAP alter GROUP TOPIC:PARTITION:OFFSET[:METADATA] ...
        {"error", "partitions": {"topic:p": error or null}}
    groups.py BOOTSTRAP delete GROUP
        {"error"}
    groups.py BOOTSTRAP delete-offsets GROUP TOPIC:PARTITION ...
        {"error", "partitions": {"topic:p": error or null}}  (kafka-python)
    groups.py BOOTSTRAP end TOPIC PARTITIONS
        {"end": {partition: log end offset}}
"""

import argparse

import common

TIMEOUT = 10.0
# librdkafka's "no offset" (OFFSET_INVALID).
NO_OFFSET = -1001


_ADMIN = []


def admin(bootstrap):
    """The AdminClient, kept alive for the whole run: one that is garbage-collected fails its
    pending futures with _DESTROY."""
    from confluent_kafka.admin import AdminClient

    if not _ADMIN:
        _ADMIN.append(AdminClient({"bootstrap.servers": bootstrap}))
    return _ADMIN[0]


def error_name(err):
    from confluent_kafka import KafkaException

    if isinstance(err, KafkaException):
        err = err.args[0]
    name = getattr(err, "name", None)
    return name() if callable(name) else str(err)


def result(future):
    """(value, None) or (None, error name)."""
    from confluent_kafka import KafkaException

    try:
        return future.result(TIMEOUT), None
    except KafkaException as err:
        return None, error_name(err)


def parse_partition(spec):
    topic, _, partition = spec.rpartition(":")
    return topic, int(partition)


def cmd_list(args):
    from confluent_kafka import ConsumerGroupState

    kwargs = {"request_timeout": TIMEOUT}
    if args.state:
        kwargs["states"] = {ConsumerGroupState[s] for s in args.state}
    listed, err = result(admin(args.bootstrap).list_consumer_groups(**kwargs))
    if err is not None:
        return {"error": err, "groups": {}}
    errors = [error_name(e) for e in listed.errors]
    return {
        "error": errors[0] if errors else None,
        "groups": {g.group_id: {"state": g.state.name, "simple": g.is_simple_consumer_group}
                   for g in listed.valid},
    }


def cmd_describe(args):
    futures = admin(args.bootstrap).describe_consumer_groups(
        [args.group], request_timeout=TIMEOUT)
    described, err = result(futures[args.group])
    if err is not None:
        return {"error": err}
    members = []
    for m in described.members:
        parts = m.assignment.topic_partitions if m.assignment else []
        members.append({
            "member_id": m.member_id,
            "client_id": m.client_id,
            "host": m.host,
            "assignment": sorted([tp.topic, tp.partition] for tp in parts),
        })
    members.sort(key=lambda m: m["client_id"])
    return {
        "error": None,
        "state": described.state.name,
        "simple": described.is_simple_consumer_group,
        "assignor": described.partition_assignor,
        "members": members,
    }


def cmd_offsets(args):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    partitions = [TopicPartition(*parse_partition(s)) for s in args.partitions] or None
    request = ConsumerGroupTopicPartitions(args.group, partitions)
    futures = admin(args.bootstrap).list_consumer_group_offsets(
        [request], request_timeout=TIMEOUT)
    listed, err = result(futures[args.group])
    if err is not None:
        return {"error": err, "offsets": {}}
    offsets = {}
    for tp in listed.topic_partitions:
        if tp.error is not None:
            return {"error": error_name(tp.error), "offsets": {}}
        if tp.offset == NO_OFFSET:
            continue
        offsets.setdefault(tp.topic, {})[str(tp.partition)] = {
            "offset": tp.offset, "metadata": tp.metadata}
    return {"error": None, "offsets": offsets}


def cmd_alter(args):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    partitions = []
    for spec in args.offsets:
        topic, partition, offset, *metadata = spec.split(":", 3)
        tp = TopicPartition(topic, int(partition), int(offset))
        if metadata:
            tp = TopicPartition(topic, int(partition), int(offset), metadata=metadata[0])
        partitions.append(tp)
    futures = admin(args.bootstrap).alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(args.group, partitions)], request_timeout=TIMEOUT)
    altered, err = result(futures[args.group])
    if err is not None:
        return {"error": err, "partitions": {}}
    return {"error": None, "partitions": {
        f"{tp.topic}:{tp.partition}": None if tp.error is None else error_name(tp.error)
        for tp in altered.topic_partitions}}


def cmd_delete(args):
    futures = admin(args.bootstrap).delete_consumer_groups([args.group], request_timeout=TIMEOUT)
    _, err = result(futures[args.group])
    return {"error": err}


def cmd_delete_offsets(args):
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    client = KafkaAdminClient(bootstrap_servers=args.bootstrap,
                              request_timeout_ms=int(TIMEOUT * 1000))
    try:
        partitions = [TopicPartition(*parse_partition(s)) for s in args.partitions]
        try:
            answer = client.delete_group_offsets(args.group, partitions)
        except KafkaError as err:
            return {"error": type(err).__name__, "partitions": {}}
        return {"error": None, "partitions": {
            f"{tp.topic}:{tp.partition}": None if err.errno == 0 else err.message
            for tp, err in answer.items()}}
    finally:
        client.close()


def cmd_end(args):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    request = {TopicPartition(args.topic, p): OffsetSpec.latest() for p in range(args.partitions)}
    futures = admin(args.bootstrap).list_offsets(request, request_timeout=TIMEOUT)
    end = {}
    for tp, future in futures.items():
        answer, err = result(future)
        if err is not None:
            common.fail(f"list_offsets({tp.topic}:{tp.partition}): {err}")
        end[str(tp.partition)] = answer.offset
    return {"end": end}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list")
    p.add_argument("--state", action="append")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("describe")
    p.add_argument("group")
    p.set_defaults(run=cmd_describe)
    p = sub.add_parser("offsets")
    p.add_argument("group")
    p.add_argument("partitions", nargs="*")
    p.set_defaults(run=cmd_offsets)
    p = sub.add_parser("alter")
    p.add_argument("group")
    p.add_argument("offsets", nargs="+")
    p.set_defaults(run=cmd_alter)
    p = sub.add_parser("delete")
    p.add_argument("group")
    p.set_defaults(run=cmd_delete)
    p = sub.add_parser("delete-offsets")
    p.add_argument("group")
    p.add_argument("partitions", nargs="+")
    p.set_defaults(run=cmd_delete_offsets)
    p = sub.add_parser("end")
    p.add_argument("topic")
    p.add_argument("partitions", type=int)
    p.set_defaults(run=cmd_end)
    args = parser.parse_args()
    common.emit(args.run(args))


if __name__ == "__main__":
    main()
