"""Hostile frames for test_hostile.py, run inside a test's namespace with
`ip netns exec NS python3 hostile.py COMMAND ...`. Frames are built with
struct and sent with a packet socket on the host end of the TAP, so they reach
the stack exactly as written (spoofed sources, broadcast frames, odd flags);
what the stack sends back is caught by a second packet socket whose BPF
filter keeps only frames from the stack's MAC. Each command prints one JSON
line."""
import json
import random
import socket
import struct
import sys
import time

from peer import checksum  # the Internet checksum (RFC 1071)

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
BROADCAST_MAC = b"\xff" * 6

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


def host_mac(ifname):
    return mac_bytes(open(f"/sys/class/net/{ifname}/address").read().strip())


def ipv4(src, dst, proto, payload, ident=0x4242):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", checksum(h)) + h[12:] + payload


def pseudo(src, dst, proto, length):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)


def udp(src, dst, sport, dport, data):
    h = struct.pack("!HHHH", sport, dport, 8 + len(data), 0)
    c = checksum(pseudo(src, dst, 17, 8 + len(data)) + h + data) or 0xFFFF
    return h[:6] + struct.pack("!H", c) + data


def tcp(src, dst, sport, dport, seq, ack, flags, data=b"", window=65535, options=b""):
    off = (20 + len(options)) // 4
    h = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags, window, 0,
                    0) + options
    c = checksum(pseudo(src, dst, 6, len(h) + len(data)) + h + data)
    return h[:16] + struct.pack("!H", c) + h[18:] + data


def echo_request(ident=0x77, seq=1, data=b"hostile"):
    h = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    c = checksum(h + data)
    return h[:2] + struct.pack("!H", c) + h[4:] + data


def ethernet(dst_mac, src_mac, payload, ethertype=0x0800):
    return dst_mac + src_mac + struct.pack("!H", ethertype) + payload


class Sniffer:
    """Frames the stack sends (Ethernet source = its MAC), nothing else: a
    classic BPF filter on the socket, so our own flood does not fill its buffer."""

    def __init__(self, ifname, stack_mac):
        m = mac_bytes(stack_mac)
        hi = struct.unpack("!I", m[:4])[0]
        lo = struct.unpack("!H", m[4:])[0]
        prog = [
            (0x20, 0, 0, 6),        # ld [6]: source MAC, first four bytes
            (0x15, 0, 3, hi),       # jeq hi, else drop
            (0x28, 0, 0, 10),       # ldh [10]: its last two
            (0x15, 0, 1, lo),       # jeq lo, else drop
            (0x06, 0, 0, 0xFFFF),   # accept
            (0x06, 0, 0, 0),        # drop
        ]
        code = b"".join(struct.pack("HBBI", *i) for i in prog)
        import ctypes
        self._buf = ctypes.create_string_buffer(code)
        fprog = struct.pack("HL", len(prog), ctypes.addressof(self._buf))
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.bind((ifname, 0))
        self.s.setblocking(False)
        self.drain()

    def drain(self):
        frames = []
        while True:
            try:
                frames.append(self.s.recv(65535))
            except BlockingIOError:
                return frames

    def collect(self, seconds):
        end = time.monotonic() + seconds
        frames = []
        while time.monotonic() < end:
            frames += self.drain()
            time.sleep(0.01)
        return frames + self.drain()


def describe(frame):
    """A short summary of a frame the stack sent."""
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype == 0x0806:
        return {"kind": "arp"}
    if ethertype != 0x0800:
        return {"kind": f"ethertype-{ethertype:04x}"}
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    proto = ip[9]
    d = {"kind": {1: "icmp", 6: "tcp", 17: "udp"}.get(proto, f"ip-{proto}"),
         "src": socket.inet_ntoa(ip[12:16]), "dst": socket.inet_ntoa(ip[16:20])}
    body = ip[ihl:]
    if proto == 1 and len(body) >= 2:
        d["type"], d["code"] = body[0], body[1]
    if proto == 6 and len(body) >= 14:
        d["flags"] = body[13]
        d["sport"], d["dport"] = struct.unpack("!HH", body[:4])
    return d


