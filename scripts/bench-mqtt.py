#!/usr/bin/env python3
"""MQTT: Rill's MQTT listener beside Mosquitto 2, side by side in one run.

    .venv/bin/python scripts/bench-mqtt.py --rill target/release/rill [--rounds 3] [--out FILE]

Per round, per scenario, each broker in turn (the one that goes first alternates by round), each
a fresh process (Rill: a fresh data dir in a temporary directory; Mosquitto: a generated config,
`listener PORT 127.0.0.1`, `allow_anonymous true`, persistence off, its default):

  qos0, qos1   publish throughput: --connections connections (over --procs processes), each
               publishing --payload-byte payloads to its own topic bench/dev{i}/t for --duration
               seconds. The load generator is a raw-socket MQTT 3.1.1 client with pre-encoded
               PUBLISH packets (so that Python is not the limit): QoS 0 sends in batches and ends
               with one QoS 1 publish whose PUBACK says the broker has read everything before it;
               QoS 1 keeps --window publishes in flight per connection (paho's default
               max_inflight_messages, 20), a new one per PUBACK. The clock stops at the last
               PUBACK. With --paho, the same two scenarios again with paho-mqtt clients
               (qos0-paho, qos1-paho; max_inflight_messages_set(--window)).
  latency      one paho subscriber on bench/# (QoS 1) and one paho publisher (QoS 1) at --rate
               msg/s in the same process (separate network threads); the payload carries
               time.monotonic_ns() at publish; publish -> delivery p50/p99/p99.9/max.
  idle         --idle-connections raw connections (CONNECT, keep-alive 600 s, CONNACK read, then
               idle), spread over --idle-procs processes and source addresses 127.0.0.2..; broker
               VmRSS before and after; then one QoS 1 publish round trip while they are open.

Every measurement records the broker's CPU seconds (utime+stime from /proc/PID/stat), its VmRSS,
the client's CPU seconds (getrusage of the load processes) and the rest of the machine's busy CPU
over the same interval (/proc/stat; others' compiles show up there). For Rill, the Kafka topic's
end offset (confluent-kafka) is compared with what was published. One JSON line per
measurement on stdout (and in --out), then a summary.
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# /proc


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid, key="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def machine_busy_s():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    v = [int(x) for x in parts]
    idle = v[3] + v[4]  # idle + iowait
    return (sum(v[:8]) - idle) / CLK_TCK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# MQTT 3.1.1 packets


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mqtt_str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def connect_packet(client_id, keepalive=600):
    # protocol name MQTT, level 4 (3.1.1), flags 0x02 (clean session), keep-alive
    body = mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack(">H", keepalive) + mqtt_str(client_id)
    return b"\x10" + varint(len(body)) + body


def publish_packet(topic, payload, qos=0, packet_id=0):
    body = mqtt_str(topic)
    if qos:
        body += struct.pack(">H", packet_id)
    body += payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


def read_packet(sock, buf):
    """Reads one packet from sock; buf is a bytearray of bytes already read. Returns
    (type_byte, body) and leaves the rest in buf."""
    while True:
        if len(buf) >= 2:
            mult, length, i = 1, 0, 1
            ok = False
            while i < len(buf) and i < 5:
                b = buf[i]
                length += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    ok = True
                    break
            if ok and len(buf) >= i + length:
                t = buf[0]
                body = bytes(buf[i : i + length])
                del buf[: i + length]
                return t, body
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed by the broker")
        buf += chunk


def mqtt_connect(addr, client_id, keepalive=600, timeout=10.0, source=None):
    sock = socket.create_connection(addr, timeout=timeout, source_address=source)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(client_id, keepalive))
    buf = bytearray()
    t, body = read_packet(sock, buf)
    if t != 0x20 or len(body) < 2 or body[1] != 0:
        raise RuntimeError(f"bad CONNACK {t:#x} {body!r}")
    return sock, buf


def qos1_round_trip(addr, client_id, topic, payload, packet_id=1, sock=None, buf=None):
    """Publishes one QoS 1 message and waits for its PUBACK. Returns seconds."""
    own = sock is None
    if own:
        sock, buf = mqtt_connect(addr, client_id, keepalive=60)
    try:
        t0 = time.monotonic()
        sock.sendall(publish_packet(topic, payload, 1, packet_id))
        while True:
            t, body = read_packet(sock, buf)
            if t == 0x40 and struct.unpack(">H", body[:2])[0] == packet_id:
                return time.monotonic() - t0
    finally:
        if own:
            try:
                sock.sendall(b"\xe0\x00")
            except OSError:
                pass
            sock.close()


# ---------------------------------------------------------------------------------------------
# Brokers


class Broker:
    name = "?"

    def __init__(self):
        self.proc = None
        self.mqtt_port = None
        self.tmp = None
        self.log = None

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                sock, _ = mqtt_connect(("127.0.0.1", self.mqtt_port), "bench-ready", timeout=1.0)
                sock.sendall(b"\xe0\x00")
                sock.close()
                return
            except (OSError, RuntimeError) as e:
                last = e
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} not ready on MQTT port {self.mqtt_port}: {last}")

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def end_offset(self, topic):
        return None


class Rill(Broker):
    name = "rill"

    def __init__(self, binary):
        super().__init__()
        self.binary = binary

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-mqtt-rill-")
        self.mqtt_port = free_port()
        self.kafka_port = free_port()
        self.log_path = os.path.join(self.tmp, "rill.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "serve",
                "--data-dir",
                os.path.join(self.tmp, "data"),
                "--listen",
                f"127.0.0.1:{self.kafka_port}",
                "--admin-listen",
                "none",
                "--mqtt-listen",
                f"127.0.0.1:{self.mqtt_port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def end_offset(self, topic):
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer(
            {
                "bootstrap.servers": f"127.0.0.1:{self.kafka_port}",
                "group.id": "bench-mqtt-check",
                "enable.auto.commit": False,
            }
        )
        try:
            md = c.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                return {"error": str(t.error if t else "no topic")}
            total = 0
            for p in t.partitions:
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                total += hi - lo
            return total
        finally:
            c.close()


class Mosquitto(Broker):
    name = "mosquitto"

    def __init__(self, binary):
        super().__init__()
        self.binary = binary

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="bench-mqtt-mosquitto-")
        self.mqtt_port = free_port()
        conf = os.path.join(self.tmp, "mosquitto.conf")
        self.log_path = os.path.join(self.tmp, "mosquitto.log")
        with open(conf, "w") as f:
            f.write(
                f"listener {self.mqtt_port} 127.0.0.1\n"
                "allow_anonymous true\n"
                "persistence false\n"
                "connection_messages false\n"
                "log_type error\nlog_type warning\n"
                f"log_dest file {self.log_path}\n"
            )
        self.log = open(os.path.join(self.tmp, "stdout.log"), "wb")
        self.proc = subprocess.Popen([self.binary, "-c", conf], stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()


# ---------------------------------------------------------------------------------------------
# Throughput: load processes (raw sockets, or paho with --paho)


class Gate:
    """Threads of one load process wait here for the common start time."""

    def __init__(self, n):
        self.connected = threading.Barrier(n + 1)
        self.go = threading.Event()
        self.start = None


def raw_conn(addr, idx, qos, payload, window, duration, gate, result, batch=256):
    topic = f"bench/dev{idx}/t"
    sent = acked = 0
    try:
        try:
            sock, buf = mqtt_connect(addr, f"bench-tp-{idx}", keepalive=600)
        finally:
            gate.connected.wait()
        sock.settimeout(60)
        gate.go.wait()
        while time.time() < gate.start:
            time.sleep(0.0002)
        stop_at = gate.start + duration
        if qos == 0:
            chunk = publish_packet(topic, payload, 0) * batch
            while time.time() < stop_at:
                sock.sendall(chunk)
                sent += batch
            # one QoS 1 publish: its PUBACK comes after the broker has taken everything before it
            qos1_round_trip(addr, None, topic, payload, 1, sock=sock, buf=buf)
            sent += 1
            acked = 1
        else:
            tb = topic.encode()
            prefix = bytes([0x32]) + varint(2 + len(tb) + 2 + len(payload)) + struct.pack(">H", len(tb)) + tb
            next_id = 1
            outstanding = set()

            def make(n):
                nonlocal next_id
                out = []
                for _ in range(n):
                    pid = next_id
                    next_id = next_id % 65535 + 1
                    outstanding.add(pid)
                    out.append(prefix + struct.pack(">H", pid) + payload)
                return b"".join(out)

            sock.sendall(make(window))
            sent += window
            sending = True
            while outstanding:
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError(f"connection closed by the broker with {len(outstanding)} unacknowledged")
                buf += chunk
                n = 0
                while len(buf) >= 4:  # PUBACK (3.1.1): 40 02 id id
                    if buf[0] != 0x40 or buf[1] != 2:
                        raise RuntimeError(f"unexpected packet {bytes(buf[:8]).hex()}")
                    pid = (buf[2] << 8) | buf[3]
                    if pid not in outstanding:
                        raise RuntimeError(f"PUBACK for a packet id not in flight: {pid}")
                    outstanding.discard(pid)
                    del buf[:4]
                    n += 1
                acked += n
                if sending and time.time() >= stop_at:
                    sending = False
                if sending and n:
                    sock.sendall(make(n))
                    sent += n
        end = time.time()
        try:
            sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        sock.close()
        result.update(sent=sent, acked=acked, end=end, error=None)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        result.update(sent=sent, acked=acked, end=time.time(), error=repr(e))


def paho_conn(addr, idx, qos, payload, window, duration, gate, result):
    import paho.mqtt.client as mqtt

    topic = f"bench/dev{idx}/t"
    sent = acked = 0
    try:
        try:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{idx}", clean_session=True)
            c.max_inflight_messages_set(window)
            c.max_queued_messages_set(0)
            # paho queues without bound beyond its in-flight window (and QoS 0 before the network
            # thread writes it): bound what one publisher has handed over and not seen sent/acked
            sem = threading.Semaphore(window if qos else 1000)
            done = [0]

            def on_publish(client, userdata, mid, rc, props):
                done[0] += 1
                sem.release()

            c.on_publish = on_publish
            connected = threading.Event()
            c.on_connect = lambda *a: connected.set()
            c.connect(addr[0], addr[1], keepalive=600)
            c.loop_start()
            if not connected.wait(10):
                raise RuntimeError("paho: no CONNACK")
        finally:
            gate.connected.wait()
        gate.go.wait()
        while time.time() < gate.start:
            time.sleep(0.0002)
        stop_at = gate.start + duration
        while time.time() < stop_at:
            for _ in range(64):
                sem.acquire()
                c.publish(topic, payload, qos)
                sent += 1
        last = c.publish(topic, payload, 1)
        sent += 1
        last.wait_for_publish(60)
        if not last.is_published():
            raise RuntimeError("paho: last publish not acknowledged in 60 s")
        end = time.time()
        acked = done[0]
        c.disconnect()
        c.loop_stop()
        result.update(sent=sent, acked=acked, end=end, error=None)
    except Exception as e:  # noqa: BLE001
        result.update(sent=sent, acked=acked, end=time.time(), error=repr(e))


def load_worker(kind, addr, indices, qos, payload_bytes, window, duration, mp_barrier, start_q, out_q):
    payload = bytes((i * 7 + 1) % 256 for i in range(payload_bytes))
    gate = Gate(len(indices))
    results = [dict() for _ in indices]
    target = raw_conn if kind == "raw" else paho_conn
    threads = [
        threading.Thread(target=target, args=(addr, idx, qos, payload, window, duration, gate, results[k]), daemon=True)
        for k, idx in enumerate(indices)
    ]
    for t in threads:
        t.start()
    gate.connected.wait()
    mp_barrier.wait()
    gate.start = start_q.get()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    gate.go.set()
    for t in threads:
        t.join()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out_q.put({"results": results, "cpu_s": cpu})


def run_throughput(broker, args, qos, kind):
    ctx = mp.get_context("fork")
    addr = ("127.0.0.1", broker.mqtt_port)
    n, procs = args.connections, args.procs
    groups = [list(range(p, n, procs)) for p in range(procs)]
    barrier = ctx.Barrier(procs + 1)
    start_q, out_q = ctx.Queue(), ctx.Queue()
    workers = [
        ctx.Process(
            target=load_worker,
            args=(kind, addr, g, qos, args.payload, args.window, args.duration, barrier, start_q, out_q),
        )
        for g in groups
    ]
    for w in workers:
        w.start()
    barrier.wait(timeout=60)
    start = time.time() + 0.2
    for _ in workers:
        start_q.put(start)
    time.sleep(max(0.0, start - time.time()))
    b0, m0 = proc_cpu_s(broker.pid), machine_busy_s()
    outs = [out_q.get(timeout=args.duration + 180) for _ in workers]
    b1, m1 = proc_cpu_s(broker.pid), machine_busy_s()
    for w in workers:
        w.join(30)
    results = [r for o in outs for r in o["results"]]
    errors = [r["error"] for r in results if r.get("error")]
    end = max(r["end"] for r in results)
    secs = end - start
    sent = sum(r["sent"] for r in results)
    acked = sum(r["acked"] for r in results)
    count = sent if qos == 0 else acked
    client_cpu = sum(o["cpu_s"] for o in outs)
    broker_cpu = b1 - b0
    rec = {
        "scenario": f"qos{qos}" + ("-paho" if kind == "paho" else ""),
        "client": kind,
        "connections": n,
        "procs": procs,
        "window": args.window if qos else None,
        "payload_bytes": args.payload,
        "seconds": secs,
        "sent": sent,
        "acked": acked,
        "msgs_per_s": count / secs,
        "mb_per_s": count * args.payload / secs / 1e6,
        "client_cpu_s": client_cpu,
        "broker_cpu_s": broker_cpu,
        "other_cpu_s": (m1 - m0) - client_cpu - broker_cpu,
        "broker_rss_kib": proc_rss_kib(broker.pid),
        "broker_hwm_kib": proc_rss_kib(broker.pid, "VmHWM:"),
        "errors": errors[:5],
        "error_count": len(errors),
    }
    return rec


# ---------------------------------------------------------------------------------------------
# Latency: paho publisher and subscriber in one process


def percentile(sorted_v, q):
    if not sorted_v:
        return None
    k = min(len(sorted_v) - 1, max(0, int(round(q * (len(sorted_v) - 1)))))
    return sorted_v[k]


def run_latency(broker, args):
    import paho.mqtt.client as mqtt

    addr = ("127.0.0.1", broker.mqtt_port)
    # the Kafka topic exists before the subscription (Rill's readers start at the topics that exist)
    qos1_round_trip(addr, "bench-lat-warm", "bench/warm/x", b"w" * args.payload)
    lat_ns = []
    seen = set()
    dup = [0]
    got_all = threading.Event()
    total = int(args.rate * (args.latency_warmup + args.latency_duration))
    warm_n = int(args.rate * args.latency_warmup)

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-lat-sub", clean_session=True)
    subscribed = threading.Event()
    sub_connected = threading.Event()

    def on_message(client, userdata, msg):
        now = time.monotonic_ns()
        if not msg.topic.startswith("bench/lat/"):
            return
        seq, sent_ns = struct.unpack(">QQ", msg.payload[:16])
        if seq in seen:
            dup[0] += 1
            return
        seen.add(seq)
        if seq >= warm_n:
            lat_ns.append(now - sent_ns)
        if len(seen) >= total:
            got_all.set()

    sub.on_message = on_message
    sub.on_connect = lambda *a: sub_connected.set()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(*addr, keepalive=60)
    sub.loop_start()
    if not sub_connected.wait(10):
        raise RuntimeError("subscriber: no CONNACK")
    sub.subscribe("bench/#", qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("subscriber: no SUBACK")

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-lat-pub", clean_session=True)
    pub.max_inflight_messages_set(args.window)
    pub_connected = threading.Event()
    pub.on_connect = lambda *a: pub_connected.set()
    pub.connect(*addr, keepalive=60)
    pub.loop_start()
    if not pub_connected.wait(10):
        raise RuntimeError("publisher: no CONNACK")
    pad = b"p" * max(0, args.payload - 16)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    b0, m0 = proc_cpu_s(broker.pid), machine_busy_s()
    t0 = time.monotonic()
    late = 0
    infos = []
    for i in range(total):
        at = t0 + i / args.rate
        d = at - time.monotonic()
        if d > 0:
            time.sleep(d)
        elif d < -0.001:
            late += 1
        infos.append(pub.publish(f"bench/lat/{i % 16}", struct.pack(">QQ", i, time.monotonic_ns()) + pad, qos=1))
    pub_end = time.monotonic()
    got_all.wait(args.latency_wait)
    for m in infos[-args.window:]:
        m.wait_for_publish(max(0.1, pub_end + args.latency_wait - time.monotonic()))
    unacked = sum(1 for m in infos if not m.is_published())
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    b1, m1 = proc_cpu_s(broker.pid), machine_busy_s()
    pub.disconnect()
    pub.loop_stop()
    sub.disconnect()
    sub.loop_stop()
    v = sorted(x / 1e6 for x in lat_ns)
    client_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {
        "scenario": "latency",
        "rate": args.rate,
        "published": total,
        "measured": len(v),
        "delivered": len(seen),
        "missing": total - len(seen),
        "duplicates": dup[0],
        "unacked_publishes": unacked,
        "publisher_late": late,
        "publish_seconds": pub_end - t0,
        "p50_ms": percentile(v, 0.50),
        "p99_ms": percentile(v, 0.99),
        "p999_ms": percentile(v, 0.999),
        "max_ms": v[-1] if v else None,
        "mean_ms": statistics.fmean(v) if v else None,
        "client_cpu_s": client_cpu,
        "broker_cpu_s": b1 - b0,
        "other_cpu_s": (m1 - m0) - client_cpu - (b1 - b0),
        "broker_rss_kib": proc_rss_kib(broker.pid),
    }


# ---------------------------------------------------------------------------------------------
# Idle connections


def idle_worker(addr, first, n, source, keepalive, ready_q, close_ev):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sel = selectors.DefaultSelector()
    socks = []
    errors = []
    pending = 0
    nxt = 0
    done = 0
    max_pending = 200
    t0 = time.monotonic()
    deadline = t0 + 120

    def open_one(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT: port picked at connect
        s.bind((source, 0))
        s.setblocking(False)
        err = s.connect_ex(addr)
        if err not in (0, 115):  # EINPROGRESS
            s.close()
            raise OSError(err, os.strerror(err))
        state = {"i": i, "stage": "connect", "buf": b"", "pkt": connect_packet(f"idle-{first + i}", keepalive)}
        sel.register(s, selectors.EVENT_WRITE, state)
        return s

    while done < n and time.monotonic() < deadline:
        while nxt < n and pending < max_pending:
            try:
                socks.append(open_one(nxt))
                pending += 1
            except OSError as e:
                errors.append(f"connect {nxt}: {e}")
                done += 1
            nxt += 1
        for key, ev in sel.select(timeout=1.0):
            s, st = key.fileobj, key.data
            try:
                if st["stage"] == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    s.send(st["pkt"])
                    st["stage"] = "connack"
                    sel.modify(s, selectors.EVENT_READ, st)
                else:
                    data = s.recv(16)
                    if not data:
                        raise RuntimeError("closed before CONNACK")
                    st["buf"] += data
                    if len(st["buf"]) >= 4:
                        if st["buf"][:4] != b"\x20\x02\x00\x00":
                            raise RuntimeError(f"bad CONNACK {st['buf'].hex()}")
                        sel.unregister(s)
                        pending -= 1
                        done += 1
            except (OSError, RuntimeError) as e:
                errors.append(f"conn {st['i']}: {e!r}")
                sel.unregister(s)
                s.close()
                pending -= 1
                done += 1
    ok = done - len(errors)
    if done < n:
        errors.append(f"timed out with {n - done} unfinished")
    ready_q.put({"ok": ok, "errors": errors[:5], "error_count": len(errors), "seconds": time.monotonic() - t0})
    close_ev.wait(600)
    # are they all still open? (a broker may have closed some while they idled)
    closed = 0
    for s in socks:
        try:
            s.setblocking(False)
            if s.recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    ready_q.put({"closed_by_broker": closed})
    for s in socks:
        s.close()


def run_idle(broker, args):
    ctx = mp.get_context("fork")
    addr = ("127.0.0.1", broker.mqtt_port)
    time.sleep(args.settle)
    rss0 = proc_rss_kib(broker.pid)
    n, procs = args.idle_connections, args.idle_procs
    per = [n // procs + (1 if k < n % procs else 0) for k in range(procs)]
    ready_q = ctx.Queue()
    close_ev = ctx.Event()
    ws = []
    first = 0
    t0 = time.monotonic()
    for k in range(procs):
        w = ctx.Process(
            target=idle_worker, args=(addr, first, per[k], f"127.0.0.{2 + k}", 600, ready_q, close_ev)
        )
        w.start()
        ws.append(w)
        first += per[k]
    try:
        reps = [ready_q.get(timeout=180) for _ in ws]
        open_s = time.monotonic() - t0
        ok = sum(r["ok"] for r in reps)
        time.sleep(args.settle)
        rss1 = proc_rss_kib(broker.pid)
        # does it still answer, with all of them open?
        try:
            rt = qos1_round_trip(addr, "bench-idle-check", "bench/idle/check", b"c" * args.payload)
            check = {"publish_ok": True, "publish_ms": rt * 1e3}
        except Exception as e:  # noqa: BLE001
            check = {"publish_ok": False, "publish_error": repr(e)}
        rss2 = proc_rss_kib(broker.pid)
    finally:
        close_ev.set()
    closed = sum(ready_q.get(timeout=60)["closed_by_broker"] for _ in ws)
    for w in ws:
        w.join(30)
    errs = [e for r in reps for e in r["errors"]]
    return {
        "scenario": "idle",
        "connections": n,
        "connected": ok,
        "closed_by_broker": closed,
        "open_seconds": open_s,
        "rss_before_kib": rss0,
        "rss_after_kib": rss1,
        "rss_after_publish_kib": rss2,
        "kib_per_connection": (rss1 - rss0) / ok if ok else None,
        "broker_threads": int(open(f"/proc/{broker.pid}/status").read().split("Threads:")[1].split()[0]),
        **check,
        "errors": errs[:5],
        "error_count": sum(r["error_count"] for r in reps),
    }


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rill", required=True, help="the rill binary")
    ap.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="also write the JSON lines here")
    ap.add_argument("--scenarios", default="qos0,qos1,latency,idle")
    ap.add_argument("--paho", action="store_true", help="also qos0-paho and qos1-paho")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--payload", type=int, default=100)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--latency-duration", type=float, default=10.0)
    ap.add_argument("--latency-warmup", type=float, default=1.0)
    ap.add_argument("--latency-wait", type=float, default=15.0)
    ap.add_argument("--idle-connections", type=int, default=10_000)
    ap.add_argument("--idle-procs", type=int, default=4)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--brokers", default="rill,mosquitto")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the brokers inherit it
    scenarios = args.scenarios.split(",")
    if args.paho:
        i = scenarios.index("qos1") + 1 if "qos1" in scenarios else len(scenarios)
        scenarios[i:i] = ["qos0-paho", "qos1-paho"]
    makers = {"rill": lambda: Rill(args.rill), "mosquitto": lambda: Mosquitto(args.mosquitto)}
    names = args.brokers.split(",")
    out = open(args.out, "w") if args.out else None
    records = []
    live = []

    def emit(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()
        records.append(rec)

    versions = {
        "rill": subprocess.run([args.rill, "--version"], capture_output=True, text=True).stdout.strip(),
        "mosquitto": subprocess.run([args.mosquitto, "-h"], capture_output=True, text=True).stdout.splitlines()[0],
        "rill_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "rill_binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(args.rill))),
        "crates_uncommitted": subprocess.run(["git", "status", "--short", "--", "crates"], capture_output=True, text=True).stdout.split("\n")[:20],
    }
    emit({"run": "start", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": vars(args), "versions": versions,
          "nproc": os.cpu_count(), "loadavg": open("/proc/loadavg").read().split()[:3]})
    try:
        for rnd in range(args.rounds):
            order = names if rnd % 2 == 0 else names[::-1]
            for sc in scenarios:
                for name in order:
                    b = makers[name]()
                    live.append(b)
                    try:
                        b.start()
                        if sc in ("qos0", "qos1", "qos0-paho", "qos1-paho"):
                            rec = run_throughput(b, args, int(sc[3]), "paho" if sc.endswith("paho") else "raw")
                            expect = rec["sent"] if sc.startswith("qos0") else rec["acked"]
                        elif sc == "latency":
                            rec = run_latency(b, args)
                            expect = 1 + rec["published"] - rec["unacked_publishes"]
                        elif sc == "idle":
                            rec = run_idle(b, args)
                            expect = 1 if rec.get("publish_ok") else 0
                        else:
                            raise SystemExit(f"unknown scenario {sc}")
                        if name == "rill":
                            try:
                                rec["kafka_records"] = b.end_offset("bench")
                                rec["kafka_expected"] = expect
                            except Exception as e:  # noqa: BLE001
                                rec["kafka_records"] = {"error": repr(e)}
                        if b.proc.poll() is not None:
                            rec["broker_exited"] = b.proc.returncode
                    except Exception as e:  # noqa: BLE001 - recorded, and the run goes on
                        rec = {"scenario": sc, "failed": repr(e), "broker_log": b.log_tail()}
                    finally:
                        b.stop()
                        live.remove(b)
                    rec = {"broker": name, "round": rnd, **rec}
                    emit(rec)
    finally:
        for b in live:
            b.stop()
    summary(records, scenarios, names, emit)
    if out:
        out.close()


def summary(records, scenarios, names, emit):
    keys = {
        "qos0": ("msgs_per_s", "higher"),
        "qos1": ("msgs_per_s", "higher"),
        "qos0-paho": ("msgs_per_s", "higher"),
        "qos1-paho": ("msgs_per_s", "higher"),
        "latency": ("p99_ms", "lower"),
        "idle": ("kib_per_connection", "lower"),
    }
    extra = {
        "qos0": ["mb_per_s", "client_cpu_s", "broker_cpu_s", "other_cpu_s", "broker_rss_kib"],
        "qos1": ["mb_per_s", "client_cpu_s", "broker_cpu_s", "other_cpu_s", "broker_rss_kib"],
        "qos0-paho": ["mb_per_s", "client_cpu_s", "broker_cpu_s", "other_cpu_s"],
        "qos1-paho": ["mb_per_s", "client_cpu_s", "broker_cpu_s", "other_cpu_s"],
        "latency": ["p50_ms", "p999_ms", "max_ms", "missing", "broker_cpu_s"],
        "idle": ["rss_before_kib", "rss_after_kib", "connected", "open_seconds", "publish_ms"],
    }
    print("\nsummary (mean over rounds; each round in brackets)", flush=True)
    for sc in scenarios:
        key, better = keys[sc]
        row = {"summary": sc, "metric": key, "better": better}
        for name in names:
            vals = [r[key] for r in records if r.get("broker") == name and r.get("scenario") == sc and r.get(key) is not None]
            row[name] = statistics.fmean(vals) if vals else None
            row[name + "_rounds"] = vals
            for k in extra[sc]:
                ev = [r[k] for r in records if r.get("broker") == name and r.get("scenario") == sc and isinstance(r.get(k), (int, float))]
                row[f"{name}_{k}"] = statistics.fmean(ev) if ev else None
        if len(names) == 2 and row[names[0]] and row[names[1]]:
            row["ratio"] = row[names[0]] / row[names[1]]
        emit(row)
        print(
            f"  {sc:10} {key:20} "
            + "  ".join(f"{n}={fmt(row[n])} {[fmt(v) for v in row[n + '_rounds']]}" for n in names)
            + (f"  ratio={row['ratio']:.2f}" if "ratio" in row else ""),
            flush=True,
        )
    bad = [r for r in records if r.get("failed") or r.get("error_count") or r.get("missing")
           or ("kafka_expected" in r and r.get("kafka_records") != r.get("kafka_expected"))]
    for r in bad:
        print("  PROBLEM:", json.dumps({k: r.get(k) for k in ("broker", "round", "scenario", "failed", "errors",
              "error_count", "missing", "kafka_records", "kafka_expected") if k in r}), flush=True)


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


if __name__ == "__main__":
    main()
