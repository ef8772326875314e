#!/usr/bin/env python3
"""authd's side-by-side benchmark (issue 7). Run it through bench/run.sh,
which installs the load tools and builds the binaries first.

Everything is a ratio measured in one run on one machine: authd against a
baseline server built from the same stack that answers every request with an
empty 200 (examples/baseline.rs), against Express + express-session +
connect-redis (bench/peer/), and against reference operations timed in the
same run (one argon2id verify, one durable redb commit). The server side is
pinned to one core and the load tool to another; each throughput row also
gives the server's CPU time per request (utime+stime from /proc/PID/stat).

Raw output goes to bench/results/<stamp>/; a full run also rewrites
bench/RESULTS.md. Only the Python standard library is used.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
# run.sh says which build to use (BENCH_PROFILE=dev: CI's end-to-end check).
RELEASE = os.environ.get("BENCH_BIN_DIR") or os.path.join(ROOT, "target", "release")
PROFILE = os.environ.get("BENCH_PROFILE", "release")
AUTHD = os.path.join(RELEASE, "authd")
BASELINE = os.path.join(RELEASE, "examples", "baseline")
TOOL = os.path.join(RELEASE, "examples", "benchtool")
WRK_REPORT = os.path.join(BENCH, "wrk", "report.lua")
WRK_RR = os.path.join(BENCH, "wrk", "rr.lua")
HZ = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-password"  # benchtool's seeded users
SESSION_PATH = "/rest/auth/1/session"
VERIFY_PATH = "/rest/authd/1/verify"

# Cores: the server gets SERVER_CPU, every load tool LOAD_CPU.
_cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
LOAD_CPU = str(_cpus[0])
SERVER_CPU = str(_cpus[1] if len(_cpus) > 1 else _cpus[0])
# CPU per remember-me login (us) of authd's HTTP path and of serving logins
# from memory, measured once with the in-memory store (PROFILE.md, tenth
# pass); target 5's note adds them to the log layout's measured cost.
HTTP_US = (16, 19)
OVERLAY_US = (3.7, 4.1)
SERVER_CORES = 1  # the server is pinned to one core


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out = os.path.join(BENCH, "results", stamp + ("-quick" if self.quick else ""))
        self.raw = os.path.join(self.out, "raw")
        self.data = os.path.join(self.out, "data")
        os.makedirs(self.raw, exist_ok=True)
        os.makedirs(self.data, exist_ok=True)
        self.procs = []  # everything started, stopped at the end
        self.rows = []
        self.notes = []
        self.raw_counter = 0
        q = self.quick
        self.runs = args.runs or (1 if q else 5)
        self.duration = args.duration or (2 if q else 10)
        # Targets 1 and 2 compare close rates: on this kind of VM two adjacent
        # 10 s runs of the same server differ by up to 10 %, so they take
        # twice the runs at half the length (same time, finer alternation).
        self.fine_runs = args.runs or (1 if q else 10)
        self.fine_duration = args.duration or (2 if q else 5)
        self.many = args.sessions or (5_000 if q else 100_000)
        self.scale = args.scale or (20_000 if q else 1_000_000)
        self.remember_per_run = 30_000 if q else 100_000
        self.remember_duration = min(self.duration, 2 if q else 5)
        self.sweep_interval = 4 if q else 12
        self.results = {"config": {
            "quick": q, "runs": self.runs, "duration_s": self.duration, "many_sessions": self.many,
            "scale_sessions": self.scale, "server_cpu": SERVER_CPU, "load_cpu": LOAD_CPU}}

    # ---------------------------------------------------------------- processes

    def raw_path(self, name):
        self.raw_counter += 1
        return os.path.join(self.raw, f"{self.raw_counter:03d}-{name}")

    def start(self, name, argv, env=None, cpu=None, ready=r"URL:\s+(https://\S+)", timeout=60):
        """Starts a process on `cpu` with output to a log; waits until the
        log matches `ready` and returns (proc, match, time it matched)."""
        path = self.raw_path(name + ".log")
        f = open(path, "wb")
        cmd = (["taskset", "-c", cpu] if cpu else []) + argv
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True)
        p.log_path = path
        p.name = name
        self.procs.append(p)
        deadline = time.time() + timeout
        pattern = re.compile(ready)
        while time.time() < deadline:
            with open(path, "rb") as r:
                text = r.read().decode("utf-8", "replace")
            m = pattern.search(text)
            if m:
                return p, m, time.time()
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited ({p.returncode}) before it was ready; see {path}:\n{text[-2000:]}")
            time.sleep(0.005)
        raise RuntimeError(f"{name} not ready after {timeout}s; see {path}")

    def stop(self, p, timeout=20):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            try:
                self.stop(p, timeout=10)
            except Exception as e:  # keep stopping the others
                log(f"could not stop {p.name}: {e}")

    def tool(self, *args, cpu=None, name="benchtool"):
        cmd = (["taskset", "-c", cpu] if cpu else []) + [TOOL, *map(str, args)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        with open(self.raw_path(name + ".txt"), "w") as f:
            f.write(" ".join(cmd) + "\n" + r.stdout + r.stderr)
        if r.returncode != 0:
            raise RuntimeError(f"benchtool {args[0]} failed: {r.stderr.strip()}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def start_authd(self, name, data, *extra):
        p, m, t = self.start(name, [AUTHD, "--data", data, "--listen", "127.0.0.1:0", *extra], cpu=SERVER_CPU)
        p.url = m.group(1)
        p.ready_at = t
        p.cert = os.path.join(data, "tls", "cert.pem")
        return p

    # ---------------------------------------------------------------- clients

    def https(self, url, cert):
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=cert)
        return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)

    def request(self, url, cert, method, path, body=None, headers=None):
        conn = self.https(url, cert)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        cookies = [c.split(";", 1)[0] for c in r.headers.get_all("Set-Cookie") or []]
        conn.close()
        return r.status, cookies, payload

    def login(self, url, cert, user, path=SESSION_PATH, password=PASSWORD):
        status, cookies, payload = self.request(url, cert, "POST", path, {"username": user, "password": password})
        if status != 200:
            raise RuntimeError(f"login as {user} at {url}{path} gave {status}: {payload[:300]!r}")
        jar = {}
        for c in cookies:
            k, _, v = c.partition("=")
            if v:
                jar[k] = v
        return "; ".join(f"{k}={v}" for k, v in jar.items())

    def status(self, url, cert, path, cookie):
        return self.request(url, cert, "GET", path, headers={"Cookie": cookie})[0]

    # ---------------------------------------------------------------- load tools

    @staticmethod
    def ticks(pids):
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total

    def measured(self, pids, run):
        """Runs `run()` (a load run returning a dict with "requests") and adds
        the servers' CPU time per request."""
        before = self.ticks(pids)
        r = run()
        used = self.ticks(pids) - before
        r["cpu_s"] = used / HZ
        r["cpu_us_per_req"] = (used / HZ * 1e6 / r["requests"]) if r["requests"] else None
        return r

    def wrk(self, name, url, conns, duration, script=WRK_REPORT, headers=(), script_args=(), env=None):
        cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "10s",
               "-s", script]
        for h in headers:
            cmd += ["-H", h]
        cmd.append(url)
        if script_args:
            cmd += ["--", *script_args]
        full_env = dict(os.environ, **(env or {}))
        r = subprocess.run(cmd, capture_output=True, text=True, env=full_env)
        with open(self.raw_path(name + ".wrk.txt"), "w") as f:
            f.write(" ".join(cmd) + "\n" + r.stdout + r.stderr)
        m = re.search(r"^BENCHJSON (\{.*\})$", r.stdout, re.M)
        if r.returncode != 0 or not m:
            raise RuntimeError(f"wrk failed for {name}: {r.stdout[-500:]} {r.stderr[-500:]}")
        d = json.loads(m.group(1))
        secs = d["duration_us"] / 1e6
        errors = d["errors_connect"] + d["errors_read"] + d["errors_write"] + d["errors_timeout"]
        return {"tool": "wrk", "requests": d["requests"], "rps": d["requests"] / secs,
                "p50_ms": d["lat_p50_us"] / 1000, "p99_ms": d["lat_p99_us"] / 1000,
                "p999_ms": d["lat_p999_us"] / 1000, "non2xx": d["errors_status"], "errors": errors,
                "exhausted": d["exhausted"]}

    def h2load(self, name, url, conns, duration, headers=(), h1=False, warmup=True, keep_log=False):
        logf = self.raw_path(name + ".h2load.log")
        cmd = ["taskset", "-c", LOAD_CPU, "h2load", "-t1", f"-c{conns}", "-m1", f"-D{duration}",
               f"--log-file={logf}"]
        if warmup:
            cmd.append("--warm-up-time=" + ("500ms" if self.quick else "1s"))
        if h1:
            cmd.append("--h1")
        for h in headers:
            cmd += ["-H", h]
        cmd.append(url)
        r = subprocess.run(cmd, capture_output=True, text=True)
        with open(self.raw_path(name + ".h2load.txt"), "w") as f:
            f.write(" ".join(cmd) + "\n" + r.stdout + r.stderr)
        fin = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", r.stdout)
        req = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                        r"(\d+) errored, (\d+) timeout", r.stdout)
        codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", r.stdout)
        if r.returncode != 0 or not fin or not req or not codes:
            raise RuntimeError(f"h2load failed for {name}: {r.stdout[-800:]} {r.stderr[-500:]}")
        entries = self.h2log(logf)
        if not keep_log:
            os.remove(logf)
        lat = sorted(e[2] for e in entries)
        done = int(req.group(2))
        return {"tool": "h2load", "requests": done, "rps": float(fin.group(2)),
                "p50_ms": pct(lat, 50) / 1000, "p99_ms": pct(lat, 99) / 1000, "p999_ms": pct(lat, 99.9) / 1000,
                "non2xx": int(codes.group(2)) + int(codes.group(3)) + int(codes.group(4)),
                "errors": int(req.group(5)) + int(req.group(6)), "exhausted": 0, "log": entries}

    @staticmethod
    def h2log(path):
        out = []
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    out.append((int(parts[0]), int(parts[1]), int(parts[2])))
        return out

    # ---------------------------------------------------------------- bookkeeping

    def pair(self, key, a, b, runs=None, c=None):
        """Runs a() and b() alternately (A B, B A, ...) and keeps every result;
        with a third side c(), the order rotates (A B C, B C A, C A B, ...)."""
        sides = [("a", a), ("b", b)] + ([("c", c)] if c else [])
        results = {side: [] for side, _ in sides}
        for i in range(runs or self.runs):
            if c:
                k = i % 3
                order = sides[k:] + sides[:k]
            else:
                order = sides if i % 2 == 0 else sides[::-1]
            for side, fn in order:
                r = fn()
                r.pop("log", None)
                results[side].append(r)
                log(f"  {key} run {i + 1} {side}: {fmt_num(r['rps'])} req/s, p99 {r['p99_ms']:.2f} ms, "
                    f"{fmt_num(r.get('cpu_us_per_req'))} us CPU/req, non-2xx {r['non2xx']}, errors {r['errors']}")
        self.results[key] = results
        return results

    def row(self, scenario, authd, ref, target, higher_is_better, limit, unit="", authd_cpu=None, ref_cpu=None,
            note="", ratio=None):
        if authd is None or ref is None:
            self.rows.append({"scenario": scenario, "authd": "n/a", "ref": "n/a", "ratio": "", "target": target,
                              "result": note or "n/a", "authd_cpu": "", "ref_cpu": ""})
            return
        if ratio is None:
            ratio = authd / ref if ref else float("inf")
        if limit is None:
            verdict = "figure"
        else:
            ok = ratio >= limit if higher_is_better else ratio <= limit
            verdict = "PASS" if ok else "MISS"
        self.rows.append({
            "scenario": scenario, "authd": fmt_num(authd) + unit, "ref": fmt_num(ref) + unit,
            "ratio": f"{ratio:.2f}", "target": target, "result": verdict + (f" ({note})" if note else ""),
            "authd_cpu": fmt_num(authd_cpu), "ref_cpu": fmt_num(ref_cpu)})

    def throughput_rows(self, label, res, rps_limit, p99_limit=None, p99_strict_lower=False, ref_name="baseline",
                        note=""):
        a, b = res["a"], res["b"]
        bad = sum(r["non2xx"] + r["errors"] for r in a)
        note = note or (f"{bad} failed/non-2xx" if bad else "")
        self.row(f"{label}: req/s", med(a, "rps"), med(b, "rps"), f">= {rps_limit} x {ref_name}", True, rps_limit,
                 authd_cpu=med(a, "cpu_us_per_req"), ref_cpu=med(b, "cpu_us_per_req"), note=note)
        if p99_limit is not None:
            target = f"< {ref_name}" if p99_strict_lower else f"<= {p99_limit} x {ref_name}"
            self.row(f"{label}: p99 latency", med(a, "p99_ms"), med(b, "p99_ms"), target, False, p99_limit,
                     unit=" ms", note=note)

    # ---------------------------------------------------------------- scenarios

    def machine(self):
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                m = re.search(r"model name\s*:\s*(.*)", f.read())
                cpu = m.group(1) if m else ""
        except OSError:
            pass
        mem = ""
        try:
            with open("/proc/meminfo") as f:
                kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
                mem = f"{kb / 1024 / 1024:.0f} GiB"
        except (OSError, AttributeError):
            pass
        return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
                "python": platform.python_version(), "load_before": os.getloadavg(),
                "busy_before": busy_processes(), "git": git_rev(),
                "tools": {t: tool_version(t) for t in ("wrk", "h2load", "node", "redis-server")}}

    def run(self):
        only = set(self.args.only.split(",")) if self.args.only else None
        want = lambda k: only is None or k in only
        self.results["machine"] = self.machine()
        log(f"results in {os.path.relpath(self.out, ROOT)}; server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}; "
            f"{self.runs} run(s) of {self.duration}s per side")
        main = os.path.join(self.data, "main")
        log(f"seeding {self.many} sessions for the many-sessions scenario")
        rr = os.path.join(self.data, "many-cookies.txt")
        seeded = self.tool("seed", "--data", main, "--sessions", self.many, "--per-user", 10, "--prefix", "seed",
                           "--cookies", rr, name="seed-many")
        self.results["seed_many"] = seeded
        authd = self.start_authd("authd-main", main)
        base, m, _ = self.start("baseline", [BASELINE, "--data", main], cpu=SERVER_CPU)
        base.url = m.group(1)
        like = None
        if want("1"):
            like, m, _ = self.start("baseline-like-authd", [BASELINE, "--data", main, "--like-authd"], cpu=SERVER_CPU)
            like.url = m.group(1)
        cookie = self.login(authd.url, authd.cert, "seed0")
        log(f"authd at {authd.url}, baseline at {base.url}; logged in as seed0")
        if self.status(authd.url, authd.cert, SESSION_PATH, cookie) != 200:
            raise RuntimeError("the hot session does not check out")
        verify_status = self.status(authd.url, authd.cert, VERIFY_PATH, cookie)
        have_verify = verify_status == 200
        if not have_verify:
            self.notes.append(f"`GET {VERIFY_PATH}` answered {verify_status} with a valid cookie: rows marked "
                              "n/a (endpoint missing).")
        ck = [f"Cookie: {cookie}"]
        d = self.fine_duration
        A = [authd.pid]
        B = [base.pid]

        if want("1"):
            paths = [("session check GET /rest/auth/1/session", SESSION_PATH, True),
                     ("forward auth GET /rest/authd/1/verify", VERIFY_PATH, have_verify)]
            for proto in ("HTTP/1.1 wrk", "HTTP/2 h2load"):
                for label, path, ok in paths:
                    name = f"1 {label}, {proto}, 32 conns"
                    if not ok:
                        self.row(name + ": req/s", None, None, ">= 0.85 x baseline", True, 0.85,
                                 note="n/a (endpoint missing)")
                        self.row(name + ": p99 latency", None, None, "<= 1.5 x baseline", False, 1.5,
                                 note="n/a (endpoint missing)")
                        continue
                    log(f"target 1: {label} over {proto}")
                    key = f"t1 {path} {proto.split()[0]}"
                    if proto.startswith("HTTP/1"):
                        fa = lambda p=path: self.measured(A, lambda: self.wrk("authd" + p.replace("/", "_"), authd.url + p, 32, d, headers=ck))
                        fb = lambda p=path: self.measured(B, lambda: self.wrk("baseline" + p.replace("/", "_"), base.url + p, 32, d, headers=ck))
                    else:
                        fa = lambda p=path: self.measured(A, lambda: self.h2load("authd-h2" + p.replace("/", "_"), authd.url + p, 32, d, headers=ck))
                        fb = lambda p=path: self.measured(B, lambda: self.h2load("baseline-h2" + p.replace("/", "_"), base.url + p, 32, d, headers=ck))
                    # The session check's ceiling: the same stack sending a
                    # fixed copy of authd's answer (same headers, same body size).
                    fc = None
                    if path == SESSION_PATH:
                        if proto.startswith("HTTP/1"):
                            fc = lambda: self.measured([like.pid], lambda: self.wrk("like-authd", like.url + SESSION_PATH, 32, d, headers=ck))
                        else:
                            fc = lambda: self.measured([like.pid], lambda: self.h2load("like-authd-h2", like.url + SESSION_PATH, 32, d, headers=ck))
                    res = self.pair(key, fa, fb, runs=self.fine_runs, c=fc)
                    self.throughput_rows(name, res, 0.85, 1.5)
                    if fc:
                        self.row(f"1 ceiling: a fixed copy of authd's session-check answer (baseline --like-authd), "
                                 f"{proto}, 32 conns: req/s", med(res["c"], "rps"), med(res["b"], "rps"),
                                 "ceiling (no target)", True, None, authd_cpu=med(res["c"], "cpu_us_per_req"),
                                 ref_cpu=med(res["b"], "cpu_us_per_req"))
                        self.row(f"1 ceiling: a fixed copy of authd's session-check answer (baseline --like-authd), "
                                 f"{proto}, 32 conns: p99 latency", med(res["c"], "p99_ms"), med(res["b"], "p99_ms"),
                                 "ceiling (no target)", False, None, unit=" ms")
            self.stop(like)
            self.notes.append(
                "Target 1, ceiling rows: `examples/baseline.rs --like-authd` is the baseline answering every request "
                "with a fixed copy of authd's answer to a session check (status, the headers SPEC §3 requires, a JSON "
                "body of the same shape), built once; no cookie is read and nothing is looked up. It is what the stack "
                "itself costs to send that answer, so `authd / ceiling` is the part of the gap that authd's own work "
                "could still close, and `ceiling / baseline` the part no handler can.")

        if want("2"):
            log(f"target 2: {self.many} distinct sessions round-robin")
            fa = lambda: self.measured(A, lambda: self.wrk("authd-many", authd.url + SESSION_PATH, 32, d, WRK_RR, script_args=[rr]))
            fb = lambda: self.measured(B, lambda: self.wrk("baseline-many", base.url + SESSION_PATH, 32, d, WRK_RR, script_args=[rr]))
            res = self.pair("t2 many sessions", fa, fb, runs=self.fine_runs)
            self.throughput_rows(f"2 many sessions: {self.many:,} distinct, round-robin, HTTP/1.1, 32 conns", res, 0.7)
            touched = "every session's first use in a run after its last touch (60 s) writes a touch"
            self.notes.append(f"Target 2: sessions were seeded just before the runs; {touched}.")
        self.stop(base)

        if want("3"):
            self.peer(authd, cookie, main)

        if want("4"):
            self.logins(authd)
        self.stop(authd)

        if want("5"):
            self.remember(main)
        if want("6"):
            self.scale_rows()
        if want("7"):
            self.sweeper()
        if want("8"):
            self.shared_store(main)
        if not self.args.keep:
            shutil.rmtree(self.data, ignore_errors=True)

    def peer(self, authd, cookie, main):
        log("target 3: the peer (Express + express-session + connect-redis)")
        tmp = os.path.join(self.data, "redis")
        os.makedirs(tmp, exist_ok=True)
        rport = free_port()
        redis, _, _ = self.start("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no", "--dir", tmp, "--daemonize", "no"],
                                 cpu=SERVER_CPU, ready=r"Ready to accept connections")
        pport = free_port()
        env = dict(os.environ, PEER_PORT=str(pport), PEER_CERT=authd.cert,
                   PEER_KEY=os.path.join(main, "tls", "key.pem"), REDIS_URL=f"redis://127.0.0.1:{rport}",
                   PEER_USER="bench", PEER_PASSWORD=PASSWORD, NODE_ENV="production")
        node, m, _ = self.start("peer", ["node", os.path.join(BENCH, "peer", "server.js")], env=env, cpu=SERVER_CPU)
        node.url = m.group(1)
        pcookie = self.login(node.url, authd.cert, "bench", path="/login")
        if self.status(node.url, authd.cert, "/session", pcookie) != 200:
            raise RuntimeError("the peer's session does not check out")
        d = self.duration
        fa = lambda: self.measured([authd.pid], lambda: self.wrk("authd-vs-peer", authd.url + SESSION_PATH, 32, d, headers=[f"Cookie: {cookie}"]))
        fb = lambda: self.measured([node.pid, redis.pid], lambda: self.wrk("peer", node.url + "/session", 32, d, headers=[f"Cookie: {pcookie}"]))
        res = self.pair("t3 peer", fa, fb)
        a, b = res["a"], res["b"]
        self.row("3 session check vs Express + connect-redis, HTTP/1.1, 32 conns: req/s", med(a, "rps"),
                 med(b, "rps"), ">= 3 x peer", True, 3.0, authd_cpu=med(a, "cpu_us_per_req"),
                 ref_cpu=med(b, "cpu_us_per_req"))
        self.row("3 session check vs Express + connect-redis: p99 latency", med(a, "p99_ms"), med(b, "p99_ms"),
                 "< peer", False, 0.999999, unit=" ms")
        self.notes.append("Target 3: the peer's CPU per request is node's plus redis-server's, both pinned to the "
                          "server's core; Redis runs without persistence (`--save ''`).")
        self.stop(node)
        self.stop(redis)

    def logins(self, authd):
        log("target 4: password logins, 32 clients")
        body = json.dumps({"username": "seed7", "password": PASSWORD})
        env = {"BENCH_METHOD": "POST", "BENCH_BODY": body}
        rates, verify_ms, verify_cpu, results = [], [], [], []
        for i in range(self.runs):
            v = self.tool("argon2", "--iterations", 5 if self.quick else 10, cpu=SERVER_CPU, name="argon2")
            verify_ms.append(v["verify_ms_median"])
            if v.get("verify_cpu_ms_mean") is not None:
                verify_cpu.append(v["verify_cpu_ms_mean"])
            r = self.measured([authd.pid], lambda: self.wrk("logins", authd.url + SESSION_PATH, 32, self.duration,
                                                              env=env))
            results.append(r)
            rates.append(r["rps"])
            log(f"  logins run {i + 1}: {r['rps']:.1f}/s (non-2xx {r['non2xx']}), argon2 verify "
                f"{v['verify_ms_median']:.1f} ms, {fmt_num(r['cpu_us_per_req'])} us CPU/login")
        self.results["t4 logins"] = {"runs": results, "verify_ms": verify_ms, "verify_cpu_ms": verify_cpu}
        if verify_cpu:
            self.notes.append(
                f"Target 4: one argon2id verify took {statistics.median(verify_ms):.1f} ms of wall time and "
                f"{statistics.median(verify_cpu):.1f} ms of CPU time on the server's core; authd spent "
                f"{med(results, 'cpu_us_per_req') / 1000:.1f} ms of CPU per login in all.")
        limit = SERVER_CORES / (statistics.median(verify_ms) / 1000)
        bad = sum(r["non2xx"] + r["errors"] for r in results)
        self.row(f"4 password logins, 32 clients: logins/s (ref: {SERVER_CORES} core / one argon2id verify of "
                 f"{statistics.median(verify_ms):.1f} ms)", statistics.median(rates), limit, ">= 0.9 x ref", True, 0.9,
                 authd_cpu=med(results, "cpu_us_per_req"), note=f"{bad} failed/non-2xx" if bad else "")

    def shared_store(self, main):
        """Target 8 (issue 8): the session check on the Redis store against the
        baseline, and password logins with three instances on one Redis against
        one instance."""
        log("target 8: the Redis store")
        tmp = os.path.join(self.data, "redis8")
        os.makedirs(tmp, exist_ok=True)
        rport = free_port()
        redis, _, _ = self.start("redis-8", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                             "--appendonly", "no", "--dir", tmp, "--daemonize", "no"],
                                 cpu=SERVER_CPU, ready=r"Ready to accept connections")
        url = f"redis://127.0.0.1:{rport}/0"
        for user in ("bench8", "bench8-login"):
            r = subprocess.run([AUTHD, "user", "add", user, "--password-stdin", "--data", main, "--store", url],
                               input=PASSWORD + "\n", capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"authd user add {user} on Redis failed: {r.stderr.strip()}")
        dirs = []
        for i in range(3):
            d = os.path.join(self.data, f"redis-instance-{i}")
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o700)
            dirs.append(d)
        one = self.start_authd("authd-redis", dirs[0], "--store", url)
        base, m, _ = self.start("baseline-8", [BASELINE, "--data", main], cpu=SERVER_CPU)
        base.url = m.group(1)
        cookie = self.login(one.url, one.cert, "bench8")
        if self.status(one.url, one.cert, SESSION_PATH, cookie) != 200:
            raise RuntimeError("the session on the Redis store does not check out")
        d = self.duration
        ck = [f"Cookie: {cookie}"]
        fa = lambda: self.measured([one.pid, redis.pid], lambda: self.wrk("authd-redis", one.url + SESSION_PATH, 32, d, headers=ck))
        fb = lambda: self.measured([base.pid], lambda: self.wrk("baseline-8", base.url + SESSION_PATH, 32, d, headers=ck))
        res = self.pair("t8 redis", fa, fb)
        a8, b8 = res["a"], res["b"]
        label = "8 session check on the Redis store, HTTP/1.1 wrk, 32 conns"
        self.row(f"{label}: req/s", med(a8, "rps"), med(b8, "rps"), "÷ baseline (no target set)", True, None,
                 authd_cpu=med(a8, "cpu_us_per_req"), ref_cpu=med(b8, "cpu_us_per_req"))
        self.row(f"{label}: p99 latency", med(a8, "p99_ms"), med(b8, "p99_ms"), "÷ baseline (no target set)", False,
                 None, unit=" ms")
        self.notes.append("Target 8: authd and redis-server share the server's core; the authd CPU column is both "
                          "processes' time per request (every check is a round trip to Redis, which also holds "
                          "the truth for logouts made on other instances, so nothing is cached in process).")
        self.stop(base)

        # Logins: one instance on the server's core, then three instances
        # spread over every core (the load tool is light beside argon2).
        body = json.dumps({"username": "bench8-login", "password": PASSWORD})
        env = {"BENCH_METHOD": "POST", "BENCH_BODY": body}
        all_cpus = ",".join(str(c) for c in _cpus)
        def logins(instances):
            threads, out = [], []
            per = max(1, 32 // len(instances))
            def go(p, i):
                out.append(self.wrk(f"logins-redis-{len(instances)}x-{i}", p.url + SESSION_PATH, per, d, env=env))
            for i, p in enumerate(instances):
                t = threading.Thread(target=go, args=(p, i))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
            return {"rps": sum(r["rps"] for r in out), "non2xx": sum(r["non2xx"] for r in out),
                    "errors": sum(r["errors"] for r in out), "requests": sum(r["requests"] for r in out),
                    "p99_ms": max(r["p99_ms"] for r in out)}
        single = []
        for i in range(self.runs):
            single.append(logins([one]))
            log(f"  logins, one instance on CPU {SERVER_CPU}, run {i + 1}: {single[-1]['rps']:.1f}/s")
        self.stop(one)
        three = []
        procs = []
        for i, d8 in enumerate(dirs):
            p, m, t = self.start(f"authd-redis-{i}", [AUTHD, "--data", d8, "--listen", "127.0.0.1:0", "--store", url],
                                 cpu=all_cpus)
            p.url = m.group(1)
            procs.append(p)
        for i in range(self.runs):
            three.append(logins(procs))
            log(f"  logins, three instances on CPUs {all_cpus}, run {i + 1}: {three[-1]['rps']:.1f}/s")
        for p in procs:
            self.stop(p)
        self.stop(redis)
        self.results["t8 logins"] = {"one": single, "three": three}
        cores_ratio = len(_cpus) / SERVER_CORES
        a, b = statistics.median(r["rps"] for r in three), statistics.median(r["rps"] for r in single)
        bad = sum(r["non2xx"] + r["errors"] for r in single + three)
        self.row(f"8 password logins on Redis, 3 instances on {len(_cpus)} cores / 1 instance on {SERVER_CORES} core: "
                 f"logins/s (goal: scales with the cores, {cores_ratio:.0f}x)", a, b,
                 f">= 0.9 x {cores_ratio:.0f}", True, 0.9 * cores_ratio, note=f"{bad} failed/non-2xx" if bad else "")
        self.notes.append(f"Target 8, logins: this machine has {len(_cpus)} cores, so three instances share "
                          f"{len(_cpus)} cores (the load tool runs on one of them too) and one instance gets one; "
                          "argon2-bound logins should scale with the cores, not the instance count.")

    def remember(self, main):
        log("target 5: remember-me logins, 64 clients")
        per_run = self.remember_per_run
        cookies = os.path.join(self.data, "remember-cookies.txt")
        # One part per run, and one more for the store-level ceiling below.
        self.tool("seed", "--data", main, "--sessions", per_run * (self.runs + 1), "--per-user", 10, "--prefix", "rm",
                  "--remember", "--cookies", cookies, name="seed-remember")
        with open(cookies) as f:
            lines = f.read().splitlines()
        authd = self.start_authd("authd-remember", main)
        rates, commits, results = [], [], []
        for i in range(self.runs):
            part = os.path.join(self.data, f"remember-{i}.txt")
            with open(part, "w") as f:
                f.write("\n".join(lines[i * per_run:(i + 1) * per_run]) + "\n")
            c = self.tool("commit-rate", "--dir", os.path.join(self.data, "commit"), "--seconds",
                          1 if self.quick else 3, cpu=SERVER_CPU, name="commit-rate")
            commits.append(c["commits_per_s"])
            r = self.measured([authd.pid], lambda: self.wrk("remember", authd.url + SESSION_PATH, 64,
                                                              self.remember_duration, WRK_RR, script_args=[part],
                                                              env={"BENCH_ONCE": "1"}))
            results.append(r)
            rates.append(r["rps"])
            log(f"  remember-me run {i + 1}: {r['rps']:.0f}/s (non-2xx {r['non2xx']}, exhausted {r['exhausted']}), "
                f"durable commits alone {c['commits_per_s']:.0f}/s, {fmt_num(r['cpu_us_per_req'])} us CPU/login")
        self.stop(authd)
        # The store's own ceiling: the same store work without HTTP or TLS
        # (benchtool, on the server's core, 64 clients, the unused last part).
        ceiling = self.tool("remember-ceiling", "--data", main, "--cookies", cookies, "--skip", per_run * self.runs,
                            "--count", per_run, "--clients", 64, "--seconds", self.remember_duration,
                            cpu=SERVER_CPU, name="remember-ceiling")
        log(f"  store alone (no HTTP): {ceiling['logins_per_s']:.0f} logins/s, "
            f"{ceiling['cpu_us_per_login']:.0f} us CPU/login")
        # redb's own floor: the one write every remember-me login must make
        # (its series, found by a random selector), 64 to a durable commit.
        floor = self.tool("redb-floor", "--dir", os.path.join(self.data, "floor"), "--keys", per_run * (self.runs + 1),
                          "--batch", 64, "--seconds", 1 if self.quick else 3, cpu=SERVER_CPU, name="redb-floor")
        log(f"  redb alone: {floor['random_batch_writes_per_s']:.0f} random-key rewrites/s in commits of 64, "
            f"{floor['random_batch_cpu_us_per_write']:.1f} us CPU each; {floor['one_per_commit_per_s']:.0f} "
            f"commits/s of one")
        # redb laid out as a log: each login appends one record, and the
        # random-key writes are deferred to sorted folds, of a fifth of the
        # table and of the whole table's size in logins.
        journals = []
        for fold in (per_run * (self.runs + 1) // 5, per_run * (self.runs + 1)):
            j = self.tool("journal-floor", "--dir", os.path.join(self.data, "floor"), "--keys",
                          per_run * (self.runs + 1), "--fold", fold, "--logins", 2 * fold, cpu=SERVER_CPU,
                          name=f"journal-floor-{fold}")
            log(f"  redb as a log, folded every {j['fold']:,} logins: {j['cpu_us_per_login']:.1f} us CPU per login "
                f"({j['append_cpu_us_per_login']:.1f} appending, {j['fold_cpu_us_per_login']:.1f} folding)")
            journals.append(j)
        self.results["t5 remember"] = {"runs": results, "commits_per_s": commits, "store_ceiling": ceiling,
                                       "redb_floor": floor, "journal_floor": journals}
        ref_rate = statistics.median(commits)
        bad = sum(r["non2xx"] + r["errors"] for r in results)
        notes = []
        if bad:
            notes.append(f"{bad} failed/non-2xx")
        if any(r["exhausted"] for r in results):
            notes.append("cookie list ran out: rate is a lower bound")
        self.row("5 remember-me logins (new session, no argon2), 64 clients: logins/s (ref: one durable redb "
                 "commit per request)", statistics.median(rates), ref_rate, ">= 10 x ref", True,
                 10.0, authd_cpu=med(results, "cpu_us_per_req"), note="; ".join(notes))
        self.row("5 the store alone, same work without HTTP/TLS, 64 clients: logins/s (ref: one durable redb commit "
                 "per request)", ceiling["logins_per_s"], ref_rate, "ceiling (no target)", True,
                 None, authd_cpu=ceiling["cpu_us_per_login"])
        self.row("5 redb alone, no authd: one record rewritten at a random key per login, 64 to a durable commit: "
                 "writes/s (ref: one durable redb commit per request)", floor["random_batch_writes_per_s"], ref_rate,
                 "floor (no target)", True, None, authd_cpu=floor["random_batch_cpu_us_per_write"])
        for j in journals:
            self.row(f"5 redb as a log, no authd: one record appended per login (64 to a durable commit), folded "
                     f"into the tables every {j['fold']:,} logins: logins/s of one core (1 s / CPU per login) "
                     "(ref: one durable redb commit per request)", 1e6 / j["cpu_us_per_login"], ref_rate,
                     "floor (no target)", True, None, authd_cpu=j["cpu_us_per_login"])
        budget = 1e6 / (10 * ref_rate)
        low = HTTP_US[0] + journals[-1]["cpu_us_per_login"] + OVERLAY_US[0]
        high = HTTP_US[1] + journals[0]["cpu_us_per_login"] + OVERLAY_US[1]
        verdict = "out of reach" if low > budget else "not ruled out by these figures"
        self.notes.append(
            f"Target 5: the store by itself (`benchtool remember-ceiling`: the series and user reads and the "
            f"rotation's durable write of each remember-me login, from 64 concurrent clients through `RedbStore`'s "
            f"group commit, no HTTP or TLS) reaches {ceiling['logins_per_s']:,.0f} logins/s on the server's core, "
            f"{ceiling['cpu_us_per_login']:.0f} us of CPU per login: "
            f"{ceiling['logins_per_s'] / ref_rate:.1f} x the one-commit-per-request rate. "
            "Each login writes four B-trees, three of them (sessions, their per-user index, the series) at "
            "random keys, so a group commit still rewrites and checksums about three 4 KiB leaves per login. "
            f"With this disk's durable commit of {1000 / ref_rate:.2f} ms, that page work bounds the "
            "rate, not the fsync. The floor row is redb by itself (`benchtool redb-floor`, a table of "
            f"{floor['keys']:,} keys, 60-byte values): rewriting one record at a random key, the least a "
            "remember-me login must write (its series is found by a random selector and gets a new validator), "
            f"64 to a durable commit, costs {floor['random_batch_cpu_us_per_write']:.1f} us of CPU and reaches "
            f"{floor['random_batch_writes_per_s'] / ref_rate:.1f} x the reference with nothing else done: no "
            "new session, no HTTP. The log rows defer those random-key writes (`benchtool journal-floor`: "
            "a login appends one record; a fold applies a batch of logins to the series, sessions, per-user and "
            f"expiry tables in key order): {journals[-1]['cpu_us_per_login']:.1f}-"
            f"{journals[0]['cpu_us_per_login']:.1f} us of CPU per login, and every login pending a fold would also "
            f"have to be served from memory. 10 x the reference is {budget:.1f} us of CPU per login in all. "
            f"authd's HTTP path alone takes about {HTTP_US[0]}-{HTTP_US[1]} us per remember-me login and serving "
            f"pending logins from memory about {OVERLAY_US[0]}-{OVERLAY_US[1]} us (measured once with an in-memory "
            f"store, PROFILE.md tenth pass; not re-measured here), so the cheapest durable layout found needs "
            f"{low:.1f}-{high:.1f} us per login: 10 x is {verdict} for remember-me logins on redb on this machine.")

    def scale_rows(self):
        n = self.scale
        log(f"target 6: {n:,} live sessions in the file")
        data = os.path.join(self.data, "scale")
        cookies = os.path.join(self.data, "scale-cookies.txt")
        s = self.tool("seed", "--data", data, "--sessions", n, "--per-user", 10, "--prefix", "scale", "--cookies",
                      cookies, "--cookie-limit", self.many, name="seed-scale")
        self.results["seed_scale"] = s
        log(f"  seeded in {s['seconds']:.1f}s: {s['db_bytes']:,} bytes ({s['db_bytes_users_only']:,} with users only)")
        per = (s["db_bytes"] - s["db_bytes_users_only"]) / n
        tag = f"{n:,} sessions" + ("" if n >= 1_000_000 else "; target is for 1,000,000")
        self.row(f"6 bytes on disk per session ({tag}; file growth over the users alone)", per, 300.0, "<= 300", False,
                 1.0, ratio=per / 300.0)
        pages = (s["page_bytes"] - s["page_bytes_users_only"]) / n
        self.row(f"6 bytes of redb pages per session ({tag}; pages allocated over the users alone)", pages, 300.0,
                 "figure (no target)", False, None, ratio=pages / 300.0)
        self.notes.append(f"Target 6: the file holds {s['db_bytes']:,} bytes in all, {s['db_bytes'] / n:.0f} per "
                          f"session counting the {s['users']:,} users they belong to. redb doubles a file this size "
                          f"whenever it needs room, so its length is the users-only length times a power of two "
                          f"and depends on where the last doubling lands; the pages redb has allocated "
                          f"({s['page_bytes']:,} bytes, {pages:.0f} per session) do not. See PROFILE.md.")

        empty = self.tool("sweep-time", "--data", data, "--runs", 5, cpu=SERVER_CPU, name="sweep-empty")
        self.results["t7 empty sweep"] = empty
        with open(cookies) as f:
            first = f.readline().strip()
        starts = []
        for i in range(3 if not self.quick else 1):
            t0 = time.time()
            p, m, _ = self.start("authd-startup", [AUTHD, "--data", data, "--listen", "127.0.0.1:0"], cpu=SERVER_CPU)
            url = m.group(1)
            cert = os.path.join(data, "tls", "cert.pem")
            while True:
                try:
                    if self.status(url, cert, SESSION_PATH, first) == 200:
                        break
                except OSError:
                    pass
                if time.time() - t0 > 60:
                    raise RuntimeError("authd never answered after start-up")
                time.sleep(0.002)
            starts.append(time.time() - t0)
            log(f"  start-up to first answered session check: {starts[-1] * 1000:.0f} ms")
            if i < 2 and not self.quick:
                self.stop(p)
        self.results["t6 startup_s"] = starts
        # `p` still runs: serve target 2's load from the big file and watch its memory.
        rss_peak = 0
        stop = threading.Event()

        def sample():
            nonlocal rss_peak
            while not stop.is_set():
                rss_peak = max(rss_peak, rss_kib(p.pid, "VmRSS"))
                time.sleep(0.1)

        th = threading.Thread(target=sample)
        th.start()
        r = self.measured([p.pid], lambda: self.wrk("authd-scale-many", url + SESSION_PATH, 32, self.duration, WRK_RR,
                                                      script_args=[cookies]))
        stop.set()
        th.join()
        hwm = rss_kib(p.pid, "VmHWM")
        self.stop(p)
        self.results["t6 rss"] = {"load": r, "rss_peak_kib": rss_peak, "vmhwm_kib": hwm}
        log(f"  serving {self.many:,} sessions round-robin from the big file: {r['rps']:.0f} req/s, RSS peak "
            f"{hwm / 1024:.1f} MiB")
        self.row(f"6 server RSS (VmHWM) serving target 2's load ({tag})", hwm / 1024, 128.0, "<= 128 MiB", False, 1.0,
                 unit=" MiB", ratio=hwm / 1024 / 128, authd_cpu=r["cpu_us_per_req"],
                 note=f"{r['rps']:.0f} req/s")
        self.row(f"6 start-up to first answered request ({tag})", statistics.median(starts), 1.0, "<= 1 s", False, 1.0,
                 unit=" s", ratio=statistics.median(starts))
        self.row(f"7 empty sweep among live sessions ({tag}; store-level, benchtool)", empty["ms_median"], 10.0,
                 "<= 10 ms", False, 1.0, unit=" ms", ratio=empty["ms_median"] / 10)
        self.notes.append("Target 7, empty sweep: authd's own figure (`took_ms` in the sweeper's log line, "
                          "`authd_sweeper_duration_seconds_total` in /metrics) includes the log and metrics work, so this "
                          "row times the same store call the sweeper makes (`Store::sweep` in batches of "
                          "`sweeper::BATCH` until nothing is left) through the library, with the server stopped.")
        if not self.args.keep:
            shutil.rmtree(data, ignore_errors=True)

    def sweeper(self):
        n = self.scale
        log(f"target 7: sweeping {n:,} expired sessions, quiet and under load")
        data = os.path.join(self.data, "sweep")
        s = self.tool("seed", "--data", data, "--sessions", n, "--per-user", 10, "--prefix", "old", "--expired",
                      name="seed-expired")
        hot = os.path.join(self.data, "sweep-hot.txt")
        self.tool("seed", "--data", data, "--sessions", 1, "--prefix", "hot", "--cookies", hot, name="seed-hot")
        with open(hot) as f:
            cookie = f.readline().strip()
        loaded = data + "-loaded"
        shutil.copytree(data, loaded)
        tag = f"{n:,} sessions" + ("" if n >= 1_000_000 else "; target is for 1,000,000")
        budget = 8 if self.quick else 120

        # Quiet: nothing but this script's /metrics polls while the sweeper runs.
        quiet_run = self.sweep_run("authd-sweep-quiet", data, 2, budget)
        took, deleted = quiet_run["took"], quiet_run["deleted"]
        self.results["t7 sweep quiet"] = quiet_run
        if took is None:
            self.row(f"7 sweep of expired sessions, no other load ({tag})", None, None, "<= 20 s", False, 1.0,
                     note=f"MISS (not finished within {budget} s)")
        else:
            log(f"  quiet sweep took {took:.2f} s, deleted {int(deleted):,}")
            self.row(f"7 sweep of expired sessions, no other load ({tag}; deleted {int(deleted):,}; from /metrics)",
                     took, 20.0, "<= 20 s", False, 1.0, unit=" s", ratio=took / 20)
        if not self.args.keep:
            shutil.rmtree(data, ignore_errors=True)

        # Loaded: the session check at full speed before and during the sweep.
        r = self.sweep_run("authd-sweep-loaded", loaded, self.sweep_interval, budget, cookie=cookie)
        entries = r["load"].pop("log")
        self.results["t7 sweep loaded"] = r
        if not self.args.keep:
            shutil.rmtree(loaded, ignore_errors=True)
        if r["took"] is None:
            self.row("7 session-check p99 during the sweep vs quiet", None, None, "<= 3 x quiet", False, 3.0,
                     note=f"MISS (sweep not finished within {budget} s under load)")
            return
        begin, end = r["start"], r["end"]
        t0 = entries[0][0] / 1e6 if entries else 0
        quiet = sorted(e[2] for e in entries if t0 + 1 <= e[0] / 1e6 < begin - 0.1)
        during = sorted(e[2] for e in entries if begin <= e[0] / 1e6 <= end)
        log(f"  under load the sweep took {r['took']:.2f} s; {len(quiet)} requests before it, {len(during)} during it")
        if quiet and during:
            qp, dp = pct(quiet, 99) / 1000, pct(during, 99) / 1000
            q_rate = len(quiet) / max(begin - 0.1 - t0 - 1, 1e-9)
            self.row("7 session-check p99 during the sweep vs before it, HTTP/1.1 (h2load --h1), 32 conns", dp, qp,
                     "<= 3 x quiet", False, 3.0, unit=" ms",
                     note=f"{len(during) / max(r['took'], 1e-9):.0f} vs {q_rate:.0f} req/s; the sweep took "
                          f"{r['took']:.1f} s under this load")

    def sweep_run(self, name, data, interval, budget, cookie=None):
        """Starts authd on `data` (expired sessions) with `--sweep-interval`;
        the first sweep starts one interval after start. Polls /metrics until
        the sweeper has run once; with `cookie`, runs the session check with
        h2load --h1 (per-request log kept) all along."""
        p = self.start_authd(name, data, "--sweep-interval", f"{interval}s")
        start = p.ready_at + interval
        box = {}
        th = None
        if cookie:
            def load():
                box["r"] = self.measured([p.pid], lambda: self.h2load(name, p.url + SESSION_PATH, 32,
                                                                      interval + budget, headers=[f"Cookie: {cookie}"],
                                                                      h1=True, warmup=False, keep_log=True))
            th = threading.Thread(target=load)
            th.start()
        conn = self.https(p.url, p.cert)
        end, deleted = None, 0
        deadline = start + budget
        while time.time() < deadline and (th is None or th.is_alive()):
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            runs = metric(text, "authd_sweeper_runs_total")
            if runs and runs >= 1:
                end = time.time() - 0.01  # half a poll interval
                deleted = metric(text, 'authd_sweeper_deleted_total{kind="session"}') or 0
                break
            time.sleep(0.02)
        conn.close()
        if th is not None:
            th.join()
        self.stop(p)
        return {"start": start, "end": end, "took": (end - start) if end else None, "deleted": deleted,
                "load": box.get("r")}

    # ---------------------------------------------------------------- output

    def table(self):
        head = ["scenario", "authd", "reference", "ratio", "target", "result", "authd CPU us/req", "ref CPU us/req"]
        keys = ["scenario", "authd", "ref", "ratio", "target", "result", "authd_cpu", "ref_cpu"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            lines.append("| " + " | ".join(str(r[k]) for k in keys) + " |")
        return "\n".join(lines)

    def write(self):
        m = self.results["machine"]
        m["load_after"] = os.getloadavg()
        m["busy_after"] = busy_processes()
        self.results["rows"] = self.rows
        self.results["notes"] = self.notes
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.results, f, indent=1, default=str)
        table = self.table()
        busy = sorted(set(m["busy_before"]) | set(m["busy_after"]))
        when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        kind = "quick" if self.quick else f"targets {self.args.only} only" if self.args.only else "full"
        doc = [f"# authd benchmark results ({kind} run, {when})", "",
               f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux {m['kernel']}. "
               f"Server pinned to CPU {SERVER_CPU}, load tool to CPU {LOAD_CPU}. Commit `{m['git']}`.",
               f"Tools: " + ", ".join(f"{k} {v}" for k, v in m["tools"].items()) + ".",
               f"{self.runs} run(s) of {self.duration} s per side ({self.fine_runs} of {self.fine_duration} s for "
               f"targets 1 and 2), A/B alternating; medians. "
               f"Load average before/after: {fmt_load(m['load_before'])} / {fmt_load(m['load_after'])}.", ""]
        if PROFILE != "release":
            doc += [f"**Built with the {PROFILE} profile (BENCH_PROFILE): an end-to-end check of the benchmark, "
                    "not a measurement; authd's own code is unoptimised.**", ""]
        if busy:
            doc += ["Other processes using CPU during the run (sampled at start and end): " + ", ".join(busy) +
                    ". They share the cores with the benchmark, so absolute figures are low and noisy; the ratios "
                    "are measured side by side and cancel most of it.", ""]
        doc += [table, ""]
        if self.notes:
            doc += ["Notes:", ""] + [f"- {n}" for n in self.notes] + [""]
        doc += ["Raw output: `bench/results/` (git-ignored). Reproduce with `bench/run.sh` (see bench/README.md). "
                "Profiles of the missed targets: [PROFILE.md](PROFILE.md) (written by hand; may be older than this "
                "table).", ""]
        text = "\n".join(doc)
        with open(os.path.join(self.out, "RESULTS.md"), "w") as f:
            f.write(text)
        if not self.quick and not self.args.only and not self.args.no_record and PROFILE == "release":
            with open(os.path.join(BENCH, "RESULTS.md"), "w") as f:
                f.write(text)
        print(table)
        print(f"\nraw output and RESULTS.md in {os.path.relpath(self.out, ROOT)}")


# -------------------------------------------------------------------- helpers

def pct(sorted_values, p):
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def med(results, key):
    vals = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt_num(x):
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_load(t):
    return " ".join(f"{x:.1f}" for x in t)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r" ([\d.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


def busy_processes():
    """Processes other than ours using a noticeable share of a CPU."""
    try:
        out = subprocess.run(["ps", "-eo", "pcpu=,comm=", "--sort=-pcpu"], capture_output=True, text=True).stdout
    except OSError:
        return []
    busy = []
    for line in out.splitlines()[:10]:
        parts = line.split(None, 1)
        if len(parts) == 2 and float(parts[0]) >= 20 and parts[1] not in ("ps", "python3", "python"):
            busy.append(parts[1])
    return busy


def git_rev():
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "src"],
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + ("+uncommitted src changes" if dirty else "")


def tool_version(name):
    flag = {"wrk": "-v", "h2load": "--version", "node": "--version", "redis-server": "--version"}[name]
    try:
        r = subprocess.run([name, flag], capture_output=True, text=True)
    except OSError:
        return "missing"
    text = (r.stdout + r.stderr).strip().splitlines()
    first = text[0] if text else ""
    m = re.search(r"v?\d+\.\d+(\.\d+)?", first)
    return m.group(0) if m else first[:40]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny durations and counts (CI: a few seconds per scenario)")
    ap.add_argument("--runs", type=int, help="runs per side (default 5; quick 1)")
    ap.add_argument("--duration", type=int, help="seconds per run (default 10; quick 2)")
    ap.add_argument("--sessions", type=int, help="distinct sessions for target 2 (default 100000)")
    ap.add_argument("--scale", type=int, help="sessions for targets 6 and 7 (default 1000000)")
    ap.add_argument("--only", help="comma-separated targets to run, e.g. 1,3 (1 and 2 share a setup)")
    ap.add_argument("--keep", action="store_true", help="keep the seeded data dirs under bench/results/")
    ap.add_argument("--no-record", action="store_true", help="do not rewrite bench/RESULTS.md after a full run")
    args = ap.parse_args()
    for path in (AUTHD, BASELINE, TOOL):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run bench/run.sh (it builds it)")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # this script and its helpers stay off the server's core
    b = Bench(args)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.run()
    finally:
        b.stop_all()
    b.write()


if __name__ == "__main__":
    main()
