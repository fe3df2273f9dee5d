"""Offloads through the TAP's virtio-net header (`--offload on|off`): with
them, TCP crosses the TAP in segments longer than one Ethernet frame both
ways (the kernel's GSO towards the stack, the stack's TSO towards the
kernel); without them, never. Read off a capture on the TAP taken by the
kernel's side, while the real iperf3 pushes data each way."""
import json
import subprocess
import time

import pytest

from conftest import STACK_IP, Stack


def tcp_frame_lengths(ns, pcap, *flags):
    """Runs `netstack up --serve iperf3 --offload FLAG`, captures on tap0
    while iperf3 sends for a second each way, checks both transfers, and
    returns the lengths of the TCP frames the stack sent and received."""
    stack = Stack(ns, "--serve", "iperf3", *flags)
    # Headers only (-s): frame.len keeps each frame's length on the wire.
    capture = ns.popen("tshark", "-q", "-i", "tap0", "-f", "tcp", "-s", "96", "-w", str(pcap),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        time.sleep(1.5)  # tshark up
        for extra in ([], ["-R"]):
            r = ns.exec("iperf3", "-c", STACK_IP, "-J", "-t", "1", *extra, timeout=60, check=False)
            results.append(json.loads(r.stdout))
        time.sleep(0.5)
    finally:
        capture.terminate()
        capture.wait(timeout=20)
        stack.stop()
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "frame.len"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    sent, received = [], []
    for line in out.splitlines():
        src, length = line.split("\t")
        (sent if src == STACK_IP else received).append(int(length))
    # Both transfers completed, and the capture saw both directions.
    for r in results:
        assert "error" not in r, r
        assert r["end"]["sum_received"]["bytes"] > 0, r
    assert len(sent) > 100 and len(received) > 100
    return sent, received


def test_segments_longer_than_a_frame_cross_the_tap_both_ways_with_offloads(ns, tmp_path):
    sent, received = tcp_frame_lengths(ns, tmp_path / "on.pcap", "--offload", "on")
    assert max(sent) > 1514, f"the stack sent no frame longer than 1514 bytes (longest {max(sent)})"
    assert max(received) > 1514, f"the kernel sent no frame longer than 1514 bytes (longest {max(received)})"
    assert max(sent + received) <= 65535 + 14


def test_without_offloads_no_frame_is_longer_than_ethernet_allows(ns, tmp_path):
    sent, received = tcp_frame_lengths(ns, tmp_path / "off.pcap", "--offload", "off")
    assert max(sent + received) <= 1514, max(sent + received)


def test_each_payload_byte_is_copied_at_most_once_each_way_with_offloads(ns):
    """The copies counters of `--stats` (printed again at exit): sending, the
    iperf3 and HTTP servers hand their pattern to TCP by reference and the TAP
    reads new data in place, so only resends are copied (at most one copy per
    byte whatever an application writes by copy); receiving, the iperf3 server
    takes its data in place and HTTP parses requests in the ring."""
    stack = Stack(ns, "--serve", "iperf3,http", "--offload", "on")
    try:
        for extra in ([], ["-R"]):
            r = json.loads(ns.exec("iperf3", "-c", STACK_IP, "-J", "-t", "1", *extra, timeout=60, check=False).stdout)
            assert "error" not in r, r
            assert r["end"]["sum_received"]["bytes"] > 100 << 20, r["end"]["sum_received"]
        got = ns.exec("curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
                      f"http://{STACK_IP}/bytes/4194304", timeout=60).stdout
        assert got == "4194304", got
    finally:
        code, c = stack.stop()
    assert code == 0
    out, copied_out = c["tcp-payload-bytes-out"], c["tcp-payload-bytes-copied-out"]
    got_in, copied_in = c["tcp-payload-bytes-in"], c["tcp-payload-bytes-copied-in"]
    assert out > 100 << 20 and got_in > 100 << 20, c
    # Resends are copied again: at most one MSS each (TSO resends one frame's worth).
    resent = c["tcp-retransmissions"] * 1460
    assert copied_out <= resent + (1 << 20), f"{copied_out / out:.4f} copies per byte sent"
    assert copied_in <= got_in and copied_in < got_in // 10, f"{copied_in / got_in:.4f} copies per byte received"


def test_without_offloads_the_kernels_frames_are_acknowledged_per_batch(ns):
    """GRO's effect with offloads off: the kernel sends 1514-byte frames, and
    in-order segments arriving in one receive batch are answered with one ACK
    (at most 64 KiB apart), so the stack sends far fewer ACKs than one per
    two segments, and the counter says how many segments waited."""
    stack = Stack(ns, "--serve", "iperf3", "--offload", "off")
    try:
        r = json.loads(ns.exec("iperf3", "-c", STACK_IP, "-J", "-t", "2", timeout=60, check=False).stdout)
        assert "error" not in r, r
        received = r["end"]["sum_received"]["bytes"]
        assert received > 10 << 20, r["end"]["sum_received"]
    finally:
        code, c = stack.stop()
    assert code == 0
    segments_in, segments_out = c["tcp-segments-in"], c["tcp-segments-out"]
    assert segments_in > received // 1448, c
    assert c["tcp-answers-coalesced"] > segments_in // 2, c
    assert segments_out * 3 < segments_in, f"{segments_out} segments out for {segments_in} in"
    assert segments_out >= received // 65536, "an ACK covered more than 64 KiB"
