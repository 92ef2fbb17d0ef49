#!/usr/bin/env python3
"""librdkafka (confluent-kafka) beside crates/rill-client/examples/perf.rs: the same two
operations with the same settings, printing the same JSON line (docs/benchmarks.md).

    .venv/bin/python scripts/perf_confluent.py produce --bootstrap B --topic T --records N \
        --record-size S [--acks 0|1|all] [--linger-ms L] [--batch-size B] [--idempotence true|false]
    .venv/bin/python scripts/perf_confluent.py consume --bootstrap B --topic T --records N \
        --record-size S [--fetch-bytes B]

Defaults match perf.rs: acks=1, linger 5 ms, batch size 1 MiB, no idempotence, keyless records;
the consumer is assigned every partition from offset 0, 1 MiB per partition per fetch.
mb_per_s counts value bytes only (N x S), in MB of 10^6 bytes.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def report(op, records, record_size, seconds):
    print(json.dumps({
        "client": "librdkafka",
        "op": op,
        "records": records,
        "record_size": record_size,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds),
        "mb_per_s": round(records * record_size / seconds / 1e6, 2),
    }, separators=(",", ":")))


def produce(args):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "batch.size": args.batch_size,
        # A produce request carries batches of several partitions: leave room for them.
        "message.max.bytes": max(1000000, 2 * args.batch_size),
        "enable.idempotence": args.idempotence == "true",
        # Large enough that produce() never fails with a full queue at these rates.
        "queue.buffering.max.messages": 1000000,
        "queue.buffering.max.kbytes": 1048576,
    })
    counts = {"ok": 0, "failed": 0, "first": None}

    # One callback per record, as the rill-client side counts one success per record.
    def on_delivery(err, _msg):
        if err is None:
            counts["ok"] += 1
        else:
            counts["failed"] += 1
            if counts["first"] is None:
                counts["first"] = str(err)

    value = b"x" * args.record_size
    topic = args.topic
    produce_ = producer.produce
    poll = producer.poll
    start = time.perf_counter()
    for _ in range(args.records):
        while True:
            try:
                produce_(topic, value, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.001)
        poll(0)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - start
    if remaining or counts["failed"] or counts["ok"] != args.records:
        sys.exit(f"{counts['ok']} delivered, {counts['failed']} failed, {remaining} left of "
                 f"{args.records}; first error: {counts['first']}")
    report("produce", args.records, args.record_size, seconds)


def consume(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "perf-confluent",  # required by the client; no group is joined (assign)
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        "max.partition.fetch.bytes": args.fetch_bytes,
        "fetch.max.bytes": max(52428800, args.fetch_bytes),
    })
    meta = consumer.list_topics(args.topic, timeout=10).topics[args.topic]
    if meta.error is not None:
        raise KafkaException(meta.error)
    parts = sorted(meta.partitions)
    # Where each partition ends now (not timed), as perf.rs does.
    total = 0
    for p in parts:
        _low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
        total += high
    if total != args.records:
        sys.exit(f"{args.topic} holds {total} records, expected {args.records}")

    start = time.perf_counter()
    consumer.assign([TopicPartition(args.topic, p, 0) for p in parts])
    count = 0
    nbytes = 0
    consume_ = consumer.consume
    while count < args.records:
        for msg in consume_(10000, 1.0):
            if msg.error() is not None:
                raise KafkaException(msg.error())
            count += 1
            nbytes += len(msg.value())
    seconds = time.perf_counter() - start
    consumer.close()
    if count != args.records or nbytes != args.records * args.record_size:
        sys.exit(f"read {count} records, {nbytes} value bytes; expected {args.records} of "
                 f"{args.record_size} B")
    report("consume", args.records, args.record_size, seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--record-size", type=int, required=True)
    parser.add_argument("--acks", default="1", choices=["0", "1", "all", "-1"])
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024 * 1024)
    parser.add_argument("--idempotence", default="false", choices=["true", "false"])
    parser.add_argument("--fetch-bytes", type=int, default=1024 * 1024)
    args = parser.parse_args()
    produce(args) if args.op == "produce" else consume(args)


if __name__ == "__main__":
    main()
