"""Loss recovery against the Linux kernel: the stack's own FaultInjector sits
between the stack and its TAP (this kernel has no netem) and drops, reorders,
duplicates or corrupts frames both ways, while the kernel's sockets push 4 MiB
through the echo service. Every byte must come back, in order. Each test runs
in its own namespace (see conftest.py)."""
import json
import os
import subprocess

import pytest

from conftest import HOST_IP, STACK_IP, Stack

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.py")
SIZE = 4 << 20


def peer(ns, *args, timeout=300):
    r = ns.exec("python3", PEER, *map(str, args), timeout=timeout)
    return json.loads(r.stdout.strip().splitlines()[-1])


FAULTS = [
    # (name, flags, the counter that shows the fault happened)
    ("loss-10", ["--loss", "0.1"], "dropped"),
    ("reorder-10", ["--reorder", "0.1"], "reordered"),
    ("duplicate-5", ["--duplicate", "0.05"], "duplicated"),
    ("corrupt-2", ["--corrupt", "0.02"], "corrupted"),
]


@pytest.mark.parametrize("name,flags,counter", FAULTS, ids=[f[0] for f in FAULTS])
def test_four_mebibytes_echo_byte_exact(ns, name, flags, counter):
    stack = Stack(ns, "--serve", "echo:7", *flags, "--seed", "11")
    try:
        out = peer(ns, "tcp-echo", STACK_IP, 7, SIZE, 5)
    finally:
        _, counters = stack.stop()
    print(name, f"{out['seconds']:.2f} s", {k: v for k, v in counters.items() if k.startswith(("tcp-", "fault.", "drop."))})
    assert out["errors"] == [], out
    assert out["received"] == SIZE and out["equal"], out
    # The fault really happened, both ways.
    assert counters[f"fault.rx.{counter}"] > 0 and counters[f"fault.tx.{counter}"] > 0, counters
    if name == "loss-10":
        assert counters["tcp-retransmissions"] > 0 and counters["tcp-fast-recoveries"] > 0, counters
    if name == "reorder-10":
        # Reordered segments set off fast recoveries the kernel's D-SACKs
        # then prove spurious, and the stack undoes their window cuts.
        assert counters["tcp-recoveries-undone"] > 0, counters
    if name == "corrupt-2":
        # Corrupted frames are caught by a checksum and dropped, never delivered.
        drops = sum(v for k, v in counters.items() if k.startswith("drop.") and "checksum" in k)
        assert drops > 0, counters


