#!/usr/bin/env python3
"""Idle cost of replicated partitions: a 3-broker cluster on this machine (scripts/cluster.sh,
every broker at its defaults), first with no topic, then with PARTITIONS partitions at RF 3
(`rill topic create t -p PARTITIONS -r 3`), each sampled idle for IDLE seconds:
  - CPU of each broker, % of one core (utime+stime deltas of /proc/PID/stat over the wall time);
  - the same per thread, from /proc/PID/task/*/stat, summed by thread name (digits kept, so
    rill-storage-0 and rill-storage-1 stay apart), with voluntary context switches per second
    (wake-ups) from /proc/PID/task/*/status;
  - RSS of each broker (VmRSS) before and after the topic, and per replica:
    (RSS with the topic - RSS before it) / the replicas that broker holds (from Metadata).

    .venv/bin/python scripts/bench-idle-replicas.py [--rill target/release/rill] \
        [--partitions 1000] [--idle 60] [--settle 10]

Prints one JSON line per figure (also into --out) and a per-thread table.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from confluent_kafka.admin import AdminClient

from cluster_nodes import CLUSTER, ROOT, TICKS, pid_of, rss_kib




def stat_cpu(path):
    with open(path) as f:
        text = f.read()
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, (int(fields[11]) + int(fields[12])) / TICKS


def wakeups(path):
    with open(path) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0




def threads(pid):
    """{tid: (name, cpu seconds, voluntary switches)}"""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name, cpu = stat_cpu(f"/proc/{pid}/task/{tid}/stat")
            out[tid] = (name, cpu, wakeups(f"/proc/{pid}/task/{tid}/status"))
        except OSError:
            pass
    return out


def sample(pids, seconds):
    """Per broker: cpu %, per-thread-name cpu % and wake-ups/s over `seconds`."""
    before = {k: (stat_cpu(f"/proc/{p}/stat")[1], threads(p)) for k, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    res = {}
    for k, p in pids.items():
        cpu = stat_cpu(f"/proc/{p}/stat")[1]
        after = threads(p)
        by_name = {}
        for tid, (name, c, w) in after.items():
            c0, w0 = before[k][1].get(tid, (name, 0.0, 0))[1:]
            e = by_name.setdefault(name, [0.0, 0, 0])
            e[0] += c - c0
            e[1] += w - w0
            e[2] += 1
        res[k] = {
            "cpu_pct": round(100 * (cpu - before[k][0]) / wall, 2),
            "rss_kib": rss_kib(p),
            "threads": len(after),
            "seconds": round(wall, 1),
            "by_thread": {n: {"cpu_pct": round(100 * e[0] / wall, 2),
                              "wakeups_per_s": round(e[1] / wall, 1), "count": e[2]}
                          for n, e in sorted(by_name.items(), key=lambda x: -x[1][0])},
        }
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rill", default=os.path.join(ROOT, "target", "release", "rill"))
    p.add_argument("--partitions", type=int, default=1000)
    p.add_argument("--idle", type=float, default=60)
    p.add_argument("--settle", type=float, default=10)
    p.add_argument("--out", default=os.path.join(ROOT, "target", "bench-idle-replicas.jsonl"))
    args = p.parse_args()
    rill = os.path.abspath(args.rill)
    env = dict(os.environ, RILL_BIN=rill)
    tmp = tempfile.mkdtemp(prefix="bench-idle-")
    out = open(args.out, "a")

    def emit(**fields):
        line = json.dumps(fields)
        print(line, flush=True)
        out.write(line + "\n")
        out.flush()

    bootstrap = subprocess.run([CLUSTER, "start", "3", tmp], env=env, check=True,
                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
    ids = [1, 2, 3]
    try:
        pids = {k: pid_of(tmp, k) for k in ids}
        emit(machine={"nproc": os.cpu_count(), "kernel": os.uname().release,
                      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        time.sleep(args.settle)
        empty = sample(pids, min(args.idle, 30))
        for k in ids:
            emit(phase="no-topic", broker=k, **empty[k])

        t0 = time.monotonic()
        subprocess.run([rill, "topic", "create", "t", "-p", str(args.partitions), "-r", "3",
                        "-b", bootstrap], check=True, capture_output=True)
        created = time.monotonic() - t0
        admin = AdminClient({"bootstrap.servers": bootstrap})
        deadline = time.monotonic() + 300
        while True:
            md = admin.list_topics("t", timeout=10)
            parts = md.topics["t"].partitions
            led = sum(1 for q in parts.values() if q.leader in ids)
            full = sum(1 for q in parts.values() if sorted(q.isrs) == ids)
            if led == args.partitions and full == args.partitions:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        ready = time.monotonic() - t0
        replicas = {k: sum(1 for q in parts.values() if k in q.replicas) for k in ids}
        leaders = {k: sum(1 for q in parts.values() if q.leader == k) for k in ids}
        emit(phase="create", seconds_create=round(created, 2), seconds_all_led_and_in_sync=round(ready, 2),
             partitions_led=led, partitions_full_isr=full, replicas=replicas, leaders=leaders)
        time.sleep(args.settle)
        loaded = sample(pids, args.idle)
        for k in ids:
            per = (loaded[k]["rss_kib"] - empty[k]["rss_kib"]) / replicas[k] if replicas[k] else None
            emit(phase="with-topic", broker=k, replicas=replicas[k], leaders=leaders[k],
                 rss_kib_before=empty[k]["rss_kib"],
                 rss_kib_per_replica=round(per, 2) if per is not None else None, **loaded[k])
        print("\n== per thread, with the topic: cpu % of a core (wake-ups/s)")
        for k in ids:
            print(f"broker {k}: total {loaded[k]['cpu_pct']} % (no topic: {empty[k]['cpu_pct']} %), "
                  f"RSS {empty[k]['rss_kib']} -> {loaded[k]['rss_kib']} KiB")
            for name, e in loaded[k]["by_thread"].items():
                if e["cpu_pct"] >= 0.05 or e["wakeups_per_s"] >= 5:
                    print(f"    {name:20} x{e['count']:<3} {e['cpu_pct']:6.2f} %  "
                          f"({e['wakeups_per_s']} /s)")
    finally:
        subprocess.run([CLUSTER, "stop", tmp], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
