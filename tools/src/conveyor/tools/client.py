"""The runtime's client for the tool sidecar (protocol ``conveyor.tools/v1``).

One websocket multiplexes every invocation. ``feed`` only sends (it never waits for the tool);
each invocation's outcome is a future that resolves on the first ``result``, ``reject`` or
``error`` — a reject before ``finish`` resolves it at once so the caller can stop decoding.
When the connection drops, every in-flight invocation fails fast with an ``error`` outcome,
and the client reconnects in the background with exponential backoff, so new invocations work
as soon as the sidecar is back. A :class:`ToolSession` groups invocations whose tools keep
state between calls (the python tool's globals), as one request of the runtime does.
Every frame is built and read by :mod:`conveyor.tools.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import httpx
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from conveyor.tools.protocol import (
    SUBPROTOCOL,
    Cancel,
    ClientFrame,
    EndSession,
    ErrorFrame,
    Finish,
    Open,
    ProtocolError,
    Reason,
    RejectFrame,
    ResultFrame,
    ServerFrame,
    Timing,
    UnitFrame,
    decode_server_frame,
    encode,
)
from conveyor.tools.units import Unit, unit_to_json

log = logging.getLogger("conveyor.tools.client")


class SidecarUnavailable(ConnectionError):
    """No connection to the sidecar could be made in time."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an invocation ended. ``timing`` holds ``opened/started/finished/busy`` (epoch s)."""

    kind: Literal["result", "reject", "error"]
    content: str
    is_error: bool
    data: dict[str, Any] | None = None
    timing: dict[str, Any] = field(default_factory=dict)  # a protocol ``Timing``
    reason: Reason | None = None  # for errors: timeout, cpu limit, connection lost...

    @classmethod
    def from_frame(cls, frame: ServerFrame) -> Outcome:
        if isinstance(frame, ResultFrame):
            return cls("result", frame.content, frame.is_error, frame.data, _plain(frame.timing))
        if isinstance(frame, RejectFrame):
            return cls("reject", frame.reason, True, None, _plain(frame.timing))
        return cls("error", frame.message, True, reason=frame.reason)


def _plain(timing: Timing) -> dict[str, Any]:
    return cast(dict[str, Any], timing)  # a TypedDict is a dict: callers index it freely


class Invocation:
    """One tool call on the sidecar; created by :meth:`SidecarClient.open`."""

    def __init__(self, client: SidecarClient, id: str, tool: str, ws: ClientConnection) -> None:
        self.id = id
        self.tool = tool
        self._client = client
        self._ws = ws
        self._future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self._future.done()

    async def feed(self, unit: Unit | dict[str, Any]) -> None:
        """Send one more unit. Never waits for the tool; a no-op once the outcome is known."""
        if self._future.done():
            return
        payload = unit if isinstance(unit, dict) else unit_to_json(unit)
        await self._send(UnitFrame(self.id, payload))

    async def finish(self) -> None:
        """The input is complete: the tool's result follows as the outcome."""
        if not self._future.done():
            await self._send(Finish(self.id))

    async def cancel(self) -> None:
        """Abandon the call; the outcome becomes an ``error`` (reason ``cancelled``)."""
        if self._future.done():
            return
        self._resolve(Outcome("error", "cancelled by the client", True, reason=Reason.CANCELLED))
        self._client._forget(self.id)
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(encode(Cancel(self.id)))

    async def outcome(self) -> Outcome:
        return await asyncio.shield(self._future)

    async def _send(self, frame: ClientFrame) -> None:
        try:
            await self._ws.send(encode(frame))
        except ConnectionClosed as e:
            self._resolve(_lost(e))

    def _resolve(self, outcome: Outcome) -> None:
        if not self._future.done():
            self._future.set_result(outcome)


def _lost(cause: object) -> Outcome:
    return Outcome(
        "error",
        f"connection to the tool sidecar was lost ({cause}); the invocation did not complete",
        True,
        reason=Reason.CONNECTION_LOST,
    )


