#!/usr/bin/env python3
"""kafka-python's KafkaAdminClient.elect_leaders(); prints what the broker answered.

    elect.py BOOTSTRAP TYPE [--partitions JSON]
        TYPE is 0 (preferred) or 1 (unclean); JSON is {"topic": [partition, ...], ...}
        (kafka-python's dict form); without it every partition of every topic is asked (null).
        Prints {"error": top-level code, "results": {"topic-partition": code}}.
"""

import argparse
import json

import common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("type", type=int)
    parser.add_argument("--partitions")
    args = parser.parse_args()

    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    try:
        asked = json.loads(args.partitions) if args.partitions else None
        response = admin.elect_leaders(
            args.type, topic_partitions=asked, timeout_ms=15000, raise_errors=False)
    finally:
        admin.close()

    results = {}
    for topic in response.replica_election_results:
        for p in topic.partition_result:
            results[f"{topic.topic}-{p.partition_id}"] = p.error_code
    common.emit({"error": getattr(response, "error_code", 0), "results": results})


if __name__ == "__main__":
    main()
