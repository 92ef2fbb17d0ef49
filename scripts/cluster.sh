#!/usr/bin/env bash
# A local Rill cluster on loopback, for trying things and for the cluster tests.
#
#   scripts/cluster.sh start N DIR        start brokers 1..N; prints the bootstrap list last
#   scripts/cluster.sh kill K DIR         SIGKILL broker K (its data and settings stay)
#   scripts/cluster.sh start-node K DIR   start broker K again with its saved settings
#   scripts/cluster.sh stop DIR           SIGTERM every broker, SIGKILL those that hang
#
# Every broker is a voter of the metadata quorum. Broker K keeps its data in DIR/node-K, its
# pid in DIR/node-K.pid, its log in DIR/node-K.log, and its settings in DIR/node-K.env (ports)
# and DIR/node-K.args (the `rill serve` arguments, one a line), so start-node reuses them.
# DIR/cluster.env holds N, the voters and the bootstrap list.
#
# Readiness is checked with a raw Metadata v1 request in python3 (no Kafka client needed):
# `start` waits until every broker lists all N brokers, `start-node` until broker K answers
# and another running broker lists it.
#
# Environment:
#   RILL_BIN                the rill binary (default: target/release/rill, then target/debug/rill,
#                           then `rill` on PATH)
#   RILL_CLUSTER_ARGS       extra `rill serve` arguments for every broker, split on spaces
#                           (e.g. "--broker-session-timeout-ms 1500"); saved for start-node
#   RILL_CLUSTER_TIMEOUT    seconds to wait for readiness (default 30)
#   RILL_CLUSTER_STOP_TIMEOUT  seconds `stop` waits after SIGTERM (default 15)
#   RILL_CLUSTER_HOSTS      space-separated addresses, the K-th for broker K (default: 127.0.0.1
#                           for all); broker K listens and is reached there
#   RILL_CLUSTER_NETNS      space-separated network namespace names, the K-th for broker K, which
#                           then runs under `ip netns exec` (the caller makes the namespaces and
#                           their links; scripts/checker.py does for its partition fault)
# Both are read by `start` and saved in DIR/node-K.env (HOST=, NETNS=) for start-node.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TIMEOUT=${RILL_CLUSTER_TIMEOUT:-30}
STOP_TIMEOUT=${RILL_CLUSTER_STOP_TIMEOUT:-15}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    die "usage: cluster.sh start N DIR | kill K DIR | start-node K DIR | stop DIR"
}

find_rill() {
    if [[ -n ${RILL_BIN:-} ]]; then
        [[ -x $RILL_BIN ]] || die "RILL_BIN=$RILL_BIN is not an executable"
        echo "$RILL_BIN"
    elif [[ -x $ROOT/target/release/rill ]]; then
        echo "$ROOT/target/release/rill"
    elif [[ -x $ROOT/target/debug/rill ]]; then
        echo "$ROOT/target/debug/rill"
    elif command -v rill >/dev/null 2>&1; then
        command -v rill
    else
        die "no rill binary: build it (cargo build --release) or set RILL_BIN"
    fi
}

# `n` free loopback ports, distinct (each held open until all are picked), one a line.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
}

