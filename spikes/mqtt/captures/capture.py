#!/usr/bin/env python3
"""Minimal MQTT sink on 127.0.0.1:PORT: answers just enough for mosquitto_pub/_sub
(CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK) and writes every byte each client sent
to OUT_DIR/conn-N.bin. Usage: capture.py PORT OUT_DIR NCONN"""
import socket, sys, os

port, out, nconn = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(4)

def frames(buf):
    """Yield (type, flags, body, total_len) for each whole packet in buf."""
    i = 0
    while i + 2 <= len(buf):
        mult, rl, j = 1, 0, i + 1
        while True:
            if j >= len(buf): return
            b = buf[j]; rl += (b & 0x7F) * mult; mult *= 128; j += 1
            if not b & 0x80: break
        if j + rl > len(buf): return
        yield buf[i] >> 4, buf[i] & 0xF, buf[j:j + rl], j + rl - i
        i = j + rl

for n in range(nconn):
    c, _ = srv.accept(); c.settimeout(5)
    data, done, v5 = b"", 0, False
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk: break
            data += chunk
            consumed = 0
            for t, fl, body, ln in frames(data[done:]):
                consumed += ln
                if t == 1:   # CONNECT: protocol level is after the 2+4 byte name
                    v5 = body[6] == 5
                    c.sendall(b"\x20\x03\x00\x00\x00" if v5 else b"\x20\x02\x00\x00")
                elif t == 3:
                    qos = (fl >> 1) & 3
                    tl = int.from_bytes(body[0:2], "big")
                    pid = body[2 + tl:4 + tl]
                    if qos == 1: c.sendall(b"\x40\x02" + pid)
                    if qos == 2: c.sendall(b"\x50\x02" + pid)
                elif t == 6: c.sendall(b"\x70\x02" + body[0:2])
                elif t == 8:  # SUBSCRIBE: grant QoS 0 for every filter
                    pid = body[0:2]
                    # count filters: skip properties in v5
                    k = 2
                    if v5:
                        mult, pl = 1, 0
                        while True:
                            b = body[k]; pl += (b & 0x7F) * mult; mult *= 128; k += 1
                            if not b & 0x80: break
                        k += pl
                    nf = 0
                    while k < len(body):
                        fl_ = int.from_bytes(body[k:k + 2], "big"); k += 2 + fl_ + 1; nf += 1
                    rest = (b"\x00" if v5 else b"") + b"\x00" * nf
                    c.sendall(bytes([0x90, 2 + len(rest)]) + pid + rest)
                elif t == 14: pass
            done += consumed
    except socket.timeout:
        pass
    open(f"{out}/conn-{n}.bin", "wb").write(data)
    print(f"conn-{n}: {len(data)} bytes: {data.hex()}")
    c.close()
