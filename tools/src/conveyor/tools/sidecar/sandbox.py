"""The worker sandbox: namespaces that need no root, totals over a call's processes, fail closed.

A freshly spawned worker calls :func:`enter` before it imports any tool. Four processes result:

``launcher`` (the process the sidecar spawned and watches)
    Stays in the host's namespaces only to write the one uid and gid of its child's new user
    namespace (as ``newuidmap`` would: as root it may map a uid of the worker's own), then waits
    and exits as the call did.
``supervisor``
    Creates user, mount, pid, ipc, uts and (unless the tool needs one) network namespaces — an
    unprivileged process may, so this works as root, as a normal user and in a non-root pod —
    and, as root, becomes the worker's own uid. It stays outside the new pid namespace,
    invisible to the tool, and adds up the memory (PSS) and CPU of every process of the call,
    killing them all when a total goes over (see :mod:`.sandbox_watch`).
``init`` (pid 1 of the new pid namespace)
    Builds the private filesystem (:mod:`.sandbox_fs`), drops every capability and reaps
    orphans. When it exits, the kernel kills everything left in the namespace: no setsid or
    double-fork escapes the call, and nothing inside can signal it.
``worker`` (pid 2)
    Runs the tool with no capabilities, ``no_new_privs``, its rlimits, and ``RLIMIT_NPROC``
    counted inside the fresh user namespace: it counts the call's own processes and threads,
    never the engine's or anyone else's of the same uid.

Each process dies with its parent (``PR_SET_PDEATHSIG``), so killing the launcher kills the
call. What cannot be set up raises :class:`SandboxRefused` with the reason: the sidecar then
serves no tool of that profile and says why in ``/readyz``.
"""

from __future__ import annotations

import os
import resource
import select
import signal
from dataclasses import dataclass

from conveyor.tools.sidecar import linux, sandbox_fs, sandbox_watch

# The namespaces' own two processes (supervisor and init) count against RLIMIT_NPROC too.
OWN_PROCESSES = 2


class SandboxRefused(Exception):
    """A guarantee the configuration asks for cannot be set up on this host."""


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    network: bool
    uid: int  # as root: the worker's own uid (every worker another); otherwise unused
    expose: tuple[str, ...]  # shown read-only besides the system directories
    hide: tuple[str, ...]  # covered even inside what is shown
    disk_mb: int  # every writable place together
    memory_mb: int  # every process of the call together (PSS)
    cpu_seconds: float  # every process of the worker together, over its whole life
    nproc: int  # processes and threads of the call


def python_paths() -> list[str]:
    """What the interpreter needs to run and import: its installation and ``sys.path``."""
    import sys

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted(paths)


def config_paths(value: object) -> list[str]:
    """Absolute paths that exist, named anywhere in a tool's config (a database file)."""
    if isinstance(value, str):
        return [value] if value.startswith("/") and os.path.exists(value) else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [p for v in value for p in config_paths(v)]
    return []


def has_uids(first: int, count: int) -> bool:
    """Whether this process's user namespace maps uids ``first`` .. ``first + count - 1``.

    Root on a host maps them all; root inside a user namespace that maps only itself (rootless
    containers, ``unshare --map-root-user``) has no other uid to give a worker.
    """
    with open("/proc/self/uid_map") as f:
        ranges = [tuple(int(v) for v in line.split()) for line in f if line.strip()]
    return any(start <= first and first + count <= start + n for start, _, n in ranges)


def protect() -> None:
    """Make the calling process unreadable through ``/proc`` by processes of its own uid."""
    linux.prctl(linux.PR_SET_DUMPABLE, 0)


