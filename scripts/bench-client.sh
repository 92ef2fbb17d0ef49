#!/usr/bin/env bash
# rill-client beside librdkafka (confluent-kafka), same broker, same run (docs/benchmarks.md).
#
#   scripts/bench-client.sh                 # 1M x 100 B and 300k x 1 KiB, each pair twice
#   N100=200000 N1K=100000 ROUNDS=1 PARTITIONS=4 scripts/bench-client.sh
#
# Needs the venv of scripts/test (.venv with confluent-kafka). Starts `rill serve` with its defaults
# on a free loopback port (its admin http on another) and a temporary data dir; every run produces
# into, or consumes from, a fresh topic of its own, so every consume reads the same amount. Settings
# on both sides: acks=1, linger 5 ms, batch size 1 MiB, no idempotence, keyless records; consumers
# read every partition from offset 0 with 1 MiB per partition per fetch.
set -euo pipefail
cd "$(dirname "$0")/.."

N100=${N100:-1000000}
N1K=${N1K:-300000}
ROUNDS=${ROUNDS:-2}
PARTITIONS=${PARTITIONS:-4}
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no $PY: run scripts/test once to create it" >&2; exit 1; }

cargo build --release -p rill -p rill-client --example perf
perf=target/release/examples/perf

tmp=$(mktemp -d)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bootstrap=127.0.0.1:$port
target/release/rill serve --listen "$bootstrap" --data-dir "$tmp/data" --admin-listen 127.0.0.1:0 >"$tmp/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

echo "== machine"
echo "nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); $(date -u +%F)"
echo "== broker $bootstrap (defaults), topics of $PARTITIONS partitions"

results=$tmp/results.jsonl
run() { # client op size records topic
    local client=$1 op=$2 size=$3 n=$4 topic=$5 line
    if [ "$client" = rill-client ]; then
        line=$("$perf" "$op" --bootstrap "$bootstrap" --topic "$topic" --records "$n" --record-size "$size")
    else
        line=$("$PY" scripts/perf_confluent.py "$op" --bootstrap "$bootstrap" --topic "$topic" --records "$n" --record-size "$size")
    fi
    echo "$line"
    echo "$line" >>"$results"
}

for size in 100 1024; do
    if [ "$size" = 100 ]; then n=$N100; else n=$N1K; fi
    for round in $(seq "$ROUNDS"); do
        # Interleaved, and the order flips each round.
        if [ $((round % 2)) = 1 ]; then clients="rill-client librdkafka"; else clients="librdkafka rill-client"; fi
        for c in $clients; do
            topic="perf-$size-$round-$c"
            "$perf" create --bootstrap "$bootstrap" --topic "$topic" --partitions "$PARTITIONS"
            run "$c" produce "$size" "$n" "$topic"
        done
        # Both consumers read the same topic (written by rill-client), one after the other.
        for c in $clients; do
            run "$c" consume "$size" "$n" "perf-$size-$round-rill-client"
        done
    done
done

echo "== table (mean of $ROUNDS rounds; ratio = rill-client / librdkafka)"
python3 - "$results" <<'EOF'
import json, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["op"], r["record_size"], r["client"])].append(r)
def mean(xs): return sum(xs) / len(xs)
print("| op | record size | records | rill-client records/s | rill-client MB/s | librdkafka records/s | librdkafka MB/s | ratio |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for op in ("produce", "consume"):
    for size in (100, 1024):
        r, l = runs.get((op, size, "rill-client")), runs.get((op, size, "librdkafka"))
        if not r or not l:
            continue
        rr, lr = mean([x["records_per_s"] for x in r]), mean([x["records_per_s"] for x in l])
        rm, lm = mean([x["mb_per_s"] for x in r]), mean([x["mb_per_s"] for x in l])
        each = " / ".join(f'{a["records_per_s"] / b["records_per_s"]:.2f}' for a, b in zip(r, l))
        print(f"| {op} | {size} B | {r[0]['records']} | {rr:,.0f} | {rm:.1f} | {lr:,.0f} | {lm:.1f} | {rr / lr:.2f} (rounds: {each}) |")
EOF
