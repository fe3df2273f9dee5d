"""IPv6 against the kernel: the stack up with --host6 fd00::1/64 --address6
fd00::2/64 beside IPv4, and ping -6, curl, Python sockets and iperf3 as
peers (RFC 8200, 4443, 4861, 4862)."""
import concurrent.futures
import hashlib
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import HOST_IP, STACK_IP, Stack, run

HOST6 = "fd00::1"
STACK6 = "fd00::2"
SERVE = ["--host6", f"{HOST6}/64", "--address6", f"{STACK6}/64", "--serve", "echo:7,http:80,iperf3:5201"]


def pattern(n):
    """The body of /bytes/N: byte i is i % 251."""
    block = bytes(i % 251 for i in range(251))
    return (block * (n // 251 + 1))[:n]


@pytest.fixture
def stack6(ns, tmp_path):
    s = Stack(ns, *SERVE, "--pcap", str(tmp_path / "v6.pcap"))
    yield s
    if s.returncode is None:
        s.stop()


def python(ns, code, timeout=120):
    return ns.exec("python3", "-c", code, timeout=timeout)


def test_ready_prints_both_families_and_ping6_answers(ns, stack6, tmp_path):
    parts = stack6.ready.split()
    assert parts[2] == STACK_IP and "fe80::" in parts[4] and parts[5] == STACK6, stack6.ready
    out = ns.exec("ping", "-6", "-c", "20", "-i", "0.05", "-W", "2", STACK6).stdout
    assert " 20 received" in out, out
    link_local = parts[4]
    out = ns.exec("ping", "-6", "-c", "3", "-i", "0.1", "-W", "2", f"{link_local}%tap0").stdout
    assert " 3 received" in out, out
    # Fragmented both ways: 4000 bytes of data over a 1500-byte link.
    out = ns.exec("ping", "-6", "-c", "3", "-i", "0.1", "-W", "2", "-s", "4000", STACK6).stdout
    assert " 3 received" in out, out
    code, counters = stack6.stop()
    assert code == 0
    assert counters["dad-addresses-assigned"] == 2 and counters["icmp6-echo-replies-out"] >= 26
    assert counters["datagrams6-reassembled"] >= 3 and counters["fragments6-out"] >= 9
    # The capture: the stack's DAD, its solicitation and advertisement, and no malformed packet.
    pcap = str(tmp_path / "v6.pcap")
    dad = run("tshark", "-r", pcap, "-Y", "icmpv6.type == 135 && ipv6.src == ::").stdout
    assert dad.count("\n") >= 2, dad
    na = run("tshark", "-r", pcap, "-Y", f"icmpv6.type == 136 && ipv6.src == {STACK6}").stdout
    ns_kernel = run("tshark", "-r", pcap, "-Y", f"icmpv6.type == 135 && icmpv6.nd.ns.target_address == {STACK6}"
                    f" && ipv6.src == {HOST6}").stdout
    assert na.strip() and ns_kernel.strip(), (na, ns_kernel)
    malformed = run("tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity == error").stdout
    assert malformed.strip() == "", malformed


def test_udp_echo_every_size_and_closed_port_refused(ns, stack6):
    code = f"""
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2)
for n in range(1, 3001):
    data = bytes((n + i) % 256 for i in range(n))
    for attempt in range(3):
        s.sendto(data, ("{STACK6}", 7))
        try:
            got, _ = s.recvfrom(4096)
        except socket.timeout:
            continue
        if got == data:
            break
    else:
        raise SystemExit(f"size {{n}} not echoed")
c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
c.settimeout(2)
c.connect(("{STACK6}", 9999))
c.send(b"x")
try:
    c.recv(10)
    raise SystemExit("no error")
except ConnectionRefusedError:
    print("refused")
"""
    out = python(ns, code, timeout=300).stdout
    assert "refused" in out


def test_curl_and_python_echo_and_sequential_connections(ns, stack6, tmp_path):
    out = tmp_path / "mib"
    r = ns.exec("curl", "-g", "-s", "-o", str(out), "-w", "%{http_code}", f"http://[{STACK6}]/bytes/1048576",
                timeout=60)
    assert r.stdout == "200"
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(pattern(1 << 20)).digest()
    code = f"""
import hashlib, os, socket
data = os.urandom(1 << 20)
s = socket.create_connection(("{STACK6}", 7), timeout=30)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
assert got == data, len(got)
for i in range(200):
    c = socket.create_connection(("{STACK6}", 7), timeout=10)
    c.sendall(b"%d" % i)
    c.shutdown(socket.SHUT_WR)
    assert c.recv(100) == b"%d" % i
    assert c.recv(100) == b""
    c.close()
print("ok")
"""
    assert "ok" in python(ns, code, timeout=120).stdout
    time.sleep(0.5)
    code, counters = stack6.stop()
    assert code == 0
    assert counters["tcp-connections-in-table"] - counters.get("tcp-in-time-wait", 0) == 0


def test_iperf3_over_ipv6_against_the_stack(ns, stack6):
    r = ns.exec("iperf3", "-6", "-c", STACK6, "-t", "3", "-J", timeout=60, check=False)
    result = json.loads(r.stdout)
    assert "error" not in result, result.get("error")
    assert result["end"]["sum_received"]["bytes"] > 0


def test_ipv4_and_ipv6_downloads_at_once(ns, stack6, tmp_path):
    n = 16 << 20

    def fetch(url, path):
        return ns.exec("curl", "-g", "-s", "-o", str(path), "-w", "%{http_code}", url, timeout=120).stdout

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a = pool.submit(fetch, f"http://{STACK_IP}/bytes/{n}", tmp_path / "v4")
        b = pool.submit(fetch, f"http://[{STACK6}]/bytes/{n}", tmp_path / "v6")
        assert a.result() == "200" and b.result() == "200"
    want = hashlib.sha256(pattern(n)).digest()
    assert hashlib.sha256((tmp_path / "v4").read_bytes()).digest() == want
    assert hashlib.sha256((tmp_path / "v6").read_bytes()).digest() == want


def test_four_mebibytes_echoed_under_ten_percent_loss(ns):
    s = Stack(ns, *SERVE, "--loss", "0.1")
    try:
        code = f"""
import os, socket, threading
data = os.urandom(4 << 20)
s = socket.create_connection(("{STACK6}", 7), timeout=60)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got = bytearray()
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
t.join()
assert bytes(got) == data, len(got)
print("ok")
"""
        assert "ok" in python(ns, code, timeout=240).stdout
    finally:
        code, counters = s.stop()
    assert counters["fault.rx.dropped"] > 100 and counters["fault.tx.dropped"] > 100, counters
    assert counters["tcp-retransmissions"] > 0 and counters["ipv6-in"] > 1000, counters
