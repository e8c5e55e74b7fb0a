#!/usr/bin/python3
"""A loopback TCP server for the client error paths nginx cannot produce.

usage: /usr/bin/python3 blackhole.py MODE [PORT]

Listens on 127.0.0.1:PORT (0 or absent: any free port), then prints the port
number on a line of its own on stdout once it is ready. Modes:

  noaccept  listen with backlog 0 and never accept; the accept queue is filled
            by this process's own connection first, so the kernel drops the
            SYN of every later client: the client's connect times out.
  silent    accept, read whatever arrives, never answer: the client's total
            (or first-byte) timeout fires before any header.
  reset     accept, wait for the request (up to 2 s), then close with an RST
            (SO_LINGER 0): the client sees "connection reset by peer".
  garbage   accept, wait for the request, answer bytes that are not HTTP, close.

Runs until SIGTERM/SIGKILL (see spec/support/blackhole.lua).
"""
import selectors
import socket
import struct
import sys
import time

GARBAGE = b"SSH-2.0-blackhole \x00\xff\xfe this is not HTTP\r\n\r\n"
READY_WAIT = 2.0  # reset/garbage: how long to wait for the request first


def announce(listener):
    print(listener.getsockname()[1], flush=True)


def noaccept(listener):
    """Backlog 0: Linux queues one connection, then drops SYNs while the
    queue is full (tcp_conn_request, sk_acceptq_is_full). Fill it ourselves
    and check that a further connect really hangs before announcing."""
    listener.listen(0)
    port = listener.getsockname()[1]
    held = []
    for _ in range(16):
        c = socket.socket()
        c.settimeout(0.3)
        try:
            c.connect(("127.0.0.1", port))
        except (socket.timeout, TimeoutError):
            c.close()  # this SYN was dropped: the queue is full
            announce(listener)
            while True:
                time.sleep(3600)
        held.append(c)  # completed: it occupies a slot in the accept queue
    sys.exit("blackhole noaccept: the accept queue never filled")


def serve(listener, mode):
    listener.listen(1024)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    announce(listener)
    pending = {}  # reset/garbage: socket -> deadline to act without a request
    while True:
        for key, _ in sel.select(timeout=0.1):
            sock = key.fileobj
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                pending[conn] = time.monotonic() + READY_WAIT
                continue
            try:
                data = sock.recv(65536)
            except (ConnectionError, BlockingIOError):
                data = b""
            if not data or mode != "silent":
                finish(sel, pending, sock, mode if data else "eof")
        now = time.monotonic()
        for sock, deadline in list(pending.items()):
            if mode != "silent" and now >= deadline:
                finish(sel, pending, sock, mode)


def finish(sel, pending, sock, how):
    sel.unregister(sock)
    pending.pop(sock, None)
    try:
        if how == "reset":
            # SO_LINGER on with a zero timeout: close() sends RST, not FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif how == "garbage":
            sock.setblocking(True)
            sock.settimeout(1.0)
            sock.sendall(GARBAGE)
            # Half-close and drain, so unread request bytes do not turn the
            # close into an RST that could overtake the garbage.
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
    except OSError:
        pass
    sock.close()


def main(argv):
    if len(argv) not in (2, 3) or argv[1] not in ("noaccept", "silent", "reset", "garbage"):
        sys.exit(__doc__)
    port = int(argv[2]) if len(argv) == 3 else 0
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    if argv[1] == "noaccept":
        noaccept(listener)
    else:
        serve(listener, argv[1])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        pass
