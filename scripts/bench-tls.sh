#!/usr/bin/env bash
# TLS against plaintext on one broker with both listeners, in one run: librdkafka's
# rdkafka_performance (a third-party load tool) produces N records of S bytes (acks=1, linger 5 ms)
# to a fresh topic and reads them back from the beginning, over the PLAINTEXT listener and over
# the SSL listener in turn, ROUNDS times. Certificates (a CA and a server certificate for
# 127.0.0.1) are made with openssl in a temporary directory.
#
#   scripts/bench-tls.sh                         # RILL=target/release/rill, N=300000, S=1024, ROUNDS=3
#   RDKAFKA_PERF=target/librdkafka/examples/rdkafka_performance N=1000000 scripts/bench-tls.sh
#   BASE=/tmp/rill-before scripts/bench-tls.sh   # also a second binary, side by side, same rounds
#
# Prints each run's MB/s and the broker's CPU time for it (user + system, from /proc: unlike
# MB/s, it hardly moves when other work shares the cores), the medians and the TLS/plaintext
# ratios. Then the memory of idle
# connections: a fresh broker per kind, IDLE (1000) clients that each did one ApiVersions and
# now wait (scripts/idle-connections.py), and the broker's RSS before and with them.
set -euo pipefail
cd "$(dirname "$0")/.."

RILL=${RILL:-$PWD/target/release/rill}
RDKAFKA_PERF=${RDKAFKA_PERF:-$PWD/target/librdkafka/examples/rdkafka_performance}
N=${N:-300000}
S=${S:-1024}
ROUNDS=${ROUNDS:-3}
[ -x "$RILL" ] || { echo "bench-tls.sh: no $RILL (cargo build --release)" >&2; exit 1; }
[ -x "$RDKAFKA_PERF" ] || { echo "bench-tls.sh: no $RDKAFKA_PERF (see scripts/librdkafka-suite.sh)" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

( cd "$tmp"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout s.key -out s.csr 2>/dev/null
  echo "subjectAltName=IP:127.0.0.1" >s.ext
  openssl x509 -req -in s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile s.ext -out s.pem 2>/dev/null
  cat s.key s.pem >keystore.pem )

free_ports() { python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])'; }

# start BIN NAME: a broker with a PLAINTEXT and an SSL listener; sets $pid, $plain and $ssl.
# Free ports may be taken (by a client's ephemeral port) before the broker binds: a few tries.
start() {
    for _ in 1 2 3; do
        read -r plain ssl < <(free_ports)
        "$1" serve --data-dir "$tmp/data-$2" --listen "127.0.0.1:$plain" --ssl-listen "127.0.0.1:$ssl" \
            --ssl-keystore "$tmp/keystore.pem" --admin-listen none >"$tmp/rill-$2.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$ssl") 2>/dev/null; then break; fi
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && return
        wait "$pid" 2>/dev/null || true
        rm -rf "$tmp/data-$2"
    done
    echo "bench-tls.sh: $1 did not start:" >&2; tail -5 "$tmp/rill-$2.log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

binaries=(new)
[ -n "${BASE:-}" ] && binaries+=(base)
bin_of() { if [ "$1" = new ]; then echo "$RILL"; else echo "$BASE"; fi; }

# The broker's CPU time so far (user + system) in clock ticks, and ticks as seconds.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null && return
    echo "bench-tls.sh: the broker is gone:" >&2; tail -20 "$tmp"/rill-*.log >&2; exit 1
}
cpu_s() { python3 -c "import os; print(f'{$1 / os.sysconf(\"SC_CLK_TCK\"):.2f}')"; }

# The MB/s of rdkafka_performance's last summary line ("... X MB/s" or "(X MB/s)").
mb_per_s() { grep -o '[0-9.]* MB/s' | tail -1 | cut -d' ' -f1; }

results=()
for round in $(seq "$ROUNDS"); do
    for bin in "${binaries[@]}"; do
        start "$(bin_of "$bin")" "$bin-$round"
        for mode in plain tls; do
            if [ "$mode" = plain ]; then
                addr=127.0.0.1:$plain; extra=()
            else
                addr=127.0.0.1:$ssl; extra=(-X security.protocol=SSL -X "ssl.ca.location=$tmp/ca.pem")
            fi
            topic=bench-$mode-$round
            t0=$(cpu_ticks "$pid")
            p=$("$RDKAFKA_PERF" -P -t "$topic" -b "$addr" -s "$S" -c "$N" -X acks=1 -X linger.ms=5 "${extra[@]}" 2>&1 \
                | grep 'messages produced' | mb_per_s)
            t1=$(cpu_ticks "$pid")
            c=$(timeout 120 "$RDKAFKA_PERF" -C -t "$topic" -p 0 -o beginning -e -b "$addr" "${extra[@]}" 2>&1 \
                | grep 'messages (' | mb_per_s)
            t2=$(cpu_ticks "$pid")
            pc=$(cpu_s $((t1 - t0))); cc=$(cpu_s $((t2 - t1)))
            echo "round $round $bin $mode: produce $p MB/s (broker CPU $pc s), consume $c MB/s (broker CPU $cc s)"
            results+=("$bin $mode produce $p $pc" "$bin $mode consume $c $cc")
        done
        stop
        rm -rf "$tmp/data-$bin-$round"
    done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    binary, mode, what, mb, cpu = line.split()
    runs.setdefault((binary, mode, what), []).append((float(mb), float(cpu)))
median = lambda rows, i: statistics.median(r[i] for r in rows)
for binary in sorted({b for b, _, _ in runs}, reverse=True):
    for what in ("produce", "consume"):
        plain, tls = runs[(binary, "plain", what)], runs[(binary, "tls", what)]
        print(f"{binary} {what}: plaintext {median(plain, 0):.1f} MB/s, TLS {median(tls, 0):.1f} MB/s, "
              f"TLS/plaintext {median(tls, 0) / median(plain, 0):.2f}; broker CPU plaintext "
              f"{median(plain, 1):.2f} s, TLS {median(tls, 1):.2f} s")
'

IDLE=${IDLE:-1000}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
for bin in "${binaries[@]}"; do
    for mode in plain tls; do
        start "$(bin_of "$bin")" "idle-$bin-$mode"
        sleep 1
        before=$(rss "$pid")
        if [ "$mode" = plain ]; then args=("127.0.0.1:$plain" "$IDLE"); else args=("127.0.0.1:$ssl" "$IDLE" --ca "$tmp/ca.pem"); fi
        coproc IDLERS { python3 scripts/idle-connections.py "${args[@]}"; }
        read -r ready <&"${IDLERS[0]}"
        sleep 2
        with=$(rss "$pid")
        echo "$bin idle $mode: RSS $before KiB, $with KiB with $IDLE idle connections ($ready): $(( (with - before) * 1024 / IDLE )) bytes each"
        echo >&"${IDLERS[1]}"
        wait "$IDLERS_PID" 2>/dev/null || true
        stop
    done
done
