#!/usr/bin/python3
"""Outside client for spec/server_spec.lua: raw sockets and http.client.

    server_probe.py SCENARIO PORT [ARGS...]

Prints one JSON object on stdout; exits 0 unless the probe itself broke.
Every socket has a timeout, so a server that never answers cannot hang it.
"""
import hashlib
import http.client
import json
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"


def connect(port, timeout=10):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_until_close(s, limit=1 << 20):
    """All bytes until EOF; 'reset' when the peer reset, 'timeout' when it
    neither answered nor closed."""
    data = b""
    how = "eof"
    while len(data) < limit:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            how = "reset"
            break
        except socket.timeout:
            how = "timeout"
            break
        if not b:
            break
        data += b
    return data, how


def status_of(data):
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def send_raw(port, payload, shut=False, timeout=10):
    s = connect(port, timeout)
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    if shut:
        s.shutdown(socket.SHUT_WR)
    data, how = read_until_close(s)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return {"status": status_of(data), "how": how, "head": head.decode("latin-1"),
            "body": body.decode("latin-1"), "bytes": len(data)}


GARBAGE = {
    "tls_hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\r\n\r\n",
    "bad_method": b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "no_version": b"GET /\r\n\r\n",
    "bad_version": b"GET / HTTP/x.y\r\nHost: x\r\n\r\n",
    "future_version": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "header_without_colon": b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
    "nul_in_header": b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
    "space_in_target": b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_chunk_size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad_content_length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nabc",
    "two_content_lengths": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "no_host": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "binary_junk": bytes((i * 37 + 11) % 256 for i in range(4096)),
}

TRUNCATED = {
    "in_request_line": b"GET /abc HT",
    "in_headers": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Le",
    "in_body": b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    "in_chunk": b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
}


def scenario_garbage(port):
    return {name: send_raw(port, payload) for name, payload in GARBAGE.items()}


def scenario_truncated(port):
    return {name: send_raw(port, payload, shut=True) for name, payload in TRUNCATED.items()}


def scenario_big_headers(port, size):
    size = int(size)
    hdrs = b"".join(b"X-Fill-%d: %s\r\n" % (i, b"v" * 1000) for i in range(size // 1000 + 1))
    headers = send_raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
    target = send_raw(port, b"GET /" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    return {"headers": headers, "target": target}


def scenario_big_body(port, size):
    size = int(size)
    # Content-Length over the limit: refused before the body is read.
    declared = send_raw(port, b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
                        + b"z" * size)
    # Chunked: the limit is found while reading.
    chunk = b"%x\r\n%s\r\n" % (size // 2 + 1, b"y" * (size // 2 + 1))
    chunked = send_raw(port, b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + chunk * 2 + b"0\r\n\r\n")
    return {"declared": declared, "chunked": chunked}


def scenario_slowloris(port, interval):
    """Send a header byte every `interval` seconds and never finish."""
    interval = float(interval)
    s = connect(port, 60)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 60
    data, how = b"", "timeout"
    while time.monotonic() < deadline:
        try:
            b = s.recv(65536)
            if not b:
                how = "eof"
                break
            data += b
            continue
        except BlockingIOError:
            pass
        except ConnectionResetError:
            how = "reset"
            break
        try:
            s.send(b"X")
            sent += 1
        except (BrokenPipeError, ConnectionResetError):
            how = "reset"
            break
        time.sleep(interval)
    s.close()
    return {"status": status_of(data), "how": how, "sent": sent}


def scenario_idle(port):
    s = connect(port, 60)
    data, how = read_until_close(s)
    s.close()
    return {"how": how, "bytes": len(data)}


def scenario_disconnect(port, path):
    """Read the head and a little of a large body, then reset."""
    s = connect(port)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    got = b""
    while len(got) < 65536:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST
    return {"status": status_of(got), "bytes": len(got)}


def scenario_stall(port, path, secs):
    """Ask for a large body, never read it, hang up after `secs`."""
    s = connect(port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    time.sleep(float(secs))
    s.close()
    return {"slept": float(secs)}


def scenario_upgrade(port):
    """A protocol switch is not offered: a normal answer, then close."""
    return send_raw(port, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                          b"Upgrade: websocket\r\n\r\n")


def scenario_pipeline(port):
    """Three requests in one write; the last asks to close."""
    reqs = (b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"PUT /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s = connect(port)
    s.sendall(reqs)
    data, how = read_until_close(s)
    s.close()
    out = []
    rest = data
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        body, rest = rest[:n], rest[n:]
        out.append({"status": status_of(head), "body": body.decode("latin-1"),
                    "connection": hdrs.get("connection")})
    return {"responses": out, "how": how}


def scenario_continue(port, size):
    """Expect: 100-continue by hand: the 100 must come before any body byte."""
    size = int(size)
    body = bytes((i * 7) % 251 for i in range(size))
    s = connect(port)
    s.sendall(b"PUT /cont HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\n\r\n" % size)
    interim = b""
    while b"\r\n\r\n" not in interim:
        b = s.recv(1)
        if not b:
            break
        interim += b
    s.sendall(body)
    # one response (keep-alive: do not wait for the close)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    s.close()
    return {"interim": interim.decode("latin-1").strip(), "status": status_of(head),
            "body": rest[:n].decode("latin-1"), "sha256": hashlib.sha256(body).hexdigest()}


def scenario_chunked(port, size):
    size = int(size)
    body = bytes((i * 13 + 5) % 256 for i in range(size))

    def gen():
        for i in range(0, size, 7777):
            yield body[i:i + 7777]

    c = http.client.HTTPConnection(HOST, port, timeout=30)
    c.request("POST", "/chunked?x=1", body=gen(), encode_chunked=True,
              headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    out = r.read().decode()
    c.close()
    return {"status": r.status, "body": out, "sha256": hashlib.sha256(body).hexdigest(), "size": size}


def scenario_trailer(port):
    r = send_raw(port, b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                       b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Checksum: xyz\r\n\r\n")
    return r


def scenario_http10(port):
    return send_raw(port, b"GET /ten HTTP/1.0\r\n\r\n")


def scenario_concurrent(port, n):
    """n connections, each with a request in flight at the same time."""
    n = int(n)
    results = [None] * n

    def one(i):
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=60)
            c.request("GET", "/c/%d" % i)
            r = c.getresponse()
            results[i] = (r.status, r.read().decode())
            c.close()
        except Exception as e:  # reported, not raised: the spec checks
            results[i] = (None, repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = sum(1 for st, body in results if st == 200)
    bad = [r for r in results if r[0] != 200][:5]
    bodies_ok = all(body == "c/%d" % i for i, (st, body) in enumerate(results) if st == 200)
    return {"ok": ok, "bad": bad, "bodies_ok": bodies_ok}


def scenario_keepalive(port):
    """http.client reuses one connection for several requests."""
    c = http.client.HTTPConnection(HOST, port, timeout=30)
    out = []
    for i in range(3):
        c.request("GET", "/ka/%d" % i)
        r = c.getresponse()
        out.append([r.status, r.read().decode()])
    c.close()
    return {"responses": out}


def main():
    # The fd-limit spec lowers the soft limit for the server it starts; the
    # probe, its child, takes the hard limit back.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    name, port = sys.argv[1], int(sys.argv[2])
    fn = globals()["scenario_" + name]
    print(json.dumps(fn(port, *sys.argv[3:])))


if __name__ == "__main__":
    main()
