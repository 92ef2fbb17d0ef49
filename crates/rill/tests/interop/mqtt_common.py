"""paho-mqtt helpers shared by the MQTT interop scripts (`mqtt_*.py`): connect with MQTT 3.1.1
or 5.0, and notice a lost connection instead of waiting out a deadline.

Uses paho-mqtt 2.x's callback API version 2 (reason codes and properties for both protocol
versions). The client's network loop runs in paho's own thread (`loop_start`).
"""

import os
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import common

PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}


class _State:
    def __init__(self):
        self.cond = threading.Condition()
        self.connected = None  # None: no CONNACK yet; then the CONNACK's reason code
        self.disconnected = None  # the reason, once the connection is gone
        self.session_present = None  # the CONNACK's session present flag


def connect(host, port, version, name, deadline, keepalive=30, client_id=None, persistent=False,
            on_message=None, session_expiry=3600):
    """A connected client with its network loop running; fails unless the CONNACK is a
    success. The client id is `client_id`, or `<name>-<pid>`. The session is clean, unless
    `persistent`: then it is kept (3.1.1's clean session 0; 5.0's clean start 0 with a session
    expiry of `session_expiry` seconds) and resumed if the broker has it (`user_data_get().session_present`)."""
    state = _State()
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id or f"{name}-{os.getpid()}",
        protocol=PROTOCOLS[version],
        clean_session=(not persistent) if version == "3.1.1" else None,
        userdata=state,
        # Never reconnect on our own: a lost connection is for the test to see.
        reconnect_on_failure=False,
    )

    def on_connect(_client, state, flags, reason_code, _properties):
        with state.cond:
            state.session_present = bool(flags.session_present)
            state.connected = reason_code
            state.cond.notify_all()

    def on_disconnect(_client, state, _flags, reason_code, _properties):
        with state.cond:
            state.disconnected = reason_code
            state.cond.notify_all()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    # Set before connecting: a resumed session's deliveries may come right after the CONNACK.
    if on_message is not None:
        client.on_message = on_message
    try:
        if version == "5":
            properties = None
            if persistent:
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = session_expiry
            client.connect(
                host, port, keepalive=keepalive, clean_start=not persistent, properties=properties
            )
        else:
            client.connect(host, port, keepalive=keepalive)
    except OSError as err:
        common.fail(f"connecting to {host}:{port}: {err}")
    client.loop_start()
    with state.cond:
        while state.connected is None and state.disconnected is None and not deadline.expired():
            state.cond.wait(min(deadline.left(), 0.1))
        if state.connected is None:
            client.loop_stop()
            common.fail(f"no CONNACK from {host}:{port} (disconnected: {state.disconnected})")
        if state.connected.is_failure:
            client.loop_stop()
            common.fail(f"connection refused: {state.connected}")
    return client


def check_connected(client):
    """Fails if the broker ended the connection."""
    state = client.user_data_get()
    if state.disconnected is not None:
        common.fail(f"connection lost: {state.disconnected}")


def disconnect(client):
    """Sends DISCONNECT and waits (briefly) for the socket to close."""
    state = client.user_data_get()
    client.disconnect()
    with state.cond:
        if state.disconnected is None:
            state.cond.wait(5)
