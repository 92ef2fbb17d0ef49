#!/usr/bin/env bash
# Two rill binaries side by side on the record-batch v2 path, in one run: does a change (the old
# protocol versions and message formats, first) cost today's clients anything? Each round starts
# each broker fresh (new process, empty data dir, written-back page cache) and alternates which
# goes first. The load comes from `rill bench` (the NEW binary's, for both brokers) and, when
# RDKAFKA_PERF names librdkafka's examples/rdkafka_performance, from librdkafka too.
#
#   scripts/bench-compat.sh BASE_RILL [NEW_RILL]      # NEW defaults to target/release/rill
#   RECORDS=500000 ROUNDS=3 scripts/bench-compat.sh /tmp/rill-before
#
# Prints one JSON line per figure (also into $OUT, default target/bench-compat.jsonl) and a
# summary of the medians with NEW/BASE ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: scripts/bench-compat.sh BASE_RILL [NEW_RILL]}
new=${2:-$PWD/target/release/rill}
RECORDS=${RECORDS:-1000000}     # 1 KiB records per produce run
ROUNDS=${ROUNDS:-3}
PARTITIONS=${PARTITIONS:-4}
OUT=${OUT:-target/bench-compat.jsonl}
RDKAFKA_PERF=${RDKAFKA_PERF:-}

tmp=$(mktemp -d -p target bench-compat.XXXXXX)
pid=
stop() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi
}
trap 'stop; rm -rf "$tmp"' EXIT
: >"$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
emit() { echo "$1" | tee -a "$OUT"; }
settle() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

# start BINARY NAME: a fresh broker on a free port; sets pid and bootstrap.
start() {
    stop
    settle
    local port
    port=$(free_port)
    bootstrap=127.0.0.1:$port
    rm -rf "$tmp/data"
    "$1" serve --listen "$bootstrap" --admin-listen none --data-dir "$tmp/data" \
        --num-partitions "$PARTITIONS" >"$tmp/$2.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$2 did not start" >&2
    cat "$tmp/$2.log" >&2
    exit 1
}

bench() {
    local broker=$1 scenario=$2 line
    shift 2
    line=$("$new" bench "$@" -b "$bootstrap" --json)
    emit "{\"broker\":\"$broker\",\"scenario\":\"$scenario\",\"result\":$line}"
}

# librdkafka's own load tool: produce RECORDS 1 KiB messages with acks=1 into a 4-partition topic,
# then read partition 0 back to its end. Its summary line ends "... and X MB/s" (produce) or
# "(X MB/s)" (consume).
rdkafka() {
    local broker=$1 out rate
    out=$("$RDKAFKA_PERF" -P -t rdk -s 1024 -c "$RECORDS" -b "$bootstrap" -X acks=1 \
        -X linger.ms=5 2>&1 | grep 'messages produced' | tail -1)
    rate=$(echo "$out" | grep -o '[0-9.]* MB/s' | tail -1 | cut -d' ' -f1)
    emit "{\"broker\":\"$broker\",\"scenario\":\"rdkafka-produce\",\"mb_per_s\":${rate:-null}}"
    sync
    out=$(timeout 120 "$RDKAFKA_PERF" -C -t rdk -p 0 -o beginning -e -b "$bootstrap" 2>&1 \
        | grep 'messages (' | tail -1)
    rate=$(echo "$out" | grep -o '[0-9.]* MB/s' | tail -1 | cut -d' ' -f1)
    emit "{\"broker\":\"$broker\",\"scenario\":\"rdkafka-consume-p0\",\"mb_per_s\":${rate:-null}}"
}

echo "== machine: nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); $(uname -r); $(date -u +%FT%TZ)" >&2
order=(base new)
for round in $(seq "$ROUNDS"); do
    for which in "${order[@]}"; do
        bin=$base
        [ "$which" = new ] && bin=$new
        echo "== round $round: $which" >&2
        start "$bin" "$which"
        bench "$which" produce-acks1 produce --topic acks1 --partitions "$PARTITIONS" \
            --record-size 1024 --records "$RECORDS" --acks 1
        sync
        bench "$which" consume-catch-up consume --topic acks1 --from beginning
        if [ -n "$RDKAFKA_PERF" ]; then rdkafka "$which"; fi
    done
    order=("${order[1]}" "${order[0]}")
done
stop

python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def mbs(r):
    if "mb_per_s" in r:
        return r["mb_per_s"]
    res = r["result"]
    return res.get("mb_per_s") or res.get("throughput_mb_per_s")
scenarios = sorted({r["scenario"] for r in rows})
print(f"{'scenario':24} {'base MB/s':>10} {'new MB/s':>10} {'new/base':>9}")
for s in scenarios:
    med = {}
    for b in ("base", "new"):
        vals = [mbs(r) for r in rows if r["scenario"] == s and r["broker"] == b and mbs(r)]
        med[b] = statistics.median(vals) if vals else None
    ratio = med["new"] / med["base"] if med["new"] and med["base"] else None
    fmt = lambda v: f"{v:10.1f}" if v is not None else f"{'-':>10}"
    print(f"{s:24} {fmt(med['base'])} {fmt(med['new'])} {ratio if ratio is None else f'{ratio:9.3f}'}")
EOF
