"""A worker process: runs one invocation (or the invocations of one session) of a tool.

Started by the pool long before it is needed (``python -I -B -m conveyor.tools.sidecar.worker``
with an empty environment). At start it isolates itself (see :mod:`.isolation`), imports every
tool, says ``ready`` and waits; an ``open`` then costs no process start and no import. Units
arrive as JSON, are decoded with ``unit_from_json`` and fed to the tool in order, while a reader
task keeps listening so a ``cancel`` interrupts a tool that is waiting on I/O. A worker never
serves a second invocation unless both belong to one session: the sidecar kills it afterwards.
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
from dataclasses import dataclass, field
from typing import Any

from conveyor.tools.sidecar import isolation
from conveyor.tools.sidecar.channel import pack_json, read_message

# The sidecar's messages are bounded by its own frame limit; this only stops a runaway.
MAX_INBOUND = 64 << 20
QUEUE_SIZE = 256


def _bind_session(tool: Any, state: dict[str, Any]) -> None:
    """Give a tool the state that outlives one invocation of its session."""
    inner = getattr(tool, "inner", None)  # validated() wraps the real tool
    if inner is not None:
        _bind_session(inner, state)
    if hasattr(tool, "session"):
        tool.session = state
    elif hasattr(tool, "_namespace"):
        # The python tool has no session hook yet (requested from the SDK): share its globals.
        tool._namespace = state.setdefault("namespace", tool._namespace)


def _unit_from_json(obj: dict[str, Any]) -> Any:
    from conveyor.tools.units import unit_from_json

    return unit_from_json(obj)


@dataclass(slots=True)
class _Invocation:
    id: str
    tool: Any
    opened: float
    max_output: int
    started: float = 0.0
    busy: list[list[float]] = field(default_factory=list)

    def timing(self, finished: float) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "started": self.started,
            "finished": finished,
            "busy": self.busy,
        }


class Worker:
    def __init__(
        self, registry: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.registry = registry
        self.reader = reader
        self.writer = writer
        self.session_state: dict[str, Any] = {}
        self.calls = 0
        self._getter: asyncio.Future[dict[str, Any] | None] | None = None

    def send(self, obj: dict[str, Any]) -> None:
        self.writer.write(pack_json(obj))

    def _next(self) -> asyncio.Future[dict[str, Any] | None]:
        """The pending read of the next message; one at a time, never cancelled (no lost bytes)."""
        if self._getter is None:
            self._getter = asyncio.ensure_future(read_message(self.reader, MAX_INBOUND))
        return self._getter

    def _take(self) -> dict[str, Any] | None:
        getter, self._getter = self._getter, None
        assert getter is not None
        return getter.result()

    async def run(self) -> None:
        while True:
            await self._next()
            msg = self._take()
            if msg is None:
                return
            if msg.get("type") != "open":
                continue  # a late frame of an invocation that already ended
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
            task = asyncio.create_task(self._invoke(msg, queue))
            if not await self._pump(task, queue, bool(msg.get("session"))):
                return

    async def _pump(
        self, task: asyncio.Task[bool], queue: asyncio.Queue[dict[str, Any]], session: bool
    ) -> bool:
        """Feed this invocation's frames to its task until it ends; True if the worker stays."""
        while True:
            done, _ = await asyncio.wait({task, self._next()}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            msg = self._take()
            if msg is None:
                task.cancel()
                return False
            if msg.get("type") == "cancel":
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return session
            await queue.put(msg)

    async def _timed(self, inv: _Invocation, coro: Any) -> Any:
        t0 = time.time()
        try:
            return await coro
        finally:
            inv.busy.append([t0, time.time()])

    async def _invoke(self, open_msg: dict[str, Any], queue: asyncio.Queue[dict[str, Any]]) -> bool:
        session = bool(open_msg.get("session"))
        inv_id = str(open_msg["id"])
        limits = open_msg["limits"]
        inv: _Invocation | None = None
        try:
            tool = self.registry.create(open_msg["tool"], open_msg.get("config") or {})
            if session:
                _bind_session(tool, self.session_state)
            inv = _Invocation(inv_id, tool, float(open_msg["opened"]), int(limits["max_output"]))
            isolation.arm_cpu_limit(
                limits["cpu_seconds"],
                limits["session_cpu_seconds"] if session else limits["cpu_seconds"],
                first=self.calls == 0,
            )
            self.calls += 1
            inv.started = time.time()
            await self._timed(inv, tool.start())
            while True:
                msg = await queue.get()
                kind = msg.get("type")
                if kind == "unit":
                    try:
                        unit = _unit_from_json(msg["unit"])
                    except Exception as e:
                        self._error(inv_id, f"malformed unit: {e}", "protocol")
                        await tool.cancel()
                        return session
                    outcome = await self._timed(inv, tool.feed(unit))
                    if outcome is not None:
                        self.send(
                            {
                                "type": "reject",
                                "reason": str(outcome.reason),
                                "timing": inv.timing(time.time()),
                            }
                        )
                        await tool.cancel()
                        return session
                elif kind == "finish":
                    result = await self._timed(inv, tool.finish())
                    self._result(inv, result)
                    return session
        except asyncio.CancelledError:
            if inv is not None:
                await asyncio.shield(inv.tool.cancel())
            self.send({"type": "cancelled"})
            raise
        except MemoryError:
            self._error(
                inv_id, "memory limit: the tool ran out of its address space", "memory limit"
            )
            return False
        except Exception as e:
            self._error(inv_id, f"tool failed: {type(e).__name__}: {e}", "tool error")
            return session

    def _result(self, inv: _Invocation, result: Any) -> None:
        content = str(result.content)
        if len(content) > inv.max_output:
            dropped = len(content) - inv.max_output
            content = content[: inv.max_output] + f"\n[output truncated: {dropped} more characters]"
        data = result.data if isinstance(result.data, dict) else None
        if data is not None:
            try:
                size = len(json.dumps(data))
            except (TypeError, ValueError):
                data, size = None, 0
            if size > inv.max_output:
                data = None
                content += f"\n[result data dropped: {size} bytes, over the output limit]"
        msg = {
            "type": "result",
            "content": content,
            "is_error": bool(result.is_error),
            "data": data,
            "timing": inv.timing(time.time()),
        }
        self.send(msg)

    def _error(self, inv_id: str, message: str, reason: str) -> None:
        self.send({"type": "error", "message": message, "reason": reason})


async def _serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
    boot = await read_message(reader, MAX_INBOUND)
    if boot is None:
        return
    applied, workdir = isolation.enter_namespaces(
        bool(boot["network"]), boot["workdir"], list(boot["hide_paths"])
    )
    from conveyor.tools.sidecar.registry import tool_registry

    registry = tool_registry(list(boot.get("validated", [])))  # imports every tool now
    import conveyor.tools.units  # noqa: F401 - warm: the first unit must not pay an import

    if os.getpriority(os.PRIO_PROCESS, 0) > 0:
        with contextlib.suppress(PermissionError):  # only root may undo the boot niceness
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    parent = os.getppid()
    applied += isolation.drop_privileges(int(boot["uid"]))
    isolation.die_with_parent(parent)
    os.chdir(workdir)
    tempfile.tempdir = workdir
    applied += isolation.apply_rlimits(isolation.WorkerLimits(**boot["limits"]))
    # Spawned with an empty environment; Python itself may add LC_CTYPE (PEP 538): drop it.
    for key in list(os.environ):
        del os.environ[key]
    applied.append("empty environment")
    applied.append("private working directory")
    writer.write(pack_json({"type": "ready", "applied": applied, "pid": os.getpid()}))
    await Worker(registry, reader, writer).run()
    await writer.drain()


def main() -> None:
    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    # Untrusted code may write to fds 1 and 2; they lead nowhere that matters (see the pool).
    asyncio.run(_serve(fd))
    os._exit(0)


if __name__ == "__main__":
    main()
