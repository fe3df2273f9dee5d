"""Kernel-side peer programs, run inside a test's namespace with
`ip netns exec NS python3 peer.py COMMAND ...`. Each prints one JSON line."""
import base64
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time


def udp_echo(ip, port, sizes):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((ip, port))
    rng = random.Random(1)
    bad = []
    for n in sizes:
        data = bytes(rng.getrandbits(8) for _ in range(n))
        for attempt in range(3):
            s.send(data)
            try:
                back = s.recv(65535)
                break
            except socket.timeout:
                back = None
        if back != data:
            bad.append(n)
    return {"sent": len(sizes), "bad": bad}


def closed_port(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((ip, port))
    s.send(b"is anyone listening?")
    try:
        s.recv(100)
        return {"result": "answered"}
    except ConnectionRefusedError:
        return {"result": "refused"}
    except socket.timeout:
        return {"result": "timeout"}


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4_header(total_length, ihl=5, proto=17, src="10.0.0.1", dst="10.0.0.2", good_checksum=True):
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total_length, 0x1234, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    c = checksum(h) if good_checksum else 0xDEAD
    return h[:10] + struct.pack("!H", c) + h[12:]


def malformed(ifname, dst_mac, count_each, seed):
    """Sends `count_each` frames of each malformed kind straight onto the TAP
    with a packet socket, so they reach the stack unaltered."""
    rng = random.Random(seed)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    dst = bytes.fromhex(dst_mac.replace(":", ""))
    src = bytes.fromhex("020000000001")
    kinds = {}

    def send(kind, frame):
        try:
            s.send(frame)
            kinds[kind] = kinds.get(kind, 0) + 1
        except OSError as e:
            kinds[kind + "-refused-by-kernel"] = kinds.get(kind + "-refused-by-kernel", 0) + 1

    for _ in range(count_each):
        # Random bytes after a header addressed to the stack, random EtherType.
        send("random", dst + src + bytes(rng.getrandbits(8) for _ in range(rng.randint(2, 120))))
        # ARP shorter than its 28 bytes.
        send("short-arp", dst + src + b"\x08\x06" + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 27))))
        # IPv4 whose total length claims more than the frame holds.
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        send("ipv4-long", dst + src + b"\x08\x00" + ipv4_header(20 + len(body) + rng.randint(1, 1000)) + body)
        # IPv4 whose IHL is below 5.
        send("ipv4-ihl", dst + src + b"\x08\x00" + ipv4_header(40, ihl=rng.randint(0, 4)) + bytes(20))
    return {"sent": kinds}


def ipv6_header(payload_length, next_header, src="fd00::1", dst="fd00::2", version=6):
    return struct.pack("!IHBB16s16s", version << 28, payload_length, next_header, 64,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))


def icmp6_checksum(src, dst, message):
    pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!IxxxB", len(message), 58))
    return checksum(pseudo + message)


def malformed6(ifname, dst_mac, count_each, seed):
    """Sends `count_each` IPv6 frames of each malformed kind straight onto
    the TAP (RFC 8200, 5722, 4443), from fd00::1 to fd00::2."""
    rng = random.Random(seed)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex("020000000001") + b"\x86\xdd"
    kinds = {}

    def send(kind, packet):
        s.send(eth + packet)
        kinds[kind] = kinds.get(kind, 0) + 1

    def dest_options(next_header):
        # 8 bytes: next header, length 0, one PadN option of 4 bytes.
        return struct.pack("!BBBB4x", next_header, 0, 1, 4)

    udp = struct.pack("!HHHH", 40000, 9, 12, 0) + b"abcd"
    for i in range(count_each):
        # Shorter than the 40-byte fixed header.
        send("short", ipv6_header(0, 59)[:rng.randint(1, 39)])
        # A version other than 6 under EtherType 0x86dd.
        send("version", ipv6_header(0, 59, version=rng.choice([0, 4, 5, 7, 15])))
        # A payload length claiming more than the frame holds.
        send("long", ipv6_header(len(udp) + rng.randint(1, 1000), 17) + udp)
        # Ten destination options headers: past the stack's bound of eight.
        chain = b"".join(dest_options(60) for _ in range(9)) + dest_options(17) + udp
        send("chain-too-long", ipv6_header(len(chain), 60) + chain)
        # Hop-by-hop options anywhere but first: the chain loops back (RFC 8200 4.1).
        hbh_late = dest_options(0) + dest_options(17) + udp
        send("hop-by-hop-late", ipv6_header(len(hbh_late), 60) + hbh_late)
        # Two fragments of one datagram, the second overlapping the first (RFC 5722).
        ident = 0x10000 + seed * 100000 + i
        first = struct.pack("!BBHI", 17, 0, 0 | 1, ident) + bytes(16)
        second = struct.pack("!BBHI", 17, 0, 1 << 3, ident) + bytes(16)  # offset 8 bytes
        send("overlap-first", ipv6_header(len(first), 44) + first)
        send("overlap", ipv6_header(len(second), 44) + second)
        # An echo request whose checksum is wrong.
        echo = struct.pack("!BBHHH", 128, 0, 0, 0x4242, i & 0xFFFF) + b"payload!"
        good = icmp6_checksum("fd00::1", "fd00::2", echo)
        echo = echo[:2] + struct.pack("!H", good ^ rng.randint(1, 0xFFFF)) + echo[4:]
        send("icmp6-checksum", ipv6_header(len(echo), 58) + echo)
    return {"sent": kinds}


