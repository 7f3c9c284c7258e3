"""Running a request's work so that a client that goes away cancels it (both APIs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from starlette.requests import Request

log = logging.getLogger(__name__)


async def until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def run_watched(request: Request, work: Awaitable[Any]) -> Any:
    """Run ``work``; cancel it the moment the client disconnects."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            log.info("client went away: request cancelled")
            task.cancel()
        return await task
    finally:
        watcher.cancel()
        task.cancel()
