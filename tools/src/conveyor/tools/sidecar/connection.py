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
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect

from conveyor.tools.sidecar.invocation import Invocation, State
from conveyor.tools.sidecar.protocol import (
    SUBPROTOCOL,
    Cancel,
    Finish,
    Open,
    ProtocolError,
    UnitFrame,
    error_frame,
    parse_client_frame,
)

if TYPE_CHECKING:
    from conveyor.tools.sidecar.service import Sidecar

log = logging.getLogger("conveyor.tools.sidecar")

OUTBOX_SIZE = 10_000
REMEMBERED_IDS = 8192  # ids kept after they end, to tell "after finish" from "unknown"


class Connection:
    def __init__(self, ws: WebSocket, hub: Sidecar) -> None:
        self.ws = ws
        self.hub = hub
        self.invocations: dict[str, Invocation] = {}
        self._ended: OrderedDict[str, bool] = OrderedDict()  # id → ended after the client's finish
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_SIZE)
        self.closing: tuple[int, str] | None = None
        self._closed = asyncio.Event()

    # -- the Conn interface for invocations ----------------------------------------------------

    def send(self, frame: str) -> None:
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(1008, "client is not reading its answers")

    def ended(self, id: str, finished: bool) -> None:
        self.invocations.pop(id, None)
        self._ended[id] = finished
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
        self.hub.connections.add(self)
        self.hub.metrics.connections.inc()
        writer = asyncio.create_task(self._write_loop())
        reader = asyncio.create_task(self._read_loop())
        closed = asyncio.create_task(self._closed.wait())
        try:
            await asyncio.wait({reader, writer, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, closed):
                task.cancel()
            for inv in list(self.invocations.values()):
                self.hub.metrics.cancelled_by_disconnect.inc()
                inv.cancel("cancelled: the client disconnected")
            self.invocations.clear()
            if self.closing is not None and not writer.done():
                await asyncio.wait({writer}, timeout=1.0)
            writer.cancel()
            if self.closing is not None:
                try:
                    await self.ws.close(*self.closing)
                except (RuntimeError, OSError, WebSocketDisconnect):
                    pass
            self.hub.connections.discard(self)
            self.hub.metrics.connections.dec()

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
                self.send(error_frame(None, "internal error handling a frame", "internal"))

    def handle(self, raw: bytes) -> None:
        try:
            frame = parse_client_frame(raw, self.hub.config.server.max_frame_bytes)
        except ProtocolError as e:
            self.hub.metrics.protocol_errors.inc()
            inv = self.invocations.get(e.id) if e.id is not None else None
            if inv is not None:
                inv.fail(f"protocol: {e.message}")
            else:
                self.send(error_frame(e.id, e.message))
            return
        inv = self.invocations.get(frame.id)
        if isinstance(frame, UnitFrame):
            if inv is not None and inv.state is State.OPEN:
                inv.forward(raw, unit=True)
                return
        elif isinstance(frame, Open):
            self._open(frame, inv)
            return
        elif isinstance(frame, Finish):
            if inv is not None and inv.state is State.OPEN:
                inv.forward(raw, unit=False)
                return
        elif isinstance(frame, Cancel):
            if inv is not None:
                inv.cancel("cancelled by the client")
            return  # a cancel racing the answer is normal: no error
        self._violation(frame.id, inv)

    def _violation(self, id: str, inv: Invocation | None) -> None:
        if id in self._ended and not self._ended[id]:
            # Rejected, failed or cancelled by us: frames the client had already sent are
            # expected, and dropped.
            return
        self.hub.metrics.protocol_errors.inc()
        if inv is not None:  # a unit or finish after finish on a live invocation
            inv.fail("protocol: frame after finish")
        elif id in self._ended:
            self.send(error_frame(id, "protocol: frame after finish"))
        else:
            self.send(error_frame(id, "protocol: unknown id (no open for it)"))

    def _open(self, frame: Open, existing: Invocation | None) -> None:
        hub = self.hub
        if existing is not None:
            hub.metrics.protocol_errors.inc()
            existing.fail("protocol: duplicate open for a live id")
            return
        if hub.draining:
            self.send(error_frame(frame.id, "sidecar shutting down: not accepting", "shutdown"))
            return
        tool = hub.config.tools.get(frame.tool)
        if tool is None:
            self.send(error_frame(frame.id, f"unknown tool {frame.tool!r}", "unknown tool"))
            return
        if len(self.invocations) >= hub.config.server.max_invocations_per_connection:
            self.send(error_frame(frame.id, "too many open invocations", "overloaded"))
            return
        session = None
        if frame.session is not None:
            session = hub.session(frame.session, tool)
            if session is None:
                self.send(error_frame(frame.id, "session belongs to another tool", "session"))
                return
        self._ended.pop(frame.id, None)
        inv = Invocation(frame.id, tool, session, self, hub)
        self.invocations[frame.id] = inv
        inv.start()
