#!/usr/bin/env python3
"""The AWSomePets benchmark driver. scripts/bench starts the servers and the services, then runs this.

    bench.py wait-ready --port P --since-ns T0 --name NAME --out FILE [--pid-file F] [--timeout S]
        Polls http://127.0.0.1:P/health every 10 ms until it answers 200; appends {"name", "ms"} (milliseconds
        since T0, a CLOCK_REALTIME timestamp in ns taken just before the service was started) to FILE.

    bench.py run [--quick] [--run-seconds N] ...
        Warm-up, throughput search, latency run at half the maximum, the Lab 1 stream measurements, while sampling
        every process's CPU and memory; writes bench/results.json and prints a summary against the bar.

Standard library only, so it runs in any python3 (scripts/bench uses the project venv when there is one).
"""

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
SERVICES = ["Inventory", "Payment", "Orchestrator", "Order", "Notifier"]

# The bar the issue sets (2 cores, everything on one machine).
BAR = {
    "sagas_per_sec": 150,
    "p50_ms": 15,
    "p99_ms": 50,
    "cpu_ms_per_saga": 10,
    "rss_mib": 64,
    "ready_ms": 1000,
    "ttfb_ms": 50,
    "rss_growth_mib": 16,
    "hangup_seconds": 2,
}
SEARCH_P99_MS = 100  # a search run passes with p99 under this, no errors, and >= 95% of the offered rate achieved
SEARCH_MIN_ACHIEVED = 0.95


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# /proc


def proc_stat(pid):
    """(ppid, utime+stime ticks, cutime+cstime ticks, starttime) of PID, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2 :].split()  # field n of proc(5) is rest[n - 3]
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]), int(rest[19])


def proc_rss_kib(pid):
    """VmRSS of PID in KiB (from /proc/PID/statm, cheaper than status and the same figure), or None."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return None


def proc_pss_kib(pid):
    """Proportional set size of PID in KiB: shared pages (PostgreSQL's shared buffers) divided among their users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return proc_rss_kib(pid)


def proc_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        pass
    children = []  # kernels without CONFIG_PROC_CHILDREN: scan
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st[0] == pid:
                children.append(int(entry))
    return children


def read_pid(path):
    try:
        text = Path(path).read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def pid_alive(pid):
    return pid is not None and os.path.exists(f"/proc/{pid}")


class Sampler(threading.Thread):
    """Every `interval` seconds: CPU seconds (cumulative) and resident memory of each named process.

    Names: the five services (VmRSS), `postgres` (the postmaster and its children: CPU summed, with the children
    already reaped counted through the postmaster's cutime; memory as the summed PSS, so shared buffers count
    once), `rabbitmq` (the beam VM, VmRSS)."""

    def __init__(self, state, interval=0.5):
        super().__init__(daemon=True)
        self.state = Path(state)
        self.interval = interval
        self.lock = threading.Lock()
        self.peak_mib = {}
        self.running = True

    def pids(self):
        found = {}
        for name in SERVICES:
            pid = read_pid(self.state / "pids" / f"{name}.pid")
            if pid_alive(pid):
                found[name] = pid
        return found

    def snapshot(self):
        """{name: (cpu_seconds, rss_mib)} now."""
        out = {}
        for name, pid in self.pids().items():
            st, rss = proc_stat(pid), proc_rss_kib(pid)
            if st and rss is not None:
                out[name] = (st[1] / CLK_TCK, rss / 1024)
        postmaster = read_pid(self.state / "postgres" / "data" / "postmaster.pid")
        st = proc_stat(postmaster) if postmaster else None
        if st:
            ticks, kib = st[1] + st[2], proc_pss_kib(postmaster) or 0
            for child in proc_children(postmaster):
                cst = proc_stat(child)
                if cst:
                    ticks += cst[1]
                    kib += proc_pss_kib(child) or 0
            out["postgres"] = (ticks / CLK_TCK, kib / 1024)
        beam = read_pid(self.state / "rabbitmq" / "rabbit.pid")
        st, rss = (proc_stat(beam), proc_rss_kib(beam)) if beam else (None, None)
        if st and rss is not None:
            out["rabbitmq"] = (st[1] / CLK_TCK, rss / 1024)
        with self.lock:
            for name, (_, mib) in out.items():
                self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), mib)
        return out

    def run(self):
        while self.running:
            started = time.monotonic()
            try:
                self.snapshot()
            except Exception as error:  # a sampler that dies silently would report nothing; say why instead
                log(f"sampler: {error!r}")
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def note_rss(self, name, mib):
        with self.lock:
            self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), mib)

    def peaks(self):
        with self.lock:
            return dict(self.peak_mib)


class CpuWindow:
    """CPU used by every sampled process between start() and stop(), as % of one core."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __enter__(self):
        self.t0, self.s0 = time.monotonic(), self.sampler.snapshot()
        return self

    def __exit__(self, *exc):
        self.t1, self.s1 = time.monotonic(), self.sampler.snapshot()
        self.wall = self.t1 - self.t0
        self.cpu_seconds = {
            name: self.s1[name][0] - self.s0[name][0] for name in self.s1 if name in self.s0 and self.s1[name][0] >= self.s0[name][0]
        }
        return False

    def pct(self):
        return {name: round(100 * sec / self.wall, 1) for name, sec in self.cpu_seconds.items()}


