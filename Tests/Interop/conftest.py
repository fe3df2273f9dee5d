"""Interop harness: each test module gets a fresh network namespace with the
stack running inside it on tap0 (host side 10.0.0.1/24, stack 10.0.0.2), and
the kernel's own tools as peers. Needs root; the namespace is deleted after."""
import os
import select
import signal
import subprocess
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The release build, as users run it (`Scripts/test` builds it); the debug
# build is ten times slower per frame and falls behind the storms and floods
# some tests send on a loaded machine.
NETSTACK = os.environ.get("NETSTACK_BIN", os.path.join(ROOT, ".build", "release", "netstack"))
HOST_IP = "10.0.0.1"
STACK_IP = "10.0.0.2"
STACK_MAC = "02:00:0a:00:00:02"


def run(*args, timeout=60, check=True):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


def rss_kib(pid):
    """A process's resident memory, in KiB (0 if /proc does not say)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Namespace:
    def __init__(self):
        self.name = f"nsit-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        run("ip", "netns", "add", self.name)
        self.exec("ip", "link", "set", "lo", "up")

    def exec(self, *args, timeout=60, check=True):
        return run("ip", "netns", "exec", self.name, *args, timeout=timeout, check=check)

    def popen(self, *args, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], **kw)

    def delete(self):
        run("ip", "netns", "del", self.name, check=False)


class Stack:
    """`netstack up` running in a namespace. `stop()` sends SIGINT and returns
    the exit code and the counters it printed."""

    def __init__(self, ns, *extra, stderr_path=None):
        self.ns = ns
        self.stderr_path = stderr_path
        self._stderr_file = open(stderr_path, "w") if stderr_path else None
        self.proc = ns.popen(NETSTACK, "up", "--tap", "tap0", "--host", f"{HOST_IP}/24",
                             "--address", STACK_IP, *extra,
                             stdout=subprocess.PIPE,
                             stderr=self._stderr_file if self._stderr_file else subprocess.PIPE, text=True)
        self.ready = self._readline(timeout=20)
        if not self.ready.startswith("ready "):
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else open(stderr_path).read()
            raise RuntimeError(f"stack did not come up: {self.ready!r} {err}")
        self.counters = None
        self.returncode = None

    def _readline(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if r else ""

    def stop(self):
        if self.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            out, err = self.proc.communicate(timeout=20)
            if self._stderr_file:
                self._stderr_file.close()
                err = open(self.stderr_path).read()
            self.stderr = err
            self.returncode = self.proc.returncode
            self.counters = {}
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit():
                    self.counters[parts[0]] = int(parts[1])
        return self.returncode, self.counters

    def latest_stats(self):
        """The counters of the last `stats` line (needs `--stats` and `stderr_path`)."""
        lines = [l for l in open(self.stderr_path).read().splitlines() if l.startswith("stats ")]
        if not lines:
            return {}
        return {k: int(v) for k, v in (item.split("=", 1) for item in lines[-1].split()[1:])}


def _skip_reason():
    if os.geteuid() != 0:
        return "interop tests need root (network namespaces, TAP)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if not os.access(NETSTACK, os.X_OK):
        return f"build the stack first: {NETSTACK} is missing"
    return None


@pytest.fixture
def ns():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    n = Namespace()
    yield n
    n.delete()


@pytest.fixture
def stack(ns):
    s = Stack(ns, "--serve", "echo:7")
    yield s
    if s.returncode is None:
        s.stop()
