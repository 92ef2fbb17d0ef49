#!/usr/bin/env bash
# Plaintext produce throughput with the authorizer on against off, side by side in one run: two
# brokers of the same binary, one without an authorizer, one with 1,000 ACLs (one LITERAL ALLOW
# of ALL per topic bench-0..bench-999 for User:ANONYMOUS: WRITE for the producer, DELETE for the
# script to delete the topic after each run; plus CREATE on the cluster so the producer may
# auto-create its topic) and no super user, so every produce is checked against the index. librdkafka's rdkafka_performance (a third-party load tool) produces N records of S bytes
# (acks=1, linger 5 ms) to a fresh topic on each broker in turn, ROUNDS times, alternating which
# goes first. The ACLs are made through confluent-kafka's AdminClient (the test venv) on both
# brokers while they have User:ANONYMOUS as super user, then both restart without one (the ACLs
# are in the metadata log), one of them without the authorizer.
#
#   scripts/bench-authorizer.sh           # RILL=target/release/rill N=1000000 S=1024 ROUNDS=7
#
# CONTROL=1 runs the second broker without the authorizer too (same setup and restart): the
# noise floor of the on/off ratios on this machine.
#
# Prints each run's MB/s and the broker's CPU time, and the medians with the on/off ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

RILL=${RILL:-$PWD/target/release/rill}
RDKAFKA_PERF=${RDKAFKA_PERF:-$PWD/target/librdkafka/examples/rdkafka_performance}
PYTHON=${PYTHON:-$PWD/.venv/bin/python}
N=${N:-1000000}
S=${S:-1024}
ROUNDS=${ROUNDS:-7}
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

# Two free ports below the ephemeral range, so no outgoing connection takes one before the broker
# binds it (other processes on a shared machine open many).
read -r off on < <(python3 -c 'import random, socket
ports = []
while len(ports) < 2:
    p = random.randrange(20000, 30000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        ports.append(p)
    except OSError:
        pass
    s.close()
print(*ports)')

wait_port() {
    for _ in $(seq 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "bench-authorizer.sh: nothing listens on $1" >&2; tail -n 5 "$tmp"/*.log >&2; exit 1
}

authorizer=(--authorizer-class-name org.apache.kafka.metadata.authorizer.StandardAuthorizer)
# Both brokers get the same history (started with the authorizer and a super user, given the
# 1,000 ACLs, restarted), so that they differ only in the flag under test: a broker restarted
# over a longer metadata log, measured against a fresh one, showed a difference of its own.
make_acls() {
    "$PYTHON" - "$1" "$ACLS" <<'EOF'
import sys
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
def allow(kind, name, op):
    return AclBinding(kind, name, ResourcePatternType.LITERAL, "User:ANONYMOUS", "*", op,
                      AclPermissionType.ALLOW)
acls = [allow(ResourceType.TOPIC, f"bench-{i}", AclOperation.ALL) for i in range(int(sys.argv[2]))]
# confluent-kafka names the CLUSTER resource type BROKER.
acls.append(allow(ResourceType.BROKER, "kafka-cluster", AclOperation.CREATE))
for f in admin.create_acls(acls).values():
    f.result(30)
EOF
}
for mode in off on; do
    port=$off
    [ "$mode" = on ] && port=$on
    "$RILL" serve --data-dir "$tmp/$mode" --listen "127.0.0.1:$port" --admin-listen none \
        "${authorizer[@]}" --super-users User:ANONYMOUS >"$tmp/$mode.log" 2>&1 &
    setup=$!
    wait_port "$port"
    make_acls "127.0.0.1:$port"
    kill "$setup"; wait "$setup" 2>/dev/null || true
done
final=("${authorizer[@]}")
[ -n "${CONTROL:-}" ] && final=()
"$RILL" serve --data-dir "$tmp/off" --listen "127.0.0.1:$off" --admin-listen none >>"$tmp/off.log" 2>&1 &
pids+=($!)
"$RILL" serve --data-dir "$tmp/on" --listen "127.0.0.1:$on" --admin-listen none ${final[@]+"${final[@]}"} \
    >>"$tmp/on.log" 2>&1 &
pids+=($!)
wait_port "$off"
wait_port "$on"

mb_per_s() { grep -o '[0-9.]* MB/s' | tail -1 | cut -d' ' -f1; }
# A process's CPU time so far (user + system), in clock ticks: on a shared, noisy machine the
# broker's CPU per byte is steadier than its throughput.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

results=()
for round in $(seq "$ROUNDS"); do
    order=(off on)
    [ $((round % 2)) -eq 0 ] && order=(on off)
    for mode in "${order[@]}"; do
        port=$off; pid=${pids[0]}
        [ "$mode" = on ] && { port=$on; pid=${pids[1]}; }
        before=$(cpu_ticks "$pid")
        p=$("$RDKAFKA_PERF" -P -t "bench-$round" -b "127.0.0.1:$port" -s "$S" -c "$N" \
            -X acks=1 -X linger.ms=5 2>&1 | grep 'messages produced' | mb_per_s)
        [ -n "$p" ] || { echo "bench-authorizer.sh: no figure from the $mode broker" >&2; tail "$tmp/$mode.log" >&2; exit 1; }
        ticks=$(( $(cpu_ticks "$pid") - before ))
        # Keep the disk from filling: each run writes N*S bytes.
        "$RILL" topic delete "bench-$round" -b "127.0.0.1:$port" >/dev/null
        echo "round $round authorizer $mode: produce $p MB/s, broker CPU $ticks ticks"
        results+=("$mode $p $ticks")
    done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
runs, cpu = {}, {}
for line in sys.stdin:
    mode, mb, ticks = line.split()
    runs.setdefault(mode, []).append(float(mb))
    cpu.setdefault(mode, []).append(int(ticks))
off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
print(f"produce: authorizer off {off:.1f} MB/s, on (1,000 ACLs) {on:.1f} MB/s, on/off {on / off:.3f}")
coff, con = statistics.median(cpu["off"]), statistics.median(cpu["on"])
print(f"broker CPU per run (ticks): off {coff:.0f}, on {con:.0f}, on/off {con / coff:.3f}")
'
