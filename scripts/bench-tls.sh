#!/usr/bin/env bash
# TLS against plaintext on one broker with both listeners, in one run: librdkafka's
# rdkafka_performance (a third-party load tool) produces N records of S bytes (acks=1, linger 5 ms)
# to a fresh topic and reads them back from the beginning, over the PLAINTEXT listener and over
# the SSL listener in turn, ROUNDS times. Certificates (a CA and a server certificate for
# 127.0.0.1) are made with openssl in a temporary directory.
#
#   scripts/bench-tls.sh                         # RILL=target/release/rill, N=300000, S=1024, ROUNDS=3
#   RDKAFKA_PERF=target/librdkafka/examples/rdkafka_performance N=1000000 scripts/bench-tls.sh
#
# Prints each run's MB/s and the medians with the TLS/plaintext ratios.
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

read -r plain ssl < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
"$RILL" serve --data-dir "$tmp/data" --listen "127.0.0.1:$plain" --ssl-listen "127.0.0.1:$ssl" \
    --ssl-keystore "$tmp/keystore.pem" --admin-listen none >"$tmp/rill.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$ssl") 2>/dev/null; then break; fi
    sleep 0.05
done

# The MB/s of rdkafka_performance's last summary line ("... X MB/s" or "(X MB/s)").
mb_per_s() { grep -o '[0-9.]* MB/s' | tail -1 | cut -d' ' -f1; }

results=()
for round in $(seq "$ROUNDS"); do
    for mode in plain tls; do
        if [ "$mode" = plain ]; then
            addr=127.0.0.1:$plain; extra=()
        else
            addr=127.0.0.1:$ssl; extra=(-X security.protocol=SSL -X "ssl.ca.location=$tmp/ca.pem")
        fi
        topic=bench-$mode-$round
        p=$("$RDKAFKA_PERF" -P -t "$topic" -b "$addr" -s "$S" -c "$N" -X acks=1 -X linger.ms=5 "${extra[@]}" 2>&1 \
            | grep 'messages produced' | mb_per_s)
        c=$(timeout 120 "$RDKAFKA_PERF" -C -t "$topic" -p 0 -o beginning -e -b "$addr" "${extra[@]}" 2>&1 \
            | grep 'messages (' | mb_per_s)
        echo "round $round $mode: produce $p MB/s, consume $c MB/s"
        results+=("$mode produce $p" "$mode consume $c")
    done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    mode, what, mb = line.split()
    runs.setdefault((mode, what), []).append(float(mb))
for what in ("produce", "consume"):
    plain = statistics.median(runs[("plain", what)])
    tls = statistics.median(runs[("tls", what)])
    print(f"{what}: plaintext {plain:.1f} MB/s, TLS {tls:.1f} MB/s, TLS/plaintext {tls / plain:.2f}")
'
