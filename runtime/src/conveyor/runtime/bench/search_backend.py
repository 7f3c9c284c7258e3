"""The local search service the benchmark starts: deterministic results after an emulated delay.

It stands in for a remote search API. The results are computed from the query (no network, no
corpus download); the only emulated part is the latency, which every benchmark output states.
``POST /search`` takes ``{"query", "k"}`` and answers ``{"results": [{title, url, snippet}]}``;
``HEAD /search`` answers at once (the search tool's connection warm-up).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def results(query: str, k: int) -> list[dict[str, str]]:
    """Deterministic results for ``query``; each snippet carries a figure in millions."""
    out = []
    for i in range(max(1, min(k, 10))):
        digest = hashlib.sha256(f"{query}\0{i}".encode()).digest()
        figure = 20 + int.from_bytes(digest[:4]) % 2000 / 10
        slug = "-".join(query.lower().split()[:6])
        out.append(
            {
                "title": f"{query} ({i + 1})",
                "url": f"https://news.example/{slug}/{i + 1}",
                "snippet": f"{query}: {figure:.1f} million, according to source {i + 1}.",
            }
        )
    return out


class SearchBackend:
    """Serves on 127.0.0.1 in a background thread; ``endpoint`` is the search tool's config."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}/search"
        app = Starlette(routes=[Route("/search", self._search, methods=["POST", "HEAD", "GET"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="search-backend", daemon=True)

    async def _search(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=200)
        body = await request.json()
        self.requests += 1
        await asyncio.sleep(self.latency)  # the emulated remote latency
        return JSONResponse({"results": results(str(body["query"]), int(body.get("k", 5)))})

    def start(self) -> SearchBackend:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the search backend did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
