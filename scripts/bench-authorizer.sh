#!/usr/bin/env bash
# Plaintext produce throughput with the authorizer on against off, side by side in one run: two
# brokers of the same binary, one without an authorizer, one with 1,000 ACLs (one LITERAL ALLOW
# of WRITE per topic bench-0..bench-999 for User:ANONYMOUS, plus CREATE on the cluster so the
# producer may auto-create its topic) and no super user, so every produce is checked against the
# index. librdkafka's rdkafka_performance (a third-party load tool) produces N records of S bytes
# (acks=1, linger 5 ms) to a fresh topic on each broker in turn, ROUNDS times, alternating which
# goes first. The ACLs are made through confluent-kafka's AdminClient (the test venv) while the
# broker has User:ANONYMOUS as super user, then it restarts without one (they are in the
# metadata log).
#
#   scripts/bench-authorizer.sh           # RILL=target/release/rill N=300000 S=1024 ROUNDS=5
#
# Prints each run's MB/s and the medians with the on/off ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

RILL=${RILL:-$PWD/target/release/rill}
RDKAFKA_PERF=${RDKAFKA_PERF:-$PWD/target/librdkafka/examples/rdkafka_performance}
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
N=${N:-300000}
S=${S:-1024}
ROUNDS=${ROUNDS:-5}
ACLS=1000
[ -x "$RILL" ] || { echo "bench-authorizer.sh: no $RILL (cargo build --release)" >&2; exit 1; }
[ -x "$RDKAFKA_PERF" ] || { echo "bench-authorizer.sh: no $RDKAFKA_PERF (see scripts/librdkafka-suite.sh)" >&2; exit 1; }
[ "$ROUNDS" -lt "$ACLS" ] || { echo "bench-authorizer.sh: at most $((ACLS - 1)) rounds" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

read -r off on < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')

wait_port() {
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "bench-authorizer.sh: nothing listens on $1" >&2; exit 1
}

authorizer=(--authorizer-class-name org.apache.kafka.metadata.authorizer.StandardAuthorizer)
"$RILL" serve --data-dir "$tmp/off" --listen "127.0.0.1:$off" --admin-listen none >"$tmp/off.log" 2>&1 &
pids+=($!)
"$RILL" serve --data-dir "$tmp/on" --listen "127.0.0.1:$on" --admin-listen none "${authorizer[@]}" \
    --super-users User:ANONYMOUS >"$tmp/on.log" 2>&1 &
setup=$!
wait_port "$off"
wait_port "$on"
"$PYTHON" - "127.0.0.1:$on" "$ACLS" <<'EOF'
import sys
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
def allow(kind, name, op):
    return AclBinding(kind, name, ResourcePatternType.LITERAL, "User:ANONYMOUS", "*", op,
                      AclPermissionType.ALLOW)
acls = [allow(ResourceType.TOPIC, f"bench-{i}", AclOperation.WRITE) for i in range(int(sys.argv[2]))]
acls.append(allow(ResourceType.CLUSTER, "kafka-cluster", AclOperation.CREATE))
for f in admin.create_acls(acls).values():
    f.result(30)
EOF
kill "$setup"; wait "$setup" 2>/dev/null || true
"$RILL" serve --data-dir "$tmp/on" --listen "127.0.0.1:$on" --admin-listen none "${authorizer[@]}" \
    >>"$tmp/on.log" 2>&1 &
pids+=($!)
wait_port "$on"

mb_per_s() { grep -o '[0-9.]* MB/s' | tail -1 | cut -d' ' -f1; }

results=()
for round in $(seq "$ROUNDS"); do
    order=(off on)
    [ $((round % 2)) -eq 0 ] && order=(on off)
    for mode in "${order[@]}"; do
        port=$off; [ "$mode" = on ] && port=$on
        p=$("$RDKAFKA_PERF" -P -t "bench-$round" -b "127.0.0.1:$port" -s "$S" -c "$N" \
            -X acks=1 -X linger.ms=5 2>&1 | grep 'messages produced' | mb_per_s)
        [ -n "$p" ] || { echo "bench-authorizer.sh: no figure from the $mode broker" >&2; tail "$tmp/$mode.log" >&2; exit 1; }
        echo "round $round authorizer $mode: produce $p MB/s"
        results+=("$mode $p")
    done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    mode, mb = line.split()
    runs.setdefault(mode, []).append(float(mb))
off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
print(f"produce: authorizer off {off:.1f} MB/s, on (1,000 ACLs) {on:.1f} MB/s, on/off {on / off:.3f}")
'
