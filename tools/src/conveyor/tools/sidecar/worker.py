"""A worker process: runs one invocation (or the invocations of one session) of a tool.

Started by the pool long before it is needed (``python -I -B -m conveyor.tools.sidecar.worker``
with an empty environment). At start it isolates itself (see :mod:`.isolation`), imports every
tool, says ``ready`` and waits; an ``open`` then costs no process start and no import. Units
arrive as the client's own frames, are decoded with ``unit_from_json`` and fed to the tool in
order, while a reader task keeps listening so a ``cancel`` interrupts a tool that is waiting on
I/O. A worker never serves a second invocation unless both belong to one session (the tool's
``use_session`` hook gets the state they share): the sidecar kills it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from conveyor.tools._registry import ToolRegistry
from conveyor.tools._tool import Result, Tool
from conveyor.tools.protocol import Finish, Reason, Timing, UnitFrame
from conveyor.tools.protocol.worker import (
    Boot,
    CallError,
    CallReject,
    CallResult,
    CancelCall,
    Cancelled,
    FromWorker,
    Ready,
    StartCall,
    StepResult,
    ToWorker,
    decode_to_worker,
)
from conveyor.tools.sidecar import isolation, mcp_call
from conveyor.tools.sidecar.channel import pack_message, read_payload
from conveyor.tools.sidecar.mcp_call import McpCall
from conveyor.tools.sidecar.step_registry import StepRegistry
from conveyor.tools.units import unit_from_json

# The sidecar's messages are bounded by its own frame limit; this only stops a runaway.
MAX_INBOUND = 64 << 20
QUEUE_SIZE = 256
T = TypeVar("T")


@dataclass(slots=True)
class ToolRun:
    """The tool of the current call and when it was working."""

    tool: Tool
    opened: float
    max_output: int
    started: float = 0.0
    busy: list[list[float]] = field(default_factory=list)

    def timing(self, finished: float) -> Timing:
        return Timing(opened=self.opened, started=self.started, finished=finished, busy=self.busy)


class Worker:
    def __init__(
        self, registry: ToolRegistry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.registry = registry
        self.reader = reader
        self.writer = writer
        self.session_state: dict[str, Any] = {}
        self.calls = 0
        self.steps: StepRegistry | None = None
        self._getter: asyncio.Future[ToWorker | None] | None = None

    def send(self, msg: FromWorker) -> None:
        self.writer.write(pack_message(msg))

    async def _read(self) -> ToWorker | None:
        payload = await read_payload(self.reader, MAX_INBOUND)
        return None if payload is None else decode_to_worker(payload)

    def _next(self) -> asyncio.Future[ToWorker | None]:
        """The pending read of the next message; one at a time, never cancelled (no lost bytes)."""
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._read())
        return self._getter

    def _take(self) -> ToWorker | None:
        getter, self._getter = self._getter, None
        assert getter is not None
        return getter.result()

    async def run(self) -> None:
        while True:
            await self._next()
            msg = self._take()
            if msg is None:
                return
            if not isinstance(msg, StartCall):
                continue  # a late frame of an invocation that already ended
            queue: asyncio.Queue[UnitFrame | Finish] = asyncio.Queue(QUEUE_SIZE)
            task = asyncio.create_task(self._invoke(msg, queue))
            if not await self._pump(task, queue, msg.session):
                await self._drain()
                return

    async def _drain(self) -> None:
        """Read (and drop) frames until the sidecar closes the channel or kills this process.

        It does so as soon as it has read the answer. Exiting before that, with frames the
        client had already sent still unread here, makes the kernel reset the channel, and the
        sidecar, still writing those frames, could lose the answer it had not read yet.
        """
        while True:
            await self._next()
            if self._take() is None:
                return

    async def _pump(
        self, task: asyncio.Task[bool], queue: asyncio.Queue[UnitFrame | Finish], session: bool
    ) -> bool:
        """Feed this invocation's frames to its task until it ends; True if the worker stays."""
        while True:
            either: set[asyncio.Future[Any]] = {task, self._next()}
            done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            msg = self._take()
            if msg is None:
                task.cancel()
                return False
            if isinstance(msg, StepResult):
                if self.steps is not None:
                    self.steps.on_result(msg)
                continue
            if isinstance(msg, CancelCall):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return session
            if isinstance(msg, UnitFrame | Finish):
                await queue.put(msg)

    async def _timed(self, run: ToolRun, coro: Awaitable[T]) -> T:
        t0 = time.time()
        try:
            return await coro
        finally:
            run.busy.append([t0, time.time()])

    async def _invoke(self, start: StartCall, queue: asyncio.Queue[UnitFrame | Finish]) -> bool:
        session = start.session
        limits = start.limits
        run: ToolRun | None = None
        try:
            tool = self.registry.create(start.tool, start.config)
            # A tool that calls others (the planner) reaches only the allowed ones, via the sidecar.
            self.steps = StepRegistry(self.registry, start.steps, self.send)
            tool.use_registry(self.steps)
            if session:
                tool.use_session(self.session_state)
            run = ToolRun(tool, start.opened, limits.max_output)
            isolation.arm_cpu_limit(
                limits.cpu_seconds,
                limits.session_cpu_seconds if session else limits.cpu_seconds,
                first=self.calls == 0,
            )
            self.calls += 1
            run.started = time.time()
            await self._timed(run, tool.start())
            while True:
                msg = await queue.get()
                if isinstance(msg, UnitFrame):
                    try:
                        unit = unit_from_json(msg.unit)
                    except Exception as e:
                        self.send(CallError(f"malformed unit: {e}", Reason.PROTOCOL))
                        await tool.cancel()
                        return session
                    outcome = await self._timed(run, tool.feed(unit))
                    if outcome is not None:
                        self.send(CallReject(str(outcome.reason), run.timing(time.time())))
                        await tool.cancel()
                        return session
                else:
                    result = await self._timed(run, tool.finish())
                    self._result(run, result)
                    return session
        except asyncio.CancelledError:
            if run is not None:
                await asyncio.shield(run.tool.cancel())
            self.send(Cancelled())
            raise
        except MemoryError:
            message = "memory limit: the tool ran out of its address space"
            self.send(CallError(message, Reason.MEMORY_LIMIT))
            return False
        except Exception as e:
            self.send(CallError(f"tool failed: {type(e).__name__}: {e}", Reason.TOOL_ERROR))
            return session

    def _result(self, run: ToolRun, result: Result) -> None:
        content = str(result.content)
        if len(content) > run.max_output:
            dropped = len(content) - run.max_output
            content = content[: run.max_output] + f"\n[output truncated: {dropped} more characters]"
        data = result.data if isinstance(result.data, dict) else None
        if data is not None:
            try:
                size = len(json.dumps(data))
            except (TypeError, ValueError):
                data, size = None, 0
            if size > run.max_output:
                data = None
                content += f"\n[result data dropped: {size} bytes, over the output limit]"
        self.send(CallResult(content, bool(result.is_error), data, run.timing(time.time())))


