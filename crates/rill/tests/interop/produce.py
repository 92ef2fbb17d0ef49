#!/usr/bin/env python3
"""Produces the records given on stdin (see common.read_records) with one client, in order,
and prints each delivery report: {"client", "delivered": [[index, partition, offset], ...]}.

    produce.py BOOTSTRAP TOPIC --client confluent|kafka-python [--compression CODEC]
               [--acks all|1|0] [--set NAME=VALUE ...] [--api-version X.Y[.Z]]
               [--timeout SECONDS] [--pause-ms MS]

`--set` passes extra client settings (librdkafka names for confluent, KafkaProducer keyword
arguments for kafka-python, where integers and true/false are converted). Both producers are
non-idempotent unless asked: librdkafka's default, and set explicitly for kafka-python.
`--pause-ms` (confluent only) delivers each record before the next, with a pause between.
`--api-version` (kafka-python only) tells kafka-python the broker's version instead of asking
it: 0.10 makes it send Produce v2 with magic 1 messages, 0.9 Produce v1 with magic 0.
Exits 1 if any record is not delivered, or if librdkafka declines the requested compression.
"""

import argparse
import logging
import time

import common


def produce_confluent(args, records):
    from confluent_kafka import KafkaException, Producer

    config = {
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": 5,
        "compression.type": args.compression,
        "message.timeout.ms": int(args.timeout * 1000),
    }
    config.update(common.parse_kv(args.set))
    errors = []
    delivered = []
    declined = []
    kwargs = {}
    if args.compression != "none":
        # librdkafka quietly sends a batch uncompressed when it decides, from ApiVersions, that
        # the broker cannot take the codec; it says so only on the `msg` debug channel.
        config["debug"] = "msg"
        kwargs["logger"] = CompressionWatch(declined)
    producer = Producer(config, **kwargs)

    def report(index):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"record {index}: {err}")
            else:
                delivered.append([index, msg.partition(), msg.offset()])
        return on_delivery

    deadline = common.Deadline(args.timeout)
    for index, record in enumerate(records):
        kwargs = {"key": record["k"], "value": record["v"], "on_delivery": report(index)}
        if record["h"]:
            kwargs["headers"] = record["h"]
        if record["p"] is not None:
            kwargs["partition"] = record["p"]
        if record["ts"] is not None:
            kwargs["timestamp"] = record["ts"]
        while True:
            try:
                producer.produce(args.topic, **kwargs)
                break
            except BufferError:
                if deadline.expired():
                    common.fail("producer queue stayed full until the deadline")
                producer.poll(0.05)
            except KafkaException as err:
                common.fail(f"produce of record {index} failed: {err}")
        producer.poll(0)
        if args.pause_ms:
            # One record at a time, spread over time (e.g. across SASL session lifetimes).
            producer.flush(deadline.left())
            time.sleep(args.pause_ms / 1000)
    try:
        left = producer.flush(deadline.left())
    except Exception as err:  # noqa: BLE001 - e.g. a fatal error surfacing from a callback
        common.fail(f"flush failed: {err!r}; delivery errors: {errors[:5]}")
    if left:
        common.fail(f"{left} records still undelivered at the deadline; errors: {errors[:5]}")
    if declined:
        hint = (" (librdkafka enables LZ4 only when the broker advertises FindCoordinator v0)"
                if args.compression == "lz4" else "")
        common.fail(f"librdkafka declined to compress: {declined[0]}{hint}")
    return delivered, errors


class CompressionWatch(logging.Logger):
    """A logger for librdkafka that keeps its "not compressing" notices."""

    def __init__(self, sink):
        super().__init__("librdkafka", logging.DEBUG)
        self.sink = sink

    def log(self, level, msg, *args, **kwargs):
        text = msg % args if args else str(msg)
        if "does not support compression" in text:
            self.sink.append(text)


def produce_kafka_python(args, records):
    from kafka import KafkaProducer

    config = {
        "bootstrap_servers": args.bootstrap,
        "acks": args.acks if args.acks == "all" else int(args.acks),
        "linger_ms": 5,
        "compression_type": None if args.compression == "none" else args.compression,
        "request_timeout_ms": int(args.timeout * 1000),
        # kafka-python 3 is idempotent by default (KIP-679), which needs InitProducerId; the
        # tests ask for it explicitly where they mean to (`--set enable_idempotence=true`).
        "enable_idempotence": False,
    }
    if args.api_version:
        config["api_version"] = common.parse_version(args.api_version)
    for key, value in common.parse_kv(args.set).items():
        if value in ("true", "false"):
            config[key] = value == "true"
        elif value.lstrip("-").isdigit():
            config[key] = int(value)
        else:
            config[key] = value
    producer = KafkaProducer(**config)
    futures = []
    for record in records:
        futures.append(producer.send(
            args.topic, key=record["k"], value=record["v"], headers=record["h"] or None,
            partition=record["p"], timestamp_ms=record["ts"]))
    deadline = common.Deadline(args.timeout)
    producer.flush(deadline.left())
    delivered, errors = [], []
    for index, future in enumerate(futures):
        try:
            meta = future.get(timeout=max(deadline.left(), 0.1))
            delivered.append([index, meta.partition, meta.offset])
        except Exception as err:  # noqa: BLE001 - reported to the test as text
            errors.append(f"record {index}: {err!r}")
    producer.close(timeout=5)
    return delivered, errors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--acks", default="all")
    parser.add_argument("--set", action="append")
    parser.add_argument("--api-version")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--pause-ms", type=int, default=0)
    args = parser.parse_args()
    if args.api_version and args.client != "kafka-python":
        common.fail("--api-version is for kafka-python")
    records = common.read_records()
    if args.client == "confluent":
        delivered, errors = produce_confluent(args, records)
    else:
        delivered, errors = produce_kafka_python(args, records)
    if errors:
        common.fail(f"{len(errors)} records failed: {errors[:5]}")
    delivered.sort()
    common.emit({"client": args.client, "delivered": delivered})


if __name__ == "__main__":
    main()
