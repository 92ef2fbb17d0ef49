#!/usr/bin/env python3
"""What confluent-kafka's AdminClient is told about the cluster through one listener: the
brokers in Metadata and in DescribeCluster, each partition's leader and error, and each
group's coordinator (FindCoordinator, through DescribeGroups).

    listener_view.py BOOTSTRAP [--set NAME=VALUE ...] [--group GROUP ...]
        {"metadata_brokers": {id: "host:port"}, "cluster_brokers": {id: "host:port"},
         "topics": {name: {partition: {"leader": id, "error": name or null}}},
         "coordinators": {group: "id host:port" or an error name}}
"""

import argparse

import common

TIMEOUT = 10.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--group", action="append", default=[])
    args = parser.parse_args()
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    conf = {"bootstrap.servers": args.bootstrap}
    conf.update(common.parse_kv(args.set))
    admin = AdminClient(conf)
    metadata = admin.list_topics(timeout=TIMEOUT)
    topics = {}
    for name, topic in metadata.topics.items():
        if name.startswith("__"):
            continue
        topics[name] = {
            str(p.id): {"leader": p.leader, "error": p.error.name() if p.error else None}
            for p in topic.partitions.values()
        }
    cluster = admin.describe_cluster(request_timeout=TIMEOUT).result()
    coordinators = {}
    for group in args.group:
        future = admin.describe_consumer_groups([group], request_timeout=5)[group]
        try:
            node = future.result().coordinator
            coordinators[group] = f"{node.id} {node.host}:{node.port}"
        except KafkaException as err:
            coordinators[group] = err.args[0].name()
    common.emit({
        "metadata_brokers": {str(b.id): f"{b.host}:{b.port}" for b in metadata.brokers.values()},
        "cluster_brokers": {str(n.id): f"{n.host}:{n.port}" for n in cluster.nodes},
        "topics": topics,
        "coordinators": coordinators,
    })


if __name__ == "__main__":
    main()
