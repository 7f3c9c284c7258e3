"""The MCP servers' tools as the sidecar serves them, listed once at start.

Each server is listed by an ordinary invocation (a :class:`~.job.Job` of the worker's ``mcp``
tool in ``list`` mode), so a stdio server runs inside the sandbox with the same isolation and
limits as any tool, and a server that crashes or hangs is ended (the listing as a whole is
bounded by ``list_timeout_seconds``). What cannot be listed fails closed: its tools are not
served, and ``unavailable`` says why (``/readyz``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from conveyor.tools.protocol import Finish, ResultFrame, ServerFrame
from conveyor.tools.sidecar.config import ToolSettings
from conveyor.tools.sidecar.job import Job, WorkerSource
from conveyor.tools.sidecar.mcp_config import McpServerSettings
from conveyor.tools.sidecar.metrics import SidecarMetrics
from conveyor.tools.units import JsonFields

log = logging.getLogger("conveyor.tools.sidecar")
RUNNER = "mcp"  # the worker's tool that talks to MCP servers (mcp_call.McpCall)
EARLY_HINTS = ("readOnlyHint", "idempotentHint")


class McpCatalog:
    """The hosted MCP tools (``server.tool``), their specs, and the servers that failed."""

    def __init__(self, servers: Mapping[str, McpServerSettings]) -> None:
        self.servers = dict(servers)
        self.tools: dict[str, ToolSettings] = {}
        self.specs: list[dict[str, Any]] = []
        self.unavailable: dict[str, str] = {}  # "server.*" or "server.tool" → why
        self.listed = not self.servers

    async def list_all(
        self,
        workers: Callable[[bool], WorkerSource],
        metrics: SidecarMetrics,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        await asyncio.gather(
            *(self._list(s, workers(s.network), metrics, environ) for s in self.servers.values())
        )
        metrics.track(list(self.tools))
        self.listed = True

    async def _list(
        self,
        server: McpServerSettings,
        workers: WorkerSource,
        metrics: SidecarMetrics,
        environ: Mapping[str, str],
    ) -> None:
        if not server.reachable:
            self._refuse(f"{server.name}.*", "network: false: a streamable-http server needs it")
            return
        try:
            connection = server.connection(environ)
        except KeyError as e:
            self._refuse(f"{server.name}.*", str(e.args[0]))
            return
        frame = await _run_listing(server, connection, workers, metrics)
        if not isinstance(frame, ResultFrame) or frame.is_error or frame.data is None:
            why = frame.content if isinstance(frame, ResultFrame) else getattr(frame, "message", "")
            self._refuse(f"{server.name}.*", f"cannot list its tools: {why}")
            return
        found = [t for t in frame.data.get("tools", []) if isinstance(t, dict)]
        log.info(
            "MCP server %s (%s): %d tools: %s",
            server.name,
            server.transport,
            len(found),
            ", ".join(str(t.get("name")) for t in found),
        )
        for name in set(server.tools) - {t.get("name") for t in found}:
            log.warning("mcp_servers.%s.tools.%s: the server has no such tool", server.name, name)
        for tool in found:
            self._add(server, connection, tool)

    def _add(
        self, server: McpServerSettings, connection: dict[str, Any], tool: dict[str, Any]
    ) -> None:
        name = str(tool.get("name"))
        options = server.tools.get(name)
        if options is not None and not options.enabled:
            return
        full = f"{server.name}.{name}"
        raw_schema = tool.get("inputSchema")
        schema: dict[str, Any] = raw_schema if isinstance(raw_schema, dict) else {}
        start_on = options.start_on if options is not None else None
        if start_on is not None:
            why = _refuse_start_on(tool, schema, start_on)
            if why is not None:
                self._refuse(full, f"mcp_servers.{server.name}.tools.{name}.start_on: {why}")
                return
        self.tools[full] = ToolSettings(
            full,
            config={
                "server": connection,
                "server_name": server.name,
                "tool": name,
                "start_on": start_on,
                "required": list(schema.get("required", [])),
            },
            network=server.network,
            limits=server.limits,
            runs=RUNNER,
        )
        function = {
            "name": full,
            "description": tool.get("description") or "",
            "parameters": schema,
        }
        self.specs.append(
            {
                "type": "function",
                "function": function,
                "x-conveyor": {"segmenter": JsonFields().spec()},
            }
        )

    def _refuse(self, key: str, why: str) -> None:
        log.error("MCP tools %s are not served: %s", key, why)
        self.unavailable[key] = why

    def reason(self, tool: str) -> str | None:
        """Why the hosted tool ``tool`` is not served, if it belongs to a server that failed."""
        server = tool.split(".", 1)[0]
        return self.unavailable.get(tool) or self.unavailable.get(f"{server}.*")


def _refuse_start_on(tool: dict[str, Any], schema: dict[str, Any], start_on: str) -> str | None:
    """Why a prefix start cannot be allowed for ``tool`` (None: it can)."""
    hints = tool.get("annotations") or {}
    if not any(hints.get(h) is True for h in EARLY_HINTS):
        return (
            f"refused: {tool.get('name')} is not marked readOnlyHint or idempotentHint by its "
            "server, so it must not run on a prefix of its arguments"
        )
    if start_on not in (schema.get("properties") or {}):
        return f"refused: {start_on!r} is not a property of {tool.get('name')}'s input schema"
    return None


async def _run_listing(
    server: McpServerSettings,
    connection: dict[str, Any],
    workers: WorkerSource,
    metrics: SidecarMetrics,
) -> ServerFrame:
    """``tools/list`` in a worker, as an invocation: open, then at once finish."""
    answer: asyncio.Future[ServerFrame] = asyncio.get_running_loop().create_future()

    def send(frame: ServerFrame) -> None:
        if not answer.done():
            answer.set_result(frame)

    settings = ToolSettings(
        f"{server.name}.tools/list",
        config={"mode": "list", "server": connection, "server_name": server.name},
        network=server.network,
        # Open and finish at once: the whole listing is bounded by its own timeout.
        limits=dataclasses.replace(
            server.limits,
            wall_seconds=server.list_timeout_seconds,
            max_invocation_seconds=server.list_timeout_seconds,
        ),
        runs=RUNNER,
    )
    job_id = f"mcp-list-{server.name}"
    job = Job(job_id, settings, workers, send, metrics, 1 << 16, lambda job, finished: None)
    job.start()
    job.forward(json.dumps(Finish(job_id).to_wire()).encode(), unit=False)
    return await answer
