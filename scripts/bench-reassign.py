#!/usr/bin/env python3
"""Moving a replicated partition while it is written: how long the move takes, and what it costs
the producer.

A 4-broker cluster on this machine (scripts/cluster.sh, every broker at its defaults), a topic of
1 partition at replication factor 3, filled with FILL_MB of 1 KiB records (`rill bench produce`,
acks=all). Then, ROUNDS times, a rate-limited `rill bench produce` (acks=all, RATE records/s,
DURATION s, its latency counted from when each record was due) runs twice:
  - quiet: nothing else happens;
  - moving: after LEAD s the partition is moved off its leader onto the broker without a
    replica (`rill topic reassign`, AlterPartitionReassignments); the move's time is from the
    request to the first Metadata answer that lists exactly the target replicas, all in sync.
Each round moves it on again (a new outsider each time), so every move copies the whole log.
Prints one JSON line per run and a summary (the move's time, and the producer's p50/p99/max
quiet and moving, medians over the rounds), also into --out.

    .venv/bin/python scripts/bench-reassign.py [--rill target/release/rill] [--fill-mb 500] \
        [--rate 5000] [--duration 20] [--lead 5] [--rounds 3] [--keep]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka.admin import AdminClient

from cluster_nodes import CLUSTER, ROOT

TOPIC = "moving"


def run(argv, env=None, timeout=600):
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def placement(admin):
    """Partition 0's (leader, replicas, isr)."""
    topic = admin.list_topics(topic=TOPIC, timeout=5).topics[TOPIC]
    p = topic.partitions[0]
    return p.leader, list(p.replicas), sorted(p.isrs)


def bench(rill, bootstrap, args):
    """One rate-limited producer run; its JSON summary."""
    out = run([rill, "bench", "produce", "-b", bootstrap, "--topic", TOPIC, "--json",
               "--record-size", "1024", "--rate", str(args.rate),
               "--duration", f"{args.duration}s", "--acks", "all"])
    return json.loads(out.strip().splitlines()[-1])


def latency(summary):
    """(p50, p99, max) produce latency in ms from a `rill bench --json` summary."""
    lat = summary["latency_ms"]
    return lat["p50"], lat["p99"], lat["max"]


def move(rill, bootstrap, admin, lead_s, record):
    """After `lead_s`, moves partition 0 off its leader onto the broker without a replica;
    records the target and the seconds to Metadata listing it, all in sync."""
    time.sleep(lead_s)
    leader, replicas, _ = placement(admin)
    outsider = next(k for k in range(1, 5) if k not in replicas)
    target = [outsider] + [r for r in replicas if r != leader]
    began = time.monotonic()
    run([rill, "topic", "reassign", "-b", bootstrap, TOPIC, "--partition", "0",
         "--replicas", ",".join(map(str, target))])
    while True:
        _, now, isr = placement(admin)
        if now == target and isr == sorted(target):
            break
        if time.monotonic() - began > 300:
            record["move_s"] = None
            return
        time.sleep(0.05)
    record["move_s"] = round(time.monotonic() - began, 3)
    record["moved"] = f"{replicas} -> {target}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rill", default=os.path.join(ROOT, "target", "release", "rill"))
    parser.add_argument("--fill-mb", type=int, default=500)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--lead", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="rill-bench-reassign-")
    env = dict(os.environ, RILL_BIN=args.rill)
    bootstrap = run(["bash", CLUSTER, "start", "4", directory], env=env).strip().splitlines()[-1]
    results = []
    try:
        run([args.rill, "topic", "create", "-b", bootstrap, TOPIC, "-p", "1", "-r", "3"])
        admin = AdminClient({"bootstrap.servers": bootstrap})
        run([args.rill, "bench", "produce", "-b", bootstrap, "--topic", TOPIC, "--json",
             "--record-size", "1024", "--records", str(args.fill_mb * 1024), "--acks", "all"],
            timeout=1800)
        for k in range(args.rounds):
            quiet = bench(args.rill, bootstrap, args)
            record = {"round": k + 1, "quiet_ms": latency(quiet)}
            mover = threading.Thread(target=move,
                                     args=(args.rill, bootstrap, admin, args.lead, record))
            mover.start()
            moving = bench(args.rill, bootstrap, args)
            mover.join()
            record["moving_ms"] = latency(moving)
            record["rate"] = [quiet["records_per_s"], moving["records_per_s"]]
            print(json.dumps(record), flush=True)
            results.append(record)
    finally:
        subprocess.run(["bash", CLUSTER, "stop", directory], env=env, capture_output=True,
                       check=False)
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)

    def med(key, i):
        return statistics.median(r[key][i] for r in results)
    moves = [r["move_s"] for r in results if r.get("move_s") is not None]
    summary = {
        "fill_mb": args.fill_mb, "rate": args.rate, "duration_s": args.duration,
        "rounds": args.rounds, "moves_s": moves,
        "move_s_median": statistics.median(moves) if moves else None,
        "quiet_p50_p99_max_ms": [med("quiet_ms", i) for i in range(3)],
        "moving_p50_p99_max_ms": [med("moving_ms", i) for i in range(3)],
    }
    print(json.dumps(summary), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": results, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
