"""One websocket connection: routes the runtime's frames to invocations, answers in one queue.

The receive loop does the least work a frame needs (parse, look up the id, write the frame's
own bytes to the worker's socket), so dispatch stays under a millisecond. Every protocol
violation becomes an ``error`` frame for its id here; nothing a client sends can raise out of
the loop. Answers go through a bounded outbox drained by one writer task; a client that stops
reading until the outbox is full is disconnected with a reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from conveyor.tools.protocol import (
    SUBPROTOCOL,
    Cancel,
    EndSession,
    ErrorFrame,
    Finish,
    Open,
    ProtocolError,
    Reason,
    ServerFrame,
    UnitFrame,
    decode_client_frame,
    encode,
)
from conveyor.tools.sidecar.config import ServerSettings
from conveyor.tools.sidecar.job import Job, State
from conveyor.tools.sidecar.metrics import SidecarMetrics

log = logging.getLogger("conveyor.tools.sidecar")

OUTBOX_SIZE = 10_000
REMEMBERED_IDS = 8192  # ids kept after they end, to tell "after finish" from "unknown"


class JobOpener(Protocol):
    """Starts the job an ``open`` asks for, or says why not (an ``error`` to send)."""

    def __call__(
        self,
        frame: Open,
        send: Callable[[ServerFrame], None],
        on_done: Callable[[Job, bool], None],
    ) -> Job | ErrorFrame: ...


class Connection:
    def __init__(
        self,
        ws: WebSocket,
        settings: ServerSettings,
        metrics: SidecarMetrics,
        open_job: JobOpener,
        end_session: Callable[[str], None],
    ) -> None:
        self.ws = ws
        self.jobs: dict[str, Job] = {}
        self._settings = settings
        self._metrics = metrics
        self._open_job = open_job
        self._end_session = end_session
        self._ended: OrderedDict[str, bool] = OrderedDict()  # id → ended after the client's finish
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_SIZE)
        self.closing: tuple[int, str] | None = None
        self._closed = asyncio.Event()

    def send(self, frame: ServerFrame) -> None:
        try:
            self.outbox.put_nowait(encode(frame))
        except asyncio.QueueFull:
            self.close(1008, "client is not reading its answers")

    def _job_ended(self, job: Job, finished: bool) -> None:
        self.jobs.pop(job.id, None)
        self._ended[job.id] = finished
        if len(self._ended) > REMEMBERED_IDS:
            self._ended.popitem(last=False)

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            try:
                self.outbox.put_nowait(None)
            except asyncio.QueueFull:
                pass
            self._closed.set()

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        offered = self.ws.scope.get("subprotocols", [])
        if offered and SUBPROTOCOL not in offered:
            await self.ws.close(1002, f"unsupported protocol; this sidecar speaks {SUBPROTOCOL}")
            return
        await self.ws.accept(subprotocol=SUBPROTOCOL if offered else None)
        writer = asyncio.create_task(self._write_loop())
        reader = asyncio.create_task(self._read_loop())
        closed = asyncio.create_task(self._closed.wait())
        try:
            await asyncio.wait({reader, writer, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, closed):
                task.cancel()
            for job in list(self.jobs.values()):
                self._metrics.cancelled_by_disconnect.inc()
                job.cancel("cancelled: the client disconnected")
            self.jobs.clear()
            if self.closing is not None and not writer.done():
                await asyncio.wait({writer}, timeout=1.0)
            writer.cancel()
            if self.closing is not None:
                try:
                    await self.ws.close(*self.closing)
                except (RuntimeError, OSError, WebSocketDisconnect):
                    pass

    async def _write_loop(self) -> None:
        try:
            while True:
                frame = await self.outbox.get()
                if frame is None:
                    return
                await self.ws.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client is gone; the read side ends the connection

    async def _read_loop(self) -> None:
        receive = self.ws.receive
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            raw = text.encode() if text is not None else message.get("bytes") or b""
            try:
                self.handle(raw)
            except Exception:  # a bug must cost one frame, never the connection
                log.exception("frame handling failed")
                self.send(ErrorFrame(None, "internal error handling a frame", Reason.INTERNAL))

    def handle(self, raw: bytes) -> None:
        try:
            frame = decode_client_frame(raw, self._settings.max_frame_bytes)
        except ProtocolError as e:
            self._metrics.protocol_errors.inc()
            job = self.jobs.get(e.id) if e.id is not None else None
            if job is not None:
                job.fail(f"protocol: {e.message}", Reason.PROTOCOL)
            else:
                self.send(ErrorFrame(e.id, e.message))
            return
        if isinstance(frame, EndSession):
            self._end_session(frame.id)
            return
        job = self.jobs.get(frame.id)
        if isinstance(frame, UnitFrame):
            if job is not None and job.state is State.OPEN:
                job.forward(raw, unit=True)
                return
        elif isinstance(frame, Open):
            self._open(frame, job)
            return
        elif isinstance(frame, Finish):
            if job is not None and job.state is State.OPEN:
                job.forward(raw, unit=False)
                return
        elif isinstance(frame, Cancel):
            if job is not None:
                job.cancel("cancelled by the client")
            return  # a cancel racing the answer is normal: no error
        self._violation(frame.id, job)

    def _violation(self, id: str, job: Job | None) -> None:
        if id in self._ended and not self._ended[id]:
            # Rejected, failed or cancelled by us: frames the client had already sent are
            # expected, and dropped.
            return
        self._metrics.protocol_errors.inc()
        if job is not None:  # a unit or finish after finish on a live invocation
            job.fail("protocol: frame after finish", Reason.PROTOCOL)
        elif id in self._ended:
            self.send(ErrorFrame(id, "protocol: frame after finish"))
        else:
            self.send(ErrorFrame(id, "protocol: unknown id (no open for it)"))

    def _open(self, frame: Open, existing: Job | None) -> None:
        if existing is not None:
            self._metrics.protocol_errors.inc()
            existing.fail("protocol: duplicate open for a live id", Reason.PROTOCOL)
            return
        if len(self.jobs) >= self._settings.max_invocations_per_connection:
            self.send(ErrorFrame(frame.id, "too many open invocations", Reason.OVERLOADED))
            return
        opened = self._open_job(frame, self.send, self._job_ended)
        if isinstance(opened, ErrorFrame):
            self.send(opened)
            return
        self._ended.pop(frame.id, None)
        self.jobs[frame.id] = opened
        opened.start()
