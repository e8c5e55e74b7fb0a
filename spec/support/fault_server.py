#!/usr/bin/python3
"""A scriptable misbehaving HTTP/1.1 server for the client's retry and error specs.

usage: /usr/bin/python3 fault_server.py [PORT]

Listens on 127.0.0.1:PORT (0 or absent: any free port), one thread per
connection, keep-alive as HTTP/1.1 allows, and prints the port number on a
line of its own once it accepts connections. Standard library only.

Control API (these paths are never recorded and never consume a step):

  POST /__script    body: a JSON list of steps, or {"steps": [...],
                    "default": {...}}. Steps are appended to the queue; each
                    later request takes the next step, in arrival order.
                    Answers {"queued": n} (steps waiting).
  GET  /__requests  the requests received so far, oldest first: a JSON list
                    of {method, path, query, headers (lower-case names),
                    body_length, time (server's time.time()), step (the step
                    it consumed, or null for the default), peer_port
                    (the client's port: one value per connection)}.
  POST /__reset     forget the steps, the requests and the default.

A step (every field optional):

  {"status": 503, "headers": {"x-amzn-errortype": "..."}, "body": "..."}
      an ordinary response (Content-Length added unless given).
  {"action": "reset"}      read the request, then close with an RST.
  {"action": "close"}      read the request, then close without answering.
  {"action": "delay", "seconds": 1.5, <response fields>}
      wait, then answer the response.
  {"action": "truncate", <response fields>, "length": n}
      send the headers with Content-Length n (default len(body) + 100),
      send the body, then close: the client sees a short body.
  {"action": "slow_body", <response fields>, "chunk": 1, "interval": 0.1}
      send the headers at once, then the body `chunk` bytes at a time,
      `interval` seconds apart.
  "times": k               use the step for the next k requests (default 1).

The default response when no step waits: 200, empty body, unless a
"default" step was given (with the same fields as a step).

Runs until SIGTERM/SIGKILL (see spec/support/fault_server.lua).
"""
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOCK = threading.Lock()
STATE = {"steps": [], "requests": [], "default": None, "step_counter": 0}
ACTIONS = {None, "reset", "close", "delay", "truncate", "slow_body"}


def check_step(step):
    if not isinstance(step, dict):
        raise ValueError("a step must be an object")
    if step.get("action") not in ACTIONS:
        raise ValueError("unknown action %r" % step.get("action"))
    times = step.get("times", 1)
    if not isinstance(times, int) or times < 1:
        raise ValueError("times must be a positive integer")
    return step


def take_step():
    """The next scripted step (and its number), or the default (None)."""
    with LOCK:
        steps = STATE["steps"]
        if steps:
            step = steps[0]
            step["_left"] -= 1
            if step["_left"] == 0:
                steps.pop(0)
            return step, step["_id"]
        return STATE["default"], None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault_server"

    def log_message(self, fmt, *args):  # keep the log for real problems
        pass

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            total = bytearray()
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(total)
                total += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def control(self, path, body):
        if path == "/__script" and self.command == "POST":
            try:
                doc = json.loads(body or b"[]")
                if isinstance(doc, dict) and ("steps" in doc or "default" in doc):
                    steps, default = doc.get("steps") or [], doc.get("default")
                else:
                    steps, default = doc, None
                if isinstance(steps, dict) and not steps:
                    steps = []  # an empty Lua table encodes as {}
                if not isinstance(steps, list):
                    raise ValueError("a list of steps is expected")
                steps = [check_step(s) for s in steps]
                if default is not None:
                    check_step(default)
            except ValueError as e:
                return self.send_json(400, {"error": str(e)})
            with LOCK:
                for s in steps:
                    STATE["step_counter"] += 1
                    s["_id"] = STATE["step_counter"]
                    s["_left"] = s.get("times", 1)
                    STATE["steps"].append(s)
                if default is not None:
                    STATE["default"] = default
                queued = sum(s["_left"] for s in STATE["steps"])
            return self.send_json(200, {"queued": queued})
        if path == "/__requests" and self.command == "GET":
            with LOCK:
                reqs = list(STATE["requests"])
            return self.send_json(200, reqs)
        if path == "/__reset" and self.command == "POST":
            with LOCK:
                STATE["steps"].clear()
                STATE["requests"].clear()
                STATE["default"] = None
            return self.send_json(200, {"reset": True})
        return self.send_json(404, {"error": "unknown control path " + path})

    def handle_any(self):
        url = urlsplit(self.path)
        body = self.read_body()
        if url.path.startswith("/__"):
            return self.control(url.path, body)
        step, step_id = take_step()
        with LOCK:
            STATE["requests"].append({
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_length": len(body),
                "time": time.time(),
                "step": step_id,
                "peer_port": self.client_address[1],
            })
        self.perform(step or {})

    def perform(self, step):
        action = step.get("action")
        if action == "reset":
            # SO_LINGER on with a zero timeout: close() sends RST, not FIN.
            # Closed here, before socketserver's shutdown(SHUT_WR) could send
            # a FIN first.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if action == "close":
            self.close_connection = True
            return
        if action == "delay":
            time.sleep(float(step.get("seconds", 1)))
        status = int(step.get("status", 200))
        body = step.get("body", "")
        body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = dict(step.get("headers") or {})
        names = {k.lower() for k in headers}
        length = len(body)
        if action == "truncate":
            length = int(step.get("length", len(body) + 100))
            self.close_connection = True
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        if "content-length" not in names:
            self.send_header("Content-Length", str(length))
        if action == "truncate":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if action == "slow_body":
            chunk = max(1, int(step.get("chunk", 1)))
            interval = float(step.get("interval", 0.1))
            for i in range(0, len(body), chunk):
                self.wfile.write(body[i:i + chunk])
                self.wfile.flush()
                if i + chunk < len(body):
                    time.sleep(interval)
        else:
            self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError, socket.timeout):
            self.close_connection = True  # the client went away: nothing to answer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main(argv):
    if len(argv) > 2:
        sys.exit(__doc__)
    port = int(argv[1]) if len(argv) == 2 else 0
    srv = Server(("127.0.0.1", port), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        pass