# ----------------------------------------------------------------------------------------------------------------
# HTTP


def operator_token():
    """The operator's bearer token (operator views such as /sagas/counts need it): environment or .pets/secrets.env."""
    token = os.environ.get("PETS_OPERATOR_TOKEN", "")
    secrets = Path(__file__).resolve().parent.parent / ".pets" / "secrets.env"
    if not token and secrets.is_file():
        for line in secrets.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "PETS_OPERATOR_TOKEN":
                token = value.strip()
    return token


def http_get(port, path, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {operator_token()}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def cmd_wait_ready(args):
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            status, _ = http_get(args.port, "/health", timeout=1.0)
        except (OSError, http.client.HTTPException):
            status = None
        if status == 200:
            ms = (time.time_ns() - args.since_ns) / 1e6
            with open(args.out, "a") as f:
                f.write(json.dumps({"name": args.name, "ms": round(ms, 1)}) + "\n")
            log(f"{args.name} ready {ms:.0f} ms after its start")
            return 0
        if args.pid_file and os.path.exists(args.pid_file) and not pid_alive(read_pid(args.pid_file)):
            log(f"{args.name} exited before it was ready")
            return 1
        if time.monotonic() > deadline:
            log(f"{args.name} not ready after {args.timeout:.0f} s (last /health: {status})")
            return 1
        time.sleep(0.01)


# ----------------------------------------------------------------------------------------------------------------
# The benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.state = Path(args.state)
        self.out = Path(args.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.order_port = args.order_port
        self.orch_port = args.orchestrator_port
        self.sampler = Sampler(self.state)
        self.loadgen_usage = []  # (cpu seconds, wall seconds, maxrss MiB) of every measured Loadgen run
        self.cpu_measured = {}  # name -> cpu seconds over the measured runs
        self.wall_measured = 0.0

    # --- psql as the superuser over the private socket (as scripts/lib.sh's pets_psql)
    def psql(self, sql, db="orders", timeout=300):
        command = [
            str(Path(self.args.pg_bin) / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.state / "postgres" / "sock"), "-p", str(self.args.pg_port), "-U", "postgres", "-d", db,
        ]  # fmt: skip
        done = subprocess.run(command, input=sql, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    # --- Loadgen
    def loadgen(self, label, extra, measured=True, svg=False):
        json_path = self.out / f"{label}.json"
        command = [
            str(Path(self.args.bin) / "Loadgen"),
            "--url", f"http://127.0.0.1:{self.order_port}",
            "--orchestrator-url", f"http://127.0.0.1:{self.orch_port}",
            "--mix", self.args.mix, "--json", str(json_path), "--quiet", *extra,
        ]  # fmt: skip
        if svg:
            command += ["--svg", str(self.out / f"{label}.svg")]
        with open(self.out / f"{label}.txt", "w") as text:
            # Loadgen samples saga timelines from the operator API: it needs the operator's token.
            env = dict(os.environ, PETS_OPERATOR_TOKEN=operator_token())
            proc = subprocess.Popen(command, stdout=text, stderr=subprocess.STDOUT, env=env)
            started = time.monotonic()
            window = CpuWindow(self.sampler)
            window.__enter__()
            _, status, usage = os.wait4(proc.pid, 0)  # wait4: the child's own CPU time and peak RSS
            proc.returncode = os.waitstatus_to_exitcode(status)
            window.__exit__(None, None, None)
            wall = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"Loadgen {label} exited {proc.returncode}; see {self.out / (label + '.txt')}")
        report = json.loads(json_path.read_text())
        loadgen_cpu = usage.ru_utime + usage.ru_stime
        loadgen_rss = usage.ru_maxrss / 1024
        self.sampler.note_rss("Loadgen", loadgen_rss)
        cpu = window.pct()
        cpu["Loadgen"] = round(100 * loadgen_cpu / wall, 1)
        self.last_cpu_seconds = dict(window.cpu_seconds, Loadgen=loadgen_cpu)
        if measured:
            self.loadgen_usage.append((loadgen_cpu, wall, loadgen_rss))
            for name, sec in window.cpu_seconds.items():
                self.cpu_measured[name] = self.cpu_measured.get(name, 0.0) + sec
            self.cpu_measured["Loadgen"] = self.cpu_measured.get("Loadgen", 0.0) + loadgen_cpu
            self.wall_measured += window.wall
        return report, cpu

    def quiesce(self, timeout=90):
        """Waits until no saga is running or compensating (a run over capacity leaves a backlog behind)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, body = http_get(self.orch_port, "/sagas/counts")
                counts = json.loads(body) if status == 200 else {}
                if status == 200 and counts.get("running", 0) + counts.get("compensating", 0) == 0:
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.25)
        log(f"sagas still running after {timeout} s; going on")

    def open_loop(self, rate, seconds, label, svg=False):
        self.quiesce()
        time.sleep(self.args.pause)
        report, cpu = self.loadgen(
            label, ["--rate", f"{rate:g}", "--duration", f"{seconds:g}", "--timeout", str(self.args.order_timeout)], svg=svg
        )
        e2e = report["endToEndMs"]
        achieved = report["sagasPerSecond"]
        entry = {
            "rate": rate,
            "achieved": round(achieved, 1),
            "p50": e2e["p50"],
            "p90": e2e["p90"],
            "p99": e2e["p99"],
            "max": e2e["max"],
            "errors": report["errors"],
            "orders": report["orders"],
            "cpu_pct": cpu,
        }
        entry["pass"] = entry["errors"] == 0 and entry["p99"] < SEARCH_P99_MS and achieved >= SEARCH_MIN_ACHIEVED * rate
        log(
            f"{label}: offered {rate:g}/s achieved {achieved:.1f}/s  p50 {e2e['p50']:.1f} ms  p99 {e2e['p99']:.1f} ms  "
            f"errors {report['errors']}  -> {'pass' if entry['pass'] else 'FAIL'}"
        )
        return entry, report

    def search(self):
        a = self.args
        runs = []

        def run(rate):
            entry, _ = self.open_loop(rate, a.run_seconds, f"search-{rate:g}")
            runs.append(entry)
            return entry["pass"]

        best, first_fail = None, None
        for rate in a.rates:
            if run(rate):
                best = rate
            else:
                first_fail = rate
                break
        if best is None:  # even the lowest rate failed: go down
            rate = a.rates[0] / 2
            while rate >= 2 and best is None:
                if run(rate):
                    best = rate
                else:
                    first_fail = rate
                    rate = rate / 2
        for _ in range(a.refine):
            if best is None or first_fail is None:
                break
            mid = round((best + first_fail) / 2)
            if mid <= best or mid >= first_fail or first_fail - best <= max(5, 0.05 * best):
                break
            if run(mid):
                best = mid
            else:
                first_fail = mid
        passing = [r for r in runs if r["pass"]]
        top = max(passing, key=lambda r: r["rate"]) if passing else None
        return runs, top

    # --- Lab 1: GET /orders
    def order_pid(self):
        return read_pid(self.state / "pids" / "Order.pid")

    def order_rss_mib(self):
        kib = proc_rss_kib(self.order_pid())
        return kib / 1024 if kib is not None else None

    def insert_orders(self, count):
        started = time.monotonic()
        self.psql(
            f"""
            WITH pets(k, id, title, cents) AS (VALUES
                (0, '9305f481-8399-43de-9912-fd3d2b9f1069', 'Cat', 15000),
                (1, '417e0721-4317-41a6-bb57-54646ace9a0b', 'Dog', 20000),
                (2, '81ad9dae-3f63-4e64-baac-a984dfc2fb28', 'Bird', 3000),
                (3, 'c7ced823-9d1b-4c36-8087-0b15208c94f7', 'Fish', 1000),
                (4, '1212b901-05c3-486e-af51-de54054604f8', 'Rabbit', 5000),
                (5, '0d1b5d4d-1206-4462-842f-130a9545a08f', 'Hamster', 3000),
                (6, 'c2429581-7fd0-4ee5-b5c9-02a42be68db0', 'Pony', 300000),
                (7, '3aad800f-44e2-445b-9bec-cbb7f0b14bef', 'Chicken', 2000)),
            rows AS (
                SELECT g, p.id AS pid, p.title, p.cents, 1 + g % 3 AS qty, g % 10 AS digit,
                       CASE WHEN g % 10 = 0 THEN 'cancelled' ELSE 'completed' END AS status,
                       now() - make_interval(secs => ({count} + 1 - g) * 0.01) AS at
                FROM generate_series(1, {count}) g JOIN pets p ON p.k = g % 8)
            INSERT INTO orders (id, status, basket, shipping_address, card_last4, cardholder_name, items_cents,
                                shipping_cents, payment_cents, error_type, error_message, created_on, updated_on)
            SELECT md5('bench-' || g)::uuid::text, status,
                   jsonb_build_array(jsonb_build_object('id', pid, 'title', title, 'quantity', qty,
                                                        'unitPrice', cents / 100.0)),
                   jsonb_build_object('address', g || ' Bench Street', 'city', 'Seoul', 'postCode', '288' || digit),
                   '1111', 'Bench Reader', cents * qty,
                   digit * 50 + 200,
                   CASE WHEN status = 'completed' THEN cents * qty + digit * 50 + 200 END,
                   CASE WHEN status = 'cancelled' THEN 'insufficient inventory' END,
                   CASE WHEN status = 'cancelled' THEN 'Error, insufficient inventory' END,
                   at, at
            FROM rows
            ON CONFLICT (id) DO NOTHING;
            ANALYZE orders;
            """
        )
        return time.monotonic() - started

    def rss_watch(self, stop, peaks, interval=0.05):
        while not stop.is_set():
            mib = self.order_rss_mib()
            if mib is not None:
                peaks.append(mib)
                self.sampler.note_rss("Order", mib)
            stop.wait(interval)

    def rss_baseline(self):
        values = []
        for _ in range(10):
            mib = self.order_rss_mib()
            if mib is not None:
                values.append(mib)
            time.sleep(0.05)
        return statistics.median(values) if values else None

    def read_stream(self):
        """Reads GET /orders to the end: time to the headers, to the first order, to the last; lines; RSS."""
        before = self.rss_baseline()
        stop, samples = threading.Event(), []
        watcher = threading.Thread(target=self.rss_watch, args=(stop, samples), daemon=True)
        watcher.start()
        conn = http.client.HTTPConnection("127.0.0.1", self.order_port, timeout=120)
        rows, size, first_row, first_line = 0, 0, None, b""
        started = time.monotonic()
        try:
            conn.request("GET", "/orders", headers={"Accept": "application/x-ndjson",
                                                    "Authorization": f"Bearer {operator_token()}"})
            resp = conn.getresponse()
            headers_at = time.monotonic()
            if resp.status != 200:
                raise RuntimeError(f"GET /orders answered {resp.status}")
            while True:
                chunk = resp.read1(1 << 16)
                if not chunk:
                    break
                if first_row is None:
                    first_row = time.monotonic()
                if len(first_line) < 1 << 16 and rows == 0:
                    first_line += chunk
                size += len(chunk)
                rows += chunk.count(b"\n")
            finished = time.monotonic()
        finally:
            conn.close()
            stop.set()
            watcher.join()
        try:
            json.loads(first_line.split(b"\n", 1)[0])
            valid = True
        except ValueError:
            valid = False
        peak = max(samples) if samples else None
        return {
            "headers_ms": round((headers_at - started) * 1000, 1),
            "ttfb_ms": round(((first_row or finished) - started) * 1000, 1),
            "total_s": round(finished - started, 2),
            "rows": rows,
            "mib": round(size / 2**20, 1),
            "first_row_is_json": valid,
            "rss_before_mib": round(before, 1) if before is not None else None,
            "rss_peak_mib": round(peak, 1) if peak is not None else None,
            "rss_growth_mib": round(peak - before, 1) if peak is not None and before is not None else None,
        }

    def raw_request(self, rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", self.order_port))
        sock.sendall(b"GET /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/x-ndjson\r\n"
                     + f"Authorization: Bearer {operator_token()}\r\n\r\n".encode())
        return sock

    def slow_reader(self, seconds):
        """Reads 4 KiB every 20 ms (about 200 KiB/s) for SECONDS: with backpressure the gateway's memory stays flat."""
        before = self.rss_baseline()
        stop, samples = threading.Event(), []
        watcher = threading.Thread(target=self.rss_watch, args=(stop, samples), daemon=True)
        watcher.start()
        sock = self.raw_request(rcvbuf=16384)
        got = 0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                data = sock.recv(4096)
                if not data:
                    break
                got += len(data)
                time.sleep(0.02)
        finally:
            sock.close()
            stop.set()
            watcher.join()
        peak = max(samples) if samples else None
        return {
            "seconds": seconds,
            "kib_read": round(got / 1024),
            "rss_before_mib": round(before, 1) if before is not None else None,
            "rss_peak_mib": round(peak, 1) if peak is not None else None,
            "rss_growth_mib": round(peak - before, 1) if peak is not None and before is not None else None,
        }

    STREAM_QUERY = """
        SELECT count(*) FROM pg_stat_activity
        WHERE usename = 'orders' AND datname = 'orders' AND pid <> pg_backend_pid() AND state <> 'idle'
          AND ((query ILIKE '%FROM orders o%' AND query NOT ILIKE '%o.id =%') OR query ILIKE 'FETCH %')
    """

    def stream_queries(self):
        return int(self.psql(self.STREAM_QUERY, db="postgres") or 0)

    def hangup(self, wait_limit):
        """Reads about 100 lines of GET /orders, hangs up, then times how long until the query is gone (waiting up
        to WAIT_LIMIT seconds, so a slow stop is measured too, not only a pass or fail)."""
        if self.stream_queries():
            log("a stream query is running before the hang-up test; waiting for it")
            deadline = time.monotonic() + 60
            while self.stream_queries() and time.monotonic() < deadline:
                time.sleep(0.1)
        sock = self.raw_request(rcvbuf=16384)
        lines, seen = 0, 0
        try:
            while lines < 100:
                data = sock.recv(4096)
                if not data:
                    break
                lines += data.count(b"\n")
            time.sleep(0.2)  # the server fills the socket buffers and waits: the query is paused, not finished
            seen = self.stream_queries()
        finally:
            # Unread data in the receive buffer: close() sends a RST, like a browser tab being closed.
            sock.close()
        closed = time.monotonic()
        gone_after = None
        while time.monotonic() - closed < wait_limit:
            if self.stream_queries() == 0:
                gone_after = time.monotonic() - closed
                break
            time.sleep(0.05)
        try:
            healthy = http_get(self.order_port, "/health")[0] == 200
        except (OSError, http.client.HTTPException):
            healthy = False
        return {
            "hangup_query_seen": seen > 0,
            "hangup_seconds": round(gone_after, 2) if gone_after is not None else None,
            "hangup_stops_query": bool(seen > 0 and gone_after is not None and gone_after <= BAR["hangup_seconds"]),
            "healthy_after_hangup": healthy,
            "hangup_waited_s": wait_limit,
        }

    def stream(self):
        a = self.args
        log(f"Lab 1: inserting {a.stream_rows} orders")
        insert_s = self.insert_orders(a.stream_rows)
        total = int(self.psql("SELECT count(*) FROM orders"))
        log(f"inserted in {insert_s:.1f} s; {total} orders in the table; reading GET /orders")
        result = {"inserted": a.stream_rows, "insert_s": round(insert_s, 1), "rows_in_table": total}
        result.update(self.read_stream())
        result["complete"] = result["rows"] >= total
        log(
            f"GET /orders: {result['rows']} lines, {result['mib']} MiB, first order after {result['ttfb_ms']} ms, "
            f"all in {result['total_s']} s; Order RSS {result['rss_before_mib']} -> {result['rss_peak_mib']} MiB"
        )
        log("hang-up test")
        result.update(self.hangup(wait_limit=a.hangup_wait))
        log(
            f"hang-up: query seen {result['hangup_query_seen']}, gone after {result['hangup_seconds']} s, "
            f"stops query: {result['hangup_stops_query']}"
        )
        if a.slow_seconds > 0:  # after the hang-up test: if hanging up does not stop its query, this one lingers
            log(f"slow reader for {a.slow_seconds:g} s")
            result["slow_reader"] = self.slow_reader(a.slow_seconds)
        return result

    def load(self):
        """Warm-up, throughput search, latency run at half the highest passing rate."""
        a, results = self.args, {}
        log(f"warm-up: closed loop, {a.warmup_concurrency} in flight, {a.warmup_orders} orders")
        report, _ = self.loadgen(
            "warmup", ["--concurrency", str(a.warmup_concurrency), "--orders", str(a.warmup_orders)], measured=False
        )
        log(f"warm-up: {report['sagasPerSecond']:.0f} sagas/s, {report['errors']} errors")
        results["warmup"] = {"sagas_per_sec": round(report["sagasPerSecond"], 1), "errors": report["errors"]}

        log(f"one in flight: {a.single_orders} orders, one at a time")
        report, _ = self.loadgen("one-in-flight", ["--concurrency", "1", "--orders", str(a.single_orders)])
        results["p50_ms_one_in_flight"] = report["endToEndMs"]["p50"]
        results["one_in_flight"] = {"endToEndMs": report["endToEndMs"], "stepsMs": report["stepsMs"]}
        log(f"one in flight: p50 {report['endToEndMs']['p50']:.1f} ms")

        self.quiesce()
        log(f"CPU per saga: open loop at {a.cpu_rate:g}/s for {a.cpu_seconds:g} s")
        entry, report = self.open_loop(a.cpu_rate, a.cpu_seconds, "cpu")
        completed = max(1, report["orders"] - report["errors"])
        spent = self.last_cpu_seconds
        system_cpu = sum(sec for name, sec in spent.items() if name != "Loadgen")
        results["cpu_ms_per_saga"] = round(1000 * system_cpu / completed, 2)
        results["loadgen_cpu_ms_per_saga"] = round(1000 * spent.get("Loadgen", 0.0) / completed, 2)
        results["cpu"] = {
            "rate": a.cpu_rate,
            "sagas": completed,
            "errors": report["errors"],
            "ms_per_saga": {name: round(1000 * sec / completed, 2) for name, sec in sorted(spent.items())},
        }
        log(f"CPU per saga: {results['cpu_ms_per_saga']:.1f} ms (Loadgen {results['loadgen_cpu_ms_per_saga']:.1f} ms)")

        self.quiesce()
        log(f"saturation: closed loop, {a.saturation_concurrency} in flight, {a.saturation_orders} orders")
        report, _ = self.loadgen(
            "saturation", ["--concurrency", str(a.saturation_concurrency), "--orders", str(a.saturation_orders)])
        results["saturation_sagas_per_sec"] = round(report["sagasPerSecond"], 1)
        log(f"saturation: {report['sagasPerSecond']:.0f} sagas/s, {report['errors']} errors")

        log(f"throughput search: {a.run_seconds:g} s per rate, rates {', '.join(f'{r:g}' for r in a.rates)} then refine")
        runs, top = self.search()
        results["search"] = runs
        if top is None:
            log("no rate passed; the latency run uses the lowest rate tried")
            half = min(r["rate"] for r in runs) / 2
            results["sagas_per_sec"] = 0.0
        else:
            half = top["rate"] / 2
            results["sagas_per_sec"] = top["achieved"]
        results["max_rate"] = top["rate"] if top else None

        log(f"latency run: {half:g}/s for {a.latency_seconds:g} s")
        entry, report = self.open_loop(half, a.latency_seconds, "latency", svg=True)
        results["latency"] = {
            "rate": half,
            "achieved": entry["achieved"],
            "endToEndMs": report["endToEndMs"],
            "postMs": report["postMs"],
            "stepsMs": report["stepsMs"],
            "cpu_pct": entry["cpu_pct"],
        }
        results["p50_ms"] = entry["p50"]
        results["p99_ms"] = entry["p99"]
        results["errors"] = entry["errors"] + (top["errors"] if top else 0)
        results["errors_all_runs"] = sum(r["errors"] for r in runs) + entry["errors"]

        return results

    # --- the whole run
    def run(self):
        a = self.args
        self.sampler.start()
        results = {"timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        results["machine"] = machine()
        results["config"] = {
            "build": a.build_label,
            "quick": a.quick,
            "run_seconds": a.run_seconds,
            "latency_seconds": a.latency_seconds,
            "mix": a.mix,
            "search_rule": f"errors == 0 and p99 < {SEARCH_P99_MS} ms and achieved >= {SEARCH_MIN_ACHIEVED:.0%} of offered",
        }
        ready = {}
        if a.ready_file and os.path.exists(a.ready_file):
            for line in Path(a.ready_file).read_text().splitlines():
                item = json.loads(line)
                ready[item["name"]] = item["ms"]
        results["ready_ms"] = ready

        results["config"]["only"] = a.only
        if a.only in ("all", "load"):
            results.update(self.load())
        else:
            results.update(sagas_per_sec=None, p50_ms=None, p99_ms=None, errors=None, search=[], latency=None)
        if a.only in ("all", "stream"):
            self.quiesce()
            results["stream"] = self.stream()
        else:
            results["stream"] = None

        self.sampler.running = False
        self.sampler.snapshot()
        results["rss_mib"] = {name: round(mib, 1) for name, mib in sorted(self.sampler.peaks().items())}
        results["cpu_pct"] = {
            name: round(100 * sec / self.wall_measured, 1) for name, sec in sorted(self.cpu_measured.items())
        } if self.wall_measured else {}
        results["notes"] = {
            "cpu_pct": "average over the search and latency runs; 100 = one core",
            "rss_mib": "peak over the whole benchmark (VmRSS; postgres = summed PSS of the postmaster and backends)",
            "errors": "Loadgen errors of the latency run and of the highest passing search run",
        }
        return results


def machine():
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "cpu": model,
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ----------------------------------------------------------------------------------------------------------------
# Summary


def verdict(value, limit, higher_is_better=False, unit=""):
    if value is None:
        return "n/a", False
    ok = value >= limit if higher_is_better else value <= limit
    if ok:
        return "pass", True
    gap = (limit - value) if higher_is_better else (value - limit)
    return f"short by {gap:.1f}{unit}", False


def summary(results):
    rows, all_ok = [], True

    def add(label, value, bar_text, check):
        nonlocal all_ok
        text, ok = check
        all_ok &= ok
        rows.append((label, value, bar_text, text))

    if results.get("latency"):
        add("sagas/s sustained", f"{results['sagas_per_sec']:.1f}", f">= {BAR['sagas_per_sec']}",
            verdict(results["sagas_per_sec"], BAR["sagas_per_sec"], True))  # fmt: skip
        add("errors", str(results["errors"]), "0",
            ("pass", True) if results["errors"] == 0 else (f"{results['errors']} errors", False))  # fmt: skip
        rate = results["latency"]["rate"]
        add(f"p50 at {rate:g}/s (ms)", f"{results['p50_ms']:.2f}", f"<= {BAR['p50_ms']}",
            verdict(results["p50_ms"], BAR["p50_ms"], unit=" ms"))  # fmt: skip
        add(f"p99 at {rate:g}/s (ms)", f"{results['p99_ms']:.2f}", f"<= {BAR['p99_ms']}",
            verdict(results["p99_ms"], BAR["p99_ms"], unit=" ms"))  # fmt: skip
    if results.get("cpu_ms_per_saga") is not None:
        add(f"CPU per saga at {results['cpu']['rate']:g}/s (ms)", f"{results['cpu_ms_per_saga']:.2f}",
            f"<= {BAR['cpu_ms_per_saga']}", verdict(results["cpu_ms_per_saga"], BAR["cpu_ms_per_saga"], unit=" ms"))
        add("Loadgen CPU per saga (ms)", f"{results['loadgen_cpu_ms_per_saga']:.2f}", "-", ("(not counted)", True))
        add("saturation, closed loop (sagas/s)", f"{results['saturation_sagas_per_sec']:.1f}", "-", ("", True))
        add("p50 one in flight (ms)", f"{results['p50_ms_one_in_flight']:.2f}", "-", ("", True))
    for name in SERVICES:
        mib = results["rss_mib"].get(name)
        add(f"{name} peak RSS (MiB)", f"{mib:.1f}" if mib is not None else "-", f"< {BAR['rss_mib']}",
            verdict(mib, BAR["rss_mib"] - 1e-9, unit=" MiB"))  # fmt: skip
    for name in SERVICES:
        ms = results["ready_ms"].get(name)
        add(f"{name} ready (ms)", f"{ms:.0f}" if ms is not None else "-", f"<= {BAR['ready_ms']}",
            verdict(ms, BAR["ready_ms"], unit=" ms"))  # fmt: skip
    s = results.get("stream")
    if s:
        add("stream: first order (ms)", f"{s['ttfb_ms']}", f"<= {BAR['ttfb_ms']}",
            verdict(s["ttfb_ms"], BAR["ttfb_ms"], unit=" ms"))  # fmt: skip
        add("stream: Order RSS growth (MiB)", f"{s['rss_growth_mib']}", f"< {BAR['rss_growth_mib']}",
            verdict(s["rss_growth_mib"], BAR["rss_growth_mib"] - 1e-9, unit=" MiB"))  # fmt: skip
        add("stream: rows read", f"{s['rows']}", f">= {s['rows_in_table']}",
            ("pass", True) if s["complete"] else ("incomplete", False))  # fmt: skip
        gone = s["hangup_seconds"]
        if s["hangup_stops_query"]:
            hang = ("pass", True)
        elif not s["hangup_query_seen"]:
            hang = ("query never seen while streaming", False)
        elif gone is None:
            hang = (f"still running {s['hangup_waited_s']:g} s after the hang-up", False)
        else:
            hang = (f"short by {gone - BAR['hangup_seconds']:.1f} s", False)
        add("stream: hang-up stops query (s)", f"{gone}" if gone is not None else "never", f"<= {BAR['hangup_seconds']}", hang)
    if not results.get("latency") or not s:
        all_ok = False  # a partial run (--only) cannot meet the whole bar

    width = max(len(r[0]) for r in rows)
    lines = ["", f"{'figure'.ljust(width)}  {'value':>10}  {'bar':>10}  verdict", "-" * (width + 40)]
    for label, value, bar_text, text in rows:
        lines.append(f"{label.ljust(width)}  {value:>10}  {bar_text:>10}  {text}")
    lines.append("")
    cpu = results.get("cpu_pct", {})
    lines.append("CPU % of one core (average over the measured runs): " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    lines.append("Peak RSS MiB: " + ", ".join(f"{k} {v}" for k, v in results.get("rss_mib", {}).items()))
    if results.get("search"):
        lines.append("Search (offered -> achieved, p99 ms): " + ", ".join(
            f"{r['rate']:g} -> {r['achieved']:.0f}/s {r['p99']:.0f}{'' if r['pass'] else ' FAIL'}" for r in results["search"]))  # fmt: skip
    lines.append(f"Machine: {results['machine']['cores']} cores, {results['machine']['memory_gib']} GiB; build {results['config']['build']}")
    lines.append(f"Overall: {'every figure meets the bar' if all_ok else 'some figures miss the bar'}")
    return "\n".join(lines), all_ok


# ----------------------------------------------------------------------------------------------------------------


def cmd_run(args):
    if args.quick:
        args.run_seconds = args.run_seconds or 4
        args.latency_seconds = args.latency_seconds or 6
        args.rates = args.rates or [25, 50, 100, 200, 400, 800, 1600]
        args.refine = 1 if args.refine is None else args.refine
        args.warmup_orders = args.warmup_orders or 100
        args.single_orders = min(args.single_orders, 50)
        args.cpu_seconds = min(args.cpu_seconds, 8)
        args.saturation_orders = min(args.saturation_orders, 600)
        args.slow_seconds = 2 if args.slow_seconds is None else args.slow_seconds
        args.hangup_wait = args.hangup_wait or 10
    args.hangup_wait = args.hangup_wait or 30
    args.run_seconds = args.run_seconds or 10
    args.latency_seconds = args.latency_seconds or 20
    args.rates = args.rates or [50, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000]
    args.refine = 3 if args.refine is None else args.refine
    args.warmup_orders = args.warmup_orders or 500
    args.slow_seconds = 5 if args.slow_seconds is None else args.slow_seconds

    if not args.results:
        partial = args.quick or args.only != "all"
        args.results = str(Path(args.out_dir) / "results.json") if partial else str(REPO / "bench" / "results.json")
    started = time.monotonic()
    bench = Bench(args)
    results = bench.run()
    results["bench_seconds"] = round(time.monotonic() - started)
    text, ok = summary(results)
    results["meets_bar"] = ok
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(results, indent=2) + "\n")
    print(text)
    print(f"\nResults: {args.results}; Loadgen reports and the latency plot: {args.out_dir}/")
    return 1 if args.strict and not ok else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("wait-ready")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--since-ns", type=int, required=True)
    w.add_argument("--name", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--pid-file")
    w.add_argument("--timeout", type=float, default=60)

    r = sub.add_parser("run")
    env = os.environ.get
    r.add_argument("--state", default=env("PETS_STATE", str(REPO / ".pets" / "bench")))
    r.add_argument("--bin", default=env("PETS_BIN", str(REPO / ".build" / "release")))
    r.add_argument("--pg-bin", default=env("PETS_PG_BIN", "/usr/lib/postgresql/15/bin"))
    r.add_argument("--pg-port", type=int, default=int(env("PETS_PG_PORT", "24432")))
    r.add_argument("--order-port", type=int, default=int(env("PETS_ORDER_PORT", "25080")))
    r.add_argument("--orchestrator-port", type=int, default=int(env("PETS_ORCHESTRATOR_PORT", "25084")))
    r.add_argument("--ready-file")
    r.add_argument("--build-label", default="release")
    r.add_argument("--results", help="default bench/results.json for a full run; a --quick or --only run writes "
                   "bench/out/results.json instead, so a smoke test never replaces the recorded figures")
    r.add_argument("--out-dir", default=str(REPO / "bench" / "out"))
    r.add_argument("--quick", action="store_true", help="shorter runs, fewer rates (a smoke test)")
    r.add_argument("--run-seconds", type=float, help="seconds per search run (default 10; --quick 4)")
    r.add_argument("--latency-seconds", type=float, help="seconds of the latency run (default 20; --quick 6)")
    r.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], help="search ladder, e.g. 50,100,200")
    r.add_argument("--refine", type=int, help="bisection runs between the last pass and the first fail (default 3)")
    r.add_argument("--warmup-orders", type=int)
    r.add_argument("--warmup-concurrency", type=int, default=8)
    r.add_argument("--mix", default="80,10,10")
    r.add_argument("--single-orders", type=int, default=200, help="orders of the one-in-flight run")
    r.add_argument("--cpu-rate", type=float, default=50, help="open-loop rate of the CPU-per-saga run")
    r.add_argument("--cpu-seconds", type=float, default=20, help="length of the CPU-per-saga run")
    r.add_argument("--saturation-concurrency", type=int, default=16)
    r.add_argument("--saturation-orders", type=int, default=3000)
    r.add_argument("--order-timeout", type=float, default=15, help="Loadgen --timeout for the open-loop runs")
    r.add_argument("--pause", type=float, default=1.0, help="seconds of rest before each run")
    r.add_argument("--stream-rows", type=int, default=100_000)
    r.add_argument("--slow-seconds", type=float, help="slow-reader test length (0 skips; default 5, --quick 2)")
    r.add_argument("--hangup-wait", type=float, help="seconds to wait for the query to stop after a hang-up (default 30, --quick 10)")
    r.add_argument("--only", choices=["all", "load", "stream"], default="all",
                   help="load: warm-up, search and latency run only; stream: Lab 1 only (default all)")
    r.add_argument("--strict", action="store_true", help="exit 1 when a figure misses the bar")

    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.command == "wait-ready":
        return cmd_wait_ready(args)
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
