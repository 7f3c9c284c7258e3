"""An MCP tool call as a partial-execution tool, run inside a sandboxed worker.

MCP has no streaming input, so partial execution is about *when* things happen:

- ``start`` (the call's name is decoded): connect and initialize the session in the background
  (for stdio, that starts the server process, inside this worker's sandbox);
- ``feed``: collect the closed fields; with ``start_on`` (only for tools the server marks
  read-only or idempotent) send ``tools/call`` as soon as that field closes and every required
  field is there, with the fields so far;
- ``finish`` (the arguments are complete): the early call's result if its arguments equal the
  complete ones, else cancel it and send ``tools/call`` now;
- ``cancel``: abandon what is in flight (the SDK sends ``notifications/cancelled``).

``mode: list`` is the sidecar's listing at start: ``finish`` answers with the server's tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.units import Field, ParseError, Path, Unit, Whole


def preload() -> None:
    """Import the MCP client (about a second of CPU) at worker boot, not at the first call."""
    import httpx2  # noqa: F401
    import mcp.client.stdio  # noqa: F401
    import mcp.client.streamable_http  # noqa: F401


class McpConnection:
    """One MCP client session, owned by a task of its own (the SDK's task groups need that)."""

    def __init__(self, server: dict[str, Any]) -> None:
        self._server = server
        self._session: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._done = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self._session.set_result(session)
                await self._done.wait()
        except BaseException as e:
            if not self._session.done():
                self._session.set_exception(e if isinstance(e, Exception) else ConnectionError(e))
            raise

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        server = self._server
        if server["transport"] == "stdio":
            from mcp import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=server["command"], args=server["args"], env=server["env"]
            )
            return stdio_client(params, errlog=sys.stderr)
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        client = httpx2.AsyncClient(
            headers=server["headers"], timeout=httpx2.Timeout(30.0, read=300.0), trust_env=False
        )
        return _owning(client, streamable_http_client(server["url"], http_client=client))

    async def session(self) -> Any:
        return await asyncio.shield(self._session)

    async def close(self) -> None:
        self._done.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@contextlib.asynccontextmanager
async def _owning(client: Any, transport: Any) -> Any:
    async with client, transport as streams:
        yield streams


def assemble(fields: list[tuple[Path, Any]]) -> dict[str, Any]:
    """The arguments object rebuilt from its closed scalar fields, in document order."""
    root: dict[str, Any] = {}
    for path, value in fields:
        node: Any = root
        for part, after in zip(path, path[1:], strict=False):
            node = _child(node, part, [] if isinstance(after, int) else {})
        if isinstance(node, list):
            node.append(value)
        else:
            node[path[-1]] = value
    return root


def _child(node: Any, part: str | int, empty: Any) -> Any:
    if isinstance(node, list):  # an array's indices come in order: 0, 1, ...
        if int(part) >= len(node):
            node.append(empty)
        return node[int(part)]
    return node.setdefault(part, empty)


def to_result(result: Any) -> Result:
    """An MCP ``CallToolResult`` as ours: text joined, ``isError`` kept, structured data kept."""
    texts = []
    for block in result.content:
        text = getattr(block, "text", None)
        texts.append(text if isinstance(text, str) else f"[{block.type} content]")
    data = result.structured_content
    return Result("\n".join(texts), bool(result.is_error), data if isinstance(data, dict) else None)


@dataclass(slots=True)
class McpCall(Tool):
    name: ClassVar[str] = "mcp"
    description: ClassVar[str] = "A tool of an MCP server configured in tools.yaml"
    parameters: ClassVar[dict[str, Any]] = {"type": "object"}

    _conn: McpConnection | None = None
    _fields: list[tuple[Path, Any]] = field(default_factory=list)
    _early: asyncio.Task[Any] | None = None
    _early_args: dict[str, Any] | None = None
    _armed: bool = False  # the start_on field has closed

    async def start(self) -> None:
        self._conn = McpConnection(self.config["server"])

    async def feed(self, unit: Unit) -> Reject | None:
        if isinstance(unit, ParseError):
            return Reject(f"the arguments are not valid JSON: {unit.message}")
        if isinstance(unit, Whole):
            self._fields = [((k,), v) for k, v in unit.arguments.items()]
        elif isinstance(unit, Field) and unit.path:
            self._fields.append((unit.path, unit.value))
            self._armed |= unit.path == (self.config.get("start_on"),)
            if self._armed and self._early is None:
                args = assemble(self._fields)
                if all(name in args for name in self.config.get("required", [])):
                    self._early_args = args
                    self._early = asyncio.create_task(self._call(args))
        return None

    async def _call(self, args: dict[str, Any]) -> Any:
        assert self._conn is not None
        session = await self._conn.session()
        return await session.call_tool(self.config["tool"], args)

    async def finish(self) -> Result:
        assert self._conn is not None
        server = self.config.get("server_name", "the MCP server")
        try:
            if self.config.get("mode") == "list":
                return await self._list()
            args = assemble(self._fields)
            early, self._early = self._early, None
            if early is not None and args == self._early_args:
                return to_result(await early)
            if early is not None:  # the model wrote more: that call was for other arguments
                early.cancel()
                await asyncio.gather(early, return_exceptions=True)
            return to_result(await self._call(args))
        except Exception as e:
            return Result(f"MCP server {server} failed: {type(e).__name__}: {e}", is_error=True)
        finally:
            self._done_soon()

    async def _list(self) -> Result:
        assert self._conn is not None
        from mcp.types import PaginatedRequestParams

        session = await self._conn.session()
        tools: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools += [
                t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools
            ]
            cursor = page.next_cursor
            if not cursor:
                return Result(f"{len(tools)} tools", data={"tools": tools})

    def _done_soon(self) -> None:
        # The answer goes out first; the worker is recycled (and its server with it) after.
        if self._conn is not None:
            asyncio.get_running_loop().create_task(self._conn.close())

    async def cancel(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.cancel()  # the SDK tells the server: notifications/cancelled
            await asyncio.gather(early, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()
