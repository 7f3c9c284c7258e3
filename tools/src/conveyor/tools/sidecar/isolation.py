"""What a worker does to itself before it runs untrusted code: sandbox, rlimits, environment.

The worker reads its boot message, then enters the sandbox (:mod:`.sandbox`: namespaces, a
private filesystem, totals over the call's processes) — or, with ``isolation: none`` (local
development only), stays in the host's view with its rlimits and a private directory. A sandbox
that cannot be set up is refused, never downgraded: the worker tells the sidecar why and exits.
"""

from __future__ import annotations

import os
import resource
import socket

from conveyor.tools.protocol.worker import Boot, Refused, ResourceLimits, decode_to_worker
from conveyor.tools.sidecar import linux, sandbox
from conveyor.tools.sidecar.channel import HEADER, pack_message
from conveyor.tools.sidecar.sandbox import SandboxRefused, SandboxSpec, enter

EXIT_REFUSED = 3


def read_boot(fd: int) -> Boot:
    """The boot message, read before any event loop exists (the sandbox forks)."""
    sock = socket.socket(fileno=fd)
    try:
        (size,) = HEADER.unpack(_read_exactly(sock, HEADER.size))
        boot = decode_to_worker(_read_exactly(sock, size))
    finally:
        sock.detach()
    if not isinstance(boot, Boot):
        raise ValueError(f"expected a boot message, got {boot!r}")
    return boot


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the sidecar closed the channel before booting the worker")
        data += chunk
    return data


def isolate(boot: Boot, fd: int) -> tuple[list[str], str]:
    """Enter the sandbox the boot message asks for; returns what holds and the working dir.

    Returns only in the process that runs the tool. A refusal is sent to the sidecar here.
    """
    limits = boot.limits
    if boot.isolation == "none":
        parent = os.getppid()
        if os.geteuid() == 0 and boot.uid > 0:
            os.setgroups([])
            os.setresgid(boot.uid, boot.uid, boot.uid)
            os.setresuid(boot.uid, boot.uid, boot.uid)
        linux.prctl(linux.PR_SET_PDEATHSIG, 9)  # after the uid change, which clears it
        if os.getppid() != parent:
            os._exit(1)
        return ["no isolation (isolation: none, for local development only)"], boot.workdir
    spec = SandboxSpec(
        network=boot.network,
        uid=boot.uid,
        expose=tuple(boot.expose),
        hide=tuple(boot.hide_paths),
        disk_mb=limits.disk_mb,
        memory_mb=limits.memory_mb,
        cpu_seconds=limits.session_cpu_seconds,
        nproc=limits.nproc,
    )
    try:
        return enter(spec, fd), "/tmp"
    except SandboxRefused as e:
        message = pack_message(Refused(str(e)))
        while message:
            message = message[os.write(fd, message) :]
        os._exit(EXIT_REFUSED)


def _set(kind: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, cur_hard = resource.getrlimit(kind)
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(kind, (soft, hard))


def apply_rlimits(limits: ResourceLimits) -> list[str]:
    """The limits that hold for the worker's whole life (CPU is set per call, see below)."""
    mib = 1 << 20
    _set(resource.RLIMIT_AS, limits.memory_mb * mib)
    _set(resource.RLIMIT_FSIZE, limits.file_size_mb * mib)
    _set(resource.RLIMIT_NOFILE, limits.open_files)
    _set(resource.RLIMIT_CORE, 0)
    return [
        f"rlimit AS {limits.memory_mb} MiB",
        f"rlimit FSIZE {limits.file_size_mb} MiB",
        f"rlimit NOFILE {limits.open_files}",
        "rlimit CPU per call",
    ]


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def arm_cpu_limit(call_seconds: float, session_seconds: float, first: bool) -> None:
    """Give the next call ``call_seconds`` of CPU on top of what the worker used so far.

    The soft limit raises SIGXCPU (which kills: nothing handles it); the hard limit, fixed at the
    first call, caps a whole session, since an unprivileged process may never raise it again.
    """
    sandbox.grant_cpu(call_seconds)  # the total over the call's processes (no-op unsandboxed)
    used = _cpu_used()
    soft = int(used + call_seconds) + 1
    if first:
        hard = int(used + session_seconds) + 2
    else:
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
