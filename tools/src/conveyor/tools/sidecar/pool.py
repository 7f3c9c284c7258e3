"""The warm worker pool: pre-started, isolated worker processes, each used once and replaced.

A worker is spawned (``posix_spawn``, empty environment, its own session and, as root, its own
uid and private directory), imports every tool, says ``ready`` and waits in the pool; ``open``
takes one without paying a process start. When it has served, it is killed, its uid freed and a
fresh one spawned (:mod:`.process` follows each worker's life).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import deque
from typing import Any

from conveyor.tools.protocol import Reason
from conveyor.tools.protocol.worker import (
    Boot,
    Ready,
    Refused,
    ResourceLimits,
    decode_from_worker,
)
from conveyor.tools.sidecar import sandbox, uid_block
from conveyor.tools.sidecar.channel import pack_message
from conveyor.tools.sidecar.config import SidecarConfig
from conveyor.tools.sidecar.metrics import SidecarMetrics
from conveyor.tools.sidecar.process import RECYCLED, SHUTDOWN, WorkerExit, WorkerProcess

log = logging.getLogger("conveyor.tools.sidecar")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
PR_SET_CHILD_SUBREAPER = 36
# Warming up (imports) runs niced so a refill yields CPU to dispatch and to running tools; the
# worker, still root then, returns to normal priority before it says ready. (Not SCHED_IDLE: on a
# host where the engine keeps every core busy, idle-class refills starve and `open` waits.)
_BOOT_PLAIN = "import runpy; runpy.run_module('conveyor.tools.sidecar.worker', run_name='__main__')"
_BOOT_NICENESS = 10
_BOOT = f"import os; os.nice({_BOOT_NICENESS}); " + _BOOT_PLAIN
SPAWN_CONCURRENCY = 4  # workers starting at once: a refill is a trickle, not a stampede
START_FAILED = WorkerExit(Reason.START_FAILED, "start failed")


class FreshWorkers:
    """The worker source of an invocation outside a session: a fresh worker, recycled after."""

    keeps_state = False

    def __init__(self, pool: WorkerPool, network: bool) -> None:
        self._pool = pool
        self._network = network

    def acquire_nowait(self) -> WorkerProcess | None:
        return self._pool.take_nowait(self._network)

    async def acquire(self) -> WorkerProcess:
        return await self._pool.take(self._network)

    def release(self, worker: WorkerProcess, keep: bool) -> None:
        worker.kill(RECYCLED)  # used once, whatever happened


class WorkerPool:
    """Keeps ``warm_workers`` ready workers per isolation profile (with or without network)."""

    def __init__(
        self, config: SidecarConfig, metrics: SidecarMetrics, worker_stderr: bool = False
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.worker_stderr = worker_stderr
        self.profiles = sorted({network for network, _ in config.profiles()})
        self.ready: dict[bool, deque[WorkerProcess]] = {p: deque() for p in self.profiles}
        self.starting: dict[bool, int] = dict.fromkeys(self.profiles, 0)
        self.waiters: dict[bool, deque[asyncio.Future[WorkerProcess]]] = {
            p: deque() for p in self.profiles
        }
        self.alive: set[WorkerProcess] = set()
        self.root_dir = ""
        self.uids: uid_block.UidBlock | None = None
        if os.geteuid() == 0 and (config.isolation.drop_privileges or config.isolation.sandbox):
            count = 2 * config.pool.max_workers + 8
            self.uids = uid_block.claim(config.isolation.uid_base, count, sandbox.has_uids)
        self.privileged = self.uids is not None
        self.free_uids = deque(self.uids.uids() if self.uids else ())
        self.applied: dict[str, list[str]] = {}  # profile → what its workers enforce
        self.refused: dict[bool, str] = {}  # profile → why its sandbox cannot be set up
        self.warmed = False
        self.closing = False
        self.failures = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.config.isolation.sandbox:
            sandbox.protect()  # workers may share our uid: /proc/<us> must not show our secrets
        else:
            log.warning(
                "isolation: none: tools run WITHOUT a sandbox (no namespaces, no private "
                "filesystem, no per-call totals). For local development only; see "
                "docs/security.md"
            )
        if self.privileged:
            # Orphans of a worker (a fork bomb's children) become ours, so we can reap them.
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        root = self.config.isolation.workdir_root or tempfile.gettempdir()
        self.root_dir = tempfile.mkdtemp(prefix="conveyor-sidecar-", dir=root)
        os.chmod(self.root_dir, 0o711)  # workers may enter their own directory, not list others
        for profile in self.profiles:
            self._fill(profile)

    def is_warm(self) -> bool:
        return self.warmed and not self.closing

    def decided(self, profile: bool) -> bool:
        """Whether ``profile`` has a ready worker or is refused: readiness can be told."""
        return bool(self.ready[profile]) or profile in self.refused

    # -- taking workers ------------------------------------------------------------------------

    def take_nowait(self, network: bool) -> WorkerProcess | None:
        ready = self.ready[network]
        worker = ready.popleft() if ready else None
        self._fill(network)
        self._gauges()
        return worker

    async def take(self, network: bool) -> WorkerProcess:
        if network in self.refused:
            raise sandbox.SandboxRefused(self.refused[network])
        worker = self.take_nowait(network)
        if worker is not None:
            return worker
        fut: asyncio.Future[WorkerProcess] = asyncio.get_running_loop().create_future()
        self.waiters[network].append(fut)
        self._fill(network)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._put_back(fut.result())  # handed over as the taker gave up: still unused
            raise
        finally:
            if fut in self.waiters[network]:
                self.waiters[network].remove(fut)

    def _put_back(self, worker: WorkerProcess) -> None:
        if worker.exit is None and not self.closing:
            self.ready[worker.network].appendleft(worker)
            self._gauges()
        else:
            worker.kill(RECYCLED)

    def _fill(self, network: bool) -> None:
        if self.closing or network in self.refused:
            return
        want = self.config.pool.warm_workers + len(self.waiters[network])
        while (
            len(self.ready[network]) + self.starting[network] < want
            and sum(self.starting.values()) < SPAWN_CONCURRENCY
            and len(self.alive) + sum(self.starting.values()) < self.config.pool.max_workers
            and (self.free_uids or not self.privileged)  # as root, each worker needs a uid
        ):
            self.starting[network] += 1
            task = asyncio.get_running_loop().create_task(self._spawn(network))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _gauges(self) -> None:
        self.metrics.workers_ready.set(sum(len(r) for r in self.ready.values()))
        self.metrics.workers_alive.set(len(self.alive))

    # -- spawning ------------------------------------------------------------------------------

    async def _spawn(self, network: bool) -> None:
        loop = asyncio.get_running_loop()
        uid = self.free_uids.popleft() if self.privileged else 0
        t0 = time.perf_counter()
        worker: WorkerProcess | None = None
        try:
            workdir = await loop.run_in_executor(None, self._make_workdir, uid)
            worker = WorkerProcess(network, uid, workdir, self.config.limits, self._gone)
            parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                pid = await loop.run_in_executor(None, self._posix_spawn, child, workdir)
            finally:
                child.close()
            self.alive.add(worker)
            worker.watch(pid)
            reader, writer = await asyncio.open_unix_connection(sock=parent, limit=1 << 20)
            worker.connect(reader, writer)
            writer.write(pack_message(self._boot_message(network, uid, workdir)))
            said = await asyncio.wait_for(
                worker.read_boot_answer(), self.config.pool.worker_start_timeout
            )
            msg = decode_from_worker(said) if said is not None else None
            if isinstance(msg, Refused):
                raise sandbox.SandboxRefused(msg.reason)
            if not isinstance(msg, Ready):
                raise RuntimeError(f"worker did not start (said {msg!r})")
        except sandbox.SandboxRefused as e:
            # Fail closed: no tool of this profile is served, and readiness says why.
            self.starting[network] -= 1
            self.refused[network] = str(e)
            log.error("tools with%s network are not served: %s", "" if network else "out", e)
            for fut in self.waiters[network]:
                if not fut.done():
                    fut.set_exception(sandbox.SandboxRefused(str(e)))
            self._check_warm()
            if worker is not None and worker.pid:
                worker.kill(START_FAILED)
            return
        except Exception as e:
            self.starting[network] -= 1
            if self.closing:
                if worker is not None and worker.pid:
                    worker.kill(SHUTDOWN)
                return
            self.failures += 1
            self.metrics.worker_start_failures.inc()
            log.error("worker start failed: %s", e)
            if worker is not None and worker.pid:
                worker.kill(START_FAILED)
            elif uid:
                self.free_uids.append(uid)
            # Do not spin on a broken environment: retry the fill a little later.
            loop.call_later(min(5.0, 0.2 * self.failures), self._fill, network)
            return
        self.failures = 0
        self.starting[network] -= 1
        for profile in self.profiles:
            self._fill(profile)
        worker.applied = msg.applied
        self.applied["network" if network else "no network"] = worker.applied
        max_msg = 6 * self.config.limits.max_output_bytes + (64 << 10)
        for _, limits in self.config.profiles():
            max_msg = max(max_msg, 6 * limits.max_output_bytes + (64 << 10))
        worker.start_reading(max_msg)
        self.metrics.worker_starts.inc()
        self.metrics.worker_start_seconds.observe(time.perf_counter() - t0)
        if self.closing:
            worker.kill(SHUTDOWN)
            return
        waiters = self.waiters[network]
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(worker)
                break
        else:
            self.ready[network].append(worker)
        self._check_warm()
        self._gauges()

    def _check_warm(self) -> None:
        if not self.warmed and all(self.decided(p) for p in self.profiles):
            self.warmed = True

    def _make_workdir(self, uid: int) -> str:
        path = tempfile.mkdtemp(prefix="w-", dir=self.root_dir)
        if uid:
            os.chown(path, uid, uid)
        os.chmod(path, 0o700)
        return path

    def _posix_spawn(self, child: socket.socket, workdir: str) -> int:
        os.set_inheritable(child.fileno(), True)
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            actions: list[tuple[Any, ...]] = [
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
            ]
            if not self.worker_stderr:
                actions.append((os.POSIX_SPAWN_DUP2, devnull, 2))
            argv = [sys.executable, "-I", "-B", "-c", _BOOT if self.privileged else _BOOT_PLAIN]
            argv += ["--fd", str(child.fileno())]
            return os.posix_spawn(sys.executable, argv, {}, file_actions=actions, setsid=True)
        finally:
            os.close(devnull)

    def _boot_message(self, network: bool, uid: int, workdir: str) -> Boot:
        limits = self.config.limits
        for profile, settings in self.config.profiles():
            if profile == network:  # the profile's loosest limits; calls narrow CPU later
                limits = settings if settings.memory_mb > limits.memory_mb else limits
        hide = list(self.config.isolation.hide_paths)
        if self.config.source:
            hide.append(self.config.source)
        return Boot(
            network=network,
            isolation="namespaces" if self.config.isolation.sandbox else "none",
            expose=[
                *self.config.isolation.expose_paths,
                *sandbox.config_paths([t.config for t in self.config.tools.values()]),
                # A stdio MCP server's program and the files its arguments name.
                *sandbox.config_paths(
                    [[s.command, *s.args] for s in self.config.mcp_servers.values()]
                ),
            ],
            uid=uid,
            workdir=workdir,
            hide_paths=hide,
            validated=[n for n, t in self.config.tools.items() if t.validate],
            mcp=bool(self.config.mcp_servers),
            limits=ResourceLimits(
                cpu_seconds=limits.cpu_seconds,
                session_cpu_seconds=limits.session_cpu_seconds,
                memory_mb=limits.memory_mb,
                file_size_mb=limits.file_size_mb,
                nproc=limits.nproc,
                open_files=limits.open_files,
                disk_mb=limits.disk_mb,
            ),
        )

    # -- recycling -----------------------------------------------------------------------------

    def _gone(self, worker: WorkerProcess) -> None:
        self.alive.discard(worker)
        for ready in self.ready.values():
            if worker in ready:
                ready.remove(worker)
        if worker.uid:
            self.free_uids.append(worker.uid)
        for profile in self.profiles:
            self._fill(profile)
        self._gauges()

    async def close(self) -> None:
        self.closing = True
        for waiters in self.waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
        workers = list(self.alive)
        for worker in workers:
            worker.kill(SHUTDOWN)
        if workers:
            await asyncio.wait([w.gone for w in workers], timeout=5.0)
        for task in list(self._tasks):
            task.cancel()
        shutil.rmtree(self.root_dir, ignore_errors=True)
        if self.uids is not None:
            self.uids.release()
