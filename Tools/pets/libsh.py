"""The driver of scripts/lib.sh: its functions run in bash on an environment of our own, and what the processes it
starts leave behind (pid files, /proc). The fault suite (Tests/faults) and the chaos tool (Tools/chaos) start
private systems with it. Standard library only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

from pets import REPO

LIB = REPO / "scripts" / "lib.sh"


def environment(ports: Mapping[str, int], **settings: Any) -> dict[str, str]:
    """The caller's environment without any PETS_* variable or LOG_LEVEL (scripts/test exports its own ports and
    URLs), with `ports` (PETS_PG_PORT, ...) and `settings` (PETS_STATE, PETS_BIN, ...) instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETS_") and k != "LOG_LEVEL"}
    env.update({k: str(v) for k, v in ports.items()})
    env.update({k: str(v) for k, v in settings.items()})
    return env


def run(script: str, env: Mapping[str, str], *, timeout: float | None = None,
        **options: Any) -> subprocess.CompletedProcess:
    """Runs `script` in bash after sourcing lib.sh and pets_defaults, in the repository, with no input; `options`
    go to subprocess.run (stdout, stderr, capture_output, text, start_new_session)."""
    return subprocess.run(["bash", "-c", f'source "$0" && pets_defaults && {script}', str(LIB)], env=dict(env),
                          cwd=REPO, stdin=subprocess.DEVNULL, timeout=timeout, **options)


def read_pid(path: Path, first_line: bool = False) -> int | None:
    """The pid in a pid file (lib.sh's pids/NAME.pid, rabbit.pid; postmaster.pid's first line), or None."""
    try:
        text = path.read_text()
    except OSError:
        return None
    text = text.splitlines()[0] if first_line and text else text
    text = text.strip()
    return int(text) if text.isdigit() else None


def cmdline(pid: int) -> list[str]:
    """The process's argv ([] when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode(errors="replace").split("\0")
    except OSError:
        return []


def is_running(pid: int | None, executable: str) -> bool:
    """True while `pid` is a live (not zombie) process of the executable named so."""
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    argv = cmdline(pid)
    return state not in ("Z", "X") and bool(argv) and argv[0].rsplit("/", 1)[-1] == executable
