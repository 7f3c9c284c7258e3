"""Graceful shutdown: on SIGTERM stop taking work, finish what is in flight, then exit.

The first SIGTERM (or SIGINT) makes ``/ready`` and every new API request answer 503 at once,
while the listener stays open so a load balancer sees "not ready" rather than a refused
connection. Requests already running go on until they end or the grace period is over; then
uvicorn shuts down and the caller stops the engine and the sidecar. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.runtime.errors import NotReady

log = logging.getLogger(__name__)

# Probes that keep answering while draining: the process is alive (liveness) and still
# reports its metrics; only readiness says "do not send me work".
_STILL_SERVED = frozenset({"/health", "/metrics"})


class Drain:
    """ASGI wrapper that counts the requests in flight and refuses new ones once draining."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.draining and scope["path"] not in _STILL_SERVED:
            await _refuse(send)
            return
        self.in_flight += 1
        self._idle.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until nothing is in flight."""
        await self._idle.wait()


async def _refuse(send: Send) -> None:
    body = json.dumps(NotReady("the server is shutting down").body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": NotReady.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class DrainingServer(uvicorn.Server):
    """uvicorn, with the drain above in front of its own shutdown.

    uvicorn would re-raise a caught SIGTERM once it has stopped, killing the process before the
    engine and the sidecar are shut down (leaving vLLM's engine process orphaned); this server
    handles SIGINT and SIGTERM on the event loop itself: the first starts the drain, a second
    one exits at once.
    """

    def __init__(self, config: uvicorn.Config, drain: Drain, grace: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace = grace
        self._draining_task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.draining:
            self.should_exit = self.force_exit = True
            return
        self.drain.draining = True  # at once: readiness fails from this moment
        self._draining_task = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        started = time.monotonic()
        log.info(
            "draining: %d request(s) in flight, up to %.0f s", self.drain.in_flight, self.grace
        )
        try:
            async with asyncio.timeout(self.grace):
                await self.drain.wait_idle()
        except TimeoutError:
            log.warning("drain: %d request(s) still running after the grace", self.drain.in_flight)
        # What is left of the grace bounds uvicorn's own wait for open connections.
        remaining = max(1.0, self.grace - (time.monotonic() - started))
        self.config.timeout_graceful_shutdown = int(remaining)
        self.should_exit = True


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
