#!/usr/bin/env bash
# Many partitions (issue #12), two rill binaries side by side in one run:
#  1. for each size S in $SIZES and each binary, a fresh broker with S partitions (S/100 topics of
#     100, created through CreateTopics and timed: partitions/s); after SETTLE s, IDLE s of
#     sampling /proc: idle CPU (utime+stime, % of one core), threads, VmRSS, open descriptors.
#     Then start to ready on the same data dir, after SIGTERM and after kill -9: time from exec to
#     the port accepting, /health/ready answering 200 and a Metadata v1 answer listing all S
#     partitions with a leader (polled every 10 ms; the clock starts in the shell just before exec).
#     A size a binary cannot hold (CreateTopics fails, e.g. "Too many open files") is recorded
#     as failed and the binary skips the larger sizes.
#  2. 100 B records into one topic of LOAD_PARTITIONS (capped at the largest size the binary held
#     in 1.) and one of 6, acks=1, linger 5 ms: LOAD_RECORDS flat out from librdkafka's
#     rdkafka_performance (it has only a fixed key, -k, so keyless with
#     sticky.partitioning.linger.ms=0: every record to a random partition, spread as keyed records
#     are; its CPU time is recorded, as it can be the bottleneck) and from `rill bench produce`
#     (keyless, sticky partitioner: one partition's batch at a time); then p99 latency, send to
#     acknowledgement, of `rill bench produce` at LOAD_RATE records/s for LOAD_SECONDS. The summary
#     gives the many/6 ratios. rdkafka_performance prints no percentiles; RDKAFKA_LATENCY=1 adds a
#     paced run of it (-r -l -A) and computes them from its per-message file, but here that
#     measures the client: paced over 5,000 partitions it makes 1.3k msgs/s of 2k asked (3.1k of
#     5k), with most of a core busy.
#  3. ROUNDS of 6-partition produce (1 KiB, acks=1, then acks=all) and consumer catch-up (from the
#     beginning to the end of the acks=1 topic), `rill bench` of the NEW binary against both,
#     alternating which broker goes first; medians.
#
#   scripts/bench-partitions.sh BASE_RILL [NEW_RILL]      # NEW defaults to target/release/rill
#   SIZES="2000" IDLE=5 ROUNDS=1 RECORDS=100000 scripts/bench-partitions.sh /tmp/rill-base /tmp/rill-base
#   SKIP_NEW=1 SIZES="2000 5000" scripts/bench-partitions.sh /tmp/rill-base   # the base alone
#   PARTS=3 ROUNDS=6 RECORDS=1000000 scripts/bench-partitions.sh /tmp/rill-base   # only part 3
#
# Needs python3, the venv of scripts/test (PY, default .venv/bin/python, with confluent-kafka) and
# rdkafka_performance (RDKAFKA_PERF, default target/librdkafka/examples/rdkafka_performance; see
# scripts/librdkafka-suite.sh; RDKAFKA_PERF="" skips part 2's librdkafka runs). Prints one JSON line
# per figure (also into $OUT, default target/bench-partitions.jsonl):
#   {"broker":"base|new","size":S,"scenario":"create|idle|ready-sigterm|ready-kill9|...","result":{...}}
# and a summary with NEW/BASE ratios. The default run takes about 15-25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: scripts/bench-partitions.sh BASE_RILL [NEW_RILL]}
new=${2:-$PWD/target/release/rill}
SIZES=${SIZES:-2000 5000 10000}
PER_TOPIC=${PER_TOPIC:-100}         # partitions per topic in part 1
SETTLE=${SETTLE:-5}                 # seconds between creating and sampling
IDLE=${IDLE:-30}                    # seconds of idle sampling
LOAD_PARTITIONS=${LOAD_PARTITIONS:-10000}
LOAD_RECORDS=${LOAD_RECORDS:-2000000}   # 100 B records per flat-out rdkafka_performance run
LOAD_RATE=${LOAD_RATE:-20000}       # msgs/s of the latency runs
LOAD_SECONDS=${LOAD_SECONDS:-10}    # length of the latency runs
RECORDS=${RECORDS:-500000}          # 1 KiB records per 6-partition produce run
ROUNDS=${ROUNDS:-3}
SKIP_NEW=${SKIP_NEW:-}              # 1: measure BASE only (its own `rill bench` then)
PARTS=${PARTS:-1 2 3}               # which of the three parts below to run
OUT=${OUT:-target/bench-partitions.jsonl}
PY=${PY:-.venv/bin/python}
RDKAFKA_PERF=${RDKAFKA_PERF-$PWD/target/librdkafka/examples/rdkafka_performance}
RDKAFKA_LATENCY=${RDKAFKA_LATENCY:-}

