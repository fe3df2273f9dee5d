#!/usr/bin/env python3
"""Where the stack's time goes, by the parts of this codebase and of the kernel
it drives: the share of samples whose stack passes through each part, from
folded stacks (Profiles/flamegraph.py --folded; kernel frames end in "_[k]").

    Profiles/breakdown.py Profiles/data/bulk-rx.folded

A sample can be in several rows (a checksum inside Interface.receive counts
for both), so the rows do not add up to 100%.
"""
import re
import sys

# (label, regular expression searched in the whole folded stack)
PARTS = [
    ("TAP writes (tun_chr_write_iter): the kernel receives each frame we send, in our syscall",
     r"tun_chr_write_iter_\[k\]"),
    ("  of which the peer's TCP (tcp_v4_rcv: its input, ACK processing, and what it sends then)",
     r"tun_chr_write_iter_\[k\].*tcp_v4_rcv_\[k\]"),
    ("  of which waking the receiving application (sock_def_readable: a sleeping reader costs an IPI)",
     r"tun_chr_write_iter_\[k\].*sock_def_readable_\[k\]"),
    ("TAP reads (tun_chr_read_iter): each frame copied into a pool slot",
     r"tun_chr_read_iter_\[k\]"),
    ("Sleeping and waking (schedule / finish_task_switch)", r"(^|;)(schedule|finish_task_switch[^;]*)_\[k\]"),
    ("Interface.receive: parse, demultiplex, TCP input, app callbacks", r"(^|;)Interface\.receive\(_:now:\)"),
    ("  TCPConnection.process (RFC 9293 input processing)", r"TCPConnection\.process\(_:payload:now:\)"),
    ("TCPLayer.service: segments out (headers, checksum, payload copy)", r"TCPLayer\.service\(_:now:\)"),
    ("Internet checksum in the stack (InternetChecksum)", r"InternetChecksum"),
    ("Internet checksum in the kernel (csum_partial: finishing what the stack left partial, or without offloads)",
     r"csum_partial[^;]*_\[k\]"),
    ("ByteRing (send and receive rings, copies included)", r"ByteRing"),
    ("memcpy/memmove in user space", r"(^|;)__mem(move|cpy)[^;]*$"),
    ("Swift exclusivity checks (swift_beginAccess, swift_endAccess)", r"swift_beginAccess|swift_endAccess"),
    ("Swift retain/release", r"swift_retain|swift_release|swift_bridgeObjectRe"),
    ("Connection lookup (Dictionary, Hasher)", r"Hasher|Dictionary\.subscript|__RawDictionaryStorage\.find"),
    ("Timers (HierarchicalTimerWheel)", r"HierarchicalTimerWheel"),
    ("Services (iperf3, echo)", r"IPerf3|EchoService|TCPServices"),
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    stacks = []
    for line in open(sys.argv[1]):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        stacks.append((stack, int(n)))
    total = sum(n for _, n in stacks) or 1
    user = sum(n for s, n in stacks if not s.rsplit(";", 1)[-1].endswith("_[k]"))
    print(f"{100.0 * user / total:6.2f}%  user space, self (everything not in the kernel)")
    print(f"{100.0 * (total - user) / total:6.2f}%  kernel, self")
    for label, pattern in PARTS:
        rx = re.compile(pattern)
        n = sum(k for s, k in stacks if rx.search(s))
        print(f"{100.0 * n / total:6.2f}%  {label}")


if __name__ == "__main__":
    main()
