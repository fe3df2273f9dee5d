#!/bin/sh
# Regenerates the captures in this folder. Run as root on Linux with
# iproute2 and python3, and for the IPv4 files (`capture.sh v4`) ethtool,
# tcpdump and ping; the IPv6 files (`capture.sh v6`) need ping and dumpcap
# (installed with tshark), and use ethtool when it is there. Without an
# argument both are made. All traffic stays inside throwaway network
# namespaces joined by a veth pair (wirecapA 10.0.0.1 <-> wirecapB 10.0.0.2;
# wirecap6A fd00::1 <-> wirecap6B fd00::2), deleted at the end. Transmit
# checksum offload is turned off on both veth ends so every captured frame
# carries its real checksums.
# Note: CaptureTests.swift and IPv6CaptureTests.swift check values specific
# to the committed files (ping identifiers, IP ids, ports, sequence numbers,
# timestamps, checksums); regenerating them means updating those
# expectations from `tshark -r FILE -V`.
set -eu
OUT=$(cd "$(dirname "$0")" && pwd)

# Turns transmit checksum offload off on DEV in namespace NS: ethtool, or
# its ioctl (SIOCETHTOOL, ETHTOOL_STXCSUM) from python3 where it is missing.
txoff() { # ns dev
    if command -v ethtool >/dev/null; then
        ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
    else
        ip netns exec "$1" python3 -c '
import array, fcntl, socket, struct, sys
value = array.array("I", [0x17, 0])  # ETHTOOL_STXCSUM, off
request = struct.pack("16sP", sys.argv[1].encode(), value.buffer_info()[0])
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8946, request)  # SIOCETHTOOL
' "$2"
    fi
}

# Deletes the namespaces of the part running (A and B), also on exit.
A=; B=
cleanup() { for ns in $A $B; do ip netns del $ns 2>/dev/null || true; done; }
trap cleanup EXIT

capture_v4() {
    A=wirecapA; B=wirecapB
    cleanup
    ip netns add $A; ip netns add $B
    for ns in $A $B; do
        ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    ip link add vA netns $A address 02:00:0a:00:00:01 type veth peer name vB netns $B address 02:00:0a:00:00:02
    ip -n $A addr add 10.0.0.1/24 dev vA; ip -n $B addr add 10.0.0.2/24 dev vB
    txoff $A vA; txoff $B vB
    ip -n $A link set vA up; ip -n $B link set vB up
    ip -n $A link set lo up; ip -n $B link set lo up
    sleep 1

    # Captures on B's side of the link: frames A sent arrive there, B's replies leave there.
    cap() { # file filter [tcpdump options...]
        f=$1; filt=$2; shift 2
        ip netns exec $B tcpdump -q -U -Z root -i vB -w "$OUT/$f" "$@" "$filt" 2>/dev/null &
        CAP=$!; sleep 1
    }
    stop() { sleep 1; kill -INT $CAP; wait $CAP || true; }

    # ARP request (A -> broadcast) and reply (B -> A).
    ip -n $A neigh flush dev vA
    cap arp.pcap arp
    ip netns exec $A ping -c 1 -W 1 10.0.0.2 >/dev/null
    stop

    # Two echo requests and replies (ARP is resolved by now).
    cap ping.pcap icmp
    ip netns exec $A ping -c 2 -i 0.2 -W 1 10.0.0.2 >/dev/null
    stop

    # One 4000-byte echo request, fragmented to the 1500-byte MTU. Only the
    # request direction is kept, to keep the file small. Nanosecond timestamps.
    cap ping-fragmented.pcap "src host 10.0.0.1 and (icmp or ip[6:2] & 0x3fff != 0)" --time-stamp-precision=nano
    ip netns exec $A ping -c 1 -s 4000 -p 5a -W 1 10.0.0.2 >/dev/null
    stop

    # UDP: text to a listener on 10.0.0.2:9999 from port 40000, an odd-length
    # payload, an empty payload, a datagram sent with SO_NO_CHECK (checksum 0),
    # a payload chosen so the computed checksum is zero (sent as 0xffff), and a
    # datagram to closed port 9 that B answers with ICMP port unreachable.
    ip netns exec $B python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.0.0.2", 9999))
s.settimeout(5)
try:
    for _ in range(5): s.recvfrom(2000)
except Exception: pass
    ' &
    LISTEN=$!
    sleep 0.5
    cap udp.pcap "udp or icmp"
    ip netns exec $A python3 -c '
import socket, struct, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return s
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.0.0.1", 40000))
dst = ("10.0.0.2", 9999)
s.sendto(b"hello, netstack\n", dst); time.sleep(0.1)
s.sendto(b"odd", dst); time.sleep(0.1)
s.sendto(b"", dst); time.sleep(0.1)
# Payload whose one-s complement sum, with the pseudo-header and header, is 0xffff.
body = b"zero-checksum"  + b"\0"  # even length, then two adjustable bytes
length = 8 + len(body) + 2
pseudo = socket.inet_aton("10.0.0.1") + socket.inet_aton("10.0.0.2") + struct.pack("!BBH", 0, 17, length)
partial = csum(pseudo + struct.pack("!HHHH", 40000, 9999, length, 0) + body)
fix = (0xffff - partial) % 0xffff or 0xffff
assert csum(pseudo + struct.pack("!HHHH", 40000, 9999, length, 0) + body + struct.pack("!H", fix)) == 0xffff
s.sendto(body + struct.pack("!H", fix), dst); time.sleep(0.1)
n = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); n.bind(("10.0.0.1", 40001))
n.setsockopt(socket.SOL_SOCKET, 11, 1)  # SO_NO_CHECK
n.sendto(b"no checksum", dst); time.sleep(0.1)
s.sendto(b"nobody listens", ("10.0.0.2", 9))
    '
    stop
    wait $LISTEN || true
    cleanup
}

