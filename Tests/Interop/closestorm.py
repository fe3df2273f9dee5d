"""Opens N connections to the stack's echo service from the kernel, echoes a
few bytes on each, then closes them all at once: a close storm. Bounded by
count and time; prints one JSON line. The connections are spread over
worker processes (workers.py), which close theirs at the same moment."""
import json
import selectors
import socket
import sys
import time

from workers import Workers, allow_descriptors


def tap_dropped():
    try:
        with open("/sys/class/net/tap0/statistics/tx_dropped") as f:
            return int(f.read())
    except OSError:
        return -1


def worker(count, host, port, timeout, barrier, ready, results):
    allow_descriptors(count)
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    connected = set()
    while len(connected) < count and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.add(s)
            sel.unregister(s)
    message = b"close-storm-16b!"
    echoed = {}
    for s in connected:
        s.send(message)
        sel.register(s, selectors.EVENT_READ)
        echoed[s] = b""
    done = 0
    while done < len(connected) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(64)
            except OSError:
                data = b""
            echoed[s] += data
            if len(echoed[s]) >= len(message) or not data:
                sel.unregister(s)
                done += 1
    good = sum(1 for v in echoed.values() if v == message)
    dropped_before_close = tap_dropped()
    try:
        barrier.wait(timeout=max(1.0, deadline - time.monotonic()))
    except Exception:
        pass  # a worker failed: close anyway, the counts tell
    start = time.monotonic()
    for s in socks:
        s.close()
    results.put({"connected": len(connected), "echoed": good,
                 "close_seconds": time.monotonic() - start,
                 "dropped_before_close": dropped_before_close})


def main(host, port, count, timeout):
    workers = Workers(worker, count, host, port, timeout)
    got = workers.gather(workers.results, timeout=timeout + 30)
    workers.join()
    time.sleep(1)
    print(json.dumps({"connected": sum(r["connected"] for r in got),
                      "echoed": sum(r["echoed"] for r in got),
                      "close_seconds": round(max(r["close_seconds"] for r in got), 3),
                      "tap_dropped_before_close": max(r["dropped_before_close"] for r in got),
                      "tap_dropped_after_close": tap_dropped()}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
