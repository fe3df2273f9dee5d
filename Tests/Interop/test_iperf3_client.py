"""The stack's iperf3 client (`netstack iperf -c`) against the real
`iperf3 -s`: forward, reverse (-R) and parallel (-P) TCP tests, text and -J
output, and the server's own JSON view of the same test. Each test runs in its
own namespace (see conftest.py); the stack creates tap1 there, the kernel's
side is 10.0.0.1, and all traffic stays inside."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import HOST_IP, NETSTACK, STACK_IP

pytestmark = pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 not installed")


class Server:
    """`iperf3 -s -1 -J`: serves one test, then prints its own JSON and exits."""

    def __init__(self, ns):
        self.proc = ns.popen("iperf3", "-s", "-1", "-J", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(100):
            if ":5201" in ns.exec("ss", "-tln").stdout:
                return
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("iperf3 -s did not start listening")

    def result(self, timeout=20):
        out, _ = self.proc.communicate(timeout=timeout)
        return json.loads(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(ns):
    s = Server(ns)
    yield s
    s.stop()


def iperf(ns, *args, timeout=60):
    return ns.exec(NETSTACK, "iperf", *map(str, args), "--tap", "tap1", "--host", f"{HOST_IP}/24",
                   "--address", STACK_IP, timeout=timeout, check=False)


def iperf_json(ns, *args):
    r = iperf(ns, "-c", HOST_IP, "-J", *args)
    out = json.loads(r.stdout)
    assert r.returncode == 0, (out.get("error"), r.stderr)
    assert "error" not in out, out["error"]
    return out


def gbits(x):
    return x["bits_per_second"] / 1e9


def test_forward_text(ns, server):
    r = iperf(ns, "-c", HOST_IP, "-t", 2)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"Connecting to host {HOST_IP}, port 5201"
    assert re.match(rf"\[  1\] local {STACK_IP} port \d+ connected to {HOST_IP} port 5201$", lines[1])
    assert lines[2] == "[ ID] Interval           Transfer     Bitrate         Retr  Cwnd"
    intervals = [l for l in lines if re.match(r"\[  1\]\s+\d+\.\d\d-\d+\.\d\d\s+sec .* \S+ [KMG]?Bytes\s*$", l)]
    assert len(intervals) == 2, lines
    sender = [l for l in lines if l.endswith(" sender")]
    receiver = [l for l in lines if l.endswith(" receiver")]
    assert len(sender) == 1 and len(receiver) == 1, lines
    assert re.search(r"bits/sec", receiver[0])
    assert lines[-1] == "iperf Done."
    theirs = server.result()
    assert "error" not in theirs, theirs["error"]
    assert theirs["end"]["sum_received"]["bytes"] > 0


def test_forward_json_agrees_with_the_server(ns, server):
    out = iperf_json(ns, "-t", 2)
    theirs = server.result()
    assert "error" not in theirs, theirs["error"]
    end = out["end"]
    sent, received = end["sum_sent"]["bytes"], end["sum_received"]["bytes"]
    assert received > 0
    # What the server counted is what it told us; what was still in our send
    # ring when TEST_END left is sent but never received.
    assert received == theirs["end"]["sum_received"]["bytes"]
    assert 0.9 * sent <= received <= sent
    assert 1.9 <= end["sum_sent"]["seconds"] <= 2.5
    assert 1.9 <= end["sum_received"]["seconds"] <= 3
    assert len(out["intervals"]) == 2
    assert sum(i["sum"]["bytes"] for i in out["intervals"]) == sent
    assert out["start"]["test_start"]["reverse"] == 0
    assert out["start"]["cookie"] == theirs["start"]["cookie"]
    assert end["sum_sent"]["retransmits"] >= 0
    print(f"\n  netstack -> iperf3 -s: {gbits(end['sum_sent']):.2f} Gbit/s sent, "
          f"{gbits(end['sum_received']):.2f} Gbit/s received")


def test_forward_under_one_percent_loss_with_newreno(ns, server):
    """The fault and TCP options of `netstack up` work here too: 1% loss both
    ways through the stack's FaultInjector, NewReno instead of CUBIC. Every
    byte the server counted is one we sent; our retransmissions show in the
    JSON, the injector's counters on stderr."""
    r = iperf(ns, "-c", HOST_IP, "-J", "-t", 2, "--loss", "0.01", "--seed", 1, "--cc", "newreno")
    out = json.loads(r.stdout)
    assert r.returncode == 0, (out.get("error"), r.stderr)
    theirs = server.result()
    assert "error" not in theirs, theirs["error"]
    end = out["end"]
    received = end["sum_received"]["bytes"]
    assert received > 0 and received == theirs["end"]["sum_received"]["bytes"]
    assert end["sum_sent"]["retransmits"] > 0
    assert end["sender_tcp_congestion"] == "newreno"
    faults = dict(item.split("=") for item in r.stderr.split("netstack iperf: ", 1)[1].split())
    assert int(faults["fault.tx.dropped"]) > 0 and int(faults["fault.rx.dropped"]) > 0, r.stderr
    assert end["sum_sent"]["retransmits"] >= int(faults["fault.tx.dropped"]) // 2
    print(f"\n  1% loss, NewReno: {gbits(end['sum_received']):.2f} Gbit/s, "
          f"{end['sum_sent']['retransmits']} retransmitted, {faults['fault.tx.dropped']} dropped")


