"""HTTP to the services as the operator, and `wait-ready`: a service's time from its start to its first 200 on
/health."""

import http.client
import json
import os
import time

from bench.console import log
from bench.procfs import pid_alive, read_pid
from pets.secrets import operator_token


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

