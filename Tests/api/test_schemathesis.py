"""A bounded schemathesis run against the Order service, driven by openapi.yaml.

Every operation gets the document's examples, schemathesis' coverage cases (boundaries, missing and mistyped fields,
odd headers) and property-based fuzzing, valid and invalid alike. Each response must not be a 5xx and must conform to
the document: a documented status, content type, headers and body schema.

Bounded and repeatable: PETS_SCHEMATHESIS_MAX_EXAMPLES (default 50) examples per operation and phase, a fixed seed
(PETS_SCHEMATHESIS_SEED), no example database. A run places a few dozen orders at most (most generated bodies are
refused). The JSON report and the full output are left in $PETS_STATE/schemathesis/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import (OPENAPI_PATH, ORDER_URL, STATE, SUMMARY_LINES, operator_headers, order_body, order_count,
                      place_order, wait_for_final)

MAX_EXAMPLES = int(os.environ.get("PETS_SCHEMATHESIS_MAX_EXAMPLES", "50"))
SEED = int(os.environ.get("PETS_SCHEMATHESIS_SEED", "20261125"))
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def test_schemathesis_finds_no_server_error_and_no_response_breaking_the_document(tmp_path):
    # Real order ids, so that GET /orders/{orderId} reaches an order half of the time (a completed and a cancelled
    # one; the upper-case spelling too) instead of answering 404 to every generated id.
    completed = place_order(order_body(marker="schemathesis-seed"))["orderId"]
    cancelled = place_order(order_body(marker="schemathesis-seed", expiry="12/19"))["orderId"]
    wait_for_final(completed)
    wait_for_final(cancelled)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[dictionaries.orders]\n"
        f'values = ["{completed}", "{cancelled}", "{completed.upper()}"]\n'
        "[parameters]\n"
        '"path.orderId" = { dictionary = "orders", probability = 0.5 }\n')

    out_dir = STATE / "schemathesis"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "report.json"
    report.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", str(OPENAPI_PATH), "--url", ORDER_URL,
        # The operator's credential, so GET /orders is exercised as the operator sees it (its 401 has its own test).
        "--header", f"Authorization: {operator_headers()['Authorization']}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-database", "none",
        "--workers", "2",
        "--request-timeout", "15",
        "--report", "json", "--report-json-path", str(report),
    ]
    env = dict(os.environ, SCHEMATHESIS_HOOKS=str(Path(__file__).with_name("schemathesis_hooks.py")))
    orders_before = order_count()
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    (out_dir / "output.txt").write_text(result.stdout + result.stderr)
    placed = order_count() - orders_before

    assert report.is_file(), f"schemathesis wrote no report (exit {result.returncode}):\n{result.stdout[-5000:]}" \
                             f"\n{result.stderr[-3000:]}"
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    operations = summary["operations"]
    failures = summary.get("failures") or []
    errors = summary.get("errors") or []
    lines = [f"schemathesis {summary['schemathesis_version']} (seed {summary['seed']}, max {MAX_EXAMPLES} examples) in "
             f"{elapsed:.0f}s: {operations['tested']}/{operations['selected']} operations, "
             f"{cases['generated']} test cases, {cases['with_failures']} with failures "
             f"({cases['unique_failures']} unique), {cases['errored']} errored; {placed} orders placed"]
    for name, rates in sorted((summary.get("valid_rates") or {}).items()):
        accepted = sum(r["accepted"] for r in rates.values())
        rejected = sum(r["rejected"] for r in rates.values())
        lines.append(f"  {name}: {accepted} accepted, {rejected} rejected")
    lines += [f"  FAILURE {f['code']} {f['title']} x{f['count']}: {', '.join(f['operations'])}" for f in failures]
    lines += [f"  ERROR {e['title']} x{e['count']}" for e in errors]
    lines.append(f"  report: {report}; output: {out_dir / 'output.txt'}")
    SUMMARY_LINES.extend(lines)
    print("\n".join(lines))

    assert summary["complete"] and operations["tested"] == operations["selected"], \
        f"not every operation was tested: {operations}\n{result.stdout[-5000:]}"
    assert not failures and not errors and result.returncode == 0, \
        f"schemathesis found problems (exit {result.returncode}); its report:\n{result.stdout[-12000:]}"
    assert placed < 300, f"the fuzzing run placed {placed} orders; keep it bounded"
