"""A real MCP server for the tests, written with the SDK's server API (``MCPServer``).

``python srv.py`` serves it over stdio (inside the sidecar's sandbox); ``http_server(port)``
serves it over Streamable HTTP in a thread of the test, where ``CALLS`` shows what it saw.
Tools: ``fast`` answers at once, ``slow`` takes ``seconds`` (read-only, so it may start on a
prefix), ``write`` has no hints, ``crash`` kills the server, ``hang`` never answers.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("srv")
# What the in-process (HTTP) server saw: ("started"|"done"|"cancelled", query, wall time).
CALLS: list[tuple[str, str, float]] = []


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def fast(text: str) -> str:
    """Echo the text at once."""
    return f"fast:{text}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def slow(query: str, seconds: float = 1.0, note: str = "") -> dict[str, Any]:
    """Look the query up slowly; says when it started."""
    started = time.time()
    CALLS.append(("started", query, started))
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        CALLS.append(("cancelled", query, time.time()))
        raise
    CALLS.append(("done", query, time.time()))
    return {"answer": f"slow:{query}{note}", "started": started}


@server.tool()
def write(text: str) -> str:
    """Write the text somewhere (no hints: it must not start on a prefix)."""
    return f"wrote:{text}"


@server.tool()
def crash() -> str:
    """Kill the server process in the middle of the call."""
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answer."""
    await asyncio.sleep(3600)
    return "unreachable"


def http_server(port: int) -> tuple[Any, threading.Thread]:
    """Serve over Streamable HTTP on 127.0.0.1:``port`` in a daemon thread; stop with
    ``uvicorn_server.should_exit = True``."""
    import uvicorn

    app = server.streamable_http_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    return uvicorn_server, thread


if __name__ == "__main__":
    server.run("stdio")