# Asks HOST:PORT for Metadata v1 (no topics); prints the node ids of the brokers it lists,
# space-separated, or fails.
metadata_brokers() {
    python3 - "$1" "$2" <<'EOF'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    with socket.create_connection((host, port), timeout=2) as s:
        s.settimeout(2)
        client = b"cluster.sh"
        # Metadata v1: header (api key 3, version 1, correlation id, client id), topics = [].
        body = struct.pack(">hhih", 3, 1, 1, len(client)) + client + struct.pack(">i", 0)
        s.sendall(struct.pack(">i", len(body)) + body)
        def read(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise EOFError("connection closed")
                buf += chunk
            return buf
        size, = struct.unpack(">i", read(4))
        frame = read(size)
except (OSError, EOFError) as err:
    sys.exit(f"metadata of {host}:{port}: {err}")
pos = 4  # correlation id
count, = struct.unpack_from(">i", frame, pos); pos += 4
nodes = []
for _ in range(count):
    node, = struct.unpack_from(">i", frame, pos); pos += 4
    hlen, = struct.unpack_from(">h", frame, pos); pos += 2 + hlen
    pos += 4  # port
    rlen, = struct.unpack_from(">h", frame, pos); pos += 2 + max(rlen, 0)
    nodes.append(node)
print(" ".join(str(n) for n in sorted(nodes)))
EOF
}

pid_of() {
    local file=$DIR/node-$1.pid
    [[ -f $file ]] && cat "$file"
}

# Whether broker K runs: its pid file names a live `rill serve` process.
running() {
    local pid
    pid=$(pid_of "$1") || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q " serve "
}

load_cluster() {
    [[ -f $DIR/cluster.env ]] || die "$DIR holds no cluster (no cluster.env)"
    # shellcheck source=/dev/null
    source "$DIR/cluster.env"
}

check_node() {
    if ! [[ $1 =~ ^[0-9]+$ ]] || ((10#$1 < 1 || 10#$1 > NODES)); then
        die "no broker $1 in the cluster in $DIR (brokers 1..$NODES)"
    fi
}

spawn() {
    local k=$1 rill args=() netns wrap=()
    rill=$(find_rill)
    mapfile -t args <"$DIR/node-$k.args"
    netns=$(setting "$k" NETNS)
    # `ip netns exec` execs the broker, so the pid stays the broker's.
    [[ -n $netns ]] && wrap=(ip netns exec "$netns")
    echo "=== $(date -u +%FT%TZ) start of broker $k ===" >>"$DIR/node-$k.log"
    # No inherited stdout: whoever runs this script must see EOF when it exits.
    nohup "${wrap[@]}" "$rill" serve "${args[@]}" </dev/null >>"$DIR/node-$k.log" 2>&1 &
    echo $! >"$DIR/node-$k.pid"
}

# Broker K's saved setting NAME from DIR/node-K.env, empty if absent.
setting() {
    sed -n "s/^$2=//p" "$DIR/node-$1.env"
}

kafka_port() {
    setting "$1" KAFKA_PORT
}

# Broker K's address: HOST from its settings, 127.0.0.1 when absent.
host_of() {
    local host
    host=$(setting "$1" HOST)
    echo "${host:-127.0.0.1}"
}

# Waits until `check` succeeds or a broker in `nodes` died or the timeout passed.
wait_for() {
    local what=$1 check=$2 deadline k
    shift 2
    deadline=$((SECONDS + TIMEOUT))
    until "$check"; do
        for k in "$@"; do
            if ! running "$k"; then
                echo "cluster.sh: broker $k exited while waiting for $what; its log ends:" >&2
                tail -n 20 "$DIR/node-$k.log" >&2 || true
                return 1
            fi
        done
        if ((SECONDS >= deadline)); then
            echo "cluster.sh: timed out after ${TIMEOUT}s waiting for $what" >&2
            return 1
        fi
        sleep 0.1
    done
}

all_list_all() {
    local k listed
    for ((k = 1; k <= NODES; k++)); do
        listed=$(metadata_brokers "$(host_of "$k")" "$(kafka_port "$k")" 2>/dev/null) || return 1
        [[ $listed == "$EXPECTED" ]] || return 1
    done
}

rejoined() {
    local k listed
    metadata_brokers "$(host_of "$NODE")" "$(kafka_port "$NODE")" >/dev/null 2>&1 || return 1
    for ((k = 1; k <= NODES; k++)); do
        ((k == NODE)) && continue
        running "$k" || continue
        listed=$(metadata_brokers "$(host_of "$k")" "$(kafka_port "$k")" 2>/dev/null) || continue
        [[ " $listed " == *" $NODE "* ]] && return 0
    done
    # A one-broker cluster has nobody else to ask.
    ((NODES == 1))
}

kill_all() {
    local k pid
    for ((k = 1; k <= NODES; k++)); do
        if running "$k"; then
            pid=$(pid_of "$k")
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

cmd_start() {
    local n=$1 k attempt ports extra=() voters bootstrap hosts=() namespaces=()
    if ! [[ $n =~ ^[0-9]+$ ]] || ((10#$n < 1)); then
        die "N must be a number of brokers, at least 1 (got '$n')"
    fi
    NODES=$((10#$n))
    mkdir -p "$DIR"
    for pidfile in "$DIR"/node-*.pid; do
        [[ -e $pidfile ]] || continue
        k=${pidfile##*/node-}
        k=${k%.pid}
        running "$k" && die "$DIR already holds a running cluster (broker $k, pid $(pid_of "$k")); stop it first"
    done
    find_rill >/dev/null
    read -r -a extra <<<"${RILL_CLUSTER_ARGS:-}"
    read -r -a hosts <<<"${RILL_CLUSTER_HOSTS:-}"
    read -r -a namespaces <<<"${RILL_CLUSTER_NETNS:-}"
    for ((k = ${#hosts[@]}; k < NODES; k++)); do
        hosts+=(127.0.0.1)
    done
    EXPECTED=$(seq -s ' ' 1 "$NODES")
    # A port picked free may be taken before the broker binds it: retry with new ports.
    for attempt in 1 2 3; do
        mapfile -t ports < <(free_ports $((3 * NODES)))
        voters=""
        bootstrap=""
        for ((k = 1; k <= NODES; k++)); do
            voters+="${voters:+,}$k@${hosts[k - 1]}:${ports[3 * k - 2]}"
            bootstrap+="${bootstrap:+,}${hosts[k - 1]}:${ports[3 * k - 3]}"
        done
        for ((k = 1; k <= NODES; k++)); do
            mkdir -p "$DIR/node-$k"
            printf 'NODE_ID=%s\nKAFKA_PORT=%s\nCONTROLLER_PORT=%s\nADMIN_PORT=%s\nHOST=%s\nNETNS=%s\n' \
                "$k" "${ports[3 * k - 3]}" "${ports[3 * k - 2]}" "${ports[3 * k - 1]}" \
                "${hosts[k - 1]}" "${namespaces[k - 1]:-}" >"$DIR/node-$k.env"
            printf '%s\n' --node-id "$k" \
                --listen "${hosts[k - 1]}:${ports[3 * k - 3]}" \
                --controller-quorum-voters "$voters" \
                --admin-listen "${hosts[k - 1]}:${ports[3 * k - 1]}" \
                --data-dir "$DIR/node-$k" \
                "${extra[@]}" >"$DIR/node-$k.args"
        done
        printf 'NODES=%s\nVOTERS=%s\nBOOTSTRAP=%s\n' "$NODES" "$voters" "$bootstrap" \
            >"$DIR/cluster.env"
        for ((k = 1; k <= NODES; k++)); do
            spawn "$k"
        done
        # shellcheck disable=SC2046
        if wait_for "all $NODES brokers in Metadata" all_list_all $(seq 1 "$NODES"); then
            echo "$bootstrap"
            return 0
        fi
        kill_all
        if ((attempt < 3)) && grep -qi "in use" "$DIR"/node-*.log; then
            echo "cluster.sh: a port was taken; retrying with new ports" >&2
            continue
        fi
        die "the cluster in $DIR did not start (logs: $DIR/node-*.log)"
    done
}

cmd_kill() {
    local k=$1
    load_cluster
    check_node "$k"
    running "$k" || die "broker $k in $DIR is not running"
    kill -KILL "$(pid_of "$k")"
    # Reaped by init, not us: wait until the process is gone.
    local deadline=$((SECONDS + 10))
    while running "$k"; do
        ((SECONDS < deadline)) || die "broker $k (pid $(pid_of "$k")) survived SIGKILL"
        sleep 0.05
    done
    echo "killed broker $k"
}

cmd_start_node() {
    NODE=$1
    load_cluster
    check_node "$NODE"
    NODE=$((10#$NODE))
    running "$NODE" && die "broker $NODE in $DIR is already running (pid $(pid_of "$NODE"))"
    spawn "$NODE"
    wait_for "broker $NODE to rejoin" rejoined "$NODE" ||
        die "broker $NODE did not rejoin (log: $DIR/node-$NODE.log)"
    echo "broker $NODE rejoined at $(host_of "$NODE"):$(kafka_port "$NODE")"
}

cmd_stop() {
    local k pid deadline stopped=() forced=()
    load_cluster
    for ((k = 1; k <= NODES; k++)); do
        if running "$k"; then
            kill -TERM "$(pid_of "$k")" 2>/dev/null || true
            stopped+=("$k")
        fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for k in "${stopped[@]}"; do
        while running "$k" && ((SECONDS < deadline)); do
            sleep 0.05
        done
        if running "$k"; then
            pid=$(pid_of "$k")
            kill -KILL "$pid" 2>/dev/null || true
            forced+=("$k")
        fi
    done
    if ((${#forced[@]} > 0)); then
        echo "cluster.sh: broker(s) ${forced[*]} did not stop within ${STOP_TIMEOUT}s of SIGTERM and were killed" >&2
        exit 1
    fi
    echo "stopped ${#stopped[@]} broker(s)"
}

[[ $# -ge 1 ]] || usage
case $1 in
start)
    [[ $# -eq 3 ]] || die "usage: cluster.sh start N DIR"
    DIR=$3
    cmd_start "$2"
    ;;
kill)
    [[ $# -eq 3 ]] || die "usage: cluster.sh kill K DIR"
    DIR=$3
    cmd_kill "$2"
    ;;
start-node)
    [[ $# -eq 3 ]] || die "usage: cluster.sh start-node K DIR"
    DIR=$3
    cmd_start_node "$2"
    ;;
stop)
    [[ $# -eq 2 ]] || die "usage: cluster.sh stop DIR"
    DIR=$2
    cmd_stop
    ;;
*)
    usage
    ;;
esac
