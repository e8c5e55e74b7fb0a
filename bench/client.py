#!/usr/bin/python3
"""Client benchmark runner (see bench/README.md, "Client"). Started by bench/run.

Starts the nginx of bench/client_nginx.lua (S3- and Lambda-shaped answers on
loopback), then for each operation (HeadObject, PutObject 1 KiB, GetObject
1 KiB, ListObjectsV2 of a 1,000-key page, Lambda Invoke) runs N calls
through four clients, each as its own child process, ROUNDS times
interleaved:

  aio-aws        lua5.4 bench/client.lua OP URL N K          (K tasks in aws.run)
  boto3          /usr/bin/python3 bench/client_boto3.py OP URL N 1
  boto3-threads  /usr/bin/python3 bench/client_boto3.py OP URL N K   (K threads, one client)
  floor          bench/out/floor OP_URL N K METHOD BYTES     (unsigned, plain libcurl multi)

For every run, os.wait4 gives that child's own rusage: CPU (user + sys) per
call and peak RSS. Each child also prints the CPU it spent before its first
call and the wall time of its calls, so start-up (imports, model loading)
can be told apart from the per-call cost. nginx's CPU per call is read from
/proc around each run. Then the CPU to parse one list page is measured
inside each client (bench/client.lua --parse, bench/client_boto3.py --parse).
Prints a table of medians and writes bench/out/client.json.

Environment: N (default 5000 calls per operation per round), N_LIST
(ListObjectsV2 calls, default N // 10: boto3 spends ~50 ms a page),
K (default 32), ROUNDS (default 5), PIN (default 1, as bench/transport.py),
PARSE_ITERS (default 200 pages for the parse measurement; boto3 parses
PARSE_ITERS // 10).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

import transport as tp  # bench/transport.py: env_int, log, tail, Nginx, machine

ROOT, OUT = tp.ROOT, tp.OUT
PYTHON = "/usr/bin/python3"  # Debian's, with python3-boto3 (not a pyenv first on PATH)

BUCKET, KEY, FUNCTION = "bench-bucket", "obj-1k", "bench-fn"  # bench/client_nginx.lua
INVOKE_PAYLOAD_BYTES = len(b'{"id":12345,"action":"bench"}')    # bench/client.lua

# key, name, floor's path, method, body bytes
OPS = [
    ("head", "HeadObject", f"/{BUCKET}/{KEY}", "HEAD", None),
    ("put", "PutObject 1 KiB", f"/{BUCKET}/{KEY}", "PUT", 1024),
    ("get", "GetObject 1 KiB", f"/{BUCKET}/{KEY}", "GET", None),
    ("list", "ListObjectsV2 1,000 keys", f"/{BUCKET}?list-type=2&encoding-type=url", "GET", None),
    ("invoke", "Lambda Invoke", f"/2015-03-31/functions/{FUNCTION}/invocations", "POST", INVOKE_PAYLOAD_BYTES),
]


class ClientNginx(tp.Nginx):
    """bench/client_nginx.lua: prints "PORT PID", stops nginx when its stdin
    closes (the rest is bench/transport.py's Nginx)."""

    def __init__(self):  # pylint: disable=super-init-not-called
        self.err_path = os.path.join(OUT, "client_nginx.stderr")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            ["lua5.4", "bench/client_nginx.lua"], cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        line = self.proc.stdout.readline().split()
        if len(line) != 2:
            self.proc.wait()
            sys.exit("bench: could not start nginx:\n" + tp.tail(self.err_path, 30))
        self.port, self.pid = int(line[0]), int(line[1])


def run_child(argv, cpus, out_path, err_path):
    """Run argv to completion; return (exit code, wall seconds, rusage,
    stdout). stdout goes to a file: the children report there."""
    with open(out_path, "w") as out, open(err_path, "w") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    with open(out_path, errors="replace") as f:
        return child.returncode, wall, usage, f.read()


def reported(stdout, name):
    m = re.findall(rf"\b{name}=([0-9.]+)", stdout)
    return float(m[-1]) if m else None


def measure(client, op, n, cpus, server):
    key = f"{client['key']}-{op[0]}"
    out_path, err_path = (os.path.join(OUT, f"client-{key}.{ext}") for ext in ("stdout", "stderr"))
    server_before = server.cpu_seconds()
    rc, wall, ru, stdout = run_child(client["argv"](op, n), cpus, out_path, err_path)
    server_cpu = server.cpu_seconds() - server_before
    cpu = ru.ru_utime + ru.ru_stime
    setup, calls_wall = reported(stdout, "setup_cpu_s"), reported(stdout, "calls_wall_s")
    if rc == 0 and (setup is None or not calls_wall):
        rc = -1000
    r = {
        "rc": rc,
        "wall_s": round(wall, 4),
        "calls_wall_s": calls_wall,
        "req_per_s": round(n / calls_wall, 1) if calls_wall else None,
        "cpu_us_per_req": round(cpu * 1e6 / n, 3),
        "steady_cpu_us_per_req": round((cpu - (setup or 0)) * 1e6 / n, 3),
        "user_us_per_req": round(ru.ru_utime * 1e6 / n, 3),
        "sys_us_per_req": round(ru.ru_stime * 1e6 / n, 3),
        "setup_cpu_ms": round((setup or 0) * 1e3, 2),
        "peak_rss_kb": ru.ru_maxrss,  # Linux: kilobytes
        "server_cpu_us_per_req": round(server_cpu * 1e6 / n, 3),
        "error": None,
    }
    if rc != 0:
        r["error"] = tp.tail(err_path) or ("no setup_cpu_s/calls_wall_s line" if rc == -1000 else f"exit {rc}")
    return r


def probe(argv):
    """None when argv exits 0, else the first line of why not."""
    try:
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    except OSError as e:
        return str(e)
    if p.returncode == 0:
        return None
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    return lines[-1] if lines else f"exit {p.returncode}"


def parse_bench(argv, cpus, rounds, name):
    """Run a --parse child `rounds` times; median us per stage."""
    stages = {}
    for i in range(rounds):
        out_path, err_path = (os.path.join(OUT, f"client-parse-{name}.{ext}") for ext in ("stdout", "stderr"))
        rc, _, _, stdout = run_child(argv, cpus, out_path, err_path)
        if rc != 0:
            return {"error": tp.tail(err_path) or f"exit {rc}"}
        for stage, us, what in re.findall(r"^parse (\S+) ([0-9.]+) us\s+# (.*)$", stdout, re.M):
            stages.setdefault(stage, {"what": what, "runs": []})["runs"].append(float(us))
        tp.log(f"bench: parse {name} {i + 1}/{rounds}: " +
               ", ".join(f"{s} {v['runs'][-1] / 1000:.2f} ms" for s, v in stages.items()))
    for v in stages.values():
        v["median_us"] = statistics.median(v["runs"])
    return {"stages": stages}


def versions():
    def out(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return ""
    return {
        "python": out([PYTHON, "--version"]),
        "boto3": out([PYTHON, "-c", "import boto3, botocore; print(boto3.__version__, botocore.__version__)"]),
        "nginx": out(["/usr/sbin/nginx", "-v"]),
    }


def main():
    n, k, rounds = tp.env_int("N", 5000), tp.env_int("K", 32), tp.env_int("ROUNDS", 5)
    n_list = tp.env_int("N_LIST", max(1, n // 10))
    parse_iters = tp.env_int("PARSE_ITERS", 200)
    pin = os.environ.get("PIN", "1") != "0" and (os.cpu_count() or 1) >= 2
    os.makedirs(OUT, exist_ok=True)
    if not os.access(os.path.join(OUT, "floor"), os.X_OK):
        sys.exit("bench: bench/out/floor is missing; run `sh bench/run` (or `make bench`)")
    count = {op[0]: (n_list if op[0] == "list" else n) for op in OPS}

    server = ClientNginx()
    try:
        url = f"http://127.0.0.1:{server.port}"
        client_cpus = None
        if pin:
            os.sched_setaffinity(server.pid, {0})
            client_cpus = {1}

        def floor_argv(op, m):
            _, _, path, method, body = op
            return ["bench/out/floor", url + path, str(m), str(k), method] + ([str(body)] if body else [])

        clients = [
            {"key": "aio-aws", "name": f"aio-aws ({k} tasks)",
             "argv": lambda op, m: ["lua5.4", "bench/client.lua", op[0], url, str(m), str(k)],
             "probe": ["lua5.4", "bench/client.lua", "--probe"]},
            {"key": "boto3", "name": "boto3 sequential",
             "argv": lambda op, m: [PYTHON, "bench/client_boto3.py", op[0], url, str(m), "1"],
             "probe": [PYTHON, "-c", "import boto3"]},
            {"key": "boto3-threads", "name": f"boto3 {k} threads",
             "argv": lambda op, m: [PYTHON, "bench/client_boto3.py", op[0], url, str(m), str(k)],
             "probe": [PYTHON, "-c", "import boto3"]},
            {"key": "floor", "name": "C floor (libcurl multi)", "argv": floor_argv, "probe": None},
        ]
        for c in clients:
            why = c["probe"] and probe(c["probe"])
            if why:
                c["unavailable"] = why
                tp.log(f"bench: {c['key']} not measured: {why}")
            c["runs"] = {op[0]: [] for op in OPS}
            c["failed"] = {}

        # Warm-up (not recorded): page cache, nginx's first connections, and
        # a failing client found before the long runs.
        active = [c for c in clients if "unavailable" not in c]
        for c in active:
            for op in OPS:
                r = measure(c, op, min(count[op[0]], 20 if op[0] == "list" else 200), client_cpus, server)
                if r["rc"] != 0:
                    c["failed"][op[0]] = r["error"]
                    tp.log(f"bench: {c['key']} failed its {op[0]} warm-up: {r['error']}")

        for rnd in range(rounds):
            for op in OPS:
                # Rotate the order each round so no client always runs first.
                todo = [c for c in active if op[0] not in c["failed"]]
                shift = rnd % len(todo) if todo else 0
                for c in todo[shift:] + todo[:shift]:
                    r = measure(c, op, count[op[0]], client_cpus, server)
                    c["runs"][op[0]].append(r)
                    tp.log(f"bench: round {rnd + 1}/{rounds} {op[0]:6} {c['key']:13} "
                           f"{r['req_per_s'] or 0:>9.0f} req/s {r['steady_cpu_us_per_req']:>9.1f} us/req"
                           + (f"  FAILED: {r['error']}" if r["rc"] else ""))

        parse = {}
        if "unavailable" not in clients[0]:
            parse["aio-aws"] = parse_bench(["lua5.4", "bench/client.lua", "--parse", url, str(parse_iters)],
                                           client_cpus, 3, "aio-aws")
        if "unavailable" not in clients[1]:
            parse["boto3"] = parse_bench([PYTHON, "bench/client_boto3.py", "--parse", url,
                                          str(max(1, parse_iters // 10))], client_cpus, 3, "boto3")
    finally:
        server.stop()

    report(clients, parse, count, k, rounds, pin, url, parse_iters)
    failed = any(c["failed"] or any(r["rc"] for runs in c["runs"].values() for r in runs) for c in clients)
    failed = failed or any("error" in p for p in parse.values())
    return 1 if failed else 0


KEYS = ("req_per_s", "cpu_us_per_req", "steady_cpu_us_per_req", "user_us_per_req", "sys_us_per_req",
        "setup_cpu_ms", "peak_rss_kb", "server_cpu_us_per_req")


def summarize(runs):
    ok = [r for r in runs if r["rc"] == 0]
    if not ok:
        return None
    return {key: statistics.median(r[key] for r in ok) for key in KEYS}


def report(clients, parse, count, k, rounds, pin, url, parse_iters):
    for c in clients:
        c["median"] = {op[0]: summarize(c["runs"][op[0]]) for op in OPS}
    floor = next(c for c in clients if c["key"] == "floor")["median"]
    for c in clients:
        c["ratio"] = {}
        for op in OPS:
            m, f = c["median"][op[0]], floor[op[0]]
            c["ratio"][op[0]] = {
                "cpu": round(m["cpu_us_per_req"] / f["cpu_us_per_req"], 3) if m and f else None,
                "steady": round(m["steady_cpu_us_per_req"] / f["steady_cpu_us_per_req"], 3) if m and f else None,
            }

    print(f"\nclient: {count['head']} calls per operation ({count['list']} for ListObjectsV2), {k} in flight, "
          f"median of {rounds} interleaved rounds{' (nginx on CPU 0, clients on CPU 1)' if pin else ''}")
    print("CPU = user+sys of the client process / calls; steady = the same minus its start-up CPU")
    fmt = "{:<25} {:<24} {:>9} {:>10} {:>7} {:>10} {:>7} {:>9} {:>9} {:>8}"
    print(fmt.format("operation", "client", "req/s", "CPU us", "x floor", "steady us", "x floor",
                     "start ms", "peak RSS", "nginx us"))
    for op in OPS:
        for i, c in enumerate(clients):
            label = op[1] if i == 0 else ""
            m = c["median"][op[0]]
            if m is None:
                why = c.get("unavailable") or c["failed"].get(op[0]) or "every run failed"
                print(f"{label:<25} {c['name']:<24} not measured: {why}")
                continue
            r = c["ratio"][op[0]]
            print(fmt.format(label, c["name"], f"{m['req_per_s']:.0f}", f"{m['cpu_us_per_req']:.1f}",
                             f"{r['cpu']:.2f}" if r["cpu"] else "-", f"{m['steady_cpu_us_per_req']:.1f}",
                             f"{r['steady']:.2f}" if r["steady"] else "-", f"{m['setup_cpu_ms']:.0f}",
                             f"{m['peak_rss_kb'] / 1024:.1f} MB", f"{m['server_cpu_us_per_req']:.1f}"))

    print(f"\nListObjectsV2 page (1,000 keys) parse CPU, inside the client, median of 3 runs "
          f"({parse_iters} pages aio-aws, {max(1, parse_iters // 10)} boto3):")
    for name, p in parse.items():
        if "error" in p:
            print(f"  {name}: failed: {p['error']}")
            continue
        for stage, v in p["stages"].items():
            print(f"  {name:8} {stage:15} {v['median_us'] / 1000:8.2f} ms  {v['what']}")

    doc = {
        "benchmark": "client",
        "config": {"n": count["head"], "n_list": count["list"], "k": k, "rounds": rounds, "pinned": pin,
                   "url": url, "parse_iters": parse_iters},
        "machine": dict(tp.machine(), **versions()),
        "operations": {op[0]: op[1] for op in OPS},
        "clients": {c["key"]: {
            "name": c["name"], "argv": {op[0]: c["argv"](op, count[op[0]]) for op in OPS},
            "unavailable": c.get("unavailable"), "failed": c["failed"] or None,
            "median": c["median"], "ratio_to_floor": c["ratio"], "runs": c["runs"],
        } for c in clients},
        "parse": parse,
    }
    path = os.path.join(OUT, "client.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\nwritten: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
