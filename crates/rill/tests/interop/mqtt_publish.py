#!/usr/bin/env python3
"""Publishes numbered messages from several MQTT devices with paho-mqtt, interleaved, at one
QoS, and waits for every acknowledgement (PUBACK for QoS 1, PUBCOMP for QoS 2):

    {"version", "qos", "published": {topic: count}, "acked": N}

Device TOPIC's message n (n = 0, 1, ...) has the payload `<TOPIC>#<n>`, so a reader can check
per-device order and completeness. Exits 1 if the connection is refused or lost, or if an
acknowledgement carries a failure reason code (MQTT 5).

    mqtt_publish.py HOST PORT --version 3.1.1|5 --topic T [--topic T ...] --count N
                    [--qos 0|1|2] [--in-flight N] [--timeout SECONDS]

`--in-flight` is how many messages may await their acknowledgement at once (1: publish the next
one only once the last is acknowledged).
"""

import argparse
import threading

import common
import mqtt_common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--version", choices=["3.1.1", "5"], required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--qos", type=int, choices=[0, 1, 2], default=1)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    deadline = common.Deadline(args.timeout)

    client = mqtt_common.connect(args.host, args.port, args.version, "rill-publish", deadline)
    lock = threading.Condition()
    pending = set()  # mids awaiting their acknowledgement
    early = set()  # acknowledged mids that `pending` did not hold yet
    failures = []
    acked = [0]

    def on_publish(_client, _userdata, mid, reason_code, _properties):
        with lock:
            if reason_code.is_failure:
                failures.append(f"message {mid}: {reason_code}")
            if mid in pending:
                pending.discard(mid)
            else:
                early.add(mid)
            acked[0] += 1
            lock.notify_all()

    def wait_until(condition):
        with lock:
            while not condition() and not deadline.expired():
                mqtt_common.check_connected(client)
                lock.wait(min(deadline.left(), 0.1))
            if not condition():
                common.fail(f"timed out with {len(pending)} messages unacknowledged")

    client.on_publish = on_publish
    try:
        for n in range(args.count):
            for topic in args.topic:
                wait_until(lambda: len(pending) < args.in_flight)
                # Never call into paho holding `lock`: paho calls on_publish holding its own.
                info = client.publish(topic, f"{topic}#{n}".encode(), qos=args.qos)
                if info.rc != 0:
                    common.fail(f"publish to {topic} failed: rc {info.rc}")
                with lock:
                    if info.mid in early:
                        early.discard(info.mid)
                    elif args.qos > 0:
                        pending.add(info.mid)
        wait_until(lambda: not pending)
        if failures:
            common.fail(f"failed acknowledgements: {failures[:5]}")
        mqtt_common.disconnect(client)
    finally:
        client.loop_stop()
    common.emit({
        "version": args.version, "qos": args.qos,
        "published": {topic: args.count for topic in args.topic},
        "acked": acked[0],
    })


if __name__ == "__main__":
    main()
