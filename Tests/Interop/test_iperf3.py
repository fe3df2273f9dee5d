"""The stack's iperf3 server (`--serve iperf3`) against the real iperf3
client: forward, reverse (-R) and parallel (-P) TCP tests, one test at a time
(a second client is turned away), and recovery after a client dies. Each test
runs in its own namespace (see conftest.py); all traffic stays inside it."""
import json
import shutil
import signal
import subprocess
import time

import pytest

from conftest import STACK_IP, Stack

pytestmark = pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 not installed")


@pytest.fixture
def server(ns, tmp_path):
    s = Stack(ns, "--serve", "iperf3", "--msl", "1", "--stats", stderr_path=str(tmp_path / "stack.err"))
    yield s
    if s.returncode is None:
        s.stop()


def iperf3(ns, *args, timeout=60):
    """Runs `iperf3 -c STACK_IP -J ARGS`; returns (exit code, parsed JSON)."""
    r = ns.exec("iperf3", "-c", STACK_IP, "-J", *map(str, args), timeout=timeout, check=False)
    return r.returncode, json.loads(r.stdout)


def stop_when(server, **expected):
    """Waits (bounded) until the stack's per-second stats show the expected
    iperf3 counters (the client may exit before its IPERF_DONE is processed),
    then stops the stack and returns its final counters."""
    want = {f"iperf3-{k}": v for k, v in expected.items()}
    for _ in range(50):
        stats = server.latest_stats()
        if all(stats.get(k) == v for k, v in want.items()):
            break
        time.sleep(0.1)
    _, counters = server.stop()
    for k, v in want.items():
        assert counters[k] == v, (k, counters)
    return counters


def check_completed(code, out):
    assert code == 0, out.get("error")
    assert "error" not in out, out["error"]
    end = out["end"]
    assert end["sum_sent"]["bytes"] > 0
    assert end["sum_received"]["bytes"] > 0
    return end


def test_forward(ns, server):
    code, out = iperf3(ns, "-t", 3)
    end = check_completed(code, out)
    sent, received = end["sum_sent"]["bytes"], end["sum_received"]["bytes"]
    # The receiver's count is ours; the client's last blocks may still be in flight at TEST_END.
    assert 0.8 * sent <= received <= sent
    assert 2.5 <= end["sum_received"]["seconds"] <= 4
    assert len(end["streams"]) == 1
    counters = stop_when(server, tests=1, completed=1)
    # Bytes still arriving after TEST_END are counted by the stack but not reported.
    assert received <= counters["iperf3-bytes-received"] <= sent
    assert counters["tcp-connections-reset"] == 0


def test_reverse(ns, server):
    code, out = iperf3(ns, "-t", 3, "-R")
    end = check_completed(code, out)
    assert out["start"]["test_start"]["reverse"] == 1
    sent, received = end["sum_sent"]["bytes"], end["sum_received"]["bytes"]
    assert received <= sent
    assert received >= 0.8 * sent
    # The sender's side (ours) reports retransmissions.
    assert end["sum_sent"]["retransmits"] >= 0
    counters = stop_when(server, completed=1)
    assert counters["iperf3-bytes-sent"] >= sent


@pytest.mark.parametrize("cc", [None, "newreno", "cubic"], ids=["default", "newreno", "cubic"])
def test_reports_the_congestion_control_it_ran(ns, tmp_path, cc):
    """`--cc` (default cubic) is what the server's results name; with -R the
    stack sends, and iperf3 shows it as the sender's congestion control."""
    s = Stack(ns, "--serve", "iperf3", "--msl", "1", *(["--cc", cc] if cc else []),
              stderr_path=str(tmp_path / "stack.err"))
    try:
        code, out = iperf3(ns, "-t", 1, "-R")
        end = check_completed(code, out)
        assert end["sender_tcp_congestion"] == (cc or "cubic")
    finally:
        s.stop()


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_parallel(ns, server, reverse):
    args = ["-t", 2, "-P", 4] + (["-R"] if reverse else [])
    code, out = iperf3(ns, *args)
    end = check_completed(code, out)
    assert len(out["start"]["connected"]) == 4
    assert len(end["streams"]) == 4
    for s in end["streams"]:
        assert s["sender"]["bytes"] > 0
        assert s["receiver"]["bytes"] > 0
    counters = stop_when(server, completed=1)
    assert counters["tcp-passive-opens"] == 5


def test_ready_for_next_run(ns, server):
    for args in (["-t", 1], ["-t", 1, "-R"], ["-t", 1, "-P", 3], ["-t", 1]):
        code, out = iperf3(ns, *args)
        check_completed(code, out)
    # Every connection closes (TIME-WAIT is 2 s with --msl 1).
    time.sleep(3)
    counters = stop_when(server, tests=4, completed=4, aborted=0)
    assert counters["tcp-connections-in-table"] == 0


def test_busy_server_denies_second_client(ns, server):
    first = ns.popen("iperf3", "-c", STACK_IP, "-J", "-t", "3", stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        # iperf3 3.12 exits 0 on errors with -J; the error is in the JSON.
        _, out = iperf3(ns, "-t", 1)
        assert "busy" in out.get("error", ""), out
        stdout, _ = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    check_completed(first.returncode, json.loads(stdout))
    code, out = iperf3(ns, "-t", 1)
    check_completed(code, out)
    stop_when(server, denied=1, completed=2)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_client_killed_mid_test(ns, server, reverse):
    args = ["iperf3", "-c", STACK_IP, "-t", 10, "-P", 2] + (["-R"] if reverse else [])
    client = ns.popen(*map(str, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    time.sleep(0.5)
    code, out = iperf3(ns, "-t", 1)
    check_completed(code, out)
    stop_when(server, aborted=1, completed=1)


def test_client_interrupted_sends_client_terminate(ns, server):
    client = ns.popen("iperf3", "-c", STACK_IP, "-t", "10", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        client.send_signal(signal.SIGINT)
        client.wait(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    code, out = iperf3(ns, "-t", 1, "-R")
    check_completed(code, out)
    stop_when(server, aborted=1, completed=1)


def test_udp_is_refused(ns, server):
    _, out = iperf3(ns, "-u", "-t", 1, timeout=30)
    assert "not implemented" in out.get("error", ""), out
    code, out = iperf3(ns, "-t", 1)
    check_completed(code, out)
