#!/usr/bin/env python3
"""A bounded TCP request/response load (netperf's TCP_RR shape): one connection,
a REQUEST-byte request, wait for the RESPONSE-byte answer, repeat, for at most
--seconds and at most --max transactions. Meant for an echo service, so
request and response are the same size. Prints transactions per second and
round-trip percentiles; exits non-zero if an answer is wrong or missing.

    ip netns exec NS python3 Profiles/tcp_rr.py --host 10.0.0.2 --port 7 --seconds 10
"""
import argparse
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="10.0.0.2")
    ap.add_argument("--port", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max", type=int, default=2_000_000, help="stop after this many transactions")
    ap.add_argument("--size", type=int, default=1, help="request (and echoed response) bytes")
    a = ap.parse_args()

    s = socket.create_connection((a.host, a.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = bytes((i * 7 + 1) & 0xFF for i in range(a.size))
    rtts = []
    n = 0
    start = time.perf_counter()
    deadline = start + a.seconds
    now = start
    while now < deadline and n < a.max:
        s.sendall(request)
        got = b""
        while len(got) < a.size:
            chunk = s.recv(a.size - len(got))
            if not chunk:
                sys.exit(f"connection closed after {n} transactions")
            got += chunk
        if got != request:
            sys.exit(f"transaction {n}: sent {request!r}, got {got!r}")
        t = time.perf_counter()
        rtts.append(t - now)
        now = t
        n += 1
    elapsed = now - start
    s.close()
    rtts.sort()

    def pct(p):
        return rtts[min(len(rtts) - 1, int(len(rtts) * p))] * 1e6

    print(f"tcp-rr {a.size} B: {n} transactions in {elapsed:.2f} s = {n / elapsed:.0f}/s; "
          f"round trip p50 {pct(0.50):.1f} us, p99 {pct(0.99):.1f} us, max {rtts[-1] * 1e6:.1f} us")


if __name__ == "__main__":
    main()
