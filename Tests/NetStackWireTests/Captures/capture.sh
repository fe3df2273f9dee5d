#!/bin/sh
# Regenerates the captures in this folder. Run as root on Linux with
# iproute2, ethtool, tcpdump, ping and python3. All traffic stays inside two
# throwaway network namespaces (wirecapA 10.0.0.1 <-veth-> wirecapB 10.0.0.2),
# which are deleted at the end. Transmit checksum offload is turned off on
# both veth ends so every captured frame carries its real checksums.
# Note: CaptureTests.swift checks values specific to the committed files
# (ping identifiers, IP ids, timestamps, checksums); regenerating them means
# updating those expectations from `tshark -r FILE -V`.
set -eu
OUT=$(cd "$(dirname "$0")" && pwd)
A=wirecapA; B=wirecapB
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $A; ip netns add $B
for ns in $A $B; do
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add vA netns $A address 02:00:0a:00:00:01 type veth peer name vB netns $B address 02:00:0a:00:00:02
ip -n $A addr add 10.0.0.1/24 dev vA; ip -n $B addr add 10.0.0.2/24 dev vB
ip netns exec $A ethtool -K vA tx off >/dev/null; ip netns exec $B ethtool -K vB tx off >/dev/null
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
ls -l "$OUT"/*.pcap
