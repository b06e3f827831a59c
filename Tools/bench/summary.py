"""The bar the issue sets, and the figures of a run against it."""

from bench.procfs import SERVICES

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
