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

from conftest import HOST_IP, STACK_IP, STACK_MAC, Stack, run

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
    # The kernel's solicitation taught the stack its address as STALE (RFC
    # 4861 7.2.3): replies still going 5 s on make the stack probe it.
    out = ns.exec("ping", "-6", "-c", "7", "-i", "1", "-W", "2", STACK6, timeout=30).stdout
    assert " 7 received" in out, out
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
    ns_stack = run("tshark", "-r", pcap, "-Y", f"icmpv6.type == 135 && icmpv6.nd.ns.target_address == {HOST6}"
                   f" && ipv6.src == {STACK6} && ipv6.dst == {HOST6}").stdout
    assert na.strip() and ns_kernel.strip() and ns_stack.strip(), (na, ns_kernel, ns_stack)
    # Its MLDv2 report for the solicited-node group, as the kernel reads it (RFC 3810).
    mld = run("tshark", "-r", pcap, "-Y", f"icmpv6.type == 143 && eth.src == {STACK_MAC}"
              " && icmpv6.mldr.mar.multicast_address == ff02::1:ff00:2 && ipv6.hlim == 1").stdout
    assert mld.strip(), mld
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


def client_link6():
    return ["--tap", "tap1", "--host", f"{HOST_IP}/24", "--address", STACK_IP,
            "--host6", f"{HOST6}/64", "--address6", f"{STACK6}/64"]


