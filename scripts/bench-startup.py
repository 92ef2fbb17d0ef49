#!/usr/bin/env python3
"""Start-up to ready: how long a broker takes from exec until it answers a Kafka ApiVersions
request, and its resident memory once idle.

    bench-startup.py --port PORT [--runs 10] [--idle-after 5] [--json] -- COMMAND...

COMMAND must start a broker listening on 127.0.0.1:PORT (each run gets a fresh, empty working
directory as its cwd; the string {dir} in COMMAND is replaced by that directory). The clock
starts just before exec and stops when the first ApiVersions answer arrives (connection attempts
every millisecond). After the last run the broker is left up for --idle-after seconds and its
VmRSS is read: the idle RSS of a broker that has just started and served one request.
"""

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time


def api_versions_answered(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            body = struct.pack(">hhih", 18, 0, 1, 5) + b"start"
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = sock.recv(8)
            return len(head) == 8 and struct.unpack(">i", head[4:8])[0] == 1
    except OSError:
        return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--idle-after", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [c for c in args.command if c != "--"]
    if not command:
        parser.error("no COMMAND given")

    times = []
    idle_rss = None
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as workdir:
            argv = [c.replace("{dir}", workdir) for c in command]
            started = time.monotonic()
            child = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            try:
                deadline = started + 30
                while not api_versions_answered(args.port):
                    if child.poll() is not None:
                        raise RuntimeError(f"{argv} exited with {child.returncode}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{argv} not ready after 30 s")
                    time.sleep(0.001)
                times.append((time.monotonic() - started) * 1000)
                if run == args.runs - 1:
                    time.sleep(args.idle_after)
                    idle_rss = rss_kib(child.pid)
            finally:
                child.terminate()
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
    result = {
        "runs": len(times),
        "startup_ms_median": round(statistics.median(times), 1),
        "startup_ms_min": round(min(times), 1),
        "startup_ms_max": round(max(times), 1),
        "idle_rss_kib": idle_rss,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"start-up to ready: median {result['startup_ms_median']} ms "
              f"(min {result['startup_ms_min']}, max {result['startup_ms_max']}, "
              f"{len(times)} runs); idle RSS {idle_rss} KiB after {args.idle_after} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
