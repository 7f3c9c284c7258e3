"""A root sidecar's own block of worker uids, claimed with a lock that dies with the process.

Recycling a worker kills every process of its uid (a fork bomb keeps forking), so two sidecars
on one host must never hand out the same uid: the second would kill the first one's workers.
Uids are cut into chunks of ``CHUNK`` (aligned, so sidecars with different ``uid_base`` agree on
them); from ``isolation.uid_base`` up, a sidecar takes the first
run of free chunks that holds the uids it needs by holding an exclusive ``flock`` on each
chunk's file for its whole life (sidecars configured for different pool sizes still never
overlap). The kernel drops the locks when the sidecar exits, however it exits, so a crashed
sidecar never leaks its uids.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("conveyor.tools.sidecar")

LOCK_DIR = "/run/lock/conveyor-sidecar-uids"  # host-wide for every root process
CHUNK = 64
MAX_CHUNKS = 1024  # how far above uid_base a sidecar looks for free chunks


@dataclass(frozen=True, slots=True)
class UidBlock:
    first: int
    count: int
    _fds: tuple[int, ...]

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)

    def uids(self) -> range:
        return range(self.first, self.first + self.count)


def claim(
    base: int, count: int, mapped: Callable[[int, int], bool], lock_dir: str = LOCK_DIR
) -> UidBlock | None:
    """The first block of ``count`` uids from ``base`` that ``mapped`` allows and no other
    sidecar holds; None when there is none."""
    try:
        os.makedirs(lock_dir, mode=0o755, exist_ok=True)
    except OSError as e:
        # Still one uid per worker, only not guarded against another sidecar's.
        log.warning("worker uids: cannot make %s (%s): uids from %d, unclaimed", lock_dir,
                    e.strerror, base)  # fmt: skip
        return UidBlock(base, count, ()) if mapped(base, count) else None
    chunks = -(-count // CHUNK)
    lowest = -(-base // CHUNK)
    held: list[int] = []  # the locked run of chunks so far, each an open file
    start = lowest
    for index in range(lowest, lowest + MAX_CHUNKS):
        if not mapped(start * CHUNK, (index + 1 - start) * CHUNK):
            break  # chunks only go up: none further is mapped either
        fd = os.open(f"{lock_dir}/{index * CHUNK}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            for other in held:
                os.close(other)
            held, start = [], index + 1
            continue
        held.append(fd)
        if len(held) == chunks:
            if start > lowest:
                log.info("worker uids from %d (lower ones are other sidecars')", start * CHUNK)
            return UidBlock(start * CHUNK, count, tuple(held))
    for fd in held:
        os.close(fd)
    return None