def probes(ifname, stack_mac, host_ip, stack_ip):
    """One of each hostile kind, sent alone, with what the stack sent back
    within a second of each."""
    me = host_mac(ifname)
    stack = mac_bytes(stack_mac)
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((ifname, 0))
    sniff = Sniffer(ifname, stack_mac)
    rng = random.Random(5961)

    def syn(src, sport, dport, flags=SYN):
        return ipv4(src, stack_ip, 6, tcp(src, stack_ip, sport, dport, rng.getrandbits(32), 0, flags,
                                          options=b"\x02\x04\x05\xb4"))

    kinds = {}
    for name, src in [("loopback", "127.0.0.1"), ("zero", "0.0.0.0"), ("this-net", "0.1.2.3"),
                      ("land", stack_ip), ("limited-broadcast", "255.255.255.255"),
                      ("directed-broadcast", "10.0.0.255"), ("multicast", "224.0.0.1"), ("class-e", "240.0.0.1")]:
        sport = 40000 + len(kinds)
        kinds[f"{name}-ping"] = ethernet(stack, me, ipv4(src, stack_ip, 1, echo_request()))
        kinds[f"{name}-udp-closed"] = ethernet(stack, me, ipv4(src, stack_ip, 17, udp(src, stack_ip, sport, 9, b"x")))
        kinds[f"{name}-udp-echo"] = ethernet(stack, me, ipv4(src, stack_ip, 17, udp(src, stack_ip, sport, 7, b"x")))
        kinds[f"{name}-syn"] = ethernet(stack, me, syn(src, 7 if name == "land" else sport, 7))
        kinds[f"{name}-syn-closed"] = ethernet(stack, me, syn(src, sport, 81))
    kinds["broadcast-frame-udp-closed"] = ethernet(
        BROADCAST_MAC, me, ipv4(host_ip, stack_ip, 17, udp(host_ip, stack_ip, 40100, 9, b"x")))
    kinds["broadcast-frame-syn"] = ethernet(BROADCAST_MAC, me, syn(host_ip, 40101, 7))
    kinds["syn-fin"] = ethernet(stack, me, syn(host_ip, 40102, 7, SYN | FIN))
    kinds["syn-rst"] = ethernet(stack, me, syn(host_ip, 40103, 7, SYN | RST))
    # Controls: the same as a normal host sends them, which must be answered.
    kinds["control-udp-closed"] = ethernet(stack, me, ipv4(host_ip, stack_ip, 17, udp(host_ip, stack_ip, 40104, 9,
                                                                                       b"x")))
    kinds["control-ping"] = ethernet(stack, me, ipv4(host_ip, stack_ip, 1, echo_request()))
    answers = {}
    for name, frame in kinds.items():
        sniff.drain()
        tx.send(frame)
        got = [describe(f) for f in sniff.collect(0.3)]
        answers[name] = [g for g in got if g["kind"] != "arp"]
    return {"answers": answers}


def ack_flood(ifname, stack_mac, host_ip, stack_ip, port, max_frames, seconds, seed):
    """Opens a real connection to the echo service, checks it echoes, then
    floods it with ACKs that carry random sequence and acknowledgment numbers
    from its own address and port (as `hping3 -A -a HOST -s PORT -k`), at
    most `max_frames` spread over `seconds`, counts the frames the stack sends
    meanwhile and for half a second after, and checks the connection still
    echoes."""
    me = host_mac(ifname)
    stack = mac_bytes(stack_mac)
    conn = socket.create_connection((stack_ip, port), timeout=5)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echoes(payload):
        conn.sendall(payload)
        back = b""
        while len(back) < len(payload):
            chunk = conn.recv(len(payload) - len(back))
            if not chunk:
                break
            back += chunk
        return back == payload

    before = echoes(b"before the flood")
    lport = conn.getsockname()[1]
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((ifname, 0))
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sniff = Sniffer(ifname, stack_mac)
    rng = random.Random(seed)
    frames = [ethernet(stack, me, ipv4(host_ip, stack_ip, 6,
                                       tcp(host_ip, stack_ip, lport, port, rng.getrandbits(32), rng.getrandbits(32),
                                           ACK, window=rng.getrandbits(16)), ident=i & 0xFFFF))
              for i in range(max_frames)]
    batches = max(1, int(seconds * 20))
    per_batch = (len(frames) + batches - 1) // batches
    sent = 0
    refused = 0
    caught = []
    start = time.monotonic()
    for b in range(batches):
        for f in frames[b * per_batch:(b + 1) * per_batch]:
            try:
                tx.send(f)
                sent += 1
            except OSError:
                refused += 1
        caught += sniff.drain()
        pause = start + (b + 1) * seconds / batches - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    flood_seconds = time.monotonic() - start
    caught += sniff.collect(0.5)
    kinds = {}
    for f in caught:
        d = describe(f)
        key = d["kind"] if d["kind"] != "tcp" else f"tcp-flags-{d['flags']:02x}"
        kinds[key] = kinds.get(key, 0) + 1
    after = echoes(b"after the flood, still echoing")
    conn.close()
    return {"sent": sent, "refused": refused, "seconds": flood_seconds, "answers": len(caught), "kinds": kinds,
            "echo_before": before, "echo_after": after}


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "probes":
        out = probes(*args)
    elif cmd == "ack-flood":
        out = ack_flood(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]), float(args[6]),
                        int(args[7]))
    else:
        raise SystemExit(f"unknown command {cmd}")
    print(json.dumps(out))
