"""Kernel-side peer programs, run inside a test's namespace with
`ip netns exec NS python3 peer.py COMMAND ...`. Each prints one JSON line."""
import json
import os
import random
import socket
import struct
import sys


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


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "udp-echo":
        lo, hi = map(int, sys.argv[4].split("-"))
        out = udp_echo(sys.argv[2], int(sys.argv[3]), list(range(lo, hi + 1)))
    elif cmd == "closed-port":
        out = closed_port(sys.argv[2], int(sys.argv[3]))
    elif cmd == "malformed":
        out = malformed(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(f"unknown command {cmd}")
    print(json.dumps(out))
