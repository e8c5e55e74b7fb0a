#!/usr/bin/python3
"""Transport benchmark runner (see bench/README.md). Started by bench/run.

Starts the test nginx (bench/nginx_up.lua), then runs N GETs of /small with
K in flight through three clients, each as its own child process, ROUNDS
times interleaved:

  aio-aws   lua5.4 bench/transport.lua URL N K
  floor     bench/out/floor URL N K          (plain libcurl multi loop in C)
  curl      curl --parallel --parallel-max K --config <N urls>

For every run, os.wait4 gives that child's own rusage: CPU (user + sys) per
request and peak RSS. Wall time gives requests/s. nginx's CPU per request is
read from /proc around each run. Prints a table of medians and writes
bench/out/transport.json.

Python rather than sh because os.wait4 returns the rusage of exactly the
child it reaps.

Environment: N (default 50000), K (default 32), ROUNDS (default 5),
PIN (default 1: with 2+ CPUs, nginx on the first CPU and the clients on the
second, for steadier numbers; 0: let the scheduler decide).
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name, default):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        sys.exit(f"bench: {name} must be a positive integer, got {raw!r}")
    return value


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def tail(path, lines=5):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return ""


class Nginx:
    """The test nginx, through bench/nginx_up.lua: it prints "PORT PID" and
    stops nginx when its stdin closes (also when this runner dies)."""

    def __init__(self):
        self.err_path = os.path.join(OUT, "nginx_up.stderr")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            ["lua5.4", "bench/nginx_up.lua"], cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        line = self.proc.stdout.readline().split()
        if len(line) != 2:
            self.proc.wait()
            sys.exit("bench: could not start nginx:\n" + tail(self.err_path, 30))
        self.port, self.pid = int(line[0]), int(line[1])

    def cpu_seconds(self):
        """nginx's CPU time so far (one process: master_process off), summed
        over its threads. schedstat counts nanoseconds; stat only ticks."""
        try:
            total = 0
            for tid in os.listdir(f"/proc/{self.pid}/task"):
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.err.close()


def run_child(argv, cpus, err_path):
    """Run argv to completion; return (exit code, wall seconds, rusage)."""
    with open(err_path, "w") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return child.returncode, wall, usage


def measure(client, n, cpus, server):
    err_path = os.path.join(OUT, client["key"] + ".stderr")
    server_before = server.cpu_seconds()
    rc, wall, ru = run_child(client["argv"](n), cpus, err_path)
    server_cpu = server.cpu_seconds() - server_before
    cpu = ru.ru_utime + ru.ru_stime
    return {
        "rc": rc,
        "wall_s": round(wall, 4),
        "req_per_s": round(n / wall, 1),
        "cpu_us_per_req": round(cpu * 1e6 / n, 3),
        "user_us_per_req": round(ru.ru_utime * 1e6 / n, 3),
        "sys_us_per_req": round(ru.ru_stime * 1e6 / n, 3),
        "peak_rss_kb": ru.ru_maxrss,  # Linux: kilobytes
        "server_cpu_us_per_req": round(server_cpu * 1e6 / n, 3),
        "error": tail(err_path) if rc != 0 else None,
    }


def probe_project():
    """None when bench/transport.lua can load the client, else why not."""
    p = subprocess.run(["lua5.4", "bench/transport.lua", "--probe"], cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode == 0:
        return None
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    return lines[0] if lines else f"exit {p.returncode}"


def curl_config(url, n):
    """A curl --config file with n transfers of url, each to /dev/null
    (curl wants an output per URL)."""
    path = os.path.join(OUT, f"curl-{n}.cfg")
    with open(path, "w") as f:
        f.write(f'url = "{url}"\noutput = "/dev/null"\n' * n)
    return path


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    def first_line(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return ""
    return {
        "cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
        "curl": first_line(["curl", "--version"]),
        "lua": first_line(["lua5.4", "-v"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def main():
    n, k, rounds = env_int("N", 50000), env_int("K", 32), env_int("ROUNDS", 5)
    pin = os.environ.get("PIN", "1") != "0" and (os.cpu_count() or 1) >= 2
    os.makedirs(OUT, exist_ok=True)
    if not os.access(os.path.join(OUT, "floor"), os.X_OK):
        sys.exit("bench: bench/out/floor is missing; run `sh bench/run` (or `make bench`)")

    server = Nginx()
    try:
        url = f"http://127.0.0.1:{server.port}/small"
        client_cpus = None
        if pin:
            os.sched_setaffinity(server.pid, {0})
            client_cpus = {1}
        cfg = curl_config(url, n)
        clients = [
            {"key": "aio-aws", "name": "aio-aws (lua5.4 bench/transport.lua)",
             "argv": lambda m: ["lua5.4", "bench/transport.lua", url, str(m), str(k)]},
            {"key": "floor", "name": "C floor (libcurl multi)",
             "argv": lambda m: ["bench/out/floor", url, str(m), str(k)]},
            {"key": "curl", "name": "curl --parallel",
             "argv": lambda m: ["curl", "--silent", "--show-error", "--no-progress-meter", "--fail",
                                "--parallel", "--parallel-max", str(k),
                                "--config", cfg if m == n else curl_config(url, m)]},
        ]
        why = probe_project()
        if why:
            clients[0]["unavailable"] = why
            log(f"bench: aio-aws not measured: bench/transport.lua cannot load the client yet: {why}")

        # Warm-up (not recorded): page cache, nginx's first connections, and
        # a failing client found before the long runs.
        active = [c for c in clients if "unavailable" not in c]
        for c in active:
            r = measure(c, min(n, 2000), client_cpus, server)
            if r["rc"] != 0:
                c["failed"] = r["error"] or f"exit {r['rc']}"
                log(f"bench: {c['key']} failed its warm-up: {c['failed']}")
        active = [c for c in active if "failed" not in c]

        for c in clients:
            c["runs"] = []
        for rnd in range(rounds):
            # Rotate the order each round so no client always runs first.
            order = active[rnd % len(active):] + active[:rnd % len(active)] if active else []
            for c in order:
                r = measure(c, n, client_cpus, server)
                c["runs"].append(r)
                log(f"bench: round {rnd + 1}/{rounds} {c['key']:8} {r['req_per_s']:>10.0f} req/s "
                    f"{r['cpu_us_per_req']:>7.2f} us/req" + (f"  FAILED: {r['error']}" if r["rc"] else ""))
    finally:
        server.stop()

    report(clients, n, k, rounds, pin, url)
    failed = any("failed" in c or any(r["rc"] for r in c["runs"]) for c in clients)
    return 1 if failed else 0


def summarize(c):
    ok = [r for r in c["runs"] if r["rc"] == 0]
    if not ok:
        return None
    keys = ("req_per_s", "cpu_us_per_req", "user_us_per_req", "sys_us_per_req",
            "peak_rss_kb", "server_cpu_us_per_req")
    return {key: statistics.median(r[key] for r in ok) for key in keys}


def report(clients, n, k, rounds, pin, url):
    for c in clients:
        c["median"] = summarize(c)
    floor = next(c for c in clients if c["key"] == "floor")["median"]
    for c in clients:
        c["cpu_ratio_to_floor"] = (round(c["median"]["cpu_us_per_req"] / floor["cpu_us_per_req"], 3)
                                   if c["median"] and floor else None)

    print(f"\ntransport: {n} GETs of /small, {k} in flight, median of {rounds} interleaved rounds"
          f"{' (nginx on CPU 0, clients on CPU 1)' if pin else ''}")
    head = ("client", "req/s", "CPU us/req", "x floor", "peak RSS", "nginx us/req")
    fmt = "{:<38} {:>10} {:>11} {:>8} {:>10} {:>13}"
    print(fmt.format(*head))
    for c in clients:
        m = c["median"]
        if m is None:
            why = c.get("unavailable") or c.get("failed") or "every run failed"
            print(f"{c['name']:<38} not measured: {why}")
            continue
        print(fmt.format(c["name"], f"{m['req_per_s']:.0f}", f"{m['cpu_us_per_req']:.2f}",
                         f"{c['cpu_ratio_to_floor']:.2f}", f"{m['peak_rss_kb'] / 1024:.1f} MB",
                         f"{m['server_cpu_us_per_req']:.2f}"))

    doc = {
        "benchmark": "transport",
        "config": {"n": n, "k": k, "rounds": rounds, "pinned": pin, "url": url},
        "machine": machine(),
        "clients": {c["key"]: {
            "name": c["name"], "argv": c["argv"](n),
            "unavailable": c.get("unavailable"), "failed": c.get("failed"),
            "median": c["median"], "cpu_ratio_to_floor": c["cpu_ratio_to_floor"],
            "runs": c["runs"],
        } for c in clients},
    }
    path = os.path.join(OUT, "transport.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\nwritten: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
