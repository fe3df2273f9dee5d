"""Issue 15's hostile input against the stack through a real TAP: spoofed
martian sources, broadcast frames, SYN+FIN and SYN+RST, and an out-of-window
ACK flood against a live echo connection. The frames come from a packet
socket on the host end of the TAP (hostile.py, plain struct, no scapy), and
what the stack sends back is caught there and read from its counters."""
import json
import os

from conftest import HOST_IP, STACK_IP, STACK_MAC

HOSTILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile.py")


def hostile(ns, *args, timeout=120):
    r = ns.exec("python3", HOSTILE, *map(str, args), timeout=timeout)
    return json.loads(r.stdout.strip().splitlines()[-1])


def warm_up(ns):
    """A ping from the kernel, so the stack has the host's MAC before the probes."""
    ns.exec("ping", "-c", "1", "-W", "2", STACK_IP, check=False)


def test_hostile_frames_are_not_answered(ns, stack):
    warm_up(ns)
    answers = hostile(ns, "probes", "tap0", STACK_MAC, HOST_IP, STACK_IP)["answers"]
    # The controls show the probes would have been seen.
    assert [a["type"] for a in answers.pop("control-ping")] == [0]
    assert [(a["type"], a["code"]) for a in answers.pop("control-udp-closed")] == [(3, 3)]
    answered = {name: got for name, got in answers.items() if got}
    assert answered == {}, answered
    code, counters = stack.stop()
    assert code == 0
    martian = [n for n in answers if not n.startswith(("broadcast-frame", "syn-"))]
    assert counters.get("drop.ipv4-martian-source", 0) == len(martian), counters
    assert counters.get("drop.tcp-syn-fin", 0) == 1
    assert counters.get("drop.tcp-syn-rst", 0) == 1
    assert counters.get("drop.tcp-broadcast", 0) == 1
    assert counters.get("tcp-passive-opens", 0) == 0
    assert counters.get("tcp-resets-sent", 0) == 0
    assert counters.get("icmp-echo-replies-out", 0) == 2  # the warm-up ping and the control
    assert counters.get("icmp-errors-out", 0) == 1  # the control's port unreachable


def test_out_of_window_ack_flood_is_not_reflected(ns, stack):
    """Issue 15's goal: a 5 s flood of ACKs with random sequence numbers
    against a live connection draws at most 1,000 frames from the stack (it
    drew one per segment), and the connection still echoes afterwards."""
    warm_up(ns)
    r = hostile(ns, "ack-flood", "tap0", STACK_MAC, HOST_IP, STACK_IP, 7, 20000, 5, 15, timeout=120)
    assert r["echo_before"] and r["echo_after"], r
    assert r["sent"] >= 19000, r
    assert r["answers"] <= 1000, r
    code, counters = stack.stop()
    assert code == 0
    # One answer per 500 ms on the connection: about ten in 5 s, the rest held back.
    assert counters.get("tcp-oow-acks", 0) <= 20, counters
    assert counters.get("tcp-oow-acks-rate-limited", 0) >= 15000, counters
