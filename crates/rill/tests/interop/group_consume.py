#!/usr/bin/env python3
"""Consumes COUNT records of TOPIC as the only member of consumer group GROUP, with kafka-python,
aiokafka or confluent-kafka, from the earliest offset where the group has none; then keeps
polling for --linger seconds (to catch a record read twice), commits synchronously, and leaves
the group:

    group_consume.py BOOTSTRAP TOPIC GROUP --client kafka-python|aiokafka|confluent --count N
                     [--linger S] [--timeout S]

prints {"client", "assignment": [p, ...],
        "records": [{"p", "o", "v": value as text}, ...] (in the order received)}.
Exits 1 if fewer than COUNT records arrive before the timeout.
"""

import argparse
import asyncio

import common


def record(msg):
    value = msg.value
    return {"p": msg.partition, "o": msg.offset,
            "v": None if value is None else value.decode("utf-8", "replace")}


def consume_kafka_python(args):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id="rill-kafka-python-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=100,
    )
    records = []
    assignment = []
    try:
        deadline = common.Deadline(args.timeout)
        linger = None
        while not deadline.expired():
            if len(records) >= args.count and linger is None:
                linger = common.Deadline(args.linger)
            if linger is not None and linger.expired():
                break
            batches = consumer.poll(timeout_ms=100)
            for messages in batches.values():
                records.extend(record(m) for m in messages)
        assignment = sorted(tp.partition for tp in consumer.assignment())
        if len(records) >= args.count:
            consumer.commit()
    finally:
        consumer.close()
    return records, assignment


def consume_confluent(args):
    from confluent_kafka import Consumer

    # librdkafka's defaults but for where a group without a committed offset starts, which is
    # the application's choice (the other clients here make the same one).
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": "rill-confluent-group",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([args.topic])
    records = []
    assignment = []
    try:
        deadline = common.Deadline(args.timeout)
        linger = None
        while not deadline.expired():
            if len(records) >= args.count and linger is None:
                linger = common.Deadline(args.linger)
            if linger is not None and linger.expired():
                break
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                common.fail(f"consume error: {msg.error()}")
            value = msg.value()
            records.append({"p": msg.partition(), "o": msg.offset(),
                            "v": None if value is None else value.decode("utf-8", "replace")})
        assignment = sorted(tp.partition for tp in consumer.assignment())
        if len(records) >= args.count:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return records, assignment


async def consume_aiokafka(args):
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id="rill-aiokafka-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    records = []
    assignment = []
    try:
        deadline = common.Deadline(args.timeout)
        linger = None
        while not deadline.expired():
            if len(records) >= args.count and linger is None:
                linger = common.Deadline(args.linger)
            if linger is not None and linger.expired():
                break
            batches = await consumer.getmany(timeout_ms=100)
            for messages in batches.values():
                records.extend(record(m) for m in messages)
        assignment = sorted(tp.partition for tp in consumer.assignment())
        if len(records) >= args.count:
            await consumer.commit()
    finally:
        await consumer.stop()
    return records, assignment


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("--client", choices=["kafka-python", "aiokafka", "confluent"], required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--linger", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    if args.client == "kafka-python":
        records, assignment = consume_kafka_python(args)
    elif args.client == "confluent":
        records, assignment = consume_confluent(args)
    else:
        records, assignment = asyncio.run(consume_aiokafka(args))
    if len(records) < args.count:
        common.fail(f"{args.client}: {len(records)} of {args.count} records before the timeout "
                    f"(assignment {assignment}): {records[:5]}")
    common.emit({"client": args.client, "assignment": assignment, "records": records})


if __name__ == "__main__":
    main()
