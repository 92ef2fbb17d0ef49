"""What the benchmark scripts read of a `scripts/cluster.sh` cluster directory and its brokers'
processes: each node's env file (ports), pid file, and /proc figures. Imported by
bench-cluster.py, bench-failover.py and bench-idle-replicas.py (run from any directory: Python
puts a script's own directory first on its path)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts", "cluster.sh")
TICKS = os.sysconf("SC_CLK_TCK")


def node_env(directory, k):
    """Broker k's `node-k.env`: NODE_ID, KAFKA_PORT, ADMIN_PORT, ..."""
    values = {}
    with open(os.path.join(directory, f"node-{k}.env")) as f:
        for line in f:
            if "=" in line:
                key, value = line.strip().split("=", 1)
                values[key] = value
    return values


def node_port(directory, k, kind):
    """Broker k's port of `kind` ("KAFKA", "ADMIN"), from its env file."""
    env = node_env(directory, k)
    for key, value in env.items():
        if kind in key.upper():
            return int(value)
    raise RuntimeError(f"no {kind.lower()} port in {env}")


def pid_of(directory, k):
    with open(os.path.join(directory, f"node-{k}.pid")) as f:
        return int(f.read().strip())


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