# IPv6: neighbour discovery, ping, a TCP connection, and the kernel's ICMPv6
# errors for packets with extension headers built by hand. IPv6 link-local
# addresses are the kernel's (EUI-64: fe80::aff:fe00:1 and fe80::aff:fe00:2).
capture_v6() {
    A=wirecap6A; B=wirecap6B
    cleanup
    ip netns add $A; ip netns add $B
    # A sends one router solicitation after duplicate address detection of
    # its link-local address (with RFC 7527's nonce); B stays quiet: no DAD,
    # no solicitations, and ICMPv6 errors without a rate limit.
    ip netns exec $A sysctl -qw net.ipv6.conf.default.router_solicitations=1
    ip netns exec $B sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.default.router_solicitations=0 \
        net.ipv6.icmp.ratelimit=0
    ip link add vA netns $A address 02:00:0a:00:00:01 type veth peer name vB netns $B address 02:00:0a:00:00:02
    ip -n $A addr add fd00::1/64 dev vA nodad; ip -n $B addr add fd00::2/64 dev vB nodad
    txoff $A vA; txoff $B vB
    ip -n $A link set lo up; ip -n $B link set lo up
    ip -n $B link set vB up
    sleep 1

    # dumpcap writes classic pcap (-P) with microsecond timestamps.
    cap6() { # file filter
        ip netns exec $B dumpcap -q -P -i vB -f "$2" -w "$OUT/$1" 2>/dev/null &
        CAP=$!; sleep 1
    }
    stop() { sleep 1; kill -INT $CAP; wait $CAP || true; }

    # A's link coming up: DAD's neighbour solicitation for fe80::aff:fe00:1
    # (from ::), its router solicitation; then the solicitation for fd00::2
    # that A's first ping makes, and B's solicited advertisement.
    # (ip6[40] is the ICMPv6 type when no extension header comes first.)
    cap6 ndp.pcap "icmp6 and ip6[40] >= 133 and ip6[40] <= 136"
    ip -n $A link set vA up
    sleep 3
    ip netns exec $A ping -6 -c 1 -W 1 fd00::2 >/dev/null
    stop

    # Two echo requests and replies (the neighbour is resolved by now).
    cap6 ping6.pcap "icmp6 and (ip6[40] == 128 or ip6[40] == 129)"
    ip netns exec $A ping -6 -c 2 -i 0.2 -W 1 fd00::2 >/dev/null
    stop

    # A TCP connection from [fd00::1]:40000 to [fd00::2]:8080: handshake, one
    # line of data, and the close, the client first.
    ip netns exec $B timeout 10 python3 -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("fd00::2", 8080)); s.listen(1); s.settimeout(8)
c, _ = s.accept(); c.settimeout(8)
for _ in range(10):
    if not c.recv(2000): break
