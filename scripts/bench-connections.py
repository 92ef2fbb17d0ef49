#!/usr/bin/env python3
"""What idle connections cost a Kafka broker: opens N connections to it, sends an ApiVersions
request (v0, as every Kafka client does first) on each and reads the answer, then holds them all
open and reports the broker's resident memory before and after.

    bench-connections.py --pid PID --bootstrap HOST:PORT [--connections 10000] [--json]

The broker's RSS is read from /proc/PID/status (VmRSS) after the connections settle; the figure
per connection is (RSS with N open - RSS before) / N. The broker needs a file-descriptor limit
above N (Rill raises its soft limit to the hard limit at start). This process raises its own.
"""

import argparse
import json
import resource
import socket
import struct
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def api_versions_v0(correlation_id):
    # Request header v1: api_key 18, api_version 0, correlation id, client id; empty v0 body.
    client_id = b"bench-connections"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("connection closed by the broker")
        data += chunk
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the broker's process id")
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait before reading RSS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.connections + 100)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    host, port = args.bootstrap.rsplit(":", 1)
    time.sleep(args.settle)
    before = rss_kib(args.pid)
    sockets = []
    started = time.monotonic()
    for i in range(args.connections):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(api_versions_v0(i))
        (size,) = struct.unpack(">i", read_exactly(sock, 4))
        answer = read_exactly(sock, size)
        (correlation_id, error_code) = struct.unpack(">ih", answer[:6])
        if correlation_id != i or error_code != 0:
            raise RuntimeError(f"connection {i}: correlation id {correlation_id}, error {error_code}")
        sockets.append(sock)
    opened = time.monotonic() - started
    time.sleep(args.settle)
    after = rss_kib(args.pid)
    result = {
        "connections": len(sockets),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": round((after - before) / len(sockets), 3),
        "open_seconds": round(opened, 2),
    }
    for sock in sockets:
        sock.close()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['connections']} connections: RSS {before} KiB -> {after} KiB, "
              f"{result['kib_per_connection']} KiB each (opened in {result['open_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