def tshark_tcp(pcap):
    """One dict per TCP segment in the capture, sequence numbers absolute."""
    fields = ["frame.number", "ip.src", "tcp.seq", "tcp.len", "tcp.ack", "tcp.flags.syn",
              "tcp.options.sack_le", "tcp.options.sack_re"]
    args = ["tshark", "-r", str(pcap), "-o", "tcp.relative_sequence_numbers:FALSE", "-Y", "tcp",
            "-T", "fields", "-E", "separator=/t", "-E", "aggregator=,"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    segments = []
    for line in out.splitlines():
        number, src, seq, length, ack, syn, les, res = (line.split("\t") + [""] * 8)[:8]
        blocks = list(zip(map(int, les.split(",")), map(int, res.split(",")))) if les else []
        segments.append({"frame": int(number), "src": src, "seq": int(seq), "len": int(length or 0),
                         "ack": int(ack or 0), "syn": syn in ("1", "True"), "sack": blocks})
    return segments


def test_acks_carry_sack_blocks_under_three_percent_loss(ns, tmp_path):
    """RFC 2018 on the wire: with 3% loss both ways, the stack's ACKs report
    its out-of-order queue in SACK blocks, and the kernel's do too."""
    pcap = tmp_path / "loss3.pcap"
    stack = Stack(ns, "--serve", "echo:7", "--loss", "0.03", "--seed", "3", "--pcap", str(pcap))
    try:
        out = peer(ns, "tcp-echo", STACK_IP, 7, SIZE, 9)
    finally:
        stack.stop()
    assert out["received"] == SIZE and out["equal"], out
    segments = tshark_tcp(pcap)
    ours = [s for s in segments if s["src"] == STACK_IP and s["sack"]]
    theirs = [s for s in segments if s["src"] == HOST_IP and s["sack"]]
    assert len(ours) > 10, f"{len(ours)} of the stack's segments carried SACK blocks"
    assert len(theirs) > 10, f"{len(theirs)} of the kernel's segments carried SACK blocks"
    # Every block the stack sent lies above the cumulative ACK it rode on (D-SACKs apart, which lie below it).
    for s in ours:
        for i, (left, right) in enumerate(s["sack"]):
            assert (left - s["ack"]) % (1 << 32) < (1 << 31) or i == 0, s


def covered(intervals, left, right):
    return any(l <= left and right <= r for l, r in intervals)


def download_with_tx_loss(ns, tmp_path, *flags):
    """curl fetches 8 MiB from the stack run with 3% of its transmitted
    frames lost (seed 5) and `flags`; returns the stack's counters."""
    stack = Stack(ns, "--serve", "http", "--tx-loss", "0.03", "--seed", "5", *flags)
    try:
        body = tmp_path / "body"
        r = ns.exec("curl", "-s", "-o", str(body), "-w", "%{http_code}", f"http://{STACK_IP}/bytes/{8 << 20}",
                    timeout=120)
    finally:
        _, counters = stack.stop()
    assert r.stdout == "200" and body.stat().st_size == 8 << 20
    return counters


def test_stack_never_resends_what_the_kernel_sacked(ns, tmp_path):
    """RFC 6675 on the wire: the stack sends 8 MiB with 3% of its frames lost
    (its receive side untouched, so every ACK in the capture reached it), and
    no segment it sends lies within a range the kernel had already SACKed."""
    pcap = tmp_path / "txloss3.pcap"
    counters = download_with_tx_loss(ns, tmp_path, "--pcap", str(pcap))
    sacked = []        # blocks the kernel reported, pruned below its cumulative ACK
    resent_sacked = []
    highest = None
    retransmissions = 0
    for s in tshark_tcp(pcap):
        if s["src"] == HOST_IP:
            una = s["ack"]
            sacked = [(l, r) for l, r in sacked + [b for b in s["sack"] if b[0] >= una] if r > una]
        elif s["len"] > 0 and not s["syn"]:
            left, right = s["seq"], s["seq"] + s["len"]
            if highest is not None and left < highest:
                retransmissions += 1
            highest = right if highest is None else max(highest, right)
            if covered(sacked, left, right):
                resent_sacked.append(s["frame"])
    assert counters["fault.tx.dropped"] > 0
    assert retransmissions > 0 and counters["tcp-retransmissions"] > 0
    assert resent_sacked == [], f"frames resending SACKed data: {resent_sacked[:10]}"


def download_seconds(ns, tmp_path, *flags, size=64 << 20):
    """Seconds curl takes to fetch `size` bytes from a fresh stack run with `flags`."""
    stack = Stack(ns, "--serve", "http", *flags)
    try:
        body = tmp_path / "body"
        r = ns.exec("curl", "-s", "-o", str(body), "-w", "%{http_code} %{time_total}",
                    f"http://{STACK_IP}/bytes/{size}", timeout=300)
    finally:
        stack.stop()
    code, seconds = r.stdout.split()
    assert code == "200" and body.stat().st_size == size
    return float(seconds)


def test_sack_resends_only_what_was_lost_and_newreno_more(ns, tmp_path):
    """8 MiB from the HTTP server with 3% of the stack's frames lost, once
    with SACK and once with `--no-sack`. With SACK (RFC 6675) the kernel's
    blocks tell the stack exactly which segments are missing: it resends
    each lost frame once and nothing else, and never waits for a timeout.
    Without SACK, NewReno (RFC 6582) learns of one hole per round trip,
    falls back on the retransmission timer when a window loses several,
    and then resends data the kernel already holds. (Scripts/loss-goodput
    measures what this is worth in goodput; the timed comparison this test
    replaced was at the mercy of the machine's load.)"""
    seen = {}
    for mode, flags in (("sack", []), ("newreno", ["--no-sack"])):
        counters = download_with_tx_loss(ns, tmp_path, *flags)
        seen[mode] = {k: counters[k] for k in ("fault.tx.dropped", "tcp-retransmissions", "tcp-timeouts")}
        print(mode, seen[mode])
    sack, newreno = seen["sack"], seen["newreno"]
    assert sack["fault.tx.dropped"] > 50, sack
    # Each lost frame resent once (a resent frame may itself be lost: a little slack).
    assert sack["fault.tx.dropped"] <= sack["tcp-retransmissions"] <= sack["fault.tx.dropped"] * 1.05 + 2, sack
    assert sack["tcp-timeouts"] == 0, sack
    # What NewReno pays swings with the timing of the kernel's ACKs: in runs
    # on one machine 1 to 12 timeouts and 0 to over 1,000 needless resends.
    # That it pays, in timeouts or resends, where SACK pays neither, does not.
    needless = {m: v["tcp-retransmissions"] - v["fault.tx.dropped"] for m, v in seen.items()}
    assert newreno["tcp-timeouts"] + needless["newreno"] > sack["tcp-timeouts"] + needless["sack"], seen


def test_one_percent_loss_keeps_half_the_loss_free_goodput(ns, tmp_path):
    """The issue's bar: 64 MiB from the HTTP server with 1% loss both ways
    keeps at least half the goodput of the same download without loss,
    default settings (CUBIC, SACK, RACK-TLP), alternating rounds, medians of
    three. Seeds 1-3: with some seeds (8, for one) the SYN-ACK is the frame
    dropped, and the kernel's 1 s SYN timer, not recovery, sets the time.
    A debug build measures 0.65-0.7; Scripts/loss-goodput gives the release
    build's figures (0.57-0.60 at the last count)."""
    clean, lossy = [], []
    for seed in (1, 2, 3):
        # Like with like: under fault injection the stack sends wire frames
        # (the injector narrows the TAP's offloads to them), so the
        # loss-free download runs without TSO too.
        clean.append(download_seconds(ns, tmp_path, "--offload", "off"))
        lossy.append(download_seconds(ns, tmp_path, "--loss", "0.01", "--seed", str(seed)))
    clean.sort()
    lossy.sort()
    share = clean[1] / lossy[1]
    print(f"64 MiB: loss-free {clean} s, 1% loss {lossy} s, goodput kept {share:.2f}")
    assert share >= 0.5, f"1% loss keeps only {share:.2f} of the loss-free goodput"