class ToolSession:
    """Invocations whose tools keep state from one call to the next, like a notebook's cells.

    Made by :meth:`SidecarClient.session`. The calls of one session run in turn in one worker;
    a python call sees the names that earlier python calls of the session defined. Tools that
    keep no state (``Tool.use_session`` not overridden) run as if outside any session.
    ``close`` frees the session's worker at once (otherwise the sidecar frees it after
    ``pool.session_idle_seconds``); it is also an async context manager.
    """

    def __init__(self, client: SidecarClient, key: str) -> None:
        self.key = key
        self._client = client

    async def open(self, tool: str) -> Invocation:
        """Start an invocation of ``tool`` in this session."""
        return await self._client.open(tool, session=self.key)

    async def close(self) -> None:
        await self._client._end_session(self.key)

    async def __aenter__(self) -> ToolSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SidecarClient:
    """Async client; ``url`` is ``http://host:port`` or ``unix:/path/to/socket``."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 10.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        max_frame_bytes: int = 16 << 20,
    ) -> None:
        self.url = url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_frame_bytes = max_frame_bytes
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._inflight: dict[str, Invocation] = {}
        self._runner: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self.connects = 0  # how many times a connection was established (1 + reconnects)

    # -- connection management -----------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, and keep reconnecting; :class:`SidecarUnavailable` if it takes too long."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        await self._wait_connected()

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for inv in list(self._inflight.values()):
            inv._resolve(_lost("client closed"))
        self._inflight.clear()

    async def __aenter__(self) -> SidecarClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def _wait_connected(self) -> ClientConnection:
        try:
            await asyncio.wait_for(self._connected.wait(), self.connect_timeout)
        except TimeoutError:
            raise SidecarUnavailable(
                f"no connection to the tool sidecar at {self.url} within {self.connect_timeout} s"
            ) from None
        assert self._ws is not None
        return self._ws

    def _dial(self) -> Any:
        common: dict[str, Any] = {
            "subprotocols": [Subprotocol(SUBPROTOCOL)],
            "compression": None,
            "max_size": self.max_frame_bytes,
            "open_timeout": self.connect_timeout,
        }
        if self.url.startswith("unix:"):
            path = self.url[len("unix:") :]
            return unix_connect(path, uri="ws://sidecar/v1/invocations", **common)
        ws_url = "ws" + self.url[len("http") :] if self.url.startswith("http") else self.url
        return connect(ws_url + "/v1/invocations", proxy=None, **common)

    async def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            try:
                ws = await self._dial()
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ValueError) as e:
                log.debug("sidecar connect failed: %s; retry in %.2f s", e, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(self.backoff_max, delay * 2)
                continue
            delay = self.backoff_initial
            self._ws = ws
            self.connects += 1
            self._connected.set()
            cause: object = "closed"
            try:
                async for message in ws:
                    self._dispatch(message)
            except ConnectionClosed as e:
                cause = e
            finally:
                self._connected.clear()
                self._ws = None
                lost = [i for i in self._inflight.values() if i._ws is ws]
                for inv in lost:
                    self._inflight.pop(inv.id, None)
                    inv._resolve(_lost(cause))
                with contextlib.suppress(Exception):
                    await ws.close()

    def _dispatch(self, message: str | bytes) -> None:
        try:
            frame = decode_server_frame(message)
        except ProtocolError as e:
            log.warning("unreadable frame from the sidecar (%s): %.200r", e.message, message)
            if e.id is not None and (inv := self._inflight.pop(e.id, None)) is not None:
                text = f"protocol: unreadable answer from the sidecar ({e.message})"
                inv._resolve(Outcome("error", text, True, reason=Reason.PROTOCOL))
            return
        inv = self._inflight.pop(frame.id, None) if frame.id is not None else None
        if inv is None:
            if isinstance(frame, ErrorFrame):  # usually the answer to our own cancel
                log.debug("sidecar error without a live invocation: %s", frame.message)
            return
        inv._resolve(Outcome.from_frame(frame))

    def _forget(self, id: str) -> None:
        self._inflight.pop(id, None)

    # -- the API -------------------------------------------------------------------------------

    async def open(self, tool: str, session: str | None = None) -> Invocation:
        """Start an invocation of ``tool`` (the sidecar takes a warm worker and calls start)."""
        ws = self._ws if self._connected.is_set() else None
        if ws is None:
            if self._runner is None:
                await self.connect()
            ws = await self._wait_connected()
        inv = Invocation(self, f"{self._prefix}-{next(self._ids)}", tool, ws)
        self._inflight[inv.id] = inv
        await inv._send(Open(inv.id, tool, session))
        if inv.done:
            self._inflight.pop(inv.id, None)
        return inv

    def session(self) -> ToolSession:
        """A new session: invocations opened through it share their tools' state."""
        return ToolSession(self, f"{self._prefix}-s{next(self._ids)}")

    async def _end_session(self, key: str) -> None:
        ws = self._ws if self._connected.is_set() else None
        if ws is not None:  # else the sidecar frees the worker after its idle time
            with contextlib.suppress(ConnectionClosed):
                await ws.send(encode(EndSession(key)))

    async def tools(self) -> list[dict[str, Any]]:
        """The enabled tools: OpenAI tool dicts with ``x-conveyor.segmenter``."""
        if self.url.startswith("unix:"):
            transport = httpx.AsyncHTTPTransport(uds=self.url[len("unix:") :])
            client = httpx.AsyncClient(transport=transport, base_url="http://sidecar")
        else:
            client = httpx.AsyncClient(base_url=self.url, trust_env=False)
        async with client:
            response = await client.get("/v1/tools", timeout=self.connect_timeout)
            response.raise_for_status()
            result: list[dict[str, Any]] = response.json()
            return result
