#!/usr/bin/env python3
"""Produces `value-<n>` (key `key-<n>`, n = 0, 1, 2, ...) with acks=all, at most ~5,000 records
a second, and appends one line per acknowledged record to LOG, as the delivery report arrives:

    <partition> <offset> <value>

Each line is written and flushed on its own, so whoever kills this process or the broker
reads only whole lines for acknowledged records (a torn last line has no newline). Stops by
itself after SECONDS, or after MAX records, and prints {"sent", "acked", "failed"}.

    crash_producer.py BOOTSTRAP TOPIC LOG [--seconds S] [--max N]
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
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max", type=int, default=1_000_000)
    args = parser.parse_args()
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    counts = {"sent": 0, "acked": 0, "failed": 0}

    def on_delivery(err, msg):
        if err is not None:
            counts["failed"] += 1
            return
        counts["acked"] += 1
        line = f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n".encode()
        os.write(log, line)  # one write(2) per line: whole lines only, even if killed

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 200,
        "message.timeout.ms": 5000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 200,
    })
    deadline = common.Deadline(args.seconds)
    while not deadline.expired() and counts["sent"] < args.max:
        n = counts["sent"]
        try:
            producer.produce(args.topic, key=f"key-{n}".encode(), value=f"value-{n}".encode(),
                             on_delivery=on_delivery)
            counts["sent"] += 1
        except BufferError:
            producer.poll(0.01)
            continue
        if n % 50 == 0:
            producer.poll(0)
            time.sleep(0.01)  # at most ~5,000 records/s: enough to be mid-stream, few to check
    producer.flush(5)
    os.close(log)
    common.emit(counts)


if __name__ == "__main__":
    main()
