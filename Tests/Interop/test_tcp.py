"""TCP and HTTP against the Linux kernel through a real TAP: the kernel's
curl and sockets talk to the stack's services, and the stack's own client
(`netstack get`) fetches from the kernel's python http.server. Each test runs
in its own namespace (see conftest.py); all traffic stays inside it."""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import HOST_IP, NETSTACK, STACK_IP, Stack, run

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.py")
CAPTURES = os.path.join(HERE, "captures")
# Short TIME-WAIT (2 x MSL = 2 s) so the stack's table can be seen to empty.
MSL = 1

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


def peer(ns, *args, timeout=120):
    r = ns.exec("python3", PEER, *map(str, args), timeout=timeout)
    return json.loads(r.stdout.strip().splitlines()[-1])


def pattern(n):
    """The body of /bytes/N: byte i is i % 251."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


def kernel_tcp_states(ns):
    """State names of the kernel's TCP sockets in the namespace (`ss -tan`)."""
    out = ns.exec("ss", "-tan").stdout.splitlines()[1:]
    return [line.split()[0] for line in out if line.strip()]


LINGERING = {"FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "LAST-ACK", "SYN-SENT", "SYN-RECV", "CLOSING"}


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "index.html").write_text("<h1>netstack</h1>\n")
    (root / "random.bin").write_bytes(os.urandom(1 << 20))
    (root / "hello.txt").write_text("hello from the stack\n")
    (tmp_path / "secret.txt").write_text("outside the root\n")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    return root


@pytest.fixture
def web(ns, www, tmp_path):
    s = Stack(ns, "--serve", "echo:7,http", "--root", str(www), "--msl", str(MSL), "--stats",
              stderr_path=str(tmp_path / "stack.err"))
    yield s
    if s.returncode is None:
        s.stop()


def http_raw(ns, request: bytes, timeout=2):
    """Raw bytes to port 80; returns (response bytes, closed by the stack)."""
    out = peer(ns, "raw", STACK_IP, 80, base64.b64encode(request).decode(), timeout)
    return base64.b64decode(out["response_b64"]), out["closed"]


def responses(data: bytes):
    """Splits a byte stream of responses with Content-Length bodies: [(status line, headers, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data[:200]
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        out.append((lines[0], headers, rest[:n]))
        data = rest[n:]
    return out


# MARK: TCP through the echo service


def test_one_mebibyte_echoes_back_identical(ns, stack):
    out = peer(ns, "tcp-echo", STACK_IP, 7, 1 << 20, 42, timeout=120)
    assert out["errors"] == []
    assert out["received"] == 1 << 20
    assert out["sha256_received"] == out["sha256_sent"]
    assert out["equal"]
    print(f"\n  echo 1 MiB both ways: {out['seconds'] * 1000:.0f} ms")
    code, counters = stack.stop()
    assert code == 0
    assert counters["tcp-connections-reset"] == 0


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("no_sack", [False, True], ids=["sack", "no-sack"])
def test_no_sack_leaves_sack_permitted_off_the_syn_ack(ns, tmp_path, no_sack):
    """`--no-sack`: the stack's SYN-ACK carries no SACK-permitted option
    (RFC 2018), though the kernel's SYN offers it; data still flows."""
    capture = str(tmp_path / "wire.pcap")
    s = Stack(ns, "--serve", "echo:7", "--pcap", capture, *(["--no-sack"] if no_sack else []))
    out = peer(ns, "tcp-echo", STACK_IP, 7, 100_000, 7)
    assert out["equal"]
    s.stop()
    rows = run("tshark", "-r", capture, "-Y", "tcp.flags.syn == 1", "-T", "fields", "-e", "ip.src",
               "-e", "tcp.options.sack_perm").stdout.splitlines()
    offered = {src: bool(perm) for src, perm in (r.split("\t") for r in rows)}
    assert offered[HOST_IP]
    assert offered[STACK_IP] != no_sack


