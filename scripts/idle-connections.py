#!/usr/bin/env python3
"""Opens N connections to a Kafka listener and keeps them idle: each (over TLS if --ca is
given, after the handshake) sends ApiVersions v0 and reads the answer, so the broker has served
it once. Prints "ready" when all are open, then waits for a line on stdin (or its end).

    idle-connections.py HOST:PORT N [--ca CA_FILE]
"""

import argparse
import socket
import ssl
import struct
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("n", type=int)
    parser.add_argument("--ca")
    args = parser.parse_args()
    host, port = args.address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    body = struct.pack(">hhih", 18, 0, 1, -1)
    request = struct.pack(">i", len(body)) + body
    conns = []
    for _ in range(args.n):
        sock = socket.create_connection((host, int(port)), timeout=30)
        if context:
            sock = context.wrap_socket(sock, server_hostname=host)
        sock.sendall(request)
        (size,) = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL) if not context else read(sock, 4))
        read(sock, size)
        conns.append(sock)
    print("ready", flush=True)
    sys.stdin.readline()


def read(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit("closed")
        data += chunk
    return data


if __name__ == "__main__":
    main()
