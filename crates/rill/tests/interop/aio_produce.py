#!/usr/bin/env python3
"""produce.py for aiokafka: produces the records given on stdin (see common.read_records) in
order with AIOKafkaProducer and prints each delivery: {"client": "aiokafka", "delivered":
[[index, partition, offset], ...]}.

    aio_produce.py BOOTSTRAP TOPIC [--acks all|1|0] [--timeout SECONDS]

aiokafka's producer is not idempotent unless asked (enable_idempotence=False by default, unlike
kafka-python 3); it is set explicitly so that a change of default shows up here.
"""

import argparse
import asyncio

import common


async def produce(args, records):
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks=args.acks if args.acks == "all" else int(args.acks),
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=int(args.timeout * 1000),
    )
    await producer.start()
    try:
        futures = []
        for record in records:
            futures.append(await producer.send(
                args.topic, key=record["k"], value=record["v"], headers=record["h"] or None,
                partition=record["p"], timestamp_ms=record["ts"]))
        delivered, errors = [], []
        for index, future in enumerate(futures):
            try:
                meta = await asyncio.wait_for(future, args.timeout)
                delivered.append([index, meta.partition, meta.offset])
            except Exception as err:  # noqa: BLE001 - reported to the test as text
                errors.append(f"record {index}: {err!r}")
        return delivered, errors
    finally:
        await producer.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("--acks", default="all")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    delivered, errors = asyncio.run(produce(args, common.read_records()))
    if errors:
        common.fail(f"{len(errors)} records failed: {errors[:5]}")
    common.emit({"client": "aiokafka", "delivered": sorted(delivered)})


if __name__ == "__main__":
    main()