[ -x "$PY" ] || { echo "no $PY: run scripts/test once to create it, or set PY" >&2; exit 1; }
if [ -n "$RDKAFKA_PERF" ] && [ ! -x "$RDKAFKA_PERF" ]; then
    echo "no $RDKAFKA_PERF: build it (scripts/librdkafka-suite.sh) or set RDKAFKA_PERF (\"\" skips it)" >&2
    exit 1
fi
[ -z "$SKIP_NEW" ] && [ ! -x "$new" ] && { echo "no $new" >&2; exit 1; }
helper() { "$PY" scripts/bench-partitions.py "$@"; }

mkdir -p target
tmp=$(mktemp -d -p target bench-partitions.XXXXXX)
pid=
stop() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi
}
trap 'stop; rm -rf "$tmp"' EXIT
: >"$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
emit() { echo "$1" | tee -a "$OUT"; }
# record BROKER SIZE SCENARIO JSON
record() { emit "{\"broker\":\"$1\",\"size\":$2,\"scenario\":\"$3\",\"result\":$4}"; }
settle() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}
now_ns() { date +%s%N; }

# launch BINARY NAME: a broker on $port/$admin_port over $tmp/data (kept as it is); sets pid and t0.
launch() {
    t0=$(now_ns)
    "$1" serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin_port" \
        --data-dir "$tmp/data" >>"$tmp/$2.log" 2>&1 &
    pid=$!
}

# start BINARY NAME: a fresh broker (empty data dir, new ports), up and answering.
start() {
    stop
    settle
    port=$(free_port)
    admin_port=$(free_port)
    bootstrap=127.0.0.1:$port
    rm -rf "$tmp/data"
    launch "$1" "$2"
    if ! helper ready --port "$port" --partitions 0 --since "$t0" --pid "$pid" --timeout 30 >/dev/null; then
        echo "$2 did not start" >&2
        tail -20 "$tmp/$2.log" >&2
        exit 1
    fi
}

# restart BINARY NAME SIZE SCENARIO SIGNAL: stop the running broker with SIGNAL, start it again on
# the same data dir, time it to ready.
restart() {
    local bin=$1 name=$2 size=$3 scenario=$4 sig=$5 t_stop line
    t_stop=$(now_ns)
    kill "-$sig" "$pid"
    wait "$pid" 2>/dev/null || true
    local stop_ms=$((($(now_ns) - t_stop) / 1000000))
    pid=
    sync
    launch "$bin" "$name"
    line=$(helper ready --port "$port" --admin-port "$admin_port" --partitions "$size" \
        --since "$t0" --pid "$pid" --timeout 600) || true
    record "$name" "$size" "$scenario" "{\"stop_ms\":$stop_ms,\"signal\":\"$sig\",${line#\{}"
}

# failed NAME SIZE SCENARIO JSON: why, with the broker log's last error
failed() {
    local why status=failed
    why=$(grep -iE 'error|too many' "$tmp/$1.log" | tail -1 | tr -d '"\\' | cut -c1-300 || true)
    if echo "$4 $why" | grep -qi 'too many open files'; then status="failed: too many open files"; fi
    record "$1" "$2" "$3" "{\"failed\":true,\"status\":\"$status\",\"detail\":$4,\"log\":\"$why\"}"
}

