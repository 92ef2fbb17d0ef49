#!/usr/bin/env bash
# Two brokers side by side, each started fresh on its own data dir (one at a time), in
# alternating rounds, with the same client (the NEW binary's `rill bench`):
#   - plain produce, acks=all (idempotent), 1 KiB values, RECORDS records, 4 partitions;
#   - the same read back from the beginning (`rill bench consume`);
#   - NEW only: the same produce with --transactional at transaction sizes of 1, 10 and 100
#     batches (BATCH_RECORDS records each: 64 with the default 64 KiB batches), and a
#     read_committed read of the 10-batch topic (`rill consume --isolation-level`).
# Prints one JSON line per measurement: {"broker", "op", "round", "records_per_s", ...}.
# Which broker runs first alternates by round. TXN=0 leaves out the transactional runs.
#
#   scripts/bench-txn-before-after.sh OLD_RILL NEW_RILL [ROUNDS] [RECORDS]
set -euo pipefail
OLD=${1:?old rill binary}
NEW=${2:?new rill binary}
ROUNDS=${3:-3}
RECORDS=${4:-500000}
BATCH=65536
BATCH_RECORDS=$((BATCH / 1024))

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # BIN -> sets PID, BOOT, DIR
    DIR=$(mktemp -d /tmp/rill-bench-txn-XXXX)
    local port
    port=$(free_port)
    "$1" serve --listen "127.0.0.1:$port" --admin-listen none --data-dir "$DIR" \
        --num-partitions 4 >"$DIR.log" 2>&1 &
    PID=$!
    BOOT="127.0.0.1:$port"
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "broker did not start" >&2
    exit 1
}

stop() {
    kill "$PID"
    wait "$PID" || true
    rm -rf "$DIR" "$DIR.log"
}

line() { # broker op round json
    python3 - "$1" "$2" "$3" "$4" <<'EOF'
import json, sys
broker, op, rnd, text = sys.argv[1:]
d = json.loads(text.strip().splitlines()[-1])
rate = d.get("records_per_s") or d.get("throughput", {}).get("records_per_s")
print(json.dumps({"broker": broker, "op": op, "round": int(rnd), "records_per_s": rate,
                  "p99_ms": d.get("latency_ms", {}).get("p99") if isinstance(d.get("latency_ms"), dict) else None}))
EOF
}

for r in $(seq "$ROUNDS"); do
    # Which broker goes first alternates, so that neither always runs on the disk the other
    # has just filled.
    order="old new"
    [ $((r % 2)) = 0 ] && order="new old"
    for which in $order; do
        bin=$OLD
        [ "$which" = new ] && bin=$NEW
        start "$bin"
        out=$("$NEW" bench produce -b "$BOOT" --topic plain --records "$RECORDS" --acks all \
            --batch-size $BATCH --json)
        line "$which" produce "$r" "$out"
        out=$("$NEW" bench consume -b "$BOOT" --topic plain --from beginning --records "$RECORDS" --json)
        line "$which" consume "$r" "$out"
        if [ "$which" = new ] && [ "${TXN:-1}" = 1 ]; then
            for batches in 1 10 100; do
                out=$("$NEW" bench produce -b "$BOOT" --topic "txn-$batches" --records "$RECORDS" \
                    --acks all --batch-size $BATCH --transactional \
                    --transaction-size $((batches * BATCH_RECORDS)) --json)
                line new "produce-txn-$batches" "$r" "$out"
            done
        fi
        stop
    done
done
