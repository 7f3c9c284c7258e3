"""The warm worker pool: pre-started, isolated worker processes, each used once and replaced.

A worker is spawned (``posix_spawn``, empty environment, its own session and, as root, its own
uid and private directory), imports every tool, says ``ready`` and waits in the pool; ``open``
takes one without paying a process start. Its exit is seen through a pidfd, so a worker that
dies while its forked children still hold the channel open is noticed at once; its children are
then killed by uid, its directory removed and its uid freed. The exit is mapped to a reason
(``cpu limit``, ``memory limit``, ``crashed: signal N``...) for its invocation.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from conveyor.tools.sidecar.channel import MessageTooLarge, pack, pack_json, read_message
from conveyor.tools.sidecar.config import Limits, SidecarConfig, ToolSettings
from conveyor.tools.sidecar.metrics import LIMITS, SidecarMetrics

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


class WorkerOwner(Protocol):
    tool: ToolSettings

    def on_message(self, msg: dict[str, Any]) -> None: ...

    def on_exit(self, reason: str) -> None: ...


class WorkerProcess:
    """One worker process and its channel."""

    def __init__(self, pool: WorkerPool, network: bool, uid: int, workdir: str) -> None:
        self.pool = pool
        self.network = network
        self.uid = uid
        self.workdir = workdir
        self.pid = 0
        self.pidfd = -1
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.owner: WorkerOwner | None = None
        self.kill_reason: str | None = None
        self.exit_reason: str | None = None
        self.gone = asyncio.get_running_loop().create_future()
        self.applied: list[str] = []
        self.limits: Limits = pool.config.limits

    # -- sending -------------------------------------------------------------------------------

    def send_raw(self, payload: bytes) -> None:
        self._write(pack(payload))

    def send(self, obj: dict[str, Any]) -> None:
        self._write(pack_json(obj))

    def _write(self, data: bytes) -> None:
        assert self.writer is not None
        # A worker that rejected or died may still be sent the frames the client had already
        # in flight: its exit, not those frames, decides the outcome, so they are dropped.
        if not self.writer.is_closing():
            self.writer.write(data)

    def pending_bytes(self) -> int:
        if self.writer is None:
            return 0
        return self.writer.transport.get_write_buffer_size()

    # -- life ----------------------------------------------------------------------------------

    def expect_exit(self, reason: str) -> None:
        """The worker is about to end on its own; its exit is not a crash."""
        if self.kill_reason is None:
            self.kill_reason = reason

    def kill(self, reason: str) -> None:
        """Kill the worker (and its process group); the exit handler does the rest."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.pid and self.exit_reason is None:
            for target in (
                lambda: os.killpg(self.pid, signal.SIGKILL),
                lambda: os.kill(self.pid, 9),
            ):
                try:
                    target()
                except (ProcessLookupError, PermissionError):
                    pass

    async def _read_loop(self, max_bytes: int) -> None:
        assert self.reader is not None
        try:
            while True:
                msg = await read_message(self.reader, max_bytes)
                if msg is None:
                    return
                if self.owner is not None:
                    self.owner.on_message(msg)
        except MessageTooLarge as e:
            self.kill(f"output limit: the worker sent {e.size} bytes (limit {max_bytes})")
        except (ValueError, UnicodeDecodeError):
            self.kill("crashed: the worker broke the channel protocol")
        except (ConnectionError, OSError):
            return

    def _on_pidfd(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.pidfd)
        try:
            _, status, rusage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            status, rusage = 0, None
        os.close(self.pidfd)
        self.pidfd = -1
        self.exit_reason = self._classify(status, rusage)
        loop.create_task(self._after_exit())

    def _classify(self, status: int, rusage: Any) -> str:
        if self.kill_reason is not None:
            return self.kill_reason
        cpu = (rusage.ru_utime + rusage.ru_stime) if rusage is not None else 0.0
        rss = rusage.ru_maxrss * 1024 if rusage is not None else 0
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig in (signal.SIGXCPU, signal.SIGKILL) and cpu >= self.limits.cpu_seconds * 0.9:
                return f"cpu limit: used {cpu:.1f} s of CPU (limit {self.limits.cpu_seconds:g} s)"
            if rss >= 0.9 * self.limits.memory_mb * (1 << 20):
                return f"memory limit: reached {self.limits.memory_mb} MiB"
            return f"crashed: signal {sig}"
        code = os.WEXITSTATUS(status)
        if code != 0 and rss >= 0.9 * self.limits.memory_mb * (1 << 20):
            return f"memory limit: reached {self.limits.memory_mb} MiB"
        return f"crashed: exit code {code}" if code else "crashed: the worker exited"

    async def _after_exit(self) -> None:
        loop = asyncio.get_running_loop()
        # Children that escaped the process group still run as the worker's uid: kill them, so
        # the channel closes and the next worker with this uid starts clean.
        if self.uid:
            await loop.run_in_executor(None, _kill_uid, self.uid)
        if self.reader_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.reader_task), 1.0)
            except (TimeoutError, asyncio.CancelledError):
                self.reader_task.cancel()
        if self.writer is not None:
            self.writer.close()
        owner, self.owner = self.owner, None
        reason = self.exit_reason or "crashed"
        if owner is not None:
            # Only an exit in the middle of an invocation is a crash or a limit at work.
            tool = owner.tool.name
            if reason.startswith("crashed"):
                self.pool.metrics.worker_crashes.labels(tool=tool).inc()
            for limit in LIMITS:
                if reason.startswith(limit):
                    self.pool.metrics.limit_kills.labels(tool=tool, limit=limit).inc()
            owner.on_exit(reason)
        await loop.run_in_executor(None, shutil.rmtree, self.workdir, True)
        self.pool._gone(self)
        if not self.gone.done():
            self.gone.set_result(None)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` until none is left (a fork bomb keeps forking).

    The sidecar is a child subreaper, so the bomb's orphans become its children: their zombies
    are reaped here, or they would count against the next worker's RLIMIT_NPROC.
    """
    me = os.getpid()
    for _ in range(200):
        alive = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                pid = int(entry.name)
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                state, ppid = fields[0], int(fields[1])
                if state == b"Z":
                    if ppid == me:
                        os.waitpid(pid, os.WNOHANG)
                    continue
                os.kill(pid, signal.SIGKILL)
                alive += 1
            except (FileNotFoundError, ProcessLookupError, ChildProcessError, IndexError):
                continue
        if not alive:
            return
        time.sleep(0.005)


class WorkerPool:
    """Keeps ``warm_workers`` ready workers per isolation profile (with or without network)."""

    def __init__(
        self, config: SidecarConfig, metrics: SidecarMetrics, worker_stderr: bool = False
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.worker_stderr = worker_stderr
        self.profiles = sorted({t.network for t in config.tools.values()})
        self.ready: dict[bool, deque[WorkerProcess]] = {p: deque() for p in self.profiles}
        self.starting: dict[bool, int] = dict.fromkeys(self.profiles, 0)
        self.waiters: dict[bool, deque[asyncio.Future[WorkerProcess]]] = {
            p: deque() for p in self.profiles
        }
        self.alive: set[WorkerProcess] = set()
        self.root_dir = ""
        self.privileged = os.geteuid() == 0 and config.isolation.drop_privileges
        base = config.isolation.uid_base
        self.free_uids = deque(range(base, base + 2 * config.pool.max_workers + 8))
        self.applied: dict[str, list[str]] = {}  # profile → what its workers enforce
        self.warmed = False
        self.closing = False
        self.failures = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_ready: Callable[[], None] | None = None

    async def start(self) -> None:
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

    # -- taking workers ------------------------------------------------------------------------

    def take_nowait(self, network: bool) -> WorkerProcess | None:
        ready = self.ready[network]
        worker = ready.popleft() if ready else None
        self._fill(network)
        self._gauges()
        return worker

    async def take(self, network: bool) -> WorkerProcess:
        worker = self.take_nowait(network)
        if worker is not None:
            return worker
        fut: asyncio.Future[WorkerProcess] = asyncio.get_running_loop().create_future()
        self.waiters[network].append(fut)
        self._fill(network)
        try:
            return await fut
        finally:
            if fut in self.waiters[network]:
                self.waiters[network].remove(fut)

    def _fill(self, network: bool) -> None:
        if self.closing:
            return
        want = self.config.pool.warm_workers + len(self.waiters[network])
        while (
            len(self.ready[network]) + self.starting[network] < want
            and sum(self.starting.values()) < SPAWN_CONCURRENCY
            and len(self.alive) + sum(self.starting.values()) < self.config.pool.max_workers
            and self.free_uids
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
            worker = WorkerProcess(self, network, uid, workdir)
            parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                worker.pid = await loop.run_in_executor(None, self._posix_spawn, child, workdir)
            finally:
                child.close()
            self.alive.add(worker)
            worker.pidfd = os.pidfd_open(worker.pid)
            loop.add_reader(worker.pidfd, worker._on_pidfd)
            worker.reader, worker.writer = await asyncio.open_unix_connection(
                sock=parent, limit=1 << 20
            )
            worker.send(self._boot_message(network, uid, workdir))
            msg = await asyncio.wait_for(
                read_message(worker.reader, 1 << 20), self.config.pool.worker_start_timeout
            )
            if msg is None or msg.get("type") != "ready":
                raise RuntimeError(f"worker did not start (said {msg!r})")
        except Exception as e:
            self.starting[network] -= 1
            if self.closing:
                if worker is not None and worker.pid:
                    worker.kill("shutdown")
                return
            self.failures += 1
            self.metrics.worker_start_failures.inc()
            log.error("worker start failed: %s", e)
            if worker is not None and worker.pid:
                worker.kill("start failed")
            elif uid:
                self.free_uids.append(uid)
            # Do not spin on a broken environment: retry the fill a little later.
            loop.call_later(min(5.0, 0.2 * self.failures), self._fill, network)
            return
        self.failures = 0
        self.starting[network] -= 1
        for profile in self.profiles:
            self._fill(profile)
        worker.applied = list(msg.get("applied", []))
        self.applied["network" if network else "no network"] = worker.applied
        max_msg = 6 * self.config.limits.max_output_bytes + (64 << 10)
        for tool in self.config.tools.values():
            max_msg = max(max_msg, 6 * tool.limits.max_output_bytes + (64 << 10))
        worker.reader_task = loop.create_task(worker._read_loop(max_msg))
        self.metrics.worker_starts.inc()
        self.metrics.worker_start_seconds.observe(time.perf_counter() - t0)
        if self.closing:
            worker.kill("shutdown")
            return
        waiters = self.waiters[network]
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(worker)
                break
        else:
            self.ready[network].append(worker)
        if not self.warmed and all(len(self.ready[p]) >= 1 for p in self.profiles):
            self.warmed = True
        self._gauges()

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

    def _boot_message(self, network: bool, uid: int, workdir: str) -> dict[str, Any]:
        limits = self.config.limits
        for tool in self.config.tools.values():
            if tool.network == network:  # the profile's loosest limits; calls narrow CPU later
                limits = tool.limits if tool.limits.memory_mb > limits.memory_mb else limits
        hide = list(self.config.isolation.hide_paths)
        if self.config.source:
            hide.append(self.config.source)
        return {
            "type": "boot",
            "network": network,
            "uid": uid,
            "workdir": workdir,
            "hide_paths": hide,
            "validated": [n for n, t in self.config.tools.items() if t.validate],
            "limits": {
                "cpu_seconds": limits.cpu_seconds,
                "session_cpu_seconds": limits.session_cpu_seconds,
                "memory_mb": limits.memory_mb,
                "file_size_mb": limits.file_size_mb,
                "nproc": limits.nproc,
                "open_files": limits.open_files,
            },
        }

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
            worker.kill("shutdown")
        if workers:
            await asyncio.wait([w.gone for w in workers], timeout=5.0)
        for task in list(self._tasks):
            task.cancel()
        shutil.rmtree(self.root_dir, ignore_errors=True)
