"""`netstack up`'s arguments: what it refuses, with exit status 2 and a
message naming the option and the reason, before it touches anything; and
the TAP names it takes. The namespaced tests make their own veth and
persistent TAP inside the test's namespace."""
import os
import select
import subprocess

import pytest

from conftest import NETSTACK

BASE = ["--host", "10.0.0.1/24", "--address", "10.0.0.2"]


def up(*args, ns=None):
    cmd = [NETSTACK, "up", *args]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns.name, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args, message", [
    (["--loss", "-0.1"], "--loss -0.1: expected a probability from 0 to 1"),
    (["--loss", "1.5"], "--loss 1.5: expected a probability from 0 to 1"),
    (["--tx-corrupt", "-1"], "--tx-corrupt -1.0: expected a probability from 0 to 1"),
    (["--reorder-depth", "-3"], "--reorder-depth -3: expected 1 to 1000 frames"),
    (["--shutdown-grace", "-1"], "--shutdown-grace -1.0: expected seconds from 0 to 3600"),
    (["--serve", "http:80,echo:80"], "--serve: http:80 and echo:80 both want port 80"),
    (["--serve", ""], "--serve: no service named"),
    (["--serve", "echo,,http"], "--serve: empty item in 'echo,,http'"),
    (["--memory-limit", "64X"], "--memory-limit '64X': expected a size of at least 1M"),
    (["--memory-limit", "512K"], "--memory-limit '512K': expected a size of at least 1M"),
    (["--memory-limit", "-1M"], "--memory-limit '-1M': expected a size of at least 1M"),
    (["--api-rings", "3M"], "--api-rings '3M': expected a power of two from 128K to 64M"),
    (["--api-rings", "64K"], "--api-rings '64K': expected a power of two from 128K to 64M"),
    (["--api-rings", "128M"], "--api-rings '128M': expected a power of two from 128K to 64M"),
])
def test_bad_values_exit_2_with_the_reason(args, message):
    if not os.access(NETSTACK, os.X_OK):
        pytest.skip("stack not built")
    r = up("--tap", "t0", *BASE, *args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr


@pytest.mark.parametrize("name, message", [
    ("a b", "interface names cannot contain whitespace"),
    ("abcdefghijklmnop", "at most 15 bytes, this one has 16"),
    ("a/b", "cannot contain '/'"),
    ("a:b", "cannot contain ':'"),
    ("..", "'.' and '..' are not interface names"),
    ("ns%s", "'%' may appear once, as %d"),
])
def test_names_linux_refuses_exit_2(name, message):
    if not os.access(NETSTACK, os.X_OK):
        pytest.skip("stack not built")
    r = up("--tap", name, *BASE)
    assert r.returncode == 2, r.stderr
    assert f"--tap '{name}': " in r.stderr and message in r.stderr


def test_a_name_held_by_a_veth_exits_2(ns):
    ns.exec("ip", "link", "add", "vx0", "type", "veth", "peer", "name", "vx1")
    r = up("--tap", "vx0", *BASE, ns=ns)
    assert r.returncode == 2, r.stderr
    assert "--tap vx0: an interface named vx0 already exists (driver veth)" in r.stderr
    assert "vx0" in ns.exec("ip", "link", "show", "vx0").stdout


def test_a_persistent_tap_is_refused_and_left_as_it_was(ns):
    ns.exec("ip", "tuntap", "add", "pt0", "mode", "tap")
    before = ns.exec("ip", "addr", "show", "pt0").stdout
    r = up("--tap", "pt0", *BASE, ns=ns)
    assert r.returncode == 2, r.stderr
    assert "a TUN/TAP device named pt0 already exists" in r.stderr
    assert "ip tuntap del pt0 mode tap" in r.stderr
    after = ns.exec("ip", "addr", "show", "pt0").stdout
    assert after == before
    assert "10.0.0.1" not in after and "state DOWN" in after


def test_a_pattern_is_numbered_and_ready_names_the_tap(ns):
    proc = ns.popen(NETSTACK, "up", "--tap", "ns%d", *BASE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
    try:
        r, _, _ = select.select([proc.stdout], [], [], 20)
        ready = proc.stdout.readline().strip() if r else ""
        assert ready.startswith("ready ns0 10.0.0.2 "), ready
        assert "10.0.0.1/24" in ns.exec("ip", "addr", "show", "ns0").stdout
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "ns0" not in ns.exec("ip", "link", "show").stdout
