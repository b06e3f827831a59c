"""The two commands: `wait-ready` (see bench.probe) and `run` (the benchmark, its results file and its summary)."""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import bench
from bench.benchmark import Bench
from bench.probe import cmd_wait_ready
from bench.summary import summary
from pets import REPO


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
    parser = argparse.ArgumentParser(description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