echo "== machine: nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); $(uname -r); ulimit -n $(ulimit -n); $(date -u +%FT%TZ)" >&2
emit "{\"machine\":{\"nproc\":$(nproc),\"nofile\":$(ulimit -n),\"date\":\"$(date -u +%FT%TZ)\"}}"

brokers=(base)
[ -z "$SKIP_NEW" ] && brokers+=(new)
declare -A held=([base]=0 [new]=0) gave_up=()
binary() { if [ "$1" = new ]; then echo "$new"; else echo "$base"; fi; }

part() { [[ " $PARTS " == *" $1 "* ]]; }

# ---- 1. sizes: create, idle, restart
order=("${brokers[@]}")
part 1 || SIZES=""
for size in $SIZES; do
    for which in "${order[@]}"; do
        if [ -n "${gave_up[$which]:-}" ]; then
            record "$which" "$size" create "{\"failed\":true,\"skipped\":\"failed at a smaller size\"}"
            continue
        fi
        bin=$(binary "$which")
        topics=$((size / PER_TOPIC))
        echo "== $which: $size partitions ($topics topics x $PER_TOPIC)" >&2
        start "$bin" "$which"
        if line=$(helper create --bootstrap "$bootstrap" --topics "$topics" --partitions "$PER_TOPIC"); then
            record "$which" "$size" create "$line"
        else
            failed "$which" "$size" create "${line:-null}"
            gave_up[$which]=1
            stop
            continue
        fi
        held[$which]=$size
        sleep "$SETTLE"
        record "$which" "$size" idle "$(helper sample --pid "$pid" --seconds "$IDLE")"
        restart "$bin" "$which" "$size" ready-sigterm TERM
        restart "$bin" "$which" "$size" ready-kill9 KILL
        stop
    done
    if [ "${#order[@]}" = 2 ]; then order=("${order[1]}" "${order[0]}"); fi
done

# ---- 2. produce over many partitions vs 6, librdkafka's load tool and rill bench
load() {
    local which=$1 parts=$2 bin line out rate count
    bin=$(binary "$which")
    start "$bin" "$which"
    if ! line=$(helper create --bootstrap "$bootstrap" --topics 1 --partitions "$parts" --prefix load --batch 1); then
        failed "$which" "$parts" load-create "${line:-null}"
        return
    fi
    record "$which" "$parts" load-create "$line"
    sleep 2
    if [ -n "$RDKAFKA_PERF" ]; then
        rm -f "$tmp/time"
        out=$("${timed[@]}" "$RDKAFKA_PERF" -P -t load0000 -s 100 -c "$LOAD_RECORDS" -b "$bootstrap" \
            -X acks=1 -X linger.ms=5 -X sticky.partitioning.linger.ms=0 2>&1 \
            | grep 'messages produced' | tail -1)
        rate=$(echo "$out" | grep -o '[0-9]* msgs/s' | tail -1 | cut -d' ' -f1)
        cpu=null
        if [ -s "$tmp/time" ]; then cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$tmp/time"); fi
        record "$which" "$parts" rdkafka-produce \
            "{\"msgs_per_s\":${rate:-null},\"client_cpu_s\":$cpu,\"text\":\"${out//\"/}\"}"
    fi
    if [ -n "$RDKAFKA_PERF" ] && [ -n "$RDKAFKA_LATENCY" ]; then
        count=$((LOAD_RATE * LOAD_SECONDS))
        rm -f "$tmp/lat.txt"
        out=$("$RDKAFKA_PERF" -P -t load0000 -s 100 -c "$count" -r "$LOAD_RATE" -l -A "$tmp/lat.txt" \
            -b "$bootstrap" -X acks=1 -X linger.ms=5 -X sticky.partitioning.linger.ms=0 2>&1 \
            | grep 'messages produced' | tail -1)
        rate=$(echo "$out" | grep -o '[0-9]* msgs/s' | tail -1 | cut -d' ' -f1)
        line=$(helper percentiles "$tmp/lat.txt")
        record "$which" "$parts" rdkafka-latency "{\"target_msgs_per_s\":$LOAD_RATE,\"msgs_per_s\":${rate:-null},${line#\{}"
    fi
    line=$("$cli" bench produce --topic load0000 --record-size 100 --records "$LOAD_RECORDS" \
        --acks 1 -b "$bootstrap" --json) || line=null
    record "$which" "$parts" rill-bench-produce "$line"
    line=$("$cli" bench produce --topic load0000 --record-size 100 --rate "$LOAD_RATE" \
        --duration "${LOAD_SECONDS}s" --warmup 2s --acks 1 -b "$bootstrap" --json) || line=null
    record "$which" "$parts" rill-bench-latency "$line"
    stop
}
timed=()   # the client's user+sys seconds, when GNU time is there
[ -x /usr/bin/time ] && timed=(/usr/bin/time -f '%U %S %e' -o "$tmp/time")
cli=$new
[ -n "$SKIP_NEW" ] && cli=$base   # rill bench of the binary at hand when there is no NEW
part 2 && for which in "${brokers[@]}"; do
    parts=$LOAD_PARTITIONS
    [ "${held[$which]}" -lt "$parts" ] && parts=${held[$which]}
    if [ "$parts" -le 0 ]; then
        record "$which" "$LOAD_PARTITIONS" load-create "{\"failed\":true,\"skipped\":\"held no size of part 1\"}"
    else
        echo "== $which: produce into $parts partitions" >&2
        load "$which" "$parts"
    fi
    echo "== $which: produce into 6 partitions" >&2
    load "$which" 6