def test_two_hundred_sequential_connections_close_cleanly(ns, web):
    out = peer(ns, "tcp-echo-many", STACK_IP, 7, 200, 1000, 7, timeout=300)
    assert out["bad"] == []
    print(f"\n  200 echo connections: {out['seconds'] * 1000:.0f} ms")
    # The kernel closed first: its sockets are in TIME-WAIT, none half-closed or stuck.
    states = kernel_tcp_states(ns)
    assert not [s for s in states if s in LINGERING], states
    # The stack was the passive closer (CLOSE-WAIT -> LAST-ACK -> CLOSED): nothing waits in its table.
    deadline = time.monotonic() + 2 * MSL + 3
    while time.monotonic() < deadline:
        time.sleep(0.5)
        stats = web.latest_stats()
        if stats.get("tcp-connections-in-table") == 0 and stats.get("tcp-connections-closed", 0) >= 200:
            break
    code, counters = web.stop()
    assert code == 0
    assert counters["tcp-passive-opens"] == 200
    assert counters["tcp-connections-closed"] == 200
    assert counters["tcp-connections-reset"] == 0
    assert counters["tcp-resets-sent"] == 0
    assert counters["tcp-connections-in-table"] == 0


@needs_curl
def test_stack_closing_first_waits_in_time_wait_then_empties(ns, tmp_path):
    # Connection: close makes the server close first: the stack goes
    # FIN-WAIT-1 -> FIN-WAIT-2 -> TIME-WAIT, the kernel CLOSE-WAIT -> LAST-ACK -> CLOSED.
    msl = 2.5  # TIME-WAIT 5 s: long enough to see every connection in it, short enough to wait out
    s = Stack(ns, "--serve", "http", "--msl", str(msl), "--stats", stderr_path=str(tmp_path / "stack.err"))
    try:
        n = 20
        for i in range(n):
            r = ns.exec("curl", "-s", "-H", "Connection: close", "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://{STACK_IP}/bytes/{1000 + i}", timeout=30)
            assert r.stdout == "200"
        assert not [st for st in kernel_tcp_states(ns) if st in LINGERING]
        seen = {}
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and seen.get("tcp-in-time-wait") != n:
            time.sleep(0.2)
            seen = s.latest_stats()
        assert seen.get("tcp-in-time-wait") == n, seen
        # TIME-WAIT lasts 2 MSL; then every connection leaves the table.
        deadline = time.monotonic() + 2 * msl + 5
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if s.latest_stats().get("tcp-connections-in-table") == 0:
                break
        code, counters = s.stop()
        assert code == 0
        assert counters["tcp-connections-in-table"] == 0
        assert counters["tcp-connections-closed"] == n
        assert counters["tcp-connections-reset"] == 0
        assert counters["http-requests"] == n
    finally:
        if s.returncode is None:
            s.stop()


# MARK: HTTP server


@needs_curl
def test_curl_mebibyte_of_bytes_is_the_pattern(ns, web, tmp_path):
    out = tmp_path / "bytes.bin"
    n = 1 << 20
    start = time.monotonic()
    r = ns.exec("curl", "-s", "-o", str(out), "-w", "%{http_code} %{size_download} %{time_total}",
                f"http://{STACK_IP}/bytes/{n}", timeout=60)
    elapsed = time.monotonic() - start
    code, size, curl_time = r.stdout.split()
    assert code == "200" and int(size) == n
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(pattern(n)).hexdigest()
    print(f"\n  curl /bytes/{n}: curl time_total {float(curl_time) * 1000:.1f} ms, process {elapsed * 1000:.0f} ms")


@needs_curl
def test_large_and_odd_lengths_stream(ns, web, tmp_path):
    # 0, one byte, one period, a length that wraps the pattern block, and 64 MiB
    # (several times the send ring, so onWritable drives it).
    for n in (0, 1, 251, 64513, 64 << 20):
        out = tmp_path / f"b{n}"
        r = ns.exec("curl", "-s", "-o", str(out), "-w", "%{http_code}", f"http://{STACK_IP}/bytes/{n}", timeout=120)
        assert r.stdout == "200"
        data = out.read_bytes()
        assert len(data) == n
        assert hashlib.sha256(data).digest() == hashlib.sha256(pattern(n)).digest(), n


