#!/usr/bin/env python3
"""Replicated partitions (cluster part 2): acks=all produce, 1 KiB records, side by side on
(a) a topic of replication factor 3 on a 3-broker cluster, (b) a topic of RF 1 on the same
cluster, (c) a single `rill serve` alone. All brokers run on this machine (loopback), at their
defaults, at once; the three set-ups are measured alternately, the order rotating each round.

Per set-up and round, each into a fresh topic of PARTITIONS partitions (created with
`rill topic create NAME -p PARTITIONS -r RF`, then deleted after the round's runs):
  1. rill-burst: `rill bench produce --acks all --record-size 1024 --duration SECONDSs`
     (flat out: throughput; its latency is mostly the producer's own queue);
  2. rdk-burst: librdkafka's `rdkafka_performance -P -s 1024 -c RDK_RECORDS -X acks=all
     -X linger.ms=5` (flat out: throughput);
  3. rill-rate: `rill bench produce --acks all --rate RATE --duration SECONDSs --warmup 2s
     --linger 0` (latency at a fixed load, send to acknowledgement, no coordinated omission);
  4. rdk-rate: `rdkafka_performance -P -r RATE -l -A FILE -X acks=all -X linger.ms=0` (the same
     with librdkafka; percentiles computed here from its per-message file, in microseconds).

    .venv/bin/python scripts/bench-replication.py [--rill target/release/rill] \
        [--rdkafka-perf PATH] [--rounds 4] [--seconds 10] [--rate 5000] [--partitions 3]

Prints one JSON line per run (also appended to --out) and a summary: medians per set-up, and the
ratios RF3/RF1 and RF3/single.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts", "cluster.sh")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def percentiles(path):
    with open(path) as f:
        us = sorted(int(line) for line in f if line.strip())
    if not us:
        return None

    def q(x):
        return round(us[min(len(us) - 1, int(x * len(us)))] / 1000, 3)

    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(us[-1] / 1000, 3), "n": len(us)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rill", default=os.path.join(ROOT, "target", "release", "rill"))
    p.add_argument("--rdkafka-perf", default=os.path.join(ROOT, "target", "librdkafka", "examples",
                                                          "rdkafka_performance"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rdk-records", type=int, default=500000)
    p.add_argument("--rate", type=int, default=5000)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--setups", default="rf3,rf1,single")
    p.add_argument("--out", default=os.path.join(ROOT, "target", "bench-replication.jsonl"))
    args = p.parse_args()
    rill = os.path.abspath(args.rill)
    rdk = args.rdkafka_perf
    tmp = tempfile.mkdtemp(prefix="bench-replication-")
    out = open(args.out, "a")
    rows = []

    def emit(**fields):
        rows.append(fields)
        line = json.dumps(fields)
        print(line, flush=True)
        out.write(line + "\n")
        out.flush()

    env = dict(os.environ, RILL_BIN=rill)
    cdir = os.path.join(tmp, "cluster")
    started = subprocess.run([CLUSTER, "start", "3", cdir], env=env, check=True,
                             capture_output=True, text=True)
    cluster_bootstrap = started.stdout.strip().splitlines()[-1]
    port, admin = free_port(), free_port()
    single_bootstrap = f"127.0.0.1:{port}"
    log = open(os.path.join(tmp, "single.log"), "w")
    single = subprocess.Popen([rill, "serve", "--listen", single_bootstrap, "--admin-listen",
                               f"127.0.0.1:{admin}", "--data-dir", os.path.join(tmp, "single")],
                              stdout=log, stderr=log)
    emit(machine={"nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "kernel": os.uname().release})
    setups = {"rf3": (cluster_bootstrap, 3), "rf1": (cluster_bootstrap, 1),
              "single": (single_bootstrap, 1)}
    order = args.setups.split(",")
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([rill, "topic", "list", "-b", single_bootstrap],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the single broker did not start")
            time.sleep(0.2)
        for rnd in range(1, args.rounds + 1):
            for setup in order:
                bootstrap, rf = setups[setup]
                topics = []

                def topic(kind):
                    name = f"{setup}-{kind}-{rnd}"
                    subprocess.run([rill, "topic", "create", name, "-p", str(args.partitions),
                                    "-r", str(rf), "-b", bootstrap], check=True, capture_output=True)
                    topics.append(name)
                    time.sleep(1)  # let the groups elect their leaders and announce them
                    return name

                def rill_bench(kind, *extra):
                    name = topic(kind)
                    res = subprocess.run([rill, "bench", "produce", "-b", bootstrap, "--topic", name,
                                          "--record-size", "1024", "--acks", "all",
                                          "--duration", f"{args.seconds}s", "--json", *extra],
                                         capture_output=True, text=True)
                    try:
                        r = json.loads(res.stdout.strip().splitlines()[-1])
                    except (IndexError, ValueError):
                        r = {"failed": res.stderr[-500:]}
                    emit(round=rnd, setup=setup, run=kind, mb_per_s=r.get("mb_per_s"),
                         records_per_s=r.get("records_per_s"), latency_ms=r.get("latency_ms"),
                         errors=r.get("errors"), detail=r.get("failed"))

                def rdk_bench(kind, *extra, latency=False):
                    name = topic(kind)
                    lat = os.path.join(tmp, "lat.txt")
                    if os.path.exists(lat):
                        os.remove(lat)
                    more = ["-l", "-A", lat] if latency else []
                    res = subprocess.run([rdk, "-P", "-t", name, "-b", bootstrap, "-s", "1024",
                                          "-X", "acks=all", *extra, *more],
                                         capture_output=True, text=True, timeout=600)
                    text = [l for l in (res.stdout + res.stderr).splitlines()
                            if "messages produced" in l]
                    text = text[-1] if text else ""
                    msgs = re.findall(r"(\d+) msgs/s", text)
                    mb = re.findall(r"([\d.]+) MB/s", text)
                    failed = re.search(r"(\d+) failed", text)
                    emit(round=rnd, setup=setup, run=kind,
                         mb_per_s=float(mb[-1]) if mb else None,
                         records_per_s=int(msgs[-1]) if msgs else None,
                         latency_ms=percentiles(lat) if latency and os.path.exists(lat) else None,
                         errors=int(failed.group(1)) if failed else None, text=text[-300:])

                print(f"== round {rnd}: {setup}", flush=True)
                rill_bench("rill-burst")
                subprocess.run(["sync"])
                rdk_bench("rdk-burst", "-c", str(args.rdk_records), "-X", "linger.ms=5")
                subprocess.run(["sync"])
                rill_bench("rill-rate", "--rate", str(args.rate), "--warmup", "2s", "--linger", "0")
                rdk_bench("rdk-rate", "-c", str(args.rate * args.seconds), "-r", str(args.rate),
                          "-X", "linger.ms=0", latency=True)
                subprocess.run([rill, "topic", "delete", *topics, "-b", bootstrap],
                               capture_output=True)
                subprocess.run(["sync"])
            order = order[1:] + order[:1]
    finally:
        single.terminate()
        single.wait()
        subprocess.run([CLUSTER, "stop", cdir], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print("\n== medians over rounds (per-round values in brackets)")

    def values(setup, run, field, sub=None):
        vs = []
        for r in rows:
            if r.get("setup") == setup and r.get("run") == run:
                v = r.get(field)
                if sub is not None:
                    v = v.get(sub) if isinstance(v, dict) else None
                if v is not None:
                    vs.append(v)
        return vs

    summary = {}
    for run, field, sub in [("rill-burst", "mb_per_s", None), ("rill-burst", "records_per_s", None),
                            ("rill-burst", "latency_ms", "p50"), ("rill-burst", "latency_ms", "p99"),
                            ("rdk-burst", "mb_per_s", None), ("rdk-burst", "records_per_s", None),
                            ("rill-rate", "latency_ms", "p50"), ("rill-rate", "latency_ms", "p99"),
                            ("rdk-rate", "latency_ms", "p50"), ("rdk-rate", "latency_ms", "p99"),
                            ("rdk-rate", "records_per_s", None)]:
        label = f"{run} {field}{'.' + sub if sub else ''}"
        med = {}
        cells = []
        for setup in args.setups.split(","):
            vs = values(setup, run, field, sub)
            med[setup] = statistics.median(vs) if vs else None
            cells.append(f"{setup} {med[setup] if med[setup] is None else round(med[setup], 2)} "
                         f"{[round(v, 2) for v in vs]}")
        ratios = []
        for a, b in [("rf3", "rf1"), ("rf3", "single")]:
            if med.get(a) is not None and med.get(b):
                ratios.append(f"{a}/{b} {med[a] / med[b]:.2f}")
        summary[label] = {"medians": med, "ratios": ratios}
        print(f"{label:32} " + " | ".join(cells) + "  =>  " + ", ".join(ratios))
    emit(summary=summary)


if __name__ == "__main__":
    main()