async def _serve(fd: int, boot: Boot, applied: list[str], workdir: str) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
    from conveyor.tools.sidecar.registry import tool_registry

    registry = tool_registry(boot.validated)  # imports every tool now
    registry.register(McpCall)  # MCP tools, configured per call by the sidecar
    if boot.mcp:
        mcp_call.preload()  # an import at `open` would stall this loop while the model writes
    import conveyor.tools.units  # noqa: F401 - warm: the first unit must not pay an import

    if os.getpriority(os.PRIO_PROCESS, 0) > 0:
        with contextlib.suppress(PermissionError):  # only root may undo the boot niceness
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    os.chdir(workdir)
    tempfile.tempdir = workdir
    applied += isolation.apply_rlimits(boot.limits)
    # Spawned with an empty environment; Python itself may add LC_CTYPE (PEP 538): drop it.
    for key in list(os.environ):
        del os.environ[key]
    applied.append("empty environment")
    applied.append("private working directory")
    writer.write(pack_message(Ready(applied, os.getpid())))
    await Worker(registry, reader, writer).run()
    await writer.drain()


def main() -> None:
    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    boot = isolation.read_boot(fd)
    applied, workdir = isolation.isolate(boot, fd)  # forks; returns in the sandboxed worker
    # Untrusted code may write to fds 1 and 2; they lead nowhere that matters (see the pool).
    asyncio.run(_serve(fd, boot, applied, workdir))
    os._exit(0)


if __name__ == "__main__":
    main()
