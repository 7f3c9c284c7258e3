"""The filesystem a sandboxed worker sees: only what it needs, read-only, plus private scratch.

Built inside the worker's own user and mount namespaces (see :mod:`.sandbox`), the way
bubblewrap does it: an empty tmpfs becomes the new root, the system directories, the Python
installation and the paths a tool's config names are bind-mounted into it read-only, a fresh
``/proc`` shows only the call's processes, ``/dev`` holds five harmless devices, and every
writable place (``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run/lock``) is one size-limited tmpfs
that dies with the call. ``pivot_root`` then detaches the old root: nothing else of the host —
other users' files, Secrets, the service-account token, Unix sockets, the runtime's files — can
be named at all. Every step either works or raises: no silent downgrade.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from conveyor.tools.sidecar import linux

SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
SCRATCH = {"tmp": "/tmp", "var-tmp": "/var/tmp", "shm": "/dev/shm", "lock": "/run/lock"}
# Places an empty tmpfs may be mounted on to build the new root (it covers them for us only).
_MOUNT_POINTS = ("/tmp", "/mnt", "/var/tmp", "/dev")

# statvfs flags that the kernel locks on a mount seen from a user namespace: a read-only
# remount of a bind must repeat them or it is refused.
_LOCKED_FLAGS = {
    os.ST_NOSUID: linux.MS_NOSUID,
    os.ST_NODEV: linux.MS_NODEV,
    os.ST_NOEXEC: linux.MS_NOEXEC,
    os.ST_NOATIME: linux.MS_NOATIME,
    os.ST_NODIRATIME: linux.MS_NODIRATIME,
    os.ST_RELATIME: linux.MS_RELATIME,
}


@dataclass(frozen=True, slots=True)
class Exposed:
    """A host path shown read-only at ``path``: by an ``O_PATH`` descriptor, or a symlink."""

    path: str
    fd: int = -1
    is_dir: bool = True
    link: str | None = None


def open_sources(paths: list[str]) -> list[Exposed]:
    """Open what will be shown, while the caller may still reach it (root before the uid change).

    A path is shown where it is named and, when that differs, where it really is; a symlinked
    system directory (``/bin`` → ``usr/bin``) stays a symlink. Paths that do not exist are
    skipped; one inside another already shown is shown through it.
    """
    wanted: dict[str, str] = {}
    for path in paths:
        path = os.path.normpath(path)
        if not os.path.lexists(path):
            continue
        if os.path.islink(path) and path in SYSTEM_PATHS:
            wanted.setdefault(path, "link")
            continue
        for name in (path, os.path.realpath(path)):
            if os.path.exists(name):
                wanted.setdefault(name, "bind")
    exposed: list[Exposed] = []
    shown: list[str] = []
    for path in sorted(wanted):
        if any(path == s or path.startswith(s + "/") for s in shown):
            continue
        if wanted[path] == "link":
            exposed.append(Exposed(path, link=os.readlink(path)))
            continue
        fd = os.open(path, os.O_PATH)
        exposed.append(Exposed(path, fd, stat.S_ISDIR(os.fstat(fd).st_mode)))
        shown.append(path)
    return exposed


def close_sources(sources: list[Exposed]) -> None:
    for source in sources:
        if source.fd >= 0:
            os.close(source.fd)


def _mount_point(root: str, path: str, is_dir: bool) -> str:
    target = root + path
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    return target


def _bind_read_only(source: str, target: str) -> None:
    linux.mount(source, target, "", linux.MS_BIND | linux.MS_REC)
    locked = os.statvfs(target).f_flag
    flags = linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY
    for st_flag, ms_flag in _LOCKED_FLAGS.items():
        if locked & st_flag:
            flags |= ms_flag
    linux.mount("", target, "", flags)


def _tmpfs(target: str, options: str, flags: int = 0) -> None:
    linux.mount("tmpfs", target, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | flags, options)


def build_root(sources: list[Exposed], hide: list[str], disk_mb: int) -> list[str]:
    """Make the new root and switch to it; returns what it did, for ``/readyz``.

    Must run as the owner of fresh user, mount and pid namespaces, inside the pid namespace
    (a fresh ``/proc`` can only be mounted there).
    """
    linux.mount("none", "/", "", linux.MS_REC | linux.MS_PRIVATE)
    base = next(p for p in _MOUNT_POINTS if os.path.isdir(p))
    _tmpfs(base, "mode=0755,size=1m")
    root = base
    os.makedirs(root + "/dev", exist_ok=True)
    _tmpfs(root + "/dev", "mode=0755,size=64k", linux.MS_NOEXEC)
    for name in DEVICES:
        linux.mount(f"/dev/{name}", _mount_point(root, f"/dev/{name}", False), "", linux.MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{root}/dev/{name}")
    os.symlink("/proc/self/fd/1", f"{root}/dev/stdout")
    os.symlink("/proc/self/fd/2", f"{root}/dev/stderr")

    os.makedirs(root + "/proc", exist_ok=True)
    linux.mount("proc", root + "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)

    # One tmpfs behind every writable place, so the disk limit holds for all of them together.
    scratch = root + "/.scratch"
    os.makedirs(scratch)
    _tmpfs(scratch, f"mode=0755,size={disk_mb}m")
    for name, place in SCRATCH.items():
        os.mkdir(f"{scratch}/{name}")
        os.chmod(f"{scratch}/{name}", 0o1777)
        linux.mount(f"{scratch}/{name}", _mount_point(root, place, True), "", linux.MS_BIND)
    linux.umount(scratch)
    os.rmdir(scratch)

    # Shown paths last: one under /tmp (a checkout, a virtualenv) stays visible over the scratch.
    shown = []
    for source in sources:
        if source.link is not None:
            os.makedirs(os.path.dirname(root + source.path), exist_ok=True)
            os.symlink(source.link, root + source.path)
            continue
        target = _mount_point(root, source.path, source.is_dir)
        _bind_read_only(f"/proc/self/fd/{source.fd}", target)
        shown.append(source.path)

    hidden = []
    for path in hide:
        target = root + os.path.normpath(path)
        if os.path.isdir(target) and not os.path.islink(target):
            _tmpfs(target, "mode=0555,size=4k", linux.MS_RDONLY | linux.MS_NOEXEC)
        elif os.path.isfile(target):
            linux.mount(root + "/dev/null", target, "", linux.MS_BIND)
        else:
            continue
        hidden.append(path)

    os.mkdir(root + "/.old")
    linux.pivot_root(root, root + "/.old")
    os.chdir("/")
    linux.umount("/.old")
    os.rmdir("/.old")
    linux.mount("", "/", "", linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    os.chdir("/tmp")
    applied = [
        "private root: read-only " + ", ".join(shown),
        "fresh /proc (the call's processes only)",
        f"private /tmp, /var/tmp, /dev/shm, /run/lock: one tmpfs of {disk_mb} MiB",
    ]
    if hidden:
        applied.append("hidden: " + ", ".join(hidden))
    return applied
