"""Issue 2's outcomes against the Linux kernel through a real TAP."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import NETSTACK, STACK_IP, STACK_MAC, Stack, run

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer.py")


def peer(ns, *args, timeout=120):
    r = ns.exec("python3", PEER, *map(str, args), timeout=timeout)
    return json.loads(r.stdout.strip().splitlines()[-1])


def received(ping_output):
    m = re.search(r"(\d+) received", ping_output)
    return int(m.group(1)) if m else 0


def test_ready_line_names_tap_ip_and_mac(stack):
    assert stack.ready == f"ready tap0 {STACK_IP} {STACK_MAC}"


def test_ping_twenty_of_twenty(ns, stack):
    r = ns.exec("ping", "-c", "20", "-i", "0.05", "-W", "2", STACK_IP, check=False)
    assert received(r.stdout) == 20, r.stdout
    code, counters = stack.stop()
    assert code == 0
    assert counters["icmp-echo-replies-out"] >= 20


def test_fragmented_ping(ns, stack):
    r = ns.exec("ping", "-c", "5", "-i", "0.1", "-W", "2", "-s", "4000", STACK_IP, check=False)
    assert received(r.stdout) == 5, r.stdout
    code, counters = stack.stop()
    assert counters["datagrams-reassembled"] >= 5
    assert counters["fragments-out"] >= 15  # each 4028-byte reply leaves as 3 fragments


def test_udp_echo_every_size_from_1_to_3000(ns, stack):
    out = peer(ns, "udp-echo", STACK_IP, 7, "1-3000", timeout=300)
    assert out["sent"] == 3000
    assert out["bad"] == []


def test_closed_udp_port_is_refused(ns, stack):
    assert peer(ns, "closed-port", STACK_IP, 9)["result"] == "refused"
    _, counters = stack.stop()
    assert counters["drop.udp-no-socket"] >= 1
    assert counters["icmp-errors-out"] >= 1


def test_malformed_frames_are_counted_and_the_stack_survives(ns, stack):
    sent = peer(ns, "malformed", "tap0", STACK_MAC, 500, 7)["sent"]
    assert sum(v for k, v in sent.items() if not k.endswith("refused-by-kernel")) >= 1900, sent
    r = ns.exec("ping", "-c", "3", "-i", "0.1", "-W", "2", STACK_IP, check=False)
    assert received(r.stdout) == 3, r.stdout
    code, counters = stack.stop()
    assert code == 0
    assert counters["drop.arp-truncated"] == sent["short-arp"]
    assert counters["drop.ipv4-truncated"] >= sent["ipv4-long"]
    assert counters["drop.ipv4-bad-length"] >= sent["ipv4-ihl"]
    assert counters["frames-in"] >= 2000
    assert counters["drops"] >= 2000


def test_stats_flag_prints_counters_while_running(ns):
    s = Stack(ns, "--stats")
    ns.exec("ping", "-c", "2", "-i", "0.2", "-W", "2", STACK_IP, check=False)
    import time
    time.sleep(1.2)
    code, _ = s.stop()
    assert code == 0
    assert re.search(r"^stats .*frames-in=\d+", s.stderr, re.M), s.stderr


def test_tap_is_removed_on_exit(ns, stack):
    assert "tap0" in ns.exec("ip", "link", "show").stdout
    stack.stop()
    assert "tap0" not in ns.exec("ip", "link", "show").stdout


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_pcap_capture_is_readable_by_tshark(ns, tmp_path):
    path = tmp_path / "capture.pcap"
    s = Stack(ns, "--pcap", str(path))
    ns.exec("ping", "-c", "2", "-i", "0.2", "-W", "2", STACK_IP, check=False)
    s.stop()
    out = run("tshark", "-r", str(path), "-Y", "icmp.type == 0", "-T", "fields", "-e", "ip.src").stdout.split()
    assert out.count(STACK_IP) >= 2


@pytest.mark.parametrize("args, message", [
    (["--tap", "t0", "--host", "10.0.0.1", "--address", "10.0.0.2"], "--host"),
    (["--tap", "t0", "--host", "10.0.0.1/24", "--address", "10.0.1.2"], "--address"),
    (["--tap", "t0", "--host", "10.0.0.1/24", "--address", "10.0.0.2", "--mac", "zz"], "--mac"),
    (["--tap", "t0", "--host", "10.0.0.1/24", "--address", "10.0.0.2", "--serve", "gopher:70"], "--serve"),
    (["--host", "10.0.0.1/24", "--address", "10.0.0.2"], "--tap"),
])
def test_bad_flags_exit_2_with_a_clear_message(args, message):
    if not os.access(NETSTACK, os.X_OK):
        pytest.skip("stack not built")
    r = subprocess.run([NETSTACK, "up", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert message in r.stderr
