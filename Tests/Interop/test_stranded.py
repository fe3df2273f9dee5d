"""Issue 15's stranded connections against the kernel: the HTTP service's
idle timeout closes a quiet keep-alive connection (`--idle-timeout`), and
keepalive on the services' listeners (`--keepalive IDLE,INTERVAL,COUNT`)
resets a peer that went silent. The client side runs in the test's
namespace (stranded.py); silence is the kernel's neighbour entry for the
stack pointed at a MAC nobody has, and goes with the namespace."""
import json
import os

from conftest import STACK_IP, Stack

STRANDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stranded.py")


def client(ns, mode, *stack_args):
    """Runs stranded.py's `mode` against `netstack up STACK_ARGS`; returns
    its report, the stack's exit code and its counters."""
    stack = Stack(ns, *stack_args)
    try:
        r = ns.exec("python3", STRANDED, mode, STACK_IP, timeout=60)
    finally:
        code, counters = stack.stop()
    report = json.loads(r.stdout.strip().splitlines()[-1])
    print(report)
    return report, code, counters


def test_http_closes_a_quiet_keep_alive_connection(ns):
    r, code, counters = client(ns, "http", "--serve", "http:80", "--idle-timeout", "2")
    assert r["quiet_ok"] and r["busy_ok"] and r["answers"] >= 6, r
    # The quiet one was closed with a FIN (no reset) about 2 s after its
    # answer, while the busy one asking every 0.5 s was not; then the busy
    # one too, 2 s after its last answer.
    assert r["quiet_err"] is None and r["quiet_closed_within"] < 1, r
    assert r["busy_err"] is None and 1.5 <= r["busy_waited"] <= 3.5, r
    assert code == 0
    assert counters.get("http-idle-timeouts") == 2, counters
    assert counters.get("tcp-connections-reset", 0) == 0, counters


def test_keepalive_resets_a_peer_that_went_silent(ns):
    r, code, counters = client(ns, "keepalive", "--serve", "echo:7", "--keepalive", "1,1,3")
    assert r["first"] == "hello" and r["second"] == "again", r
    # Idle 1 s, 3 probes 1 s apart, the reset 1 s after the last: about 4 s
    # from the last answer (up to 1 s before the silence began). The reset
    # reaches the kernel: only the kernel's frames go astray.
    assert r["err"] == "ConnectionResetError" and 2 <= r["reset_after"] <= 6, r
    assert code == 0
    assert counters.get("tcp-connections-timed-out") == 1, counters
    assert counters.get("tcp-connections-in-table") == 0, counters
