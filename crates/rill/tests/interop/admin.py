#!/usr/bin/env python3
"""Topic administration with confluent-kafka's AdminClient; prints what it saw as JSON.

    admin.py BOOTSTRAP metadata
        {"brokers": {id: "host:port"}, "topics": {name: partition count}}
    admin.py BOOTSTRAP create TOPIC PARTITIONS [--config NAME=VALUE ...]
        {"error": null or Kafka error name}
    admin.py BOOTSTRAP describe TOPIC
        {"partitions": {id: {"leader", "replicas", "isrs"}}, "configs": {name: value}}
    admin.py BOOTSTRAP scenario TOPIC
        validate-only create, create with 3 partitions, create again, grow to 5 partitions,
        delete; each step's error (null or its name) and the metadata after it
        ({"brokers", "topic": the topic's entry or null}).

Metadata is always read for all topics, so reading it never auto-creates a topic.
"""

import argparse
import time

import common

TIMEOUT = 10.0


def admin_client(bootstrap):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def error_name(future):
    from confluent_kafka import KafkaException

    try:
        future.result(TIMEOUT)
        return None
    except KafkaException as err:
        return err.args[0].name()


def metadata(admin):
    md = admin.list_topics(timeout=TIMEOUT)
    brokers = {str(b.id): f"{b.host}:{b.port}" for b in md.brokers.values()}
    topics = {}
    for name, topic in md.topics.items():
        if topic.error is not None:
            topics[name] = {"error": topic.error.name()}
            continue
        topics[name] = {"partitions": {
            str(p.id): {"leader": p.leader, "replicas": list(p.replicas), "isrs": list(p.isrs)}
            for p in topic.partitions.values()}}
    return {"brokers": brokers, "topics": topics}


def wait_for(admin, topic, predicate, seconds=5.0):
    """Metadata may lag an admin call in Kafka; polls until `predicate(topic entry or None)`
    holds or the time is up, and returns the last metadata either way."""
    deadline = common.Deadline(seconds)
    while True:
        md = metadata(admin)
        if predicate(md["topics"].get(topic)) or deadline.expired():
            return md
        time.sleep(0.1)


def slim(md, topic):
    return {"brokers": md["brokers"], "topic": md["topics"].get(topic)}


def partition_count(entry):
    return None if entry is None else len(entry.get("partitions", {}))


def create(admin, topic, partitions, config=None, validate_only=False):
    from confluent_kafka.admin import NewTopic

    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
    futures = admin.create_topics([new], operation_timeout=TIMEOUT, request_timeout=TIMEOUT,
                                  validate_only=validate_only)
    return error_name(futures[topic])


def scenario(admin, topic):
    from confluent_kafka.admin import NewPartitions

    out = {}
    out["validate_only"] = create(admin, topic, 3, validate_only=True)
    time.sleep(0.3)
    out["listed_after_validate_only"] = topic in metadata(admin)["topics"]
    out["create"] = create(admin, topic, 3)
    out["after_create"] = slim(wait_for(admin, topic, lambda e: partition_count(e) == 3), topic)
    out["create_again"] = create(admin, topic, 3)
    futures = admin.create_partitions([NewPartitions(topic, 5)], operation_timeout=TIMEOUT,
                                      request_timeout=TIMEOUT)
    out["create_partitions"] = error_name(futures[topic])
    md = wait_for(admin, topic, lambda e: partition_count(e) == 5)
    out["after_create_partitions"] = slim(md, topic)
    futures = admin.delete_topics([topic], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    out["delete"] = error_name(futures[topic])
    out["listed_after_delete"] = topic in wait_for(admin, topic, lambda e: e is None)["topics"]
    return out


def describe(admin, topic):
    from confluent_kafka.admin import ConfigResource, ResourceType

    md = metadata(admin)
    if topic not in md["topics"]:
        common.fail(f"topic {topic!r} not in metadata: {sorted(md['topics'])}")
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource], request_timeout=TIMEOUT)[resource].result(TIMEOUT)
    configs = {name: entry.value for name, entry in entries.items()}
    return {"partitions": md["topics"][topic].get("partitions"), "configs": configs}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("metadata")
    p = sub.add_parser("create")
    p.add_argument("topic")
    p.add_argument("partitions", type=int)
    p.add_argument("--config", action="append")
    sub.add_parser("describe").add_argument("topic")
    sub.add_parser("scenario").add_argument("topic")
    args = parser.parse_args()
    admin = admin_client(args.bootstrap)
    if args.command == "metadata":
        result = metadata(admin)
    elif args.command == "create":
        result = {"error": create(admin, args.topic, args.partitions,
                                  common.parse_kv(args.config))}
    elif args.command == "describe":
        result = describe(admin, args.topic)
    else:
        result = scenario(admin, args.topic)
    common.emit(result)


if __name__ == "__main__":
    main()
