#!/usr/bin/env python3
"""Helpers of scripts/bench-partitions.sh: create many partitions, sample an idle broker's /proc,
time a restart to ready, and read latency files. Each subcommand prints one JSON object.

    bench-partitions.py create --bootstrap B --topics N --partitions P [--prefix t] [--batch 10]
    bench-partitions.py sample --pid PID --seconds S
    bench-partitions.py ready --port P [--admin-port A] --partitions S --since NS [--pid PID]
    bench-partitions.py percentiles FILE          # one latency in microseconds a line

`create` needs confluent-kafka (the venv of scripts/test); the rest only the standard library.
"""

import argparse
import json
import os
import socket
import struct
import sys
import time
import urllib.request


def create(args):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": args.bootstrap, "socket.timeout.ms": 300000})
    names = [f"{args.prefix}{i:04d}" for i in range(args.topics)]
    created = 0
    error = None
    started = time.monotonic()
    for first in range(0, len(names), args.batch):
        batch = [NewTopic(n, args.partitions, 1) for n in names[first:first + args.batch]]
        futures = admin.create_topics(batch, operation_timeout=300, request_timeout=300)
        for name, future in futures.items():
            try:
                future.result()
                created += args.partitions
            except Exception as e:  # a KafkaException carrying the broker's error
                error = error or f"{name}: {e}"
        if error:
            break
    seconds = time.monotonic() - started
    print(json.dumps({
        "topics": args.topics, "partitions_per_topic": args.partitions,
        "partitions_created": created, "seconds": round(seconds, 3),
        "partitions_per_s": round(created / seconds, 1) if seconds > 0 else None,
        "error": error,
    }))
    return 0 if error is None else 1


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Threads", "VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        # the command name may hold spaces: the fields after it start past the last ')'
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(args):
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), cpu_ticks(args.pid)
    threads, rss, fds = [], [], []
    end = t0 + args.seconds
    while True:
        status = proc_status(args.pid)
        threads.append(status["Threads"])
        rss.append(status["VmRSS"])
        fds.append(fd_count(args.pid))
        now = time.monotonic()
        if now >= end:
            break
        time.sleep(min(1.0, end - now))
    t1, c1 = time.monotonic(), cpu_ticks(args.pid)
    print(json.dumps({
        "seconds": round(t1 - t0, 2),
        "cpu_pct_of_core": round(100.0 * (c1 - c0) / hz / (t1 - t0), 2),
        "threads": max(threads), "rss_mib": round(max(rss) / 1024, 1),
        "rss_mib_last": round(rss[-1] / 1024, 1), "fds": max(fds),
    }))
    return 0


def metadata_partitions(port):
    """Metadata v1 for all topics: the number of partitions of topics not named __* with a leader
    and no error, or None when the broker does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            client = b"bench"
            body = struct.pack(">hhih", 3, 1, 7, len(client)) + client + struct.pack(">i", -1)
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 4:
                chunk = sock.recv(4 - len(head))
                if not chunk:
                    return None
                head += chunk
            size = struct.unpack(">i", head)[0]
            buf = bytearray()
            while len(buf) < size:
                chunk = sock.recv(min(1 << 20, size - len(buf)))
                if not chunk:
                    return None
                buf += chunk
    except OSError:
        return None
    pos = 4  # correlation id

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string():
        nonlocal pos
        n = take(">h")
        if n > 0:
            pos += n
        return bytes(buf[pos - n:pos]) if n > 0 else b""

    for _ in range(take(">i")):  # brokers: node_id, host, port, rack
        take(">i"); string(); take(">i"); string()
    take(">i")  # controller id
    ready = 0
    for _ in range(take(">i")):  # topics: error, name, is_internal, partitions
        take(">h"); name = string(); take(">b")
        internal = name.startswith(b"__")  # __consumer_offsets and the like do not count
        for _ in range(take(">i")):
            error, _index, leader = take(">hii")
            for _ in range(2):  # replicas, isr (`pos += 4 * take()` would read pos first)
                n = take(">i")
                pos += 4 * n
            if error == 0 and leader >= 0 and not internal:
                ready += 1
    return ready


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def health_ready(admin_port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/health/ready", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def ready(args):
    """The clock started at --since (time.time_ns() of the shell, just before it exec'd the
    broker): when did the port first accept, /health/ready first answer 200 and a Metadata
    answer first list all --partitions with a leader."""
    since = args.since / 1e9
    ms = lambda: round((time.time() - since) * 1000, 1)
    out = {"port_ms": None, "health_ready_ms": None, "metadata_ms": None, "partitions_seen": 0}
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if out["port_ms"] is None and port_open(args.port):
            out["port_ms"] = ms()
        if args.admin_port and out["health_ready_ms"] is None and health_ready(args.admin_port):
            out["health_ready_ms"] = ms()
        if out["port_ms"] is not None and out["metadata_ms"] is None:
            seen = metadata_partitions(args.port)
            if seen is not None:
                out["partitions_seen"] = seen
                if seen >= args.partitions:
                    out["metadata_ms"] = ms()
        if out["metadata_ms"] is not None and (not args.admin_port or out["health_ready_ms"] is not None):
            break
        if args.pid and not os.path.exists(f"/proc/{args.pid}"):
            out["exited"] = True
            break
        time.sleep(0.01)
    print(json.dumps(out))
    return 0 if out["metadata_ms"] is not None else 1


def percentiles(args):
    values = []
    with open(args.file) as f:
        for line in f:
            line = line.strip()
            if line:
                values.append(int(line))
    values.sort()
    if not values:
        print(json.dumps({"count": 0}))
        return 0
    pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))] / 1000, 2)
    print(json.dumps({"count": len(values), "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                      "p999_ms": pick(0.999), "max_ms": round(values[-1] / 1000, 2)}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("create")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topics", type=int, required=True)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--prefix", default="t")
    p.add_argument("--batch", type=int, default=10, help="topics per CreateTopics request")
    p = sub.add_parser("sample")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=float, default=30)
    p = sub.add_parser("ready")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-port", type=int)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--since", type=int, required=True, help="time.time_ns() at exec")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--pid", type=int, help="give up when this process has exited")
    p = sub.add_parser("percentiles")
    p.add_argument("file")
    args = parser.parse_args()
    return {"create": create, "sample": sample, "ready": ready, "percentiles": percentiles}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