@needs_curl
def test_head_gives_the_length_without_a_body(ns, web):
    # (text mode: the CRLFs read as newlines)
    r = ns.exec("curl", "-s", "-I", f"http://{STACK_IP}/bytes/{1 << 40}", timeout=30)
    assert r.stdout.startswith("HTTP/1.1 200 OK\n")
    assert f"Content-Length: {1 << 40}\n" in r.stdout
    assert "Server: netstack\n" in r.stdout
    assert "Content-Type: application/octet-stream\n" in r.stdout


@needs_curl
def test_files_under_the_root(ns, web, www, tmp_path):
    out = tmp_path / "random.bin"
    r = ns.exec("curl", "-s", "-o", str(out), "-w", "%{http_code}", f"http://{STACK_IP}/random.bin", timeout=60)
    assert r.stdout == "200"
    assert out.read_bytes() == (www / "random.bin").read_bytes()
    r = ns.exec("curl", "-s", "-i", f"http://{STACK_IP}/docs/", timeout=30)
    assert r.stdout.startswith("HTTP/1.1 200 OK")
    assert "Content-Type: text/html; charset=utf-8" in r.stdout
    assert r.stdout.endswith("<h1>netstack</h1>\n")
    r = ns.exec("curl", "-s", f"http://{STACK_IP}/hello%2etxt", timeout=30)
    assert r.stdout == "hello from the stack\n"
    codes = {}
    for path in ["/docs", "/missing", "/docs/missing.html", "/../secret.txt", "/docs/../../secret.txt",
                 "/%2e%2e/secret.txt", "/escape.txt", "/docs/../hello.txt", "/a%2fb", "/bad%zz"]:
        r = ns.exec("curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                    f"http://{STACK_IP}{path}", timeout=30)
        codes[path] = r.stdout
    assert codes == {"/docs": "200", "/missing": "404", "/docs/missing.html": "404",
                     "/../secret.txt": "403", "/docs/../../secret.txt": "403", "/%2e%2e/secret.txt": "403",
                     "/escape.txt": "403", "/docs/../hello.txt": "200", "/a%2fb": "404", "/bad%zz": "400"}


@needs_curl
def test_keep_alive_reuses_one_connection(ns, web, tmp_path):
    r = ns.exec("curl", "-sv", "-o", str(tmp_path / "a"), "-o", str(tmp_path / "b"),
                f"http://{STACK_IP}/bytes/100000", f"http://{STACK_IP}/bytes/300", timeout=30)
    assert re.search(r"Re-using existing connection", r.stderr), r.stderr
    assert (tmp_path / "a").read_bytes() == pattern(100000)
    assert (tmp_path / "b").read_bytes() == pattern(300)
    code, counters = web.stop()
    assert counters["tcp-passive-opens"] == 1
    assert counters["http-requests"] == 2


def test_error_answers(ns, web):
    # 404: keep-alive survives it.
    data, closed = http_raw(ns, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
    (status, headers, body), = responses(data)
    assert status == "HTTP/1.1 404 Not Found" and body == b"404 Not Found\n" and not closed
    # 405 with Allow, for a method other than GET and HEAD.
    data, closed = http_raw(ns, b"DELETE /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    (status, headers, body), = responses(data)
    assert status == "HTTP/1.1 405 Method Not Allowed" and headers["allow"] == "GET, HEAD"
    # 400 and close: garbage, a missing Host in 1.1, whitespace before the colon, a bare CR.
    for bad in [b"hello there\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", b"GET /\r\n\r\n"]:
        data, closed = http_raw(ns, bad)
        (status, headers, body), = responses(data)
        assert status == "HTTP/1.1 400 Bad Request", bad
        assert headers["connection"] == "close" and closed, bad
    # 505 for HTTP/2.0 in a request line.
    data, closed = http_raw(ns, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 505 ") and closed
    # 431 beyond 16 KiB of head.
    data, closed = http_raw(ns, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 17000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 431 ") and closed
    code, counters = web.stop()
    assert counters["http-responses-4xx"] == 8
    assert counters["http-responses-5xx"] == 1
    assert counters["tcp-connections-reset"] == 0


def test_pipelined_requests_are_answered_in_order(ns, web):
    reqs = (b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /bytes/20 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /bytes/70000 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
            b"\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"GET /bytes/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    data, closed = http_raw(ns, reqs)
    # HEAD's answer has a Content-Length but no body: split it by hand.
    first, rest = data.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200 OK") and rest[:10] == pattern(10)
    head, rest = rest[10:].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 20" in head
    rs = responses(rest)
    assert [r[0] for r in rs] == ["HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    assert rs[1][2] == pattern(70000)
    assert rs[2][2] == b"hello from the stack\n" and rs[2][1]["connection"] == "close"
    # Nothing after the request that asked to close, and the stack closed.
    assert closed


def test_http10_closes_unless_keep_alive(ns, web):
    data, closed = http_raw(ns, b"GET /bytes/5 HTTP/1.0\r\n\r\n")
    assert data.endswith(b"\r\n\r\n" + pattern(5)) and closed
    data, closed = http_raw(ns, b"GET /bytes/5 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=1)
    assert b"Connection: keep-alive\r\n" in data and not closed


# MARK: the stack as a client: netstack get


def get(ns, url, *extra, timeout=60):
    return ns.exec(NETSTACK, "get", url, "--tap", "tap1", "--host", f"{HOST_IP}/24", "--address", STACK_IP,
                   *extra, timeout=timeout, check=False)


@pytest.fixture
def http_server(ns, tmp_path):
    """python3 -m http.server on 10.0.0.1:8000 in the namespace. The address
    appears only when `netstack get` creates its TAP, hence ip_nonlocal_bind."""
    docroot = tmp_path / "served"
    docroot.mkdir()
    ns.exec("sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1")
    p = ns.popen("python3", "-m", "http.server", "8000", "--bind", HOST_IP, "--directory", str(docroot),
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if ":8000" in ns.exec("ss", "-tln").stdout:
            break
        time.sleep(0.05)
    yield docroot
    p.terminate()
    p.wait(10)


def test_get_fetches_a_file_from_the_kernel(ns, http_server, tmp_path):
    data = os.urandom(1 << 20)
    (http_server / "file").write_bytes(data)
    out = tmp_path / "out"
    start = time.monotonic()
    r = get(ns, f"http://{HOST_IP}:8000/file", "-o", str(out))
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data
    print(f"\n  netstack get 1 MiB from python http.server: {elapsed * 1000:.0f} ms (including TAP setup)")
    # The FIN handshake completed before exit: nothing half-closed on the kernel's side.
    states = kernel_tcp_states(ns)
    assert not [s for s in states if s in LINGERING], states


def test_get_reports_http_errors_with_status_1(ns, http_server, tmp_path):
    r = get(ns, f"http://{HOST_IP}:8000/missing", "-o", str(tmp_path / "out"))
    assert r.returncode == 1
    assert "404" in r.stderr


def test_get_decodes_chunked_bodies(ns, tmp_path):
    ready = tmp_path / "ready"
    ns.exec("sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1")
    server = ns.popen("python3", PEER, "chunked-server", HOST_IP, "8080", "300000", "5", str(ready),
                      stdout=subprocess.PIPE, text=True)
    for _ in range(100):
        if ready.exists():
            break
        time.sleep(0.05)
    out = tmp_path / "out"
    r = get(ns, f"http://{HOST_IP}:8080/chunks?x=1", "-o", str(out))
    served = json.loads(server.communicate(timeout=30)[0].strip().splitlines()[-1])
    assert r.returncode == 0, r.stderr
    assert served["request_line"] == "GET /chunks?x=1 HTTP/1.1"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == served["sha256"]


def test_get_against_the_stack_is_refused_cleanly(ns, tmp_path):
    # Nothing listens on the kernel's port 9: the kernel resets, get fails with 1.
    r = get(ns, f"http://{HOST_IP}:9/", "--timeout", "10")
    assert r.returncode == 1
    assert "refused" in r.stderr


def test_get_times_out(ns, tmp_path):
    # 10.0.0.3 does not exist: ARP never resolves, the SYN never leaves.
    start = time.monotonic()
    r = get(ns, "http://10.0.0.3/", "--timeout", "1.5")
    assert r.returncode == 1
    assert "timed out" in r.stderr
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("args, message", [
    (["ftp://10.0.0.1/"], "URL"),
    (["http://example.com/"], "URL"),
    (["http://10.0.0.1:0/"], "URL"),
    (["http://10.0.0.1/", "--timeout", "0"], "--timeout"),
    (["http://10.0.0.2/"], "URL"),
])
def test_get_bad_flags_exit_2(args, message):
    if not os.access(NETSTACK, os.X_OK):
        pytest.skip("stack not built")
    r = subprocess.run([NETSTACK, "get", *args, "--tap", "t9", "--host", "10.0.0.1/24", "--address", "10.0.0.2"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert message in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--serve", "http", "--root", "/nonexistent-dir"], "--root"),
    (["--serve", "http:0"], "--serve"),
    (["--msl", "-1"], "--msl"),
])
def test_up_http_bad_flags_exit_2(args, message):
    if not os.access(NETSTACK, os.X_OK):
        pytest.skip("stack not built")
    r = subprocess.run([NETSTACK, "up", "--tap", "t9", "--host", "10.0.0.1/24", "--address", "10.0.0.2", *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert message in r.stderr


# MARK: the committed capture


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_committed_capture_is_a_clean_exchange():
    """captures/handshake.pcap (made by captures/capture.sh): curl fetching
    /bytes/100 from the stack, seen on the kernel's tap0."""
    rows = run("tshark", "-r", os.path.join(CAPTURES, "handshake.pcap"), "-Y", "tcp", "-T", "fields",
               "-e", "ip.src", "-e", "tcp.flags.str", "-e", "tcp.len").stdout.splitlines()
    flags = [(r.split("\t")[0], r.split("\t")[1].replace("\u00b7", "")) for r in rows]
    assert flags[0] == (HOST_IP, "S")
    assert flags[1] == (STACK_IP, "AS")
    assert flags[2] == (HOST_IP, "A")
    fins = [src for src, f in flags if "F" in f]
    assert sorted(fins) == sorted([HOST_IP, STACK_IP])
    assert not [f for _, f in flags if "R" in f]
    assert sum(int(r.split("\t")[2]) for r in rows if r.split("\t")[0] == STACK_IP) > 100


# A client that reconnects from the same port, as a busy client reuses its
# ephemeral ports, to a server that closed first (HTTP/1.0): each connection
# before leaves the stack's side in TIME-WAIT.
SAME_PORT_CLIENT = r"""
import socket, sys, time
took = []
for i in range(5):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("0.0.0.0", 45123))
    c.settimeout(10)
    start = time.monotonic()
    c.connect((sys.argv[1], 80))
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while c.recv(65536):
        pass
    took.append(time.monotonic() - start)
    c.close()
    time.sleep(0.1)  # the kernel's side through LAST-ACK; the stack's stays in TIME-WAIT (2 MSL: 2 s)
print(max(took))
"""


def test_a_new_syn_reopens_the_stacks_time_wait(ns, web):
    """RFC 1122 4.2.2.13 and RFC 6191: five connections in a row from one
    port to the web server, which closes first. Each new SYN reopens the
    stack's TIME-WAIT at once (before, the stack answered it with a
    challenge ACK and the client waited out the 2 MSL)."""
    r = ns.exec("python3", "-c", SAME_PORT_CLIENT, STACK_IP, timeout=60)
    slowest = float(r.stdout.strip())
    time.sleep(1.2)
    stats = web.latest_stats()
    print(f"\n  slowest of five connections from one port: {slowest * 1000:.1f} ms; {stats.get('tcp-time-wait-reopened')} reopened")
    assert stats.get("tcp-time-wait-reopened") == 4, stats
    assert stats.get("tcp-challenge-acks", 0) == 0, stats
    assert slowest < 0.9  # no SYN retransmission (its first timeout is 1 s)
