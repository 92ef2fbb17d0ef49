#!/usr/bin/env python3
"""Renders the JSON lines of scripts/bench-broker.sh as the markdown table of
docs/benchmarks.md: each scenario for Rill and the peer, the ratio, the target and whether it is
met. Throughput figures are the mean over rounds, each round's figure in brackets.

    bench-table.py target/bench-broker.jsonl
"""

import json
import re
import statistics
import sys


def load(path):
    ceilings, runs = {}, {}
    for line in open(path):
        row = json.loads(line)
        if "ceiling" in row:
            if "mb_per_s" in row:
                mb = row["mb_per_s"]
            else:  # dd's last line: "... copied, 3.3 s, 321 MB/s" (or GB/s)
                value, unit = re.search(r"([\d.]+) ([MG])B/s", row["text"]).groups()
                mb = float(value) * (1000 if unit == "G" else 1)
            ceilings[row["ceiling"]] = mb
        else:
            runs.setdefault((row["broker"], row["scenario"]), []).append(row["result"])
    return ceilings, runs


def mean_of(results, key):
    values = [key(r) for r in results]
    return statistics.mean(values), values


def fmt(value, digits=0):
    return f"{value:,.{digits}f}"


def main():
    ceilings, runs = load(sys.argv[1])
    loopback = next(v for k, v in ceilings.items() if k.startswith("iperf3"))
    fsync = next(v for k, v in ceilings.items() if "fdatasync" in k)
    page_cache = next(v for k, v in ceilings.items() if "page cache" in k)
    brokers = sorted({b for b, _ in runs}, key=lambda b: b != "rill")
    peer = next((b for b in brokers if b != "rill"), None)

    def cell(broker, scenario, key, digits=0):
        results = runs.get((broker, scenario))
        if not results:
            return None, "-"
        mean, values = mean_of(results, key)
        text = fmt(mean, digits)
        if len(values) > 1:
            text += " [" + ", ".join(fmt(v, digits) for v in values) + "]"
        return mean, text

    rows = [
        # name, scenario, key, unit, digits, higher is better, target text, target check
        ("produce acks=1, 1 GB burst", "produce-acks1", lambda r: r["mb_per_s"], "MB/s", 0, True,
         f">= 70 % of loopback ({fmt(0.7 * loopback)})", lambda v: v >= 0.7 * loopback),
        ("produce acks=all (Rill: after fsync)", "produce-acksall", lambda r: r["mb_per_s"], "MB/s", 0, True,
         f">= 80 % of dd fdatasync ({fmt(0.8 * fsync)})", lambda v: v >= 0.8 * fsync),
        ("produce acks=1, sustained", "produce-acks1-sustained", lambda r: r["mb_per_s"], "MB/s", 0, True,
         None, None),
        ("produce p99 at half the sustained rate", "produce-half-load", lambda r: r["latency_ms"]["p99"], "ms", 2, False,
         "< 2 ms", lambda v: v < 2),
        ("e2e p99 at half the sustained rate", "e2e-half-load", lambda r: r["latency_ms"]["p99"], "ms", 2, False,
         None, None),
        ("consumer catch-up (page cache)", "consume-catch-up", lambda r: r["mb_per_s"], "MB/s", 0, True,
         ">= 1,000 MB/s", lambda v: v >= 1000),
        ("consumer catch-up (from disk)", "consume-catch-up-cold", lambda r: r["mb_per_s"], "MB/s", 0, True,
         None, None),
        ("idle RSS", "startup", lambda r: r["idle_rss_kib"] / 1024, "MiB", 1, False,
         "<= 10 MiB", lambda v: v <= 10),
        ("RSS per idle connection (10,000)", "connections", lambda r: r["kib_per_connection"], "KiB", 2, False,
         "<= 4 KiB", lambda v: v <= 4),
        ("start-up to ready (median of 20)", "startup", lambda r: r["startup_ms_median"], "ms", 1, False,
         "< 100 ms", lambda v: v < 100),
    ]
    print(f"Ceilings, same run: loopback TCP (iperf3) {fmt(loopback)} MB/s; "
          f"dd with fdatasync {fmt(fsync)} MB/s; dd into the page cache {fmt(page_cache)} MB/s.\n")
    head = f"| scenario | unit | Rill | {peer or 'peer'} | Rill / {peer or 'peer'} | target | met |"
    print(head)
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, scenario, key, unit, digits, higher, target, check in rows:
        rill, rill_text = cell("rill", scenario, key, digits)
        other, other_text = cell(peer, scenario, key, digits) if peer else (None, "-")
        ratio = "-"
        if rill is not None and other:
            ratio = f"{rill / other:.2f}" + (" (higher is better)" if higher else " (lower is better)")
        met = "-"
        if check and rill is not None:
            met = "yes" if check(rill) else "**no**"
        print(f"| {name} | {unit} | {rill_text} | {other_text} | {ratio} | {target or '-'} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