done

# ---- 3. 6 partitions: produce acks=1, catch-up, produce acks=all
bench() {
    local broker=$1 scenario=$2 line
    shift 2
    line=$("$cli" bench "$@" -b "$bootstrap" --json) || line=null
    record "$broker" 6 "$scenario" "$line"
}
order=("${brokers[@]}")
part 3 || ROUNDS=0
for round in $(seq "$ROUNDS"); do
    for which in "${order[@]}"; do
        echo "== round $round: $which: 6 partitions" >&2
        start "$(binary "$which")" "$which"
        bench "$which" produce-acks1 produce --topic acks1 --partitions 6 --record-size 1024 \
            --records "$RECORDS" --acks 1
        sync
        bench "$which" consume-catch-up consume --topic acks1 --from beginning
        settle
        bench "$which" produce-acksall produce --topic acksall --partitions 6 --record-size 1024 \
            --records "$RECORDS" --acks all
    done
    if [ "${#order[@]}" = 2 ]; then order=("${order[1]}" "${order[0]}"); fi
done
stop

"$PY" - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if "scenario" in r]
def get(broker, size, scenario):
    return [r["result"] for r in rows
            if r["broker"] == broker and r["size"] == size and r["scenario"] == scenario]
def one(broker, size, scenario, *path):
    for res in get(broker, size, scenario):
        if not isinstance(res, dict) or res.get("failed"):
            return "failed" if isinstance(res, dict) else None
        v = res
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return v
    return None
def fmt(v, w=10):
    if v is None: return f"{'-':>{w}}"
    if isinstance(v, str): return f"{v:>{w}}"
    return f"{v:{w}.1f}" if isinstance(v, float) else f"{v:{w}}"
def ratio(n, b):
    if isinstance(n, (int, float)) and isinstance(b, (int, float)) and b:
        return f"{n / b:9.3f}"
    return f"{'-':>9}"

print("\n== partitions: created, idle, start to ready (new/base)")
print(f"{'size':>6} {'figure':28} {'base':>10} {'new':>10} {'new/base':>9}")
figures = [("create partitions/s", "create", ("partitions_per_s",)),
           ("idle CPU % of a core", "idle", ("cpu_pct_of_core",)),
           ("threads", "idle", ("threads",)),
           ("RSS MiB", "idle", ("rss_mib",)),
           ("open descriptors", "idle", ("fds",)),
           ("SIGTERM: stop ms", "ready-sigterm", ("stop_ms",)),
           ("SIGTERM: port ms", "ready-sigterm", ("port_ms",)),
           ("SIGTERM: /health/ready ms", "ready-sigterm", ("health_ready_ms",)),
           ("SIGTERM: metadata ms", "ready-sigterm", ("metadata_ms",)),
           ("kill -9: port ms", "ready-kill9", ("port_ms",)),
           ("kill -9: /health/ready ms", "ready-kill9", ("health_ready_ms",)),
           ("kill -9: metadata ms", "ready-kill9", ("metadata_ms",))]
