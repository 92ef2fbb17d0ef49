"""Helpers shared by the interop scripts the Rust tests in `crates/rill/tests/` run.

Every script prints exactly one JSON document on stdout and exits 0, or prints a reason on
stderr and exits non-zero. Keys and values travel as lowercase hex (null for None) so that any
byte string round-trips exactly; header names are UTF-8 strings (Kafka's are).
"""

import json
import sys
import time


def fail(message):
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


def emit(result):
    json.dump(result, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    sys.stdout.flush()


def unhex(value):
    return None if value is None else bytes.fromhex(value)


def tohex(value):
    return None if value is None else bytes(value).hex()


def read_records():
    """Reads the records to produce from stdin: a JSON array of objects with the optional keys
    `k` (hex or null), `v` (hex or null), `h` ([[name, hex or null], ...]), `p` (partition or
    null for the client's partitioner) and `ts` (CreateTime in ms or null for now)."""
    specs = json.load(sys.stdin)
    records = []
    for spec in specs:
        records.append({
            "k": unhex(spec.get("k")),
            "v": unhex(spec.get("v")),
            "h": [(name, unhex(value)) for name, value in spec.get("h") or []],
            "p": spec.get("p"),
            "ts": spec.get("ts"),
        })
    return records


def parse_kv(pairs):
    """`["a=1", "b=x"]` -> {"a": "1", "b": "x"}."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"expected NAME=VALUE, got {pair!r}")
        out[key] = value
    return out


def parse_version(text):
    """`"0.10"` -> (0, 10): kafka-python's `api_version`."""
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        fail(f"expected a version like 0.10, got {text!r}")


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end
