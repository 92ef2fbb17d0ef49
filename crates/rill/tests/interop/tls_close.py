#!/usr/bin/env python3
"""How the broker closes a TLS connection, as Python's ssl module sees it: connects, sends
ApiVersions v0 and reads its answer, then does MODE and reads until the connection ends.
Prints {"answered": BYTES, "close": "clean"} when the broker sent close_notify (recv returns
b""), or "close": the error's name and text when it just dropped the socket (ragged EOFs
are not suppressed, so a missing close_notify is an SSLEOFError).

    tls_close.py HOST:PORT CA_FILE bad-frame|unknown-api|garbage|idle|hold

`garbage` sends 64 bytes of 0xff (a negative frame size) where a request should be.

`idle` prints a line "ready" first and then waits for the broker to close (its shutdown).
`hold` prints "ready", waits for a line on stdin, then asks ApiVersions again on the same
connection and prints {"answered": BYTES, "again": BYTES}.
"""

import json
import socket
import ssl
import struct
import sys


def frame(api_key, version, correlation_id):
    body = struct.pack(">hhih", api_key, version, correlation_id, -1)
    return struct.pack(">i", len(body)) + body


def read_answer(sock):
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            raise RuntimeError("closed before the answer")
        head += chunk
    (size,) = struct.unpack(">i", head)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            raise RuntimeError("closed mid-answer")
        body += chunk
    return 4 + size


def main():
    address, ca, mode = sys.argv[1:4]
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection((host, int(port)), timeout=20)
    sock = context.wrap_socket(raw, server_hostname=host, suppress_ragged_eofs=False)
    sock.sendall(frame(18, 0, 1))
    answered = read_answer(sock)
    if mode == "bad-frame":
        sock.sendall(struct.pack(">i", 0x7FFFFFFF) + b"x" * 16)
    elif mode == "unknown-api":
        sock.sendall(frame(9999, 0, 2))
    elif mode == "garbage":
        sock.sendall(b"\xff" * 64)
    elif mode == "idle":
        print("ready", flush=True)
    elif mode == "hold":
        print("ready", flush=True)
        sys.stdin.readline()
        sock.sendall(frame(18, 0, 3))
        print(json.dumps({"answered": answered, "again": read_answer(sock)}), flush=True)
        return
    else:
        raise SystemExit(f"unknown mode {mode}")
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                close = "clean"
                break
    except (ssl.SSLError, OSError) as err:
        close = f"{type(err).__name__}: {err}"
    print(json.dumps({"answered": answered, "close": close}), flush=True)


if __name__ == "__main__":
    main()
