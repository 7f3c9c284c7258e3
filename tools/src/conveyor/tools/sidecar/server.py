"""Running the sidecar under uvicorn, with a graceful SIGTERM.

The first SIGTERM (or SIGINT) closes the listening sockets, refuses new opens, lets in-flight
invocations finish within the grace period, cancels the rest with a clear error, closes the
connections and only then lets uvicorn stop. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import FrameType

import uvicorn

from conveyor.tools.sidecar.app import create_app
from conveyor.tools.sidecar.service import Sidecar


class _GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, sidecar: Sidecar) -> None:
        super().__init__(config)
        self.sidecar = sidecar
        self._drain: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if (
            self._drain is None
            and self._loop is not None
            and sig in (signal.SIGTERM, signal.SIGINT)
        ):
            self._loop.call_soon_threadsafe(self._start_drain)
            self._drain = asyncio.Future(loop=self._loop)  # marks "draining" until the task runs
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        for server in getattr(self, "servers", []):
            server.close()  # stop accepting connections
        await self.sidecar.drain(self.sidecar.config.server.grace_seconds)
        self.should_exit = True


def serve(
    sidecar: Sidecar,
    host: str = "127.0.0.1",
    port: int = 8001,
    uds: str | None = None,
    log_level: str = "info",
) -> None:
    config = uvicorn.Config(
        create_app(sidecar),
        host=host,
        port=port,
        uds=uds,
        log_level=log_level,
        lifespan="on",
        ws_max_size=4 * sidecar.config.server.max_frame_bytes,
        ws_per_message_deflate=False,  # frames are small; compression only adds latency
        timeout_graceful_shutdown=5,
    )
    _GracefulServer(config, sidecar).run()
