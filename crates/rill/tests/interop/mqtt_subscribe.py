#!/usr/bin/env python3
"""Subscribes to one MQTT topic filter with paho-mqtt and prints what arrives:

    {"version", "granted": [QoS or reason code per filter],
     "messages": [{"topic", "payload": hex, "qos", "retain", "dup",
                   "user_properties": [[name, value], ...], "content_type": str or null}, ...]}

in arrival order, with "session_present" (the CONNACK's flag). Once the SUBACK has arrived it writes `subscribed` to stderr and, with
`--ready PATH`, creates PATH (so a test knows when to start producing). It stops when COUNT
messages have arrived and then LINGER more seconds have passed without another one (so that
extra deliveries are seen too), or fails at the timeout. The user properties and content type
are MQTT 5's (always empty and null with 3.1.1).

    mqtt_subscribe.py HOST PORT --version 3.1.1|5 --filter F --count N [--qos 0|1|2]
                      [--ready PATH] [--linger SECONDS] [--timeout SECONDS]
                      [--client-id ID --persistent [--resume] [--session-expiry S]]

With --persistent the session is kept after the script ends; --resume subscribes to nothing
and takes what the resumed session's subscriptions deliver.
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
    parser.add_argument("--version", choices=["3.1.1", "5"], required=True)
    parser.add_argument("--filter", required=True)
    parser.add_argument("--qos", type=int, choices=[0, 1, 2], default=1)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ready")
    parser.add_argument("--linger", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--client-id")
    parser.add_argument("--persistent", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--session-expiry", type=int, default=3600)
    args = parser.parse_args()
    deadline = common.Deadline(args.timeout)

    cond = threading.Condition()
    granted = []
    messages = []
    last = [time.monotonic()]

    def on_message(_client, _userdata, msg):
        props = msg.properties
        user = getattr(props, "UserProperty", None) or []
        with cond:
            messages.append({
                "topic": msg.topic, "payload": common.tohex(msg.payload), "qos": msg.qos,
                "retain": bool(msg.retain), "dup": bool(msg.dup),
                "user_properties": [[name, value] for name, value in user],
                "content_type": getattr(props, "ContentType", None),
            })
            last[0] = time.monotonic()
            cond.notify_all()

    client = mqtt_common.connect(
        args.host, args.port, args.version, "rill-subscribe", deadline,
        client_id=args.client_id, persistent=args.persistent, on_message=on_message,
        session_expiry=args.session_expiry,
    )
    session_present = client.user_data_get().session_present
    def on_subscribe(_client, _userdata, _mid, reason_codes, _properties):
        with cond:
            granted.extend(code.value for code in reason_codes)
            cond.notify_all()

    client.on_subscribe = on_subscribe
    try:
        if args.resume:
            granted.append(args.qos)
        else:
            result, _mid = client.subscribe(args.filter, qos=args.qos)
            if result != 0:
                common.fail(f"subscribe to {args.filter} failed: rc {result}")
        with cond:
            while not granted and not deadline.expired():
                mqtt_common.check_connected(client)
                cond.wait(min(deadline.left(), 0.1))
            if not granted:
                common.fail(f"no SUBACK for {args.filter}")
        if any(code >= 0x80 for code in granted):
            common.fail(f"subscription to {args.filter} refused: {granted}")
        print("subscribed", file=sys.stderr, flush=True)
        if args.ready:
            # Created under another name and renamed: whoever sees PATH sees it whole.
            with open(args.ready + ".tmp", "w") as ready:
                ready.write(f"{granted}\n")
            os.rename(args.ready + ".tmp", args.ready)
        with cond:
            while True:
                mqtt_common.check_connected(client)
                if len(messages) >= args.count and time.monotonic() - last[0] >= args.linger:
                    break
                if deadline.expired():
                    common.fail(f"got {len(messages)} of {args.count} messages: {messages}")
                cond.wait(min(deadline.left(), 0.05))
        mqtt_common.disconnect(client)
    finally:
        client.loop_stop()
    common.emit({
        "version": args.version, "granted": granted, "messages": messages,
        "session_present": session_present,
    })


if __name__ == "__main__":
    main()