def test_reverse_json_agrees_with_the_server(ns, server):
    out = iperf_json(ns, "-t", 2, "-R")
    theirs = server.result()
    assert "error" not in theirs, theirs["error"]
    end = out["end"]
    sent, received = end["sum_sent"]["bytes"], end["sum_received"]["bytes"]
    assert out["start"]["test_start"]["reverse"] == 1
    assert received > 0
    # The sender's count is the server's; ours stops at TEST_END, with its
    # last blocks still in flight.
    assert sent == theirs["end"]["sum_sent"]["bytes"]
    assert 0.9 * sent <= received <= sent
    assert sum(i["sum"]["bytes"] for i in out["intervals"]) == received
    assert end["sum_sent"]["retransmits"] >= 0
    print(f"\n  iperf3 -s -> netstack (-R): {gbits(end['sum_received']):.2f} Gbit/s received")


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_parallel_streams(ns, server, reverse):
    out = iperf_json(ns, "-t", 2, "-P", 2, *(["-R"] if reverse else []))
    theirs = server.result()
    assert "error" not in theirs, theirs["error"]
    assert len(out["start"]["connected"]) == 2
    assert len(theirs["end"]["streams"]) == 2
    streams = out["end"]["streams"]
    assert len(streams) == 2
    for s in streams:
        assert s["sender"]["bytes"] > 0
        assert s["receiver"]["bytes"] > 0
        assert s["receiver"]["bytes"] <= s["sender"]["bytes"]
    key = "sum_sent" if reverse else "sum_received"
    assert out["end"][key]["bytes"] == theirs["end"][key]["bytes"]
    for i in out["intervals"]:
        assert len(i["streams"]) == 2
        assert i["sum"]["bytes"] == sum(s["bytes"] for s in i["streams"])


def test_text_with_parallel_streams_sums(ns, server):
    r = iperf(ns, "-c", HOST_IP, "-t", 1, "-P", 3, "-R", "-l", "64K", "-w", "1M")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == f"Reverse mode, remote host {HOST_IP} is sending"
    assert len([l for l in lines if " connected to " in l]) == 3
    assert [l for l in lines if l.startswith("[SUM]") and l.endswith(" sender")]
    assert [l for l in lines if l.startswith("[SUM]") and l.endswith(" receiver")]
    assert server.result()["start"]["test_start"]["blksize"] == 65536


def test_nobody_listening(ns):
    r = iperf(ns, "-c", HOST_IP, "-t", 1, "-J", timeout=30)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert "connection refused" in out["error"]
    r = iperf(ns, "-c", HOST_IP, "-t", 1, timeout=30)
    assert r.returncode == 1
    assert "unable to connect to server" in r.stderr


def test_a_busy_server_turns_us_away(ns, server):
    # The real client holds the server (over the namespace's loopback); ours is
    # refused with ACCESS_DENIED.
    first = None
    r = None
    try:
        first = ns.popen("iperf3", "-c", "127.0.0.1", "-t", "3", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        r = iperf(ns, "-c", HOST_IP, "-t", 1, timeout=30)
    finally:
        if first is not None:
            first.wait(timeout=30)
    assert r.returncode == 1
    assert "busy" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["-c", "example.com"], "-c"),
    (["-c", HOST_IP, "-t", "0"], "-t"),
    (["-c", HOST_IP, "-P", "0"], "-P"),
    (["-c", HOST_IP, "-l", "2M"], "-l"),
    (["-c", HOST_IP, "-p", "70000"], "-p"),
    (["-c", HOST_IP, "-w", "1K"], "-w"),
    (["-c", STACK_IP], "-c"),
])
def test_bad_flags_exit_2(args, message):
    if not os.access(NETSTACK, os.X_OK):
        pytest.skip("stack not built")
    r = subprocess.run([NETSTACK, "iperf", *args, "--tap", "t9", "--host", f"{HOST_IP}/24", "--address", STACK_IP],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert message in r.stderr
