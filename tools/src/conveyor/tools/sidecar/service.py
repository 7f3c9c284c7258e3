"""The sidecar as a whole: configuration, tool registry, worker pool, sessions, connections.

It wires the parts: each connection gets the server settings, the metrics and a way to open
jobs; each job gets its tool's settings and a worker source (fresh workers from the pool, or a
session). It also runs the graceful drain that SIGTERM starts: stop opening, let in-flight
invocations finish within the grace period, then cancel the rest with a clear error and close
the connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket

from conveyor.tools._registry import ToolRegistry
from conveyor.tools.protocol import ErrorFrame, Open, Reason, ServerFrame
from conveyor.tools.sidecar.config import ConfigError, SidecarConfig, ToolSettings, load_config
from conveyor.tools.sidecar.connection import Connection
from conveyor.tools.sidecar.job import Job, WorkerSource
from conveyor.tools.sidecar.mcp_catalog import McpCatalog
from conveyor.tools.sidecar.metrics import SidecarMetrics
from conveyor.tools.sidecar.pool import FreshWorkers, WorkerPool
from conveyor.tools.sidecar.registry import tool_registry
from conveyor.tools.sidecar.session import Session
from conveyor.tools.sidecar.step_bridge import StepBridge, allowed_steps

log = logging.getLogger("conveyor.tools.sidecar")


class Sidecar:
    def __init__(
        self, config: SidecarConfig, registry: ToolRegistry, worker_stderr: bool = False
    ) -> None:
        self.config = config
        self.registry = registry
        self.metrics = SidecarMetrics(list(config.tools))
        self.pool = WorkerPool(config, self.metrics, worker_stderr=worker_stderr)
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.jobs: set[Job] = set()
        self.draining = False
        self._fresh = {network: FreshWorkers(self.pool, network) for network in (False, True)}
        self._quiet = asyncio.Event()
        self.mcp = McpCatalog(config.mcp_servers)
        self._listing: asyncio.Task[None] | None = None

    @classmethod
    def from_file(cls, path: str | None, worker_stderr: bool = False) -> Sidecar:
        """Load and check ``tools.yaml``: every enabled tool must accept its config."""
        config = load_config(path, list(tool_registry().names()))
        registry = tool_registry([n for n, t in config.tools.items() if t.validate])
        for name, tool in config.tools.items():
            try:
                registry.create(name, dict(tool.config))
            except Exception as e:
                raise ConfigError(f"tools.{name}.config: {e}") from e
        return cls(config, registry, worker_stderr=worker_stderr)

    def specs(self) -> list[dict[str, Any]]:
        builtin = [
            spec
            for spec in self.registry.specs()
            if spec.get("function", {}).get("name") in self.config.tools
        ]
        return builtin + self.mcp.specs

    def unavailable(self) -> dict[str, str]:
        """Tools not served and why: a sandbox that cannot be set up, an MCP server that failed."""
        refused = {
            name: self.pool.refused[tool.network]
            for name, tool in self.config.tools.items()
            if tool.network in self.pool.refused
        }
        return refused | self.mcp.unavailable

    # -- connections and jobs ------------------------------------------------------------------

    async def serve(self, ws: WebSocket) -> None:
        """Run one websocket connection until it ends."""
        conn = Connection(ws, self.config.server, self.metrics, self.open_job, self.end_session)
        self.connections.add(conn)
        self.metrics.connections.inc()
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            self.metrics.connections.dec()

    def open_job(
        self,
        frame: Open,
        send: Callable[[ServerFrame], None],
        on_done: Callable[[Job, bool], None],
    ) -> Job | ErrorFrame:
        if self.draining:
            return ErrorFrame(frame.id, "sidecar shutting down: not accepting", Reason.SHUTDOWN)
        tool = self.config.tools.get(frame.tool) or self.mcp.tools.get(frame.tool)
        if tool is None:
            why = self.mcp.reason(frame.tool)
            if why is not None:  # fail closed: its MCP server could not be listed
                return ErrorFrame(frame.id, f"unavailable: {why}", Reason.UNAVAILABLE)
            return ErrorFrame(frame.id, f"unknown tool {frame.tool!r}", Reason.UNKNOWN_TOOL)
        refused = self.pool.refused.get(tool.network)
        if refused is not None:  # fail closed: its sandbox cannot be set up here
            return ErrorFrame(frame.id, f"unavailable: {refused}", Reason.UNAVAILABLE)
        workers: WorkerSource = self._fresh[tool.network]
        stateful = tool.name in self.registry and self.registry.keeps_session_state(tool.name)
        if frame.session is not None and stateful:
            session = self._session(frame.session, tool)
            if session is None:
                return ErrorFrame(frame.id, "session belongs to another tool", Reason.SESSION)
            workers = session

        def done(job: Job, finished: bool) -> None:
            on_done(job, finished)
            self.jobs.discard(job)
            if self.draining and not self.jobs:
                self._quiet.set()

        job = Job(
            frame.id,
            tool,
            workers,
            send,
            self.metrics,
            self.config.server.max_pending_bytes,
            done,
        )
        steps = allowed_steps(frame.allow, self.config.tools, tool.name)
        job.steps = StepBridge(job, steps, self.open_job)
        self.jobs.add(job)
        return job

    # -- sessions ------------------------------------------------------------------------------

    def _session(self, key: str, tool: ToolSettings) -> Session | None:
        session = self.sessions.get(key)
        if session is None:
            session = self.sessions[key] = Session(
                key,
                tool.name,
                self._fresh[tool.network],
                self.config.pool.session_idle_seconds,
                self._drop_session,
            )
            self.metrics.sessions.set(len(self.sessions))
        return session if session.tool == tool.name else None

    def end_session(self, key: str) -> None:
        session = self.sessions.get(key)
        if session is not None:
            session.end()

    def _drop_session(self, session: Session) -> None:
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]
            self.metrics.sessions.set(len(self.sessions))

    # -- draining ------------------------------------------------------------------------------

    def in_flight(self) -> int:
        return len(self.jobs)

    async def drain(self, grace: float) -> None:
        self.draining = True
        if self.jobs:
            log.info("draining: %d invocations in flight, %g s grace", len(self.jobs), grace)
            try:
                await asyncio.wait_for(self._quiet.wait(), grace)
            except TimeoutError:
                pass
        for job in list(self.jobs):
            job.cancel(
                f"cancelled: the sidecar is shutting down (grace period of {grace:g} s over)",
                Reason.SHUTDOWN,
            )
        for conn in list(self.connections):
            conn.close(1001, "sidecar shutting down")

    async def start(self) -> None:
        await self.pool.start()
        # Listed in the background: /healthz answers meanwhile, /readyz waits for the list.
        self._listing = asyncio.get_running_loop().create_task(
            self.mcp.list_all(self._fresh.__getitem__, self.metrics)
        )

    async def close(self) -> None:
        if self._listing is not None:
            self._listing.cancel()
        for session in list(self.sessions.values()):
            session.close()
        await self.pool.close()
