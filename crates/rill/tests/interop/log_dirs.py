#!/usr/bin/env python3
"""kafka-python's KafkaAdminClient.describe_log_dirs(); prints what every broker answered.

    log_dirs.py BOOTSTRAP [--partitions JSON]
        JSON is {"topic": [partition, ...], ...} (kafka-python's dict form); without it the
        client asks for every partition of every topic it finds in the metadata.
        Prints [{"broker": id, "dir": path, "error": code, "total": bytes, "usable": bytes,
        "partitions": {"topic-partition": [size, offset_lag, is_future]}}, ...], sorted by
        broker and dir.
"""

import argparse
import json

import common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("--partitions")
    args = parser.parse_args()

    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    try:
        asked = json.loads(args.partitions) if args.partitions else None
        answers = admin.describe_log_dirs(topic_partitions=asked)
    finally:
        admin.close()

    out = []
    for answer in answers:
        for d in answer["log_dirs"]:
            partitions = {}
            for t in d["topics"]:
                for p in t["partitions"]:
                    key = f"{t['name']}-{p['partition_index']}"
                    partitions[key] = [p["partition_size"], p["offset_lag"], p["is_future_key"]]
            out.append({
                "broker": answer["broker"],
                "dir": d["log_dir"],
                "error": d["error_code"],
                "total": d.get("total_bytes"),
                "usable": d.get("usable_bytes"),
                "partitions": partitions,
            })
    out.sort(key=lambda d: (d["broker"], d["dir"]))
    common.emit(out)


if __name__ == "__main__":
    main()
