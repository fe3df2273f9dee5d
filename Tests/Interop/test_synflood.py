"""A spoofed SYN flood against the stack's HTTP service (RFC 4987): hping3 on
the kernel's side of the namespace floods port 80 from random sources while
curl keeps fetching /bytes/1048576. The SYN queue fills with half-open
connections that never complete; SYN cookies answer the rest, and curl's
handshakes go through either. Each flood is bounded in count and time and
its process killed by PID; all traffic stays inside the test's namespace."""
import hashlib
import shutil
import signal
import subprocess
import time

import pytest

from conftest import STACK_IP, Stack, rss_kib

needs_tools = pytest.mark.skipif(shutil.which("hping3") is None or shutil.which("curl") is None,
                                 reason="hping3 and curl needed (Scripts/setup installs them)")

SIZE = 1 << 20
# hping3 -i u200 (nominally 5,000 SYNs a second, about 3,300 measured) for
# 15 s: the 256-entry SYN queue is full within 0.1 s, and the debug build
# keeps up with the rate. Under `--flood` (about 200,000 a second here) the
# debug build answers some 17,000 a second and the TAP's queue drops the rest,
# curl's segments among them, whatever the stack does with what it gets: 7 of
# 10 fetches within 3 s; the release build answers 150,000 a second and 88 of
# 89 fetches took under 3 s (median 14 ms).
FLOOD_INTERVAL_US = 200
FLOOD_SECONDS = 15
FETCH_LIMIT = 3.0


def pattern(n):
    """The body of /bytes/N: byte i is i % 251."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


EXPECTED = hashlib.sha256(pattern(SIZE)).hexdigest()


class Flood:
    """hping3 in the namespace, bounded by its count; stopped by PID."""

    def __init__(self, ns, *args, log):
        self.log = open(log, "w")
        self.proc = ns.popen("hping3", *args, stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def fetch(ns, out):
    """One curl fetch of /bytes/SIZE: (seconds, bytes exact)."""
    start = time.monotonic()
    r = ns.exec("curl", "-s", "-m", "10", "-o", str(out), "-w", "%{http_code} %{size_download}",
                f"http://{STACK_IP}/bytes/{SIZE}", timeout=30, check=False)
    took = time.monotonic() - start
    fields = r.stdout.split()
    ok = (r.returncode == 0 and fields == ["200", str(SIZE)]
          and hashlib.sha256(out.read_bytes()).hexdigest() == EXPECTED)
    return took, ok


@needs_tools
def test_curl_keeps_fetching_through_a_spoofed_syn_flood(ns, tmp_path):
    stack = Stack(ns, "--serve", "http:80", "--stats", stderr_path=str(tmp_path / "stack.err"))
    flood = None
    try:
        took, ok = fetch(ns, tmp_path / "warm.bin")
        assert ok, "the service answers before the flood"
        rss_before = rss_kib(stack.proc.pid)
        # Bounded twice: by its count, and stopped by PID after FLOOD_SECONDS.
        count = FLOOD_SECONDS * 1_000_000 // FLOOD_INTERVAL_US
        flood = Flood(ns, "-S", "-p", "80", "--rand-source", "-i", f"u{FLOOD_INTERVAL_US}", "-c", str(count),
                      STACK_IP, log=tmp_path / "hping3.log")
        time.sleep(0.5)
        fetches = []
        while flood.running() and time.monotonic() - flood.started < FLOOD_SECONDS:
            fetches.append(fetch(ns, tmp_path / "body.bin"))
        during = stack.latest_stats()
        rss_during = rss_kib(stack.proc.pid)
        flood.stop()
        flood_took = time.monotonic() - flood.started
        after_took, after_ok = fetch(ns, tmp_path / "after.bin")
    finally:
        if flood:
            flood.stop()
        _, counters = stack.stop()

    good = [t for t, ok in fetches if ok and t <= FETCH_LIMIT]
    times = sorted(t for t, _ in fetches)
    print(f"\n  flood {flood_took:.1f} s: {len(good)}/{len(fetches)} fetches of 1 MiB exact within {FETCH_LIMIT} s;"
          f" median {times[len(times) // 2]:.2f} s, max {times[-1]:.2f} s;"
          f" after the flood {after_took:.2f} s")
    print(f"  cookies sent {counters.get('tcp-syncookies-sent')}, validated {counters.get('tcp-syncookies-validated')},"
          f" failed {counters.get('tcp-syncookies-failed')}; evicted {counters.get('tcp-syn-queue-evicted')};"
          f" passive opens {counters.get('tcp-passive-opens')}; RSS {rss_before} -> {rss_during} KiB")
    assert stack.returncode == 0
    assert len(fetches) >= 5, fetches
    assert len(good) >= 0.8 * len(fetches), fetches
    assert after_ok and after_took <= FETCH_LIMIT
    # The queue overflowed and cookies answered; the table stayed bounded.
    assert counters["tcp-syncookies-sent"] > 10_000
    assert during.get("tcp-in-syn-received", 0) <= 256
    assert during.get("tcp-connections-in-table", 0) <= 256 + 2 * len(fetches) + 16
    assert rss_during - rss_before < 64 * 1024, "memory grew with the flood"


@needs_tools
def test_syns_from_an_address_that_never_answers_arp_do_not_lock_clients_out(ns, tmp_path):
    """20,000 SYNs from 10.0.0.77, on the link but never answering ARP: the
    SYN-ACKs wait for ARP and are dropped; a new client still connects."""
    stack = Stack(ns, "--serve", "http:80", stderr_path=str(tmp_path / "stack.err"))
    flood = None
    try:
        # Each from the next source port, at most 4,000 a second, for at most 15 s.
        flood = Flood(ns, "-S", "-p", "80", "-a", "10.0.0.77", "-i", "u250", "-c", "20000", STACK_IP,
                      log=tmp_path / "hping3.log")
        time.sleep(0.5)
        fetches = []
        while flood.running() and time.monotonic() - flood.started < 15:
            fetches.append(fetch(ns, tmp_path / "body.bin"))
        flood.stop()
    finally:
        if flood:
            flood.stop()
        _, counters = stack.stop()
    times = sorted(t for t, _ in fetches)
    print(f"\n  20,000 SYNs from a silent neighbour: {sum(ok for _, ok in fetches)}/{len(fetches)} fetches exact,"
          f" median {times[len(times) // 2]:.2f} s, max {times[-1]:.2f} s;"
          f" cookies sent {counters.get('tcp-syncookies-sent')}, half-open dropped as unreachable"
          f" {counters.get('tcp-half-open-unreachable')}, ARP queue drops {counters.get('drop.arp-queue-full')}")
    assert len(fetches) >= 3 and all(ok and t <= FETCH_LIMIT for t, ok in fetches), fetches
    assert counters["tcp-syncookies-sent"] > 0
