"""The server's processes as the soak watches them: engine, API, sidecar, workers.

The processes are found from roots (the server the soak started, the process listening on the
server's port, or pids given on the command line) and their descendants, then named by what they
run. A sample holds each process's resident memory, open file descriptors and threads.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psutil

# Long-lived processes whose memory must not grow; workers live for one call or session.
STEADY_ROLES = ("api", "engine", "sidecar")


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    role: str
    rss: int
    fds: int
    threads: int


def role_of(process: psutil.Process, roots: set[int], known: dict[int, str]) -> str:
    """What a process is. ``known`` maps the pids named so far to their roles: the engine's
    children (its model workers) are the engine too, and whatever the sidecar starts (however
    its sandbox wraps them) are workers."""
    parent = known.get(process.ppid())
    if parent == "engine":
        return "engine"
    if parent in ("sidecar", "worker"):
        return "worker"
    command = " ".join(process.cmdline())
    if "conveyor.tools.sidecar.worker" in command:
        return "worker"
    if "conveyor.tools.cli" in command or "conveyor-tools" in command:
        return "sidecar"
    if "VLLM::" in command:
        return "engine"
    if process.pid in roots:
        return "api"
    return "other"


def listening_pid(url: str) -> int | None:
    """The local process that listens on ``url``'s port, if it runs on this machine."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with contextlib.suppress(psutil.AccessDenied):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    return None


def _created(process: psutil.Process) -> float:
    try:
        return process.create_time()
    except psutil.Error:
        return 0.0


def sample(roots: set[int]) -> list[ProcessSample]:
    """Every live process of the trees under ``roots``."""
    seen: dict[int, psutil.Process] = {}
    for pid in roots:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                seen[process.pid] = process
    samples = []
    known: dict[int, str] = {}
    # Parents before children, so that a child's role can follow its parent's.
    for process in sorted(seen.values(), key=_created):
        with contextlib.suppress(psutil.Error):
            with process.oneshot():
                role = known[process.pid] = role_of(process, roots, known)
                samples.append(
                    ProcessSample(
                        process.pid,
                        role,
                        process.memory_info().rss,
                        process.num_fds(),
                        process.num_threads(),
                    )
                )
    return samples


def summarize(samples: list[ProcessSample]) -> dict[str, Any]:
    """Per role: each steady process on its own, workers and others as a count and totals."""
    out: dict[str, Any] = {}
    for role in STEADY_ROLES:
        out[role] = [
            {"pid": s.pid, "rss_mib": _mib(s.rss), "fds": s.fds, "threads": s.threads}
            for s in samples
            if s.role == role
        ]
    for role in ("worker", "other"):
        group = [s for s in samples if s.role == role]
        out[role] = {
            "count": len(group),
            "rss_mib": _mib(sum(s.rss for s in group)),
            "fds": sum(s.fds for s in group),
            "threads": sum(s.threads for s in group),
        }
    return out


def _mib(value: int) -> float:
    return round(value / 2**20, 1)
