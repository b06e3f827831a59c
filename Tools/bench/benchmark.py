"""The benchmark's runs against the started system: warm-up, the throughput search, the latency, CPU-per-saga and
saturation runs (Loadgen), and Lab 1 (100,000 orders inserted, then GET /orders read whole, slowly, and hung up on),
while bench.procfs samples every process."""

import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.console import log
from bench.probe import http_get
from bench.procfs import CpuWindow, Sampler, proc_rss_kib, read_pid
from bench.summary import BAR, SEARCH_MIN_ACHIEVED, SEARCH_P99_MS
from pets.catalogue import Catalogue
from pets.secrets import operator_token


def sql_text(value):
    """A string literal of SQL."""
    return "'" + str(value).replace("'", "''") + "'"


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
        # One row per pet of the catalogue the system serves: (k, id, title, unit price in cents).
        shop = Catalogue.fetch(f"http://127.0.0.1:{self.order_port}")
        catalogue_rows = ",\n                ".join(
            f"({k}, {sql_text(p['id'])}, {sql_text(p['title'])}, {shop.price_cents(p['id'])})"
            for k, p in enumerate(shop.products))
        self.psql(
            f"""
            WITH pets(k, id, title, cents) AS (VALUES
                {catalogue_rows}),
            rows AS (
                SELECT g, p.id AS pid, p.title, p.cents, 1 + g % 3 AS qty, g % 10 AS digit,
                       CASE WHEN g % 10 = 0 THEN 'cancelled' ELSE 'completed' END AS status,
                       now() - make_interval(secs => ({count} + 1 - g) * 0.01) AS at
                FROM generate_series(1, {count}) g JOIN pets p ON p.k = g % {len(shop.products)})
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
    # When the stream's newest page query started (seconds since the epoch, PostgreSQL's clock), whatever its
    # state: `GET /orders` reads in keyset pages, each a short query that is seldom caught running, but each page
    # leaves its start time behind on its connection.
    PAGE_START = """
        SELECT coalesce(extract(epoch FROM max(query_start)), 0), extract(epoch FROM clock_timestamp())
        FROM pg_stat_activity
        WHERE usename = 'orders' AND datname = 'orders' AND pid <> pg_backend_pid()
          AND query ILIKE '%FROM orders o%' AND query NOT ILIKE '%o.id =%'
    """

    def stream_queries(self):
        return int(self.psql(self.STREAM_QUERY, db="postgres") or 0)

    def page_start(self):
        """(the newest stream page query's start, PostgreSQL's time now), both in seconds since the epoch."""
        last, now = self.psql(self.PAGE_START, db="postgres").split("|")
        return float(last), float(now)

    def hangup(self, wait_limit):
        """Reads about 100 lines of GET /orders, hangs up, then watches for WAIT_LIMIT seconds whether the stream
        goes on querying: a query still running, or a new page query started after the hang-up. `hangup_seconds` is
        how long after the hang-up the last of them was seen (0 when none was), watched for three times the bar, so
        a slow stop is measured too, not only a pass or fail. `hangup_query_seen`: the stream's queries were seen while it was read."""
        if self.stream_queries():
            log("a stream query is running before the hang-up test; waiting for it")
            deadline = time.monotonic() + 60
            while self.stream_queries() and time.monotonic() < deadline:
                time.sleep(0.1)
        _, started = self.page_start()
        sock = self.raw_request(rcvbuf=16384)
        lines, seen = 0, False
        try:
            while lines < 100:
                data = sock.recv(4096)
                if not data:
                    break
                lines += data.count(b"\n")
            time.sleep(0.2)  # the server fills the socket buffers and waits for the reader
            seen = self.stream_queries() > 0 or self.page_start()[0] > started
        finally:
            # Unread data in the receive buffer: close() sends a RST, like a browser tab being closed.
            sock.close()
        _, closed = self.page_start()
        grace = 0.1  # a page asked for just before the hang-up may start just after it
        last_seen = None  # seconds after the hang-up at which the stream was last seen querying
        # Watch three times as long as the bar allows (at most WAIT_LIMIT): a stream still querying then fails.
        window = min(wait_limit, 3 * BAR["hangup_seconds"])
        begun = time.monotonic()
        while time.monotonic() - begun < window:
            newest, now = self.page_start()
            if newest > closed + grace:
                last_seen = newest - closed
            if self.stream_queries():
                last_seen = now - closed
            time.sleep(0.05)
        gone_after = last_seen if last_seen is not None else 0.0
        try:
            healthy = http_get(self.order_port, "/health")[0] == 200
        except (OSError, http.client.HTTPException):
            healthy = False
        return {
            "hangup_query_seen": seen,
            "hangup_seconds": round(gone_after, 2),
            "hangup_stops_query": bool(seen and gone_after <= BAR["hangup_seconds"]),
            "healthy_after_hangup": healthy,
            "hangup_waited_s": window,
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

