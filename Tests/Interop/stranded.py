"""The client side of test_stranded.py, run inside the test's namespace:
`http HOST` (a quiet and a busy keep-alive connection to the HTTP service)
or `keepalive HOST` (an echo connection whose peer then goes silent: the
kernel's neighbour entry for the stack is pointed at a MAC nobody has). Bounded in time; prints
one JSON line."""
import json
import socket
import subprocess
import sys
import time

PATTERN10 = bytes(range(10))
REQUEST = b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n"


def recv_until_closed(s, limit):
    """Reads until the peer closes: (bytes, seconds waited, error name)."""
    start = time.monotonic()
    data = b""
    s.settimeout(limit)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, time.monotonic() - start, None
            data += chunk
    except OSError as e:
        return data, time.monotonic() - start, type(e).__name__


def ask(s):
    s.sendall(REQUEST)
    got = b""
    while not (got.startswith(b"HTTP/1.1 200") and got.endswith(PATTERN10)):
        chunk = s.recv(4096)
        if not chunk:
            return False
        got += chunk
    return True


def http(host):
    quiet = socket.create_connection((host, 80), timeout=5)
    busy = socket.create_connection((host, 80), timeout=5)
    quiet_ok = ask(quiet)
    # The busy client asks every 0.5 s for 4 s: never quiet for 2 s.
    answers = 0
    start = time.monotonic()
    while time.monotonic() - start < 4:
        answers += ask(busy)
        time.sleep(0.5)
    _, quiet_waited, quiet_err = recv_until_closed(quiet, 1)
    busy_ok = ask(busy)
    _, busy_waited, busy_err = recv_until_closed(busy, 5)
    quiet.close()
    busy.close()
    return {"quiet_ok": quiet_ok, "quiet_closed_within": quiet_waited, "quiet_err": quiet_err,
            "answers": answers, "busy_ok": busy_ok, "busy_waited": busy_waited, "busy_err": busy_err}


def keepalive(host):
    s = socket.create_connection((host, 7), timeout=5)
    s.sendall(b"hello")
    first = s.recv(16)
    # The kernel answers the probes: still echoing after several idle times.
    time.sleep(3.5)
    s.sendall(b"again")
    second = s.recv(16)
    time.sleep(1.5)
    # The kernel's frames to the stack now go to a MAC nobody has: the stack hears nothing.
    subprocess.run(["ip", "neigh", "replace", host, "lladdr", "02:00:00:00:00:99", "dev", "tap0",
                    "nud", "permanent"], check=True)
    lost_at = time.monotonic()
    _, waited, err = recv_until_closed(s, 15)
    s.close()
    return {"first": first.decode(), "second": second.decode(), "reset_after": waited, "err": err,
            "lost_at": lost_at}


if __name__ == "__main__":
    print(json.dumps({"http": http, "keepalive": keepalive}[sys.argv[1]](sys.argv[2])))
