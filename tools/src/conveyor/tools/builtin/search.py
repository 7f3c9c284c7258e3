"""The search tool: POSTs to an HTTP search endpoint the moment ``query`` closes.

Config: ``endpoint`` (``http://host:port/search``), ``k`` (results, default 5), ``timeout``
(seconds, default 10), ``warm`` (default true: ``start`` sends a ``HEAD`` to the endpoint so
the query reuses an open keep-alive connection). The endpoint takes ``{"query": str, "k": int}``
and answers ``{"results": [{"title", "url", "snippet"}, ...]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import httpx

from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.builtin._fields import top_level_fields
from conveyor.tools.units import ParseError, Unit


class SearchTool(Tool):
    name: ClassVar[str] = "search"
    description: ClassVar[str] = "Search the web and return the top results."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to search for."}},
        "required": ["query"],
    }

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {})
        self._client: httpx.AsyncClient | None = None
        self._warm: asyncio.Task[None] | None = None
        self._request: asyncio.Task[Result] | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=float(self.config.get("timeout", 10.0)))
        if self.config.get("warm", True) and self.config.get("endpoint"):
            self._warm = asyncio.create_task(self._warm_up())

    async def _warm_up(self) -> None:
        assert self._client is not None
        with contextlib.suppress(httpx.HTTPError):
            await self._client.head(str(self.config["endpoint"]))

    async def feed(self, unit: Unit) -> Reject | None:
        if isinstance(unit, ParseError):
            return Reject(unit.message)
        for key, value in top_level_fields(unit):
            if key == "query" and self._request is None:
                if not isinstance(value, str) or not value.strip():
                    return Reject("`query` must be a non-empty string")
                # Started now, awaited at finish: the search runs while the model writes on.
                self._request = asyncio.create_task(self._search(value))
        return None

    async def _search(self, query: str) -> Result:
        endpoint = self.config.get("endpoint")
        if not endpoint:
            return Result("search is not configured (no endpoint)", is_error=True)
        if self._client is None:
            await self.start()
        assert self._client is not None
        if self._warm is not None:
            await self._warm  # then the query goes over the connection it opened
        body = {"query": query, "k": int(self.config.get("k", 5))}
        try:
            response = await self._client.post(str(endpoint), json=body)
            response.raise_for_status()
            results = response.json()["results"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            return Result(f"search failed: {type(exc).__name__}: {exc}", is_error=True)
        lines = []
        for n, r in enumerate(results, 1):
            lines.append(f"{n}. {r.get('title', '')} — {r.get('url', '')}")
            if r.get("snippet"):
                lines.append(f"   {r['snippet']}")
        return Result("\n".join(lines) or "no results", data={"results": results})

    async def finish(self) -> Result:
        try:
            if self._request is None:
                return Result("missing `query`", is_error=True)
            return await self._request
        finally:
            await self._close()

    async def cancel(self) -> None:
        for task in (self._request, self._warm):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._close()

    async def _close(self) -> None:
        if self._warm is not None and not self._warm.done():
            self._warm.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
