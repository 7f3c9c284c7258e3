"""What a worker does to itself before it runs untrusted code: namespaces, uid, rlimits.

Runs inside the worker process at start-up, while it still runs only our code. Each step is
applied where the platform allows it and reported by name, so the sidecar can say exactly what
is enforced on this host (``/readyz`` lists it). Root (a container's default) gets everything;
an unprivileged sidecar gets the rlimits, the empty environment and the private directory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys

from conveyor.tools.protocol.worker import ResourceLimits

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _mount(source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def enter_namespaces(network: bool, workdir: str, hide_paths: list[str]) -> tuple[list[str], str]:
    """Private mounts (``/tmp`` is the workdir, secrets hidden) and, unless allowed, no network.

    Returns what was applied and the path under which the workdir is now seen.
    """
    applied: list[str] = []
    if os.geteuid() != 0:
        return applied, workdir
    flags = CLONE_NEWNS | (0 if network else CLONE_NEWNET)
    try:
        _unshare(flags)
    except OSError:
        return applied, workdir
    if not network:
        # A fresh network namespace has only a loopback device, and it is down.
        applied.append("network namespace (no network)")
    try:
        _mount("none", "/", "", MS_REC | MS_PRIVATE)
    except OSError:
        return applied, workdir
    try:
        applied += _expose_interpreter(workdir)
    except OSError:
        return applied, workdir
    # A temp directory that holds the Python installation or the code on sys.path (a checkout
    # or a virtualenv under /tmp) stays shared: covering it would leave nothing to import.
    python = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p}
    try:
        # /tmp last: once it is covered, a workdir below it can no longer be named.
        for path in ("/var/tmp", "/dev/shm", "/tmp"):
            if not os.path.isdir(path):
                continue
            if any(os.path.commonpath([path, p]) == path for p in python):
                applied.append(f"shared {path} (the Python installation is under it)")
                continue
            _mount(workdir, path, "", MS_BIND)
            if path == "/tmp":
                applied.append("private /tmp")
                workdir = "/tmp"
    except OSError:
        return applied, workdir
    hidden = []
    for path in hide_paths:
        try:
            if os.path.isdir(path):
                _mount(
                    "tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k"
                )
            elif os.path.exists(path):
                _mount("/dev/null", path, "", MS_BIND)
            else:
                continue
        except OSError:
            continue
        hidden.append(path)
    applied.append("hidden paths: " + (", ".join(hidden) if hidden else "(none present)"))
    return applied, workdir


def _private_ancestor(path: str) -> str | None:
    """The highest directory above ``path`` that other users may not traverse (like /root)."""
    parts = path.strip("/").split("/")
    for n in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:n])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def _expose_interpreter(stage_root: str) -> list[str]:
    """Keep the interpreter's own files readable after the uid change.

    When Python lives under a private directory (pyenv in /root), the worker could not import
    after dropping root. In the worker's own mount namespace the private directory is covered
    by an empty tmpfs (hiding everything else in it) and only the interpreter is put back.
    """
    import sys

    candidates = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, *sys.path) if p}
    needed = sorted(p for p in candidates if os.path.isdir(p) and _private_ancestor(p))
    roots: list[str] = []
    for path in needed:  # sorted: a parent comes before what it contains
        if not any(path.startswith(r + "/") for r in roots):
            roots.append(path)
    if not roots:
        return []
    stages = []
    for n, path in enumerate(roots):
        stage = os.path.join(stage_root, f".expose-{n}")
        os.mkdir(stage)
        _mount(path, stage, "", MS_BIND | MS_REC)
        stages.append(stage)
    for blocker in sorted({_private_ancestor(p) or "" for p in roots}):
        _mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    for path, stage in zip(roots, stages, strict=True):
        os.makedirs(path, exist_ok=True)
        _mount(stage, path, "", MS_BIND | MS_REC)
        _libc.umount2(stage.encode(), 2)  # MNT_DETACH
        os.rmdir(stage)
    return ["interpreter exposed, its private parent hidden: " + ", ".join(roots)]


def drop_privileges(uid: int) -> list[str]:
    """As root: become ``uid`` (group ``uid``, no supplementary groups), losing every capability."""
    if os.geteuid() != 0 or uid <= 0:
        return []
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    return [f"dedicated uid {uid}"]


def die_with_parent(parent: int) -> None:
    """Be killed when the sidecar dies (set after the uid change, which clears it)."""
    PR_SET_PDEATHSIG = 1
    _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() != parent:  # the sidecar died before the prctl took effect
        os._exit(1)


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
    _set(resource.RLIMIT_NPROC, limits.nproc)
    _set(resource.RLIMIT_CORE, 0)
    return [
        f"rlimit AS {limits.memory_mb} MiB",
        f"rlimit FSIZE {limits.file_size_mb} MiB",
        f"rlimit NOFILE {limits.open_files}",
        f"rlimit NPROC {limits.nproc}",
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
    used = _cpu_used()
    soft = int(used + call_seconds) + 1
    if first:
        hard = int(used + session_seconds) + 2
    else:
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
