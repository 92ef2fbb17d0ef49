#!/usr/bin/env python3
"""Reads partitions of a topic from the beginning up to the high watermark it finds at start,
without a consumer group, and prints every record:

    {"client", "end": {partition: high watermark},
     "records": [{"p", "o", "k", "v", "h": [[name, hex or null]], "ts",
                 "tstype": "create" | "log_append" | null}, ...]}

in the order the client returned them (so per partition in offset order). A record without a
timestamp (message format v0) has "ts": -1 and "tstype": null, as Kafka's Java client reports it.

    consume.py BOOTSTRAP TOPIC --client confluent|kafka-python --partitions N
               [--min-records N] [--api-version X.Y[.Z]] [--timeout SECONDS]
               [--set NAME=VALUE ...] [--offset N]

`--offset` starts every partition at offset N instead of its beginning.

`--set` passes extra client settings as text (librdkafka names for confluent, KafkaConsumer
keyword arguments for kafka-python), e.g. `security.protocol=SSL`.

`--api-version` (kafka-python only) tells kafka-python the broker's version instead of asking
it: 0.10 makes it fetch with Fetch v2 (magic 1 messages) and list offsets with ListOffsets v0,
0.9 with Fetch v1 (magic 0, no timestamps).

`--min-records` waits until the high watermarks add up to at least N before reading.
Exits 1 if the records up to the watermarks do not all arrive before the timeout.
"""

import argparse
import time

import common


def consume_confluent(args, deadline):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        # Assigned partitions need no group, but librdkafka insists on a group.id; nothing is
        # committed and no group is joined.
        "group.id": "rill-interop-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100,
        **common.parse_kv(args.set),
    })
    try:
        partitions = list(range(args.partitions))
        end = {}
        while True:
            for p in partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(args.topic, p), timeout=max(deadline.left(), 0.1))
                end[p] = high
            if sum(end.values()) >= args.min_records:
                break
            if deadline.expired():
                common.fail(f"high watermarks {end} never added up to {args.min_records}")
            time.sleep(0.1)
        start = OFFSET_BEGINNING if args.offset is None else args.offset
        consumer.assign([TopicPartition(args.topic, p, start) for p in partitions])
        records = []
        position = {p: args.offset or 0 for p in partitions}
        while any(position[p] < end[p] for p in partitions):
            if deadline.expired():
                common.fail(f"timed out at positions {position}, watermarks {end}")
            msg = consumer.poll(min(deadline.left(), 0.5))
            if msg is None:
                continue
            if msg.error():
                common.fail(f"consume error: {msg.error()}")
            tstype, ts = msg.timestamp()
            records.append({
                "p": msg.partition(), "o": msg.offset(),
                "k": common.tohex(msg.key()), "v": common.tohex(msg.value()),
                "h": [[name, common.tohex(value)] for name, value in msg.headers() or []],
                "ts": ts, "tstype": {0: None, 1: "create", 2: "log_append"}[tstype],
            })
            position[msg.partition()] = msg.offset() + 1
        return end, records
    finally:
        consumer.close()


def consume_kafka_python(args, deadline):
    from kafka import KafkaConsumer, TopicPartition

    extra = {}
    if args.api_version:
        extra["api_version"] = common.parse_version(args.api_version)
    # String settings only (security_protocol, ssl_cafile, ...).
    extra.update(common.parse_kv(args.set))
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False,
        fetch_max_wait_ms=100, consumer_timeout_ms=500, **extra)
    try:
        tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
        while True:
            end = {tp.partition: high for tp, high in consumer.end_offsets(tps).items()}
            if sum(end.values()) >= args.min_records:
                break
            if deadline.expired():
                common.fail(f"high watermarks {end} never added up to {args.min_records}")
            time.sleep(0.1)
        consumer.assign(tps)
        if args.offset is None:
            consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                consumer.seek(tp, args.offset)
        records = []
        position = {p: args.offset or 0 for p in end}
        while any(position[p] < end[p] for p in end):
            if deadline.expired():
                common.fail(f"timed out at positions {position}, watermarks {end}")
            batches = consumer.poll(timeout_ms=int(min(deadline.left(), 0.5) * 1000))
            for tp in sorted(batches, key=lambda tp: tp.partition):
                for msg in batches[tp]:
                    records.append({
                        "p": msg.partition, "o": msg.offset,
                        "k": common.tohex(msg.key), "v": common.tohex(msg.value),
                        "h": [[name, common.tohex(value)] for name, value in msg.headers or []],
                        "ts": -1 if msg.timestamp is None else msg.timestamp,
                        "tstype": {0: "create", 1: "log_append"}.get(msg.timestamp_type),
                    })
                    position[msg.partition] = msg.offset + 1
        return end, records
    finally:
        consumer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--min-records", type=int, default=0)
    parser.add_argument("--api-version")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--set", action="append")
    parser.add_argument("--offset", type=int)
    args = parser.parse_args()
    if args.api_version and args.client != "kafka-python":
        common.fail("--api-version is for kafka-python")
    deadline = common.Deadline(args.timeout)
    if args.client == "confluent":
        end, records = consume_confluent(args, deadline)
    else:
        end, records = consume_kafka_python(args, deadline)
    common.emit({"client": args.client, "end": {str(p): o for p, o in end.items()},
                 "records": records})


if __name__ == "__main__":
    main()
