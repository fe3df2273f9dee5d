#!/bin/sh
# Regenerates handshake.pcap and handshake.txt: curl fetching /bytes/100 from
# the stack, captured on the kernel's side of the TAP (tap0) inside a
# throwaway network namespace, which is deleted at the end. Run as root from
# the repository root after `swift build`, with tshark (or tcpdump) and curl:
#   Tests/Interop/captures/capture.sh [path/to/netstack]
# test_tcp.py::test_committed_capture_is_a_clean_exchange checks the result.
set -eu
OUT=$(cd "$(dirname "$0")" && pwd)
NETSTACK=${1:-.build/debug/netstack}
NS=netstack-capture-$$
STACK=""; CAP=""
cleanup() {
    [ -n "$CAP" ] && kill -INT "$CAP" 2>/dev/null || true
    [ -n "$STACK" ] && kill -INT "$STACK" 2>/dev/null || true
    sleep 0.5
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
# No IPv6 chatter (router solicitations, MLD reports) on the new link.
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip netns exec "$NS" "$NETSTACK" up --tap tap0 --host 10.0.0.1/24 --address 10.0.0.2 --serve http >/dev/null &
STACK=$!
for _ in $(seq 1 100); do ip -n "$NS" link show tap0 >/dev/null 2>&1 && break; sleep 0.05; done
sleep 0.3
# Resolve ARP first so the capture holds only the TCP exchange.
ip netns exec "$NS" ping -c 1 -W 2 10.0.0.2 >/dev/null
ip netns exec "$NS" tcpdump -q -U -Z root -i tap0 -w "$OUT/handshake.pcap" "tcp port 80" 2>/dev/null &
CAP=$!
sleep 1
ip netns exec "$NS" curl -s -o /dev/null -w "curl: %{http_code} %{size_download} bytes\n" http://10.0.0.2/bytes/100
sleep 1
kill -INT "$CAP"; wait "$CAP" || true; CAP=""
kill -INT "$STACK"; wait "$STACK" || true; STACK=""
# Relative times, so the text does not depend on the day it was made.
tshark -r "$OUT/handshake.pcap" -t r 2>/dev/null > "$OUT/handshake.txt"
cat "$OUT/handshake.txt"