c.close()
' &
    LISTEN=$!
    sleep 0.5
    cap6 tcp6-handshake.pcap "ip6 and tcp"
    ip netns exec $A timeout 10 python3 -c '
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.bind(("fd00::1", 40000)); s.settimeout(5)
s.connect(("fd00::2", 8080)); time.sleep(0.1)
s.sendall(b"hello, netstack6\n"); time.sleep(0.1)
s.shutdown(socket.SHUT_WR); s.recv(100); s.close()
'
    stop
    wait $LISTEN || true

    # Extension header chains the kernel answers or drops: UDP datagrams from
    # [fd00::1]:40000 to port 9 (no listener), built by hand and sent from A
    # through a packet socket, one every 100 ms. What Linux does with each is
    # in IPv6CaptureTests.swift. Captured: what A sent, and B's errors.
    cap6 icmp6-errors.pcap "ip6 and ((src host fd00::1 and not icmp6) or (icmp6 and ip6[40] < 128))"
    ip netns exec $A timeout 20 python3 -c '
import socket, struct, time
A, B = socket.inet_pton(socket.AF_INET6, "fd00::1"), socket.inet_pton(socket.AF_INET6, "fd00::2")
ALL_NODES = socket.inet_pton(socket.AF_INET6, "ff02::1")
MAC_A, MAC_B = bytes.fromhex("02000a000001"), bytes.fromhex("02000a000002")
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return s
def udp(dst, text):
    length = 8 + len(text)
    pseudo = A + dst + struct.pack("!IxxxB", length, 17)
    c = 0xffff - csum(pseudo + struct.pack("!HHHH", 40000, 9, length, 0) + text) or 0xffff
    return struct.pack("!HHHH", 40000, 9, length, c) + text
def ext(nh, body):  # Hop-by-Hop, Routing or Destination: next header, length, body
    assert (2 + len(body)) % 8 == 0
    return bytes([nh, (2 + len(body)) // 8 - 1]) + body
def send(first, chain, dst=B, mac=MAC_B):
    ip = struct.pack("!IHBB", 6 << 28, len(chain), first, 64) + A + dst
    sock.send(mac + MAC_A + b"\x86\xdd" + ip + chain)
    time.sleep(0.1)
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); sock.bind(("vA", 0))
u = udp(B, b"chain")
send(17, u)                                                     # 1 plain: port unreachable
send(60, ext(17, b"\x1e\x02\0\0\x01\x00") + u)                # 2 option 00: skipped
send(60, ext(17, b"\x5e\x02\0\0\x01\x00") + u)                # 3 option 01: dropped
send(60, ext(17, b"\x9e\x02\0\0\x01\x00") + u)                # 4 option 10: code 2
send(60, ext(17, b"\xde\x02\0\0\x01\x00") + u)                # 5 option 11: code 2
send(60, ext(17, b"\xde\x02\0\0\x01\x00") + udp(ALL_NODES, b"chain"), ALL_NODES,
     bytes.fromhex("333300000001"))                             # 6 option 11 to multicast: dropped
send(43, ext(17, b"\x00\x01" + b"\0" * 4 + B) + u)             # 7 type 0, 1 segment left: code 0
send(43, ext(17, b"\x00\x00" + b"\0" * 4 + B) + u)             # 8 type 0, none left: ignored
send(60, ext(0, b"\x01\x04\0\0\0\0") + ext(17, b"\x01\x04\0\0\0\0") + u)  # 9 hop-by-hop second: code 1
send(253, u)                                                    # 10 unknown next header: code 1
send(44, struct.pack("!BxHI", 17, 0, 0x6e657473) + u)           # 11 atomic fragment
send(60, bytes([17, 2]) + b"\x01\x04\0\0\0\0" + u)            # 12 header past the end: dropped
send(60, ext(17, b"\x01\x04\0\x01\0\0") + u)                  # 13 PadN not zero: dropped
'
    stop
    chmod 644 "$OUT/ndp.pcap" "$OUT/ping6.pcap" "$OUT/tcp6-handshake.pcap" "$OUT/icmp6-errors.pcap"
    cleanup
}

case "${1:-all}" in
    v4) capture_v4 ;;
    v6) capture_v6 ;;
    all) capture_v4; capture_v6 ;;
    *) echo "usage: $0 [v4|v6|all]" >&2; exit 2 ;;
esac
ls -l "$OUT"/*.pcap
