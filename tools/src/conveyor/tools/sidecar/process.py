"""One worker process as the sidecar sees it: its channel, its owner, its exit and why.

Its exit is seen through a pidfd, so a worker that dies while its forked children still hold the
channel open is noticed at once; its children are then killed by uid and its directory removed.
The exit is mapped to a :class:`WorkerExit` (``cpu limit``, ``memory limit``, ``crashed: signal
N``...) for the invocation that owned the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from conveyor.tools.protocol import Reason, UnitFrame
from conveyor.tools.protocol.worker import (
    CancelCall,
    FromWorker,
    StartCall,
    StepResult,
    decode_from_worker,
)
from conveyor.tools.sidecar import sandbox_watch
from conveyor.tools.sidecar.channel import MessageTooLarge, pack, pack_message, read_payload
from conveyor.tools.sidecar.config import Limits

log = logging.getLogger("conveyor.tools.sidecar")


@dataclass(frozen=True, slots=True)
class WorkerExit:
    """Why a worker ended; ``message`` starts with the reason and says more."""

    reason: Reason
    message: str


RECYCLED = WorkerExit(Reason.RECYCLED, "recycled")
SHUTDOWN = WorkerExit(Reason.SHUTDOWN, "shutdown")


class WorkerOwner(Protocol):
    """The invocation a worker serves: it hears the worker's messages and its exit."""

    def on_message(self, msg: FromWorker) -> None: ...

    def on_exit(self, exit: WorkerExit) -> None: ...


class WorkerProcess:
    """One spawned worker: send it messages, kill it, learn how it ended."""

    def __init__(
        self,
        network: bool,
        uid: int,
        workdir: str,
        limits: Limits,
        on_gone: Callable[[WorkerProcess], None],
    ) -> None:
        self.network = network
        self.uid = uid
        self.workdir = workdir
        self.pid = 0
        self.applied: list[str] = []
        self.exit: WorkerExit | None = None
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._limits = limits  # the owner's, to tell a limit at work from a crash
        self._on_gone = on_gone
        self._pidfd = -1
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._owner: WorkerOwner | None = None
        self._kill_exit: WorkerExit | None = None
        self._exit_task: asyncio.Task[None] | None = None

    # -- set-up (by the pool) ------------------------------------------------------------------

    def watch(self, pid: int) -> None:
        """Follow the exit of the spawned process ``pid``."""
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_pidfd)

    def connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read_boot_answer(self) -> bytes | None:
        assert self._reader is not None
        return await read_payload(self._reader, 1 << 20)

    def start_reading(self, max_bytes: int) -> None:
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(max_bytes))

    # -- ownership -----------------------------------------------------------------------------

    @property
    def owner(self) -> WorkerOwner | None:
        return self._owner

    def assign(self, owner: WorkerOwner, limits: Limits) -> None:
        self._owner = owner
        self._limits = limits

    def release(self) -> None:
        """The owner has its answer: the worker's messages and exit concern no one now."""
        self._owner = None

    # -- sending -------------------------------------------------------------------------------

    def send(self, msg: StartCall | CancelCall | UnitFrame | StepResult) -> None:
        self._write(pack_message(msg))

    def send_raw(self, payload: bytes) -> None:
        """Forward a client's frame text as it came (a ``unit`` or ``finish``)."""
        self._write(pack(payload))

    def _write(self, data: bytes) -> None:
        assert self._writer is not None
        # A worker that rejected or died may still be sent the frames the client had already
        # in flight: its exit, not those frames, decides the outcome, so they are dropped.
        if not self._writer.is_closing():
            self._writer.write(data)

    def pending_bytes(self) -> int:
        if self._writer is None:
            return 0
        return self._writer.transport.get_write_buffer_size()

    # -- life ----------------------------------------------------------------------------------

    def expect_exit(self, exit: WorkerExit) -> None:
        """The worker is about to end on its own; its exit is not a crash."""
        if self._kill_exit is None:
            self._kill_exit = exit

    def kill(self, exit: WorkerExit) -> None:
        """Kill the worker (and its process group); the exit handler does the rest."""
        if self._kill_exit is None:
            self._kill_exit = exit
        if self.pid and self.exit is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    async def _read_loop(self, max_bytes: int) -> None:
        assert self._reader is not None
        try:
            while True:
                payload = await read_payload(self._reader, max_bytes)
                if payload is None:
                    return
                msg = decode_from_worker(payload)
                if self._owner is not None:
                    self._owner.on_message(msg)
        except MessageTooLarge as e:
            self.kill(
                WorkerExit(
                    Reason.OUTPUT_LIMIT,
                    f"output limit: the worker sent {e.size} bytes (limit {max_bytes})",
                )
            )
        except (ValueError, TypeError, UnicodeDecodeError):
            self.kill(WorkerExit(Reason.CRASHED, "crashed: the worker broke the channel protocol"))
        except (ConnectionError, OSError):
            return

    def _on_pidfd(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        rusage: resource.struct_rusage | None
        try:
            _, status, rusage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            status, rusage = 0, None
        os.close(self._pidfd)
        self._pidfd = -1
        self.exit = self._classify(status, rusage)
        # Held: the loop keeps only weak references to tasks.
        self._exit_task = loop.create_task(self._after_exit())

    def _classify(self, status: int, rusage: resource.struct_rusage | None) -> WorkerExit:
        if self._kill_exit is not None:
            return self._kill_exit
        limits = self._limits
        total = sandbox_watch.exit_reason(status, limits.memory_mb, limits.cpu_seconds)
        if total is not None:  # the sandbox's supervisor ended the call over a total
            reason = Reason.MEMORY_LIMIT if total.startswith("memory") else Reason.CPU_LIMIT
            return WorkerExit(reason, total)
        cpu = (rusage.ru_utime + rusage.ru_stime) if rusage is not None else 0.0
        rss = rusage.ru_maxrss * 1024 if rusage is not None else 0
        memory = WorkerExit(Reason.MEMORY_LIMIT, f"memory limit: reached {limits.memory_mb} MiB")
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig in (signal.SIGXCPU, signal.SIGKILL) and cpu >= limits.cpu_seconds * 0.9:
                message = f"cpu limit: used {cpu:.1f} s of CPU (limit {limits.cpu_seconds:g} s)"
                return WorkerExit(Reason.CPU_LIMIT, message)
            if rss >= 0.9 * limits.memory_mb * (1 << 20):
                return memory
            return WorkerExit(Reason.CRASHED, f"crashed: signal {sig}")
        code = os.WEXITSTATUS(status)
        if code != 0 and rss >= 0.9 * limits.memory_mb * (1 << 20):
            return memory
        if code:
            return WorkerExit(Reason.CRASHED, f"crashed: exit code {code}")
        return WorkerExit(Reason.CRASHED, "crashed: the worker exited")

    async def _after_exit(self) -> None:
        loop = asyncio.get_running_loop()
        # Children that escaped the process group still run as the worker's uid: kill them, so
        # the channel closes and the next worker with this uid starts clean.
        if self.uid:
            await loop.run_in_executor(None, kill_uid, self.uid)
        if self._reader_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader_task), 1.0)
            except (TimeoutError, asyncio.CancelledError):
                self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
        owner, self._owner = self._owner, None
        if owner is not None:
            assert self.exit is not None
            owner.on_exit(self.exit)
        await loop.run_in_executor(None, shutil.rmtree, self.workdir, True)
        self._on_gone(self)
        if not self.gone.done():
            self.gone.set_result(None)


def kill_uid(uid: int) -> None:
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
