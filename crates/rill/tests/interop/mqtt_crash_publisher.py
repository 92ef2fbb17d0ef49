#!/usr/bin/env python3
"""Publishes `<n>` (n = 0, 1, 2, ...) to one MQTT topic at QoS 1 with paho-mqtt, continuously,
and writes one line `<n>` to stdout for each message whose PUBACK has arrived (with a success
reason code), as it arrives:

    <n>

Each line is written and flushed on its own (one write(2)), so whoever kills this process or
the broker reads only whole lines for acknowledged messages (a torn last line has no newline).
It keeps at most IN_FLIGHT messages unacknowledged and sends at most ~5,000 a second. When the connection is lost it stops and
exits 0 (the test kills the broker on purpose), printing nothing more; it also stops by itself
after SECONDS.

    mqtt_crash_publisher.py HOST PORT TOPIC --version 3.1.1|5 [--in-flight N] [--seconds S]
"""

import argparse
import os
import sys
import threading
import time

import common
import mqtt_common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("topic")
    parser.add_argument("--version", choices=["3.1.1", "5"], required=True)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    deadline = common.Deadline(args.seconds)

    client = mqtt_common.connect(args.host, args.port, args.version, "rill-crash", deadline)
    cond = threading.Condition()
    pending = {}  # mid -> n, for messages awaiting their PUBACK
    early = {}  # mid -> reason code, for PUBACKs that beat `pending`
    out = sys.stdout.fileno()

    def acked(n, reason_code):
        if not reason_code.is_failure:
            os.write(out, f"{n}\n".encode())  # one write(2) per line: whole lines only

    def on_publish(_client, _userdata, mid, reason_code, _properties):
        with cond:
            if mid in pending:
                acked(pending.pop(mid), reason_code)
            else:
                early[mid] = reason_code
            cond.notify_all()

    client.on_publish = on_publish
    state = client.user_data_get()
    n = 0
    try:
        while not deadline.expired() and state.disconnected is None:
            with cond:
                while len(pending) >= args.in_flight and state.disconnected is None \
                        and not deadline.expired():
                    cond.wait(0.05)
            if state.disconnected is not None or deadline.expired():
                break
            # Never call into paho holding `cond`: paho calls on_publish holding its own locks.
            info = client.publish(args.topic, str(n).encode(), qos=1)
            if info.rc != 0:
                break  # the connection is gone
            with cond:
                if info.mid in early:
                    acked(n, early.pop(info.mid))
                else:
                    pending[info.mid] = n
            n += 1
            if n % 50 == 0:
                time.sleep(0.01)  # at most ~5,000 messages/s: mid-stream, yet few to check
    finally:
        client.loop_stop()


if __name__ == "__main__":
    main()
