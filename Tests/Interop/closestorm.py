"""Opens N connections to the stack's echo service from the kernel, echoes a
few bytes on each, then closes them all at once: a close storm. Bounded by
count and time; prints one JSON line."""
import json
import resource
import selectors
import socket
import sys
import time


def main(host, port, count, timeout):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
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
    start = time.monotonic()
    for s in socks:
        s.close()
    print(json.dumps({"connected": len(connected), "echoed": good,
                      "close_seconds": round(time.monotonic() - start, 3)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
