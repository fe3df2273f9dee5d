"""Opens N connections to the stack's echo service, echoes one byte on each,
says so, holds them idle for a while, and closes them. A process may hold
only as many descriptors as its hard limit (20,000 here), so they are spread
over worker processes of at most 10,000 each. Bounded by count and time.

    holdconns.py HOST PORT N HOLD_SECONDS

Prints `held N` once every connection echoed (or the time ran out), then,
after the hold, one JSON line with the counts."""
import json
import multiprocessing
import resource
import socket
import sys
import time

PER_WORKER = 10000


def worker(host, port, count, hold, barrier, ready, results):
    resource.setrlimit(resource.RLIMIT_NOFILE, (count + 256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
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
    shares = [PER_WORKER] * (count // PER_WORKER) + ([count % PER_WORKER] if count % PER_WORKER else [])
    context = multiprocessing.get_context("fork")
    ready, results, barrier = context.Queue(), context.Queue(), context.Barrier(len(shares))
    procs = [context.Process(target=worker, args=(host, port, n, hold, barrier, ready, results)) for n in shares]
    for p in procs:
        p.start()
    held = sum(ready.get(timeout=330) for _ in procs)
    print(f"held {held}", flush=True)
    got = [results.get(timeout=hold + 120) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    print(json.dumps({k: sum(r[k] for r in got) for k in got[0]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