def enter(spec: SandboxSpec, channel: int) -> list[str]:
    """Isolate the calling (single-threaded) process; returns in the worker, what it enforces.

    ``channel`` is the worker's socket to the sidecar: the supervisor and init close it, so the
    sidecar sees it end when the worker does.
    """
    parent = os.getppid()
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # the sidecar's death ends the call
    if os.getppid() != parent:
        os._exit(1)
    root = os.geteuid() == 0 and spec.uid > 0  # otherwise the worker shares our uid
    if root:
        # Undo the pool's niced start while we still may: a worker without root cannot.
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    # The new namespace inherits this as its ceiling over the uid's processes on the host.
    resource.setrlimit(resource.RLIMIT_NPROC, (hard, hard))
    uid = gid = spec.uid if root else os.getuid()
    if not root:
        gid = os.getgid()
    unshared_r, unshared_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    launcher = os.getpid()
    supervisor = os.fork()
    if supervisor:
        os.close(unshared_w)
        os.close(mapped_r)
        os.close(channel)
        _map_ids(supervisor, unshared_r, mapped_w, uid, gid, root)
        os.close(mapped_w)
        _mirror(supervisor)
    os.close(unshared_r)
    os.close(mapped_w)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != launcher:
        os._exit(1)
    flags = linux.CLONE_NEWUSER | linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWIPC
    flags |= linux.CLONE_NEWUTS | (0 if spec.network else linux.CLONE_NEWNET)
    try:
        linux.unshare(flags)
    except OSError as e:
        raise SandboxRefused(
            f"cannot create user namespaces ({e.strerror}): this host or container forbids "
            "unprivileged user namespaces (see docs/security.md)"
        ) from None
    os.write(unshared_w, b"1")
    if os.read(mapped_r, 1) != b"1":
        raise SandboxRefused(f"cannot map uid {uid} into the worker's user namespace")
    os.close(mapped_r)
    os.close(unshared_w)
    applied = ["user, mount, pid, ipc and uts namespaces"]
    applied.append("network" if spec.network else "no network (own namespace, loopback down)")
    # Opened while still the namespace's creator with the launcher's uid: as root, that
    # reaches an interpreter under a private directory (/root/.pyenv) by ownership.
    sources = sandbox_fs.open_sources([*sandbox_fs.SYSTEM_PATHS, *python_paths(), *spec.expose])
    if root:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # the uid change cleared it
        if os.getppid() != launcher:
            os._exit(1)
        linux.prctl(linux.PR_SET_DUMPABLE, 1)  # as any process of its uid, until init says no
        applied.append(f"own uid {uid}")

    alive_r, alive_w = os.pipe()  # init sees the supervisor die as this pipe's end
    built_r, built_w = os.pipe()  # init says its filesystem is built
    grants_r, grants_w = os.pipe()  # the worker grants each call its CPU (see grant_cpu)
    init = os.fork()
    if init:
        os.close(alive_r)
        os.close(built_w)
        sandbox_fs.close_sources(sources)
        os.close(channel)
        os.close(grants_w)
        sandbox_watch.supervise(init, built_r, grants_r, spec.memory_mb, spec.cpu_seconds)
    os.close(grants_r)
    os.close(alive_w)
    os.close(built_r)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if select.select([alive_r], [], [], 0)[0]:
        os._exit(1)  # the supervisor died before the prctl took effect
    try:
        applied += sandbox_fs.build_root(sources, list(spec.hide), spec.disk_mb)
    except OSError as e:
        raise SandboxRefused(f"cannot build the private filesystem: {e}") from None
    finally:
        sandbox_fs.close_sources(sources)
    linux.sethostname("sandbox")
    try:
        # No nested user namespaces: nothing inside may become "root" of anything again.
        _write("/proc/sys/user/max_user_namespaces", "0")
        applied.append("no nested user namespaces")
    except OSError:
        pass
    os.write(built_w, b"1")
    os.close(built_w)
    worker = os.fork()
    if worker:
        os.close(grants_w)
        _init(worker, channel, alive_r)
    global _grants
    _grants = grants_w
    os.close(alive_r)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    linux.drop_capabilities()
    applied.append("no capabilities, no_new_privs")
    _set_nproc(spec.nproc + OWN_PROCESSES)
    applied.append(
        f"totals over the call's processes: {spec.nproc} processes and threads "
        f"(RLIMIT_NPROC in its own user namespace), {spec.memory_mb} MiB memory (PSS), "
        f"{spec.cpu_seconds:g} s CPU"
    )
    return applied


def _map_ids(child: int, unshared: int, mapped: int, uid: int, gid: int, root: bool) -> None:
    """From outside: give ``child``'s new user namespace its one uid and gid.

    Written by the parent, as ``newuidmap`` does: as root this may map the worker's own uid
    (not ours); as anyone else, our uid onto itself (then setgroups must be denied first).
    """
    if os.read(unshared, 1) != b"1":
        return  # the child could not unshare; it tells the sidecar itself
    try:
        if not root:
            _write(f"/proc/{child}/setgroups", "deny")
        _write(f"/proc/{child}/uid_map", f"{uid} {uid} 1")
        _write(f"/proc/{child}/gid_map", f"{gid} {gid} 1")
    except OSError:
        return  # the child reads the end of the pipe and refuses
    os.write(mapped, b"1")


def _mirror(child: int) -> None:
    """Exit as ``child`` did (raising its signal again), so the sidecar reads its outcome."""
    _, status = os.waitpid(child, 0)
    code = sandbox_watch.status_to_code(status)
    if code > 128:
        if code - 128 not in (signal.SIGKILL, signal.SIGSTOP):  # these cannot be handled
            signal.signal(code - 128, signal.SIG_DFL)
        os.kill(os.getpid(), code - 128)
    os._exit(code)


_grants = -1  # in the worker: the pipe to its supervisor


def grant_cpu(seconds: float) -> None:
    """Give the call that starts now ``seconds`` of CPU over all its processes together."""
    if _grants >= 0:
        os.write(_grants, f"{seconds}\n".encode())


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _set_nproc(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def _init(worker: int, channel: int, alive: int) -> None:
    """pid 1: reap every orphan; leave with the worker, which ends the namespace."""
    os.close(channel)
    os.close(alive)
    linux.drop_capabilities()
    linux.prctl(linux.PR_SET_DUMPABLE, 0)  # the worker has our uid: it may not ptrace us
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == worker:
            os._exit(sandbox_watch.status_to_code(status))
