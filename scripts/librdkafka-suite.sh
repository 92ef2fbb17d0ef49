#!/usr/bin/env bash
# librdkafka's own integration suite (its repository's tests/) against a fresh Rill, in one
# command. Not part of CI: a full quick-mode run takes about 15 minutes.
#
#   scripts/librdkafka-suite.sh                  # every test run.sh lists, quick mode
#   scripts/librdkafka-suite.sh 0081 0092        # some test numbers
#   QUICK=0 scripts/librdkafka-suite.sh 0081     # full mode (run.sh's own settings pass through:
#                                                # QUICK, TEST_KAFKA_VERSION, PER_TEST_TIMEOUT, OUTDIR)
#
# What it does: builds librdkafka's test runner under target/librdkafka if it is missing, builds
# `rill` (release), starts it on a free loopback port with an empty temporary data dir and
# `--num-partitions 4` (the suite's own broker auto-creates topics with 4 partitions), runs
# ../shared/librdkafka-suite/run.sh against it, prints its result line and stops the broker.
# The exit status is run.sh's (0 when no test failed). The broker's log is kept beside the
# per-test logs (the first line run.sh prints says where).
#
# Fetching librdkafka's source is a manual step (see the message below when it is absent). The
# build needs Debian's build-essential zlib1g-dev libzstd-dev liblz4-dev libssl-dev libsasl2-dev
# python3, and rapidjson-dev for the statistics tests 0053 and 0110 (they are skipped without it).
set -euo pipefail
cd "$(dirname "$0")/.."

LRK_DIR=${LRK_DIR:-$PWD/target/librdkafka}   # another built or to-be-built tree: LRK_DIR=...
RUN_SH=$PWD/../shared/librdkafka-suite/run.sh

if [ ! -x "$RUN_SH" ]; then
    echo "librdkafka-suite: $RUN_SH is missing: it comes from the team's shared folder" >&2
    echo "  (../shared/librdkafka-suite beside the repository), with its README on how to build" >&2
    exit 2
fi

if [ ! -x "$LRK_DIR/tests/test-runner" ]; then
    if [ ! -f "$LRK_DIR/configure" ]; then
        cat >&2 <<EOF
librdkafka-suite: no librdkafka source in $LRK_DIR.
Put a snapshot of github.com/confluentinc/librdkafka there first (git-ignored, never committed),
for example from a clone or a bare git dir:
    mkdir -p target/librdkafka
    git --git-dir=/path/to/librdkafka/.git archive HEAD | tar -x -C target/librdkafka
then run this script again; it builds the test runner (about 5 minutes on 2 cores).
EOF
        exit 2
    fi
    echo "librdkafka-suite: building librdkafka's test runner in $LRK_DIR" >&2
    (
        cd "$LRK_DIR"
        [ -f Makefile.config ] || ./configure --no-download
        make -j"$(nproc)" libs
        make -C tests -j"$(nproc)" build
    ) >"$LRK_DIR/build.log" 2>&1 || {
        echo "librdkafka-suite: the build failed; the end of $LRK_DIR/build.log:" >&2
        tail -20 "$LRK_DIR/build.log" >&2
        exit 2
    }
fi

cargo build --release -p rill >&2
rill=$PWD/target/release/rill

OUTDIR=${OUTDIR:-/tmp/librdkafka-suite-$(date +%Y%m%d-%H%M%S)}
export OUTDIR
mkdir -p "$OUTDIR"
data=$(mktemp -d)
pid=
stop() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
    fi
    rm -rf "$data"
}
trap stop EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bootstrap=127.0.0.1:$port
"$rill" serve --listen "$bootstrap" --data-dir "$data" --num-partitions 4 --admin-listen none \
    >"$OUTDIR/rill.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "librdkafka-suite: rill did not start:" >&2
        cat "$OUTDIR/rill.log" >&2
        exit 1
    fi
    sleep 0.05
done

status=0
LRK_DIR=$LRK_DIR "$RUN_SH" "$bootstrap" "$@" | tee "$OUTDIR/summary.txt" || status=$?
echo "librdkafka-suite: $(tail -1 "$OUTDIR/summary.txt") (rill $("$rill" --version | awk '{print $2}'), logs in $OUTDIR)"
exit "$status"
