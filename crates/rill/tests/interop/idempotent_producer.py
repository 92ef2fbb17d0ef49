#!/usr/bin/env python3
"""Produces COUNT records `value-<n>` (key `key-<n>`) with an idempotent librdkafka producer
(enable.idempotence=true, acks=all), at most RATE records a second, and appends one line per
acknowledged record to LOG as delivery reports arrive:

    <partition> <offset> <value>

The broker may be restarted or killed meanwhile: librdkafka retries, and idempotence makes each
retried batch land once. Prints {"sent", "acked", "failed", "errors"} when every record has a
delivery report (or SECONDS pass).

    idempotent_producer.py BOOTSTRAP TOPIC LOG --count N [--rate R] [--seconds S]
"""

import argparse
import os
import time

import common


def main():
    from confluent_kafka import Producer

    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("log")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    counts = {"sent": 0, "acked": 0, "failed": 0, "errors": []}

    def on_delivery(err, msg):
        if err is not None:
            counts["failed"] += 1
            if len(counts["errors"]) < 5:
                counts["errors"].append(str(err))
            return
        counts["acked"] += 1
        line = f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n".encode()
        os.write(log, line)  # one write(2) per line: whole lines only

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": int(args.seconds * 1000),
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 200,
        "retry.backoff.ms": 50,
    })
    deadline = common.Deadline(args.seconds)
    start = time.monotonic()
    while counts["sent"] < args.count and not deadline.expired():
        n = counts["sent"]
        # Hold the rate so that restarts fall in the middle of the stream.
        ahead = n / args.rate - (time.monotonic() - start)
        if ahead > 0:
            producer.poll(min(ahead, 0.05))
            continue
        try:
            producer.produce(args.topic, key=f"key-{n}".encode(), value=f"value-{n}".encode(),
                             on_delivery=on_delivery)
            counts["sent"] += 1
        except BufferError:
            producer.poll(0.01)
        if n % 100 == 0:
            producer.poll(0)
    while counts["acked"] + counts["failed"] < counts["sent"] and not deadline.expired():
        producer.poll(0.1)
    producer.flush(1)
    os.close(log)
    common.emit(counts)


if __name__ == "__main__":
    main()