def tcp_echo(ip, port, nbytes, seed):
    """Sends `nbytes` of seeded random data to the echo service from one
    thread while another reads the echo back; both directions run at once,
    so neither side's buffers have to hold the whole transfer."""
    data = random.Random(seed).randbytes(nbytes)
    s = socket.create_connection((ip, port), timeout=10)
    errors = []

    def send():
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(f"send: {e}")

    start = time.monotonic()
    t = threading.Thread(target=send)
    t.start()
    back = bytearray()
    try:
        while len(back) <= nbytes:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            back += chunk
    except OSError as e:
        errors.append(f"recv: {e}")
    t.join(30)
    seconds = time.monotonic() - start
    s.close()
    return {"sent": nbytes, "received": len(back), "equal": bytes(back) == data,
            "sha256_sent": hashlib.sha256(data).hexdigest(),
            "sha256_received": hashlib.sha256(back).hexdigest(), "seconds": seconds, "errors": errors}


def tcp_echo_many(ip, port, count, size, seed):
    """`count` sequential connections: each sends `size` bytes, reads them
    back, and closes first (so the kernel ends in TIME-WAIT, the stack in
    LAST-ACK until our final ACK)."""
    rng = random.Random(seed)
    bad = []
    start = time.monotonic()
    for i in range(count):
        data = rng.randbytes(size)
        try:
            s = socket.create_connection((ip, port), timeout=5)
            s.sendall(data)
            back = bytearray()
            while len(back) < size:
                chunk = s.recv(size - len(back))
                if not chunk:
                    break
                back += chunk
            s.close()
            if bytes(back) != data:
                bad.append(i)
        except OSError as e:
            bad.append(f"{i}: {e}")
    return {"connections": count, "bad": bad, "seconds": time.monotonic() - start}


def raw(ip, port, request_b64, timeout):
    """Sends raw bytes and collects everything that comes back until the
    peer closes or `timeout` seconds pass without data."""
    s = socket.create_connection((ip, port), timeout=5)
    s.sendall(base64.b64decode(request_b64))
    s.settimeout(float(timeout))
    back = bytearray()
    closed = False
    reset = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            break
        except ConnectionResetError:
            reset = True
            break
        if not chunk:
            closed = True
            break
        back += chunk
    s.close()
    return {"response_b64": base64.b64encode(bytes(back)).decode(), "closed": closed, "reset": reset}


def chunked_server(ip, port, nbytes, seed, ready_file):
    """Serves one GET with a chunked body of `nbytes` seeded random bytes in
    chunks of varying sizes (with an extension and a trailer), then exits."""
    data = random.Random(seed).randbytes(nbytes)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port))
    ls.listen(1)
    ls.settimeout(30)
    open(ready_file, "w").write("ready\n")
    c, _ = ls.accept()
    c.settimeout(10)
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = c.recv(4096)
        if not chunk:
            break
        req += chunk
    out = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"]
    rng = random.Random(seed + 1)
    i = 0
    while i < len(data):
        n = min(rng.choice([1, 7, 100, 1000, 4096, 16384, 65536]), len(data) - i)
        ext = b";name=value" if rng.random() < 0.2 else b""
        out.append(b"%x%s\r\n" % (n, ext) + data[i:i + n] + b"\r\n")
        i += n
    out.append(b"0\r\nX-Trailer: yes\r\n\r\n")
    c.sendall(b"".join(out))
    # Wait for the client to close first: it has read everything by then.
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
    return {"request_line": req.split(b"\r\n")[0].decode(), "sha256": hashlib.sha256(data).hexdigest()}


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "udp-echo":
        lo, hi = map(int, sys.argv[4].split("-"))
        out = udp_echo(sys.argv[2], int(sys.argv[3]), list(range(lo, hi + 1)))
    elif cmd == "closed-port":
        out = closed_port(sys.argv[2], int(sys.argv[3]))
    elif cmd == "malformed":
        out = malformed(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "malformed6":
        out = malformed6(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "tcp-echo":
        out = tcp_echo(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "tcp-echo-many":
        out = tcp_echo_many(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    elif cmd == "raw":
        out = raw(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == "chunked-server":
        out = chunked_server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(f"unknown command {cmd}")
    print(json.dumps(out))
