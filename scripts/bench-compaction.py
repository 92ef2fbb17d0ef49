#!/usr/bin/env python3
"""Produce latency beside the log cleaner, measured with librdkafka (confluent-kafka) against
one `rill serve` (acks=all answered after fsync), cleaner on against cleaner off, side by side
in one run:

  - a backlog: topic A (compacted, segment.bytes SEGMENT, min.cleanable.dirty.ratio 0.01) gets
    BACKLOG MiB of keyed records (VALUE-byte values, KEYS distinct keys drawn at random, so
    most are superseded), written once into a template data dir by a broker with the cleaner
    off, then stopped;
  - each round copies the template to a fresh data dir (synced) and starts a broker on it,
    `--log-cleaner-enable true --log-cleaner-backoff-ms 100` ("on": its cleaner starts a pass
    over A's backlog at once) or `--log-cleaner-enable false` ("off"), then produces to topic B
    (one partition, plain) at a fixed RATE records/s of SIZE bytes for WINDOW seconds after a
    1 s warm-up, acks=all, librdkafka's other settings at their defaults, timing each record
    from produce() to its delivery report;
  - the machine's CPU time over the warm-up and window, split into the broker's, this
    client's and everything else's (`other_cpu_s_in_window`: another user's build on a shared machine),
    and the slowest record of each second (`max_ms_by_second`, seconds since the broker
    started), so a noisy round can be told from the cleaner's doing;
  - "on" must really be cleaning during the window: the cleaner thread's CPU time over the
    window (from /proc, thread `rill-cleaner-0`) is reported, and after the window the script
    waits for the pass to end (rill_cleaner_runs_total{result="done"} on /metrics) and
    reports when it did, which must be after the window ended.
Rounds alternate which mode goes first. Reports per-round p50/p99/p99.9/max, the medians over
rounds and the p99 ratio on/off. Prints one JSON line per measurement and a summary, also
into --out.

    .venv/bin/python scripts/bench-compaction.py [--rill target/release/rill] \
        [--backlog-mib 1024] [--keys 1000000] [--value 100] [--segment-mib 64] \
        [--rate 2000] [--size 512] [--window 8] [--rounds 3] [--out FILE] \
        [--broker-logs DIR] [--only on|off]   # diagnosis: keep broker stderr (RILL_LOG=debug)
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC_A = "compacted-a"
TOPIC_B = "plain-b"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(rill, data_dir, cleaner, log_file=None):
    port, admin = free_port(), free_port()
    args = [rill, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}",
            "--admin-listen", f"127.0.0.1:{admin}",
            "--log-cleaner-enable", "true" if cleaner else "false",
            "--log-cleaner-backoff-ms", "100"]
    err = open(log_file, "w") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/health/ready", timeout=1):
                return proc, f"127.0.0.1:{port}", f"127.0.0.1:{admin}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("rill did not start")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def metrics(admin):
    """The cleaner's counters from /metrics."""
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("rill_cleaner_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def cleaner_cpu(pid):
    """CPU seconds of the process's cleaner threads so far."""
    ticks = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().startswith("rill-cleaner"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def busy_cpu():
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid):
    """CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu():
    t = os.times()
    return t.user + t.system


def fill(bootstrap, backlog_bytes, keys, value_size, segment_bytes):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [
        NewTopic(TOPIC_A, 1, 1, config={
            "cleanup.policy": "compact", "segment.bytes": str(segment_bytes),
            "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0"}),
        NewTopic(TOPIC_B, 1, 1),
    ]
    for f in admin.create_topics(topics).values():
        f.result()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                  "queue.buffering.max.messages": 1000000,
                  "queue.buffering.max.kbytes": 1048576})
    value = b"v" * value_size
    rng = random.Random(7)
    sent = 0
    records = backlog_bytes // (value_size + 20)
    start_time = time.monotonic()
    for _ in range(records):
        key = b"key-%08d" % rng.randrange(keys)
        while True:
            try:
                p.produce(TOPIC_A, key=key, value=value, partition=0)
                break
            except BufferError:
                p.poll(0.01)
        sent += 1
        if sent % 10000 == 0:
            p.poll(0)
    p.flush(300)
    return records, time.monotonic() - start_time


def measure(bootstrap, rate, size, window):
    """Latencies (ms) of records produced to B at `rate` for `window` s after a 1 s warm-up."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    value = b"x" * size
    lat = []
    sent = []
    errors = [0]
    measuring = [False]

    def report(sent_at):
        def cb(err, _msg):
            if err is not None:
                errors[0] += 1
            elif measuring[0] and sent_at is not None:
                lat.append((time.monotonic() - sent_at) * 1000)
                sent.append(sent_at)
        return cb

    # Warm up: metadata, connection, a first batch.
    p.produce(TOPIC_B, value=value, partition=0)
    p.flush(30)
    interval = 1.0 / rate
    t0 = time.monotonic()
    warm_end = t0 + 1.0
    end = warm_end + window
    n = 0
    window_start = None
    measuring[0] = True
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if window_start is None and now >= warm_end:
            window_start = now
        # Send what is due (records leave at most a tick late; each is timed from its send),
        # then wait for delivery reports until the next tick: no busy loop, so the client
        # takes little of the machine's two cores.
        in_window = now >= warm_end
        while t0 + n * interval <= now:
            p.produce(TOPIC_B, value=value, partition=0,
                      on_delivery=report(now if in_window else None))
            n += 1
        p.poll(0.001)
    window_end = time.monotonic()
    p.flush(60)
    return lat, sent, errors[0], window_start, window_end


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rill", default="target/release/rill")
    parser.add_argument("--backlog-mib", type=int, default=1024)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--value", type=int, default=100)
    parser.add_argument("--segment-mib", type=int, default=64)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tmp", default=None, help="where the data dirs go (default TMPDIR)")
    parser.add_argument("--broker-logs", help="a dir to keep each round's broker stderr in "
                        "(RILL_LOG sets its level)")
    parser.add_argument("--only", choices=["on", "off"], help="one mode only (diagnosis)")
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = []

    def emit(line):
        lines.append(line)
        print(json.dumps(line), flush=True)

    results = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="rill-bench-compaction-", dir=args.tmp) as root:
        template = os.path.join(root, "template")
        proc, bootstrap, _ = start(args.rill, template, cleaner=False)
        try:
            records, secs = fill(bootstrap, args.backlog_mib << 20, args.keys, args.value,
                                 args.segment_mib << 20)
        finally:
            stop(proc)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in
                   os.walk(os.path.join(template, f"{TOPIC_A}-0")) for f in fs
                   if f.endswith(".log"))
        emit({"op": "backlog", "records": records, "keys": args.keys, "value": args.value,
              "log_bytes": size, "secs": round(secs, 1)})
        for r in range(args.rounds):
            modes = ["on", "off"] if r % 2 == 0 else ["off", "on"]
            for mode in modes:
                if args.only and mode != args.only:
                    continue
                data = os.path.join(root, f"round-{r}-{mode}")
                shutil.copytree(template, data)
                subprocess.run(["sync", "-f", data], check=True)
                started = time.monotonic()
                log_file = args.broker_logs and os.path.join(args.broker_logs,
                                                             f"round-{r}-{mode}.log")
                proc, bootstrap, admin = start(args.rill, data, cleaner=(mode == "on"),
                                               log_file=log_file)
                try:
                    cpu0 = cleaner_cpu(proc.pid)
                    busy0, broker0, own0 = busy_cpu(), process_cpu(proc.pid), own_cpu()
                    m0 = metrics(admin)
                    lat, sent, errors, w0, w1 = measure(bootstrap, args.rate, args.size,
                                                        args.window)
                    cpu1 = cleaner_cpu(proc.pid)
                    busy1, broker1, own1 = busy_cpu(), process_cpu(proc.pid), own_cpu()
                    m1 = metrics(admin)
                    pass_end = None
                    if mode == "on":
                        deadline = time.monotonic() + 120
                        while time.monotonic() < deadline:
                            m = metrics(admin)
                            if m.get('rill_cleaner_runs_total{result="done"}', 0) > m0.get(
                                    'rill_cleaner_runs_total{result="done"}', 0):
                                pass_end = time.monotonic()
                                m1 = m
                                break
                            time.sleep(0.2)
                finally:
                    stop(proc)
                    shutil.rmtree(data, ignore_errors=True)
                    # The deletes' writeback (and discards) before the next round starts.
                    subprocess.run(["sync", "-f", root], check=True)
                    time.sleep(1)
                # The slowest record sent in each second of the window.
                timeline = {}
                for at, ms in zip(sent, lat):
                    second = int(at - started)
                    timeline[second] = max(timeline.get(second, 0), ms)
                line = {
                    "op": "produce", "mode": mode, "round": r, "records": len(lat),
                    "errors": errors,
                    "p50_ms": round(pct(lat, 0.5), 2), "p99_ms": round(pct(lat, 0.99), 2),
                    "p999_ms": round(pct(lat, 0.999), 2), "max_ms": round(max(lat), 2),
                    "window_start_s": round(w0 - started, 2),
                    "window_end_s": round(w1 - started, 2),
                    "cleaner_cpu_s_in_window": round(cpu1 - cpu0, 2),
                    "broker_cpu_s_in_window": round(broker1 - broker0, 2),
                    "client_cpu_s_in_window": round(own1 - own0, 2),
                    # What else ran on the machine meanwhile (another user's build, ...).
                    "other_cpu_s_in_window": round(
                        (busy1 - busy0) - (broker1 - broker0) - (own1 - own0), 2),
                    "max_ms_by_second": {k: round(v) for k, v in sorted(timeline.items())},
                }
                if mode == "on":
                    line["pass_end_s"] = pass_end and round(pass_end - started, 2)
                    line["cleaning_through_window"] = bool(pass_end and pass_end > w1)
                    line["cleaner_bytes_read"] = m1.get("rill_cleaner_bytes_read_total", 0) - \
                        m0.get("rill_cleaner_bytes_read_total", 0)
                    line["cleaner_bytes_written"] = m1.get(
                        "rill_cleaner_bytes_written_total", 0) - m0.get(
                        "rill_cleaner_bytes_written_total", 0)
                    line["cleaner_records_removed"] = m1.get(
                        "rill_cleaner_records_removed_total", 0)
                results[mode].append(line)
                emit(line)
    if args.only:
        return
    med = {mode: {k: statistics.median(x[k] for x in v) for k in
                  ("p50_ms", "p99_ms", "p999_ms", "max_ms")} for mode, v in results.items()}
    summary = {
        "rounds": args.rounds, "rate": args.rate, "size": args.size, "window_s": args.window,
        "backlog_mib": args.backlog_mib, "keys": args.keys, "segment_mib": args.segment_mib,
        "median": med,
        "p50_ratio_on_off": round(med["on"]["p50_ms"] / med["off"]["p50_ms"], 3),
        "p99_ratio_on_off": round(med["on"]["p99_ms"] / med["off"]["p99_ms"], 3),
        "p99_ratio_pair_by_pair_median": round(statistics.median(
            on["p99_ms"] / off["p99_ms"] for on, off in zip(results["on"], results["off"])), 3),
        "p99_target_met": med["on"]["p99_ms"] / med["off"]["p99_ms"] <= 1.5,
        "cleaning_through_every_window": all(x["cleaning_through_window"]
                                             for x in results["on"]),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
            f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