sizes = sorted({r["size"] for r in rows if r["scenario"] == "create"})
for s in sizes:
    for b in ("base", "new"):
        for res in get(b, s, "create"):
            if res.get("failed"):
                made = (res.get("detail") or {}).get("partitions_created")
                print(f"{s:>6} {b}: {res.get('status') or res.get('skipped') or 'failed'}"
                      + (f" ({made} partitions created)" if made is not None else ""))
    for label, scen, path in figures:
        b, n = one("base", s, scen, *path), one("new", s, scen, *path)
        if b in (None, "failed") and n in (None, "failed") and scen != "create":
            continue
        print(f"{s:>6} {label:28} {fmt(b)} {fmt(n)} {ratio(n, b)}")

print("\n== produce, 100 B records, acks=1, flat out: rdkafka_performance (a random partition per"
      " record; client CPU s) and rill bench (sticky; its p99); rill bench p99 at LOAD_RATE")
print(f"{'broker':6} {'partitions':>10} {'rdk msg/s':>10} {'vs 6':>6} {'cpu s':>6} {'bench r/s':>10}"
      f" {'vs 6':>6} {'p99 ms':>8} {'p99 @rate':>9} {'rdk p99 @rate':>13}")
for b in ("base", "new"):
    sizes = sorted({r["size"] for r in rows if r["broker"] == b and r["scenario"] == "load-create"}, reverse=True)
    six = one(b, 6, "rdkafka-produce", "msgs_per_s")
    for s in sizes:
        rate = one(b, s, "rdkafka-produce", "msgs_per_s")
        if one(b, s, "load-create", "partitions_created") == "failed":
            res = get(b, s, "load-create")[0]
            print(f"{b:6} {s:>10} {res.get('status') or res.get('skipped') or 'failed'}")
            continue
        brate = one(b, s, "rill-bench-produce", "records_per_s")
        bsix = one(b, 6, "rill-bench-produce", "records_per_s")
        r6 = ratio(rate, six).strip() if s != 6 else ""
        b6 = ratio(brate, bsix).strip() if s != 6 else ""
        print(f"{b:6} {s:>10} {fmt(rate)} {r6:>6} {fmt(one(b, s, 'rdkafka-produce', 'client_cpu_s'), 6)}"
              f" {fmt(brate)} {b6:>6}"
              f" {fmt(one(b, s, 'rill-bench-produce', 'latency_ms', 'p99'), 8)}"
              f" {fmt(one(b, s, 'rill-bench-latency', 'latency_ms', 'p99'), 9)}"
              f" {fmt(one(b, s, 'rdkafka-latency', 'p99_ms'), 13)}")

print("\n== 6 partitions, 1 KiB records: medians of the rounds")
print(f"{'scenario':24} {'base MB/s':>10} {'new MB/s':>10} {'new/base':>9} {'base p99':>9} {'new p99':>9}")
for scen in ("produce-acks1", "produce-acksall", "consume-catch-up"):
    med = {}
    p99 = {}
    for b in ("base", "new"):
        res = [r for r in get(b, 6, scen) if isinstance(r, dict)]
        vals = [r.get("mb_per_s") for r in res if r.get("mb_per_s")]
        lats = [r["latency_ms"]["p99"] for r in res if isinstance(r.get("latency_ms"), dict)]
        med[b] = statistics.median(vals) if vals else None
        p99[b] = statistics.median(lats) if lats else None
    print(f"{scen:24} {fmt(med['base'])} {fmt(med['new'])} {ratio(med['new'], med['base'])} "
          f"{fmt(p99['base'], 9)} {fmt(p99['new'], 9)}")
EOF
echo "== results in $OUT" >&2
