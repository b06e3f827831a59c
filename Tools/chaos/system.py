"""The system a chaos run works on: PostgreSQL, RabbitMQ (one node or a cluster), two replicas of every service and
the supervisor, started and stopped through scripts/lib.sh on the run's own folder and ports; the processes it
kills, found by their pid files and checked in /proc, and what their logs say about crashes."""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from chaos import layout
from chaos.console import log
from chaos.layout import HOST, INSTANCES, PORTS, REPLICAS, SERVICES, amqp_port, instance_port
from pets import REPO, libsh

def tcp_sockets() -> list[tuple[int, int, str]]:
    """(local port, remote port, inode) of every TCP socket on the machine, from /proc/net/tcp and tcp6."""
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            sockets.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16), fields[9]))
    return sockets


class System:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        if args.port_base is not None:
            self.state = REPO / ".pets" / f"chaos-p{args.port_base}"
        else:
            self.state = REPO / ".pets" / ("chaos" if args.slot == 0 else f"chaos-{args.slot}")
        self.bin = Path(args.bin).resolve()
        # Only our settings: nothing PETS_* from the caller (scripts/test exports its own ports and URLs).
        self.env = libsh.environment(
            PORTS, PETS_STATE=self.state, PETS_BIN=self.bin, PETS_SCALE=" ".join(f"{s}={REPLICAS}" for s in SERVICES),
            PETS_INITIAL_STOCK=args.initial_stock, PETS_STEP_DEADLINE_SECONDS=args.step_deadline,
            PETS_HEALTH_TIMEOUT=90, PETS_RABBIT_NODES=layout.RABBIT_NODES, LOG_LEVEL=args.log_level)
        self.lib_log = self.state / "logs" / "chaos-lib.log"

    def lib(self, script: str, *, capture: bool = False, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Runs `script` in bash after sourcing scripts/lib.sh and pets_defaults."""
        self.lib_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lib_log, "a") as out:
            return libsh.run(script, self.env, timeout=timeout, text=True,
                             stdout=subprocess.PIPE if capture else out, stderr=out,
                             start_new_session=True)  # a terminal Ctrl-C reaches only us; we stop things in order

    def check_binaries(self) -> None:
        missing = [s for s in SERVICES if not os.access(self.bin / s, os.X_OK)]
        if missing:
            sys.exit(f"chaos: no executable {', '.join(str(self.bin / m) for m in missing)}; build first "
                     f"(swift build) or pass --bin / PETS_BIN")

    def start(self) -> None:
        # Whatever an earlier run left on our folder goes first; only then the folder is wiped.
        if self.state.exists():
            self.lib("pets_stop_all >/dev/null 2>&1 || true", timeout=120)
            shutil.rmtree(self.state)
        if n := self.kill_stray_backtracers():
            log(f"killed {n} orphaned swift-backtrace processes of an earlier run that held our ports")
        (self.state / "logs").mkdir(parents=True)
        log(f"starting PostgreSQL, RabbitMQ ({layout.RABBIT_NODES} node{'s' if layout.RABBIT_NODES > 1 else ''}) and {len(INSTANCES)} service instances in {self.state} "
            f"(binaries {self.bin}; lib output in {self.lib_log})")
        started = time.monotonic()
        result = self.lib(
            "pets_prepare_state && pets_install_packages && pets_secrets && pets_start_postgres && "
            "pets_start_broker && pets_start_services && pets_wait_healthy && pets_start_supervisor",
            timeout=600)
        if result.returncode != 0:
            said = [line for line in self.lib_log.read_text(errors="replace").splitlines()
                    if line.startswith("[pets]")][-15:]
            raise RuntimeError("the system did not start:\n  " + "\n  ".join(said + self.crash_samples()))
        log(f"system up in {time.monotonic() - started:.1f}s; supervisor running")

    def stop(self) -> None:
        log("stopping everything (pets_stop_all)")
        result = self.lib("pets_stop_all", timeout=300)
        if result.returncode != 0:
            log(f"pets_stop_all exited {result.returncode}; see {self.lib_log}")
        if n := self.kill_stray_backtracers():
            log(f"killed {n} orphaned swift-backtrace processes that still held our ports")

    def rabbitmqctl(self, *args: str, timeout: float = 60) -> str | None:
        quoted = " ".join(f"'{a}'" for a in args)
        try:
            result = self.lib(f"pets_rabbitmqctl {quoted}", capture=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return result.stdout if result.returncode == 0 else None

    def psql(self, database: str, sql: str, timeout: float = 20) -> str | None:
        try:
            result = self.lib(f"pets_psql -d '{database}' -At -c \"{sql}\"", capture=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    # Processes -------------------------------------------------------------------------------------------

    def service_pid(self, name: str) -> int | None:
        """The pid of a service instance if it is alive and is our binary."""
        pid = libsh.read_pid(self.state / "pids" / f"{name}.pid")
        if pid is None:
            return None
        argv = libsh.cmdline(pid)
        service = name.partition("-")[0]
        if not argv or Path(argv[0]).name != service:
            return None
        try:
            if Path(argv[0]).resolve() != (self.bin / service).resolve():
                return None
        except OSError:
            return None
        return pid

    def beam_pid(self, node: int = 1) -> int | None:
        pid = libsh.read_pid(self.state / ("rabbitmq" if node == 1 else f"rabbitmq-{node}") / "rabbit.pid")
        if pid is None:
            return None
        argv = libsh.cmdline(pid)
        return pid if argv and "beam" in Path(argv[0]).name and str(self.state) in " ".join(argv) else None

    def postmaster_pid(self) -> int | None:
        data = self.state / "postgres" / "data"
        pid = libsh.read_pid(data / "postmaster.pid", first_line=True)
        if pid is None:
            return None
        argv = libsh.cmdline(pid)
        return pid if argv and "postgres" in Path(argv[0]).name and str(data) in " ".join(argv) else None

    @staticmethod
    def port_open(port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return True
        except OSError:
            return False

    def our_ports(self) -> set[int]:
        return (set(PORTS.values()) | {instance_port(name) for name in INSTANCES}
                | {amqp_port(k) for k in range(1, layout.RABBIT_NODES + 1)})

    def running_rabbit_nodes(self) -> int | None:
        """How many nodes node 1 sees running in its cluster (None: node 1 does not answer)."""
        out = self.rabbitmqctl("eval", "length(rabbit_nodes:all_running()).", timeout=20)
        digits = "".join(ch for ch in (out or "") if ch.isdigit())
        return int(digits) if digits else None

    def stray_backtracers(self) -> list[int]:
        """Orphaned swift-backtrace processes that hold sockets of ours.

        When a service crashes, the Swift runtime spawns swift-backtrace, which inherits the service's sockets (its
        listening one included). If the crashed service is then SIGKILLed, the backtracer is orphaned, lingers and
        keeps the port, so the restarted service cannot bind it. These are processes of our run: found by the
        sockets they hold on our ports, never by name alone."""
        ports = self.our_ports()
        inodes = {inode for local, remote, inode in tcp_sockets() if local in ports or remote in ports}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().strip() != "swift-backtrace":
                    continue
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] != "1":
                    continue  # its service is still alive (and backtracing): not orphaned
                links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
            except OSError:
                continue
            if any(link == f"socket:[{inode}]" for inode in inodes for link in links):
                found.append(int(entry.name))
        return found

    def socket_owners(self) -> dict[int, str]:
        """Local TCP port -> 'Instance (pid N)' for every socket a process of ours holds."""
        inode_port = {inode: local for local, _, inode in tcp_sockets()}
        names = {}
        for name in INSTANCES:
            pid = self.service_pid(name)
            if pid:
                names[pid] = name
        owners: dict[int, str] = {}
        for pid, name in names.items():
            try:
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        port = inode_port.get(link[8:-1])
                        if port:
                            owners[port] = f"{name} (pid {pid})"
            except OSError:
                continue
        return owners

    def stuck_report(self) -> str:
        """Who holds unacked deliveries (per AMQP channel, mapped to the process), and open database sessions."""
        out = []
        channels = self.rabbitmqctl("list_channels", "-q", "--no-table-headers", "name", "consumer_count",
                                    "messages_unacknowledged", "messages_unconfirmed") or ""
        owners = self.socket_owners()
        out.append("AMQP channels with unacked deliveries (channel, consumers, unacked, unconfirmed, process):")
        for line in channels.splitlines():
            fields = line.split("\t")
            if len(fields) >= 3 and fields[2].strip().isdigit() and int(fields[2]) > 0:
                match = re.match(r"[\d.]+:(\d+) ->", fields[0])
                owner = owners.get(int(match.group(1)), "?") if match else "?"
                out.append(f"  {line.strip()}\t{owner}")
        consumers = self.rabbitmqctl("list_consumers", "-q", "--no-table-headers", "queue_name", "channel_pid",
                                     "prefetch_count") or ""
        out.append("consumers (queue, channel, prefetch):")
        out.extend(f"  {line}" for line in consumers.splitlines())
        for db in ("orders", "inventory", "payments", "orchestrator"):
            activity = self.psql(db, "SELECT pid, state, wait_event_type, wait_event, "
                                     "round(extract(epoch FROM now() - xact_start)), left(query, 100) "
                                     "FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND pid <> pg_backend_pid() AND (state <> 'idle' OR xact_start IS NOT NULL) "
                                     "ORDER BY xact_start NULLS LAST")
            idle = self.psql(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND state = 'idle' AND xact_start IS NULL")
            out.append(f"database {db}: {idle} idle sessions; busy ones "
                       f"(pid|state|wait type|wait|seconds in transaction|query):")
            out.extend(f"  {line}" for line in (activity or "").splitlines())
        return "\n".join(out)

    def kill_stray_backtracers(self) -> int:
        pids = self.stray_backtracers()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def crashes(self) -> dict[str, int]:
        """Deaths the services report themselves (a SIGKILL leaves no trace in the log)."""
        counts: dict[str, int] = {}
        for name in INSTANCES:
            try:
                text = (self.state / "logs" / f"{name}.log").read_text(errors="replace")
            except OSError:
                continue
            # One "*** Signal N: Backtracing" per crash while the Swift backtracer is on; "Fatal error" otherwise.
            n = max(len(re.findall(r"^\*\*\* Signal \d+: Backtracing", text, re.M)), text.count("Fatal error:"))
            if n:
                counts[name] = n
        return counts

    def crash_samples(self, limit: int = 6) -> list[str]:
        """What the crashes said: the fatal error (in full: a database error names the query) or the first frame of
        ours in the crashed thread."""
        samples = []
        for name in INSTANCES:
            try:
                lines = (self.state / "logs" / f"{name}.log").read_text(errors="replace").splitlines()
            except OSError:
                continue
            for i, line in enumerate(lines):
                if "Fatal error:" in line:
                    text = " ".join(lines[i:i + 4])  # a database error goes on over a few lines
                    samples.append(f"{name}: {text.strip()[:700]}")
                elif line.startswith("*** Program crashed"):
                    frame = ""
                    for later in lines[i:i + 400]:
                        if re.search(r" in (Order|Notifier|Inventory|Payment|Orchestrator) at /", later):
                            frame = " @ " + later.strip()[:200]
                            break
                    samples.append(f"{name}: {line.strip()[:120]}{frame}")
        counted = collections.Counter(samples)
        return [f"{n}x {text}" for text, n in counted.most_common(limit)]

    def supervisor_restarts(self) -> collections.Counter:
        counts: collections.Counter = collections.Counter()
        try:
            text = (self.state / "logs" / "supervisor.log").read_text(errors="replace")
        except OSError:
            return counts
        for match in re.finditer(r"supervisor: (\S+) is down; restarting", text):
            counts[match.group(1)] += 1
        return counts
