"""CPU and memory of every process of the system, read from /proc: the services, PostgreSQL (the postmaster and its
children) and RabbitMQ."""

import os
import threading
import time
from pathlib import Path

from bench.console import log

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
SERVICES = ["Inventory", "Payment", "Orchestrator", "Order", "Notifier"]

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

