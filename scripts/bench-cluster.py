#!/usr/bin/env python3
"""A 3-broker cluster on this machine (scripts/cluster.sh, every broker at its defaults):

  1. idle CPU of each broker (utime+stime from /proc over IDLE seconds, % of one core) and its
     RSS, once the cluster has formed and settled;
  2. Metadata requests per second one broker answers for a cluster of 1,000 partitions
     (10 topics of 100): CONNECTIONS connections, each keeping DEPTH Metadata v12 requests for
     all topics in flight, from PROCESSES load processes, for LOAD seconds; the broker's CPU
     meanwhile. The load runs on the same 2 cores as the three brokers;
  3. failover: TRIES times, kill -9 the metadata quorum's leader (found on /metrics) and time
     until `rill topic create` through a survivor succeeds (the CLI retries what is refused;
     its own start, a few ms, is included); then start the killed broker again
     (cluster.sh start-node) and wait until it has rejoined.

    scripts/bench-cluster.py [--rill target/release/rill] [--tries 20] [--idle 30] [--load 10]

Prints one JSON line per figure and a summary.
"""

import argparse
import json
import multiprocessing
import os
import re
import socket
import statistics
import struct
import subprocess
import tempfile
import time
import urllib.request

from cluster_nodes import CLUSTER, ROOT, TICKS, node_port, pid_of, rss_kib


def cluster(rill, *args):
    env = dict(os.environ, RILL_BIN=rill)
    out = subprocess.run([CLUSTER, *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()






def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS








def quorum_leader(directory, ids):
    for k in ids:
        try:
            port = node_port(directory, k, "ADMIN")
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
        except OSError:
            continue
        match = re.search(rb'rill_quorum\{field="is_leader"\} (\S+)', text)
        if match and float(match.group(1)) == 1.0:
            return k
    return None


def metadata_request(correlation):
    # Metadata v12 (flexible): header v2 = api key, version, correlation id, client id, no tags;
    # body = topics null (all), allow auto create false, include topic ops false, no tags.
    client = b"bench"
    header = struct.pack(">hhih", 3, 12, correlation, len(client)) + client + b"\x00"
    body = b"\x00" + b"\x00" + b"\x00" + b"\x00"
    frame = header + body
    return struct.pack(">i", len(frame)) + frame


def load_worker(args):
    port, connections, depth, seconds = args
    socks = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    request = metadata_request(7)
    answered = 0
    deadline = time.monotonic() + seconds
    for s in socks:
        s.sendall(request * depth)
    buffers = [bytearray() for _ in socks]
    while time.monotonic() < deadline:
        for i, s in enumerate(socks):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("the broker closed a connection")
            buf = buffers[i]
            buf += chunk
            done = 0
            while len(buf) >= 4:
                size = struct.unpack_from(">i", buf)[0]
                if len(buf) < 4 + size:
                    break
                del buf[: 4 + size]
                done += 1
            if done:
                answered += done
                s.sendall(request * done)
    for s in socks:
        s.close()
    return answered


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rill", default=os.path.join(ROOT, "target", "release", "rill"))
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--idle", type=float, default=30)
    parser.add_argument("--load", type=float, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--depth", type=int, default=8)
    args = parser.parse_args()
    rill = os.path.abspath(args.rill)
    directory = tempfile.mkdtemp(prefix="bench-cluster-")
    results = []

    def emit(scenario, **fields):
        line = {"scenario": scenario, **fields}
        results.append(line)
        print(json.dumps(line), flush=True)

    bootstrap = cluster(rill, "start", "3", directory)[-1]
    ids = [1, 2, 3]
    try:
        # 1. Idle.
        time.sleep(5)
        pids = {k: pid_of(directory, k) for k in ids}
        before = {k: cpu_seconds(p) for k, p in pids.items()}
        started = time.monotonic()
        time.sleep(args.idle)
        wall = time.monotonic() - started
        for k, pid in pids.items():
            emit(
                "idle",
                broker=k,
                cpu_pct=round(100 * (cpu_seconds(pid) - before[k]) / wall, 3),
                rss_kib=rss_kib(pid),
                seconds=round(wall, 1),
            )

        # 2. Metadata requests per second for 1,000 partitions.
        first = bootstrap.split(",")[0]
        for t in range(10):
            subprocess.run(
                [rill, "topic", "create", f"meta-{t}", "-p", "100", "-b", first],
                check=True,
                capture_output=True,
            )
        port = node_port(directory, 1, "KAFKA")
        pid = pids[1]
        cpu0 = cpu_seconds(pid)
        started = time.monotonic()
        work = [(port, args.connections, args.depth, args.load)] * args.processes
        with multiprocessing.Pool(args.processes) as pool:
            answered = sum(pool.map(load_worker, work))
        wall = time.monotonic() - started
        emit(
            "metadata",
            partitions=1000,
            requests_per_s=round(answered / wall),
            broker_cpu_pct=round(100 * (cpu_seconds(pid) - cpu0) / wall, 1),
            connections=args.processes * args.connections,
            depth=args.depth,
            seconds=round(wall, 1),
        )

        # 3. Failover of the quorum's leader.
        times = []
        for i in range(args.tries):
            leader = None
            deadline = time.monotonic() + 30
            while leader is None and time.monotonic() < deadline:
                leader = quorum_leader(directory, ids)
                if leader is None:
                    time.sleep(0.05)
            if leader is None:
                raise RuntimeError("no quorum leader")
            survivor = next(k for k in ids if k != leader)
            target = f"127.0.0.1:{node_port(directory, survivor, 'KAFKA')}"
            cluster(rill, "kill", str(leader), directory)
            killed = time.monotonic()
            subprocess.run(
                [rill, "topic", "create", f"failover-{i}", "-p", "3", "-b", target],
                check=True,
                capture_output=True,
            )
            took = time.monotonic() - killed
            times.append(took)
            emit("failover", attempt=i, killed=leader, via=survivor, ms=round(took * 1000, 1))
            cluster(rill, "start-node", str(leader), directory)
        ms = sorted(t * 1000 for t in times)
        emit(
            "failover-summary",
            tries=len(ms),
            p50_ms=round(statistics.median(ms), 1),
            max_ms=round(ms[-1], 1),
            min_ms=round(ms[0], 1),
        )
    finally:
        cluster(rill, "stop", directory)

    print("\n== summary")
    for line in results:
        if line["scenario"] in ("idle", "metadata", "failover-summary"):
            print(json.dumps(line))


if __name__ == "__main__":
    main()
