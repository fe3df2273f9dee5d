"""Opens N connections to the stack's echo service, echoes one byte on each,
says so, holds them idle for a while, and closes them. A process may hold
only so many descriptors, so they are spread over worker processes
(workers.py). Bounded by count and time.

    holdconns.py HOST PORT N HOLD_SECONDS

Prints `held N` once every connection echoed (or the time ran out), then,
after the hold, one JSON line with the counts."""
import json
import socket
import sys
import time

from workers import Workers, allow_descriptors


def worker(count, host, port, hold, barrier, ready, results):
    allow_descriptors(count)
    socks, refused, failed = [], 0, 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect((host, port))
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise OSError("no echo")
            socks.append(s)
        except ConnectionRefusedError:
            refused += 1
            s.close()
        except OSError:
            failed += 1
            s.close()
    try:
        barrier.wait(timeout=300)  # every worker holds its share at once
    except Exception:
        pass
    ready.put(len(socks))
    time.sleep(hold)
    # Still there after the hold: a byte echoes on every tenth.
    alive = 0
    for s in socks[::10]:
        try:
            s.sendall(b"y")
            alive += s.recv(1) == b"y"
        except OSError:
            pass
    for s in socks:
        s.close()
    results.put({"held": len(socks), "refused": refused, "failed": failed,
                 "checked": len(socks[::10]), "alive": alive})


def main(host, port, count, hold):
    workers = Workers(worker, count, host, port, hold)
    held = sum(workers.gather(workers.ready, timeout=330))
    print(f"held {held}", flush=True)
    got = workers.gather(workers.results, timeout=hold + 120)
    workers.join()
    print(json.dumps({k: sum(r[k] for r in got) for k in got[0]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