def test_netstack_get_fetches_from_the_kernel_over_ipv6(ns, tmp_path):
    """`netstack get http://[fd00::1]:8000/FILE` against `python3 -m http.server` bound to ::."""
    from conftest import NETSTACK
    data = os.urandom(4 << 20)
    (tmp_path / "file").write_bytes(data)
    server = ns.popen("python3", "-m", "http.server", "8000", "--bind", "::", "--directory", str(tmp_path),
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if ":8000" in ns.exec("ss", "-tln").stdout:
                break
            time.sleep(0.05)
        r = ns.popen(NETSTACK, "get", f"http://[{HOST6}]:8000/file", *client_link6(), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
        out, err = r.communicate(timeout=60)
        assert r.returncode == 0, err
        assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("reverse", [False, True])
def test_netstack_iperf_against_the_kernels_iperf3_over_ipv6(ns, reverse):
    from conftest import NETSTACK
    server = ns.popen("iperf3", "-s", "-1", "-J", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if ":5201" in ns.exec("ss", "-tln").stdout:
                break
            time.sleep(0.05)
        r = ns.exec(NETSTACK, "iperf", "-c", HOST6, "-t", "2", "-J", *(["-R"] if reverse else []), *client_link6(),
                    timeout=60, check=False)
        out = json.loads(r.stdout)
        assert r.returncode == 0 and "error" not in out, (out.get("error"), r.stderr)
        theirs = json.loads(server.communicate(timeout=20)[0])
        assert theirs["start"]["connected"][0]["remote_host"] == STACK6, theirs["start"]["connected"]
        assert theirs["end"]["sum_sent" if reverse else "sum_received"]["bytes"] > 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


PTB_SCRIPT = r"""
import socket, struct, sys, threading, time
STACK6 = sys.argv[1]
FORGED = 3
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
sniff.bind(("tap0", 0))
sniff.setblocking(False)
c = socket.create_connection((STACK6, 80), timeout=30)
n = 256 << 20
c.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % n)
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
got = bytearray()
def read_all():
    while True:
        chunk = c.recv(1 << 20)
        if not chunk:
            break
        got.extend(chunk)
reader = threading.Thread(target=read_all)
reader.start()
me = socket.inet_pton(socket.AF_INET6, STACK6)

def data_frames():
    # What the stack sent since the last call.
    out = []
    while True:
        try:
            f = sniff.recv(65535)
        except BlockingIOError:
            return out
        if len(f) > 200 and f[22:38] == me and f[20] == 6:
            out.append(f)

def ptb(quote, mtu=1280):
    raw.sendto(struct.pack("!BBHI", 2, 0, 0, mtu) + bytes(quote[:1232]), (STACK6, 0))

time.sleep(0.05)
latest = data_frames()[-1]
forged = bytearray(latest[14:])
forged[40 + 2:40 + 4] = struct.pack("!H", 1)  # a port no connection has
for _ in range(FORGED):  # --rx-loss drops 1% of what the stack receives
    ptb(forged)
time.sleep(0.05)
big_before = sum(len(f) > 14 + 1280 for f in data_frames())
# A router answers at once, quoting a segment still in flight: try until one is.
attempts = 0
while attempts < 200 and reader.is_alive():
    attempts += 1
    frames = data_frames()
    if frames and all(len(f) <= 14 + 1280 for f in frames[-20:]) and len(frames) >= 20:
        break
    if frames:
        ptb(frames[-1][14:])
    time.sleep(0.002)
data_frames()
time.sleep(0.05)
after = data_frames()
big_after = sum(len(f) > 14 + 1280 for f in after)
reader.join()
body = bytes(got[got.index(b"\r\n\r\n") + 4:])
block = bytes(i % 251 for i in range(251))
ok = body == (block * (n // 251 + 1))[:n]
print(big_before, big_after, len(after), ok)
"""


def test_packet_too_big_for_a_live_connection_shrinks_its_segments(ns, tmp_path):
    """RFC 8201 with RFC 5927's check: a PTB naming 1280 and quoting one of the
    stack's in-flight segments makes its next segments fit 1280 bytes; the same
    quote with another port (no such connection) changes nothing."""
    s = Stack(ns, *SERVE, "--offload", "off", "--rx-loss", "0.01")
    try:
        r = ns.exec("python3", "-c", PTB_SCRIPT, STACK6, timeout=120, check=False)
    finally:
        code, counters = s.stop()
    assert r.returncode == 0, r.stderr
    big_before, big_after, seen, ok = r.stdout.split()
    report = (r.stdout, {k: v for k, v in counters.items() if "pmtu" in k or "icmp" in k or "too-large" in k})
    assert ok == "True"
    assert int(big_before) > 0, report  # the forged one changed nothing: full-size frames went on
    assert int(seen) > 0 and int(big_after) == 0, report
    # Three forged copies, so that --rx-loss cannot take them all.
    assert counters["pmtu-learned"] == 1 and 1 <= counters["tcp-icmp-no-connection"] <= 3, counters
    assert counters["tcp-pmtu-mss-lowered"] >= 1, counters


def test_malformed_ipv6_frames_are_counted_by_reason_and_the_stack_answers(ns, stack6, tmp_path):
    """Truncated headers, bad versions and payload lengths, overlong and
    looping extension header chains, overlapping fragments and bad ICMPv6
    checksums, 200 of each, written onto the TAP: each dropped under its
    reason, and ping -6 and TCP still answered afterwards."""
    here = os.path.dirname(os.path.abspath(__file__))
    r = ns.exec("python3", os.path.join(here, "peer.py"), "malformed6", "tap0", STACK_MAC, "200", "3", timeout=120)
    sent = json.loads(r.stdout)["sent"]
    assert all(sent[k] == 200 for k in ["short", "version", "long", "chain-too-long", "hop-by-hop-late",
                                         "overlap", "icmp6-checksum"]), sent
    out = ns.exec("ping", "-6", "-c", "3", "-i", "0.1", "-W", "2", STACK6).stdout
    assert " 3 received" in out, out
    body = tmp_path / "body"
    ns.exec("curl", "-g", "-s", "-o", str(body), f"http://[{STACK6}]/bytes/1000", timeout=30)
    assert body.read_bytes() == pattern(1000)
    code, counters = stack6.stop()
    assert code == 0
    assert counters["drop.ipv6-truncated"] == sent["short"] + sent["long"], counters
    assert counters["drop.ipv6-bad-version"] == sent["version"], counters
    assert counters["drop.ipv6-header-chain-too-long"] == sent["chain-too-long"], counters
    assert counters["drop.ipv6-parameter-problem"] == sent["hop-by-hop-late"], counters
    assert counters["drop.fragment-overlap"] == sent["overlap"], counters
    assert counters["drop.icmp6-bad-checksum"] == sent["icmp6-checksum"], counters
