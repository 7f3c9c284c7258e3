"""Running a request's work so that a client that goes away cancels it (both APIs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.requests import Request

log = logging.getLogger(__name__)
T = TypeVar("T")


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


async def start_streamed(
    request: Request, work: Awaitable[Any], queue: asyncio.Queue[T]
) -> tuple[asyncio.Future[Any], T, BaseException | None]:
    """Start ``work`` (watched, as by ``run_watched``) and wait for the first item it puts on
    ``queue``; None means it ended before any, and then the error it failed with, if it did:
    a response can still be a plain error until its first event is out."""
    task = asyncio.ensure_future(run_watched(request, work))
    first = await queue.get()
    error = None
    if first is None:
        await asyncio.wait({task})
        if not task.cancelled():
            error = task.exception()
    return task, first, error
