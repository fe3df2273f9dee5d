"""Graceful shutdown against the kernel: on SIGTERM or SIGINT `netstack up`
stops accepting, closes every connection with a FIN after its queued data,
waits up to --shutdown-grace for them to finish, resets the rest and exits 0
with its counters; a second signal resets at once. The peer must never be
left waiting for its own timeout. Each test runs in its own namespace."""
import json
import shutil
import signal
import subprocess
import time

import pytest

from conftest import STACK_IP, Stack

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")

# A client that asks for a body far larger than it will read, reads nothing
# (a 4 KiB receive buffer: the stack's window closes at once), and reports how
# the connection ended once the stack is gone: "fin" (end of stream) or "reset".
STALLED_CLIENT = r"""
import json, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(20)
s.connect((sys.argv[1], 80))
s.sendall(b"GET /bytes/1000000000 HTTP/1.1\r\nHost: stack\r\n\r\n")
print("connected", flush=True)
sys.stdin.readline()  # the test says when to read
got, end = 0, "timeout"
start = time.monotonic()
try:
    while True:
        b = s.recv(1 << 20)
        if not b:
            end = "fin"
            break
        got += len(b)
except ConnectionResetError:
    end = "reset"
except socket.timeout:
    pass
print(json.dumps({"end": end, "bytes": got, "seconds": time.monotonic() - start}), flush=True)
"""


def start_stalled_client(ns):
    client = ns.popen("python3", "-c", STALLED_CLIENT, STACK_IP, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    assert client.stdout.readline().strip() == "connected"
    # The stack's send ring and the client's receive buffer fill: the window is 0.
    time.sleep(0.5)
    return client


def finish_stalled_client(client):
    out, err = client.communicate("\n", timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def wait_exit(stack, timeout):
    """Seconds until the stack's process exits (None if it does not in time)."""
    start = time.monotonic()
    try:
        stack.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - start


@needs_curl
def test_sigterm_mid_download_ends_it_with_a_fin_within_a_second(ns):
    s = Stack(ns, "--serve", "http:80")
    n = 100_000_000_000
    curl = ns.popen("curl", "-s", "-o", "/dev/null", "-w", "%{exitcode} %{size_download}",
                    f"http://{STACK_IP}/bytes/{n}", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.7)
        assert curl.poll() is None, "the download should still be running"
        signalled = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        out, _ = curl.communicate(timeout=10)
        took = time.monotonic() - signalled
    finally:
        if curl.poll() is None:
            curl.kill()
    code, size = out.split()
    # 18, "partial file": the connection ended in order (a FIN) before the
    # Content-Length was reached; a RST would be 56.
    assert code == "18", out
    assert 0 < int(size) < n
    assert took < 1.0, f"curl ended {took:.2f} s after SIGTERM"
    assert wait_exit(s, 10) is not None
    code, counters = s.stop()
    assert code == 0
    assert counters["http-connections"] == 1
    assert counters["tcp-resets-sent"] == 0
    print(f"\n  SIGTERM after {int(size) / 1e6:.0f} MB: curl ended {took * 1000:.0f} ms later")


def test_a_second_signal_resets_at_once(ns, tmp_path):
    # A long grace period: only the second signal can end the wait.
    s = Stack(ns, "--serve", "http:80", "--shutdown-grace", "60", stderr_path=str(tmp_path / "stack.err"))
    client = start_stalled_client(ns)
    s.proc.send_signal(signal.SIGTERM)
    # The FIN waits behind data the client does not read: the stack waits.
    assert wait_exit(s, 0.6) is None
    s.proc.send_signal(signal.SIGTERM)
    took = wait_exit(s, 10)
    assert took is not None and took < 0.5, took
    code, counters = s.stop()
    assert code == 0
    assert counters["tcp-resets-sent"] >= 1
    assert counters["tcp-connections-in-table"] == 0
    result = finish_stalled_client(client)
    assert result["end"] == "reset", result
    assert "1 reset (a second signal)" in s.stderr


def test_the_grace_period_ends_with_a_reset(ns, tmp_path):
    s = Stack(ns, "--serve", "http:80", "--shutdown-grace", "0.5", stderr_path=str(tmp_path / "stack.err"))
    client = start_stalled_client(ns)
    start = time.monotonic()
    s.proc.send_signal(signal.SIGINT)
    took = wait_exit(s, 10)
    assert took is not None and 0.45 < time.monotonic() - start < 1.0, took
    code, counters = s.stop()
    assert code == 0
    assert counters["tcp-resets-sent"] >= 1
    assert finish_stalled_client(client)["end"] == "reset"
    assert "(the grace period ended)" in s.stderr


def test_an_idle_stack_exits_at_once(ns):
    s = Stack(ns, "--serve", "echo:7,http:80")
    start = time.monotonic()
    code, counters = s.stop()
    assert code == 0
    assert time.monotonic() - start < 0.5
    assert "tcp-connections-in-table" in counters


def test_connections_close_with_a_fin_and_new_ones_are_refused(ns, tmp_path):
    # An echo connection open and idle: SIGTERM closes it with a FIN, the
    # client closes too, and the stack exits without resetting anything.
    s = Stack(ns, "--serve", "echo:7", "--shutdown-grace", "10", stderr_path=str(tmp_path / "stack.err"))
    script = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7), timeout=10)
s.sendall(b"ping"); assert s.recv(4) == b"ping"
print("ready", flush=True)
assert s.recv(10) == b""  # the stack's FIN
late = socket.socket(); late.settimeout(5)
try:
    late.connect((sys.argv[1], 7)); print("accepted")
except ConnectionRefusedError:
    print("refused")
s.close()
"""
    client = ns.popen("python3", "-c", script, STACK_IP, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert client.stdout.readline().strip() == "ready"
    start = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    out, err = client.communicate(timeout=10)
    assert client.returncode == 0, err
    assert out.strip() == "refused"
    took = wait_exit(s, 10)
    assert took is not None and time.monotonic() - start < 1.0
    code, counters = s.stop()
    assert code == 0
    # The late SYN drew the only RST; the echo connection closed in order,
    # the stack first, so it ended in TIME-WAIT.
    assert counters["tcp-resets-sent"] == 1
    assert counters["tcp-in-time-wait"] == 1
    assert counters["tcp-connections-reset"] == 0
