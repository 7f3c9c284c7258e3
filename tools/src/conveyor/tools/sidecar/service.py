"""The sidecar as a whole: configuration, tool registry, worker pool, sessions, connections.

Everything the HTTP layer and the connections share lives here, including the graceful drain
that SIGTERM starts: stop opening, let in-flight invocations finish within the grace period,
then cancel the rest with a clear error and close the connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from conveyor.tools.sidecar.config import ConfigError, SidecarConfig, ToolSettings, load_config
from conveyor.tools.sidecar.invocation import Session
from conveyor.tools.sidecar.metrics import SidecarMetrics
from conveyor.tools.sidecar.pool import WorkerPool
from conveyor.tools.sidecar.registry import tool_registry

if TYPE_CHECKING:
    from conveyor.tools.sidecar.connection import Connection

log = logging.getLogger("conveyor.tools.sidecar")


class Sidecar:
    def __init__(self, config: SidecarConfig, registry: Any, worker_stderr: bool = False) -> None:
        self.config = config
        self.registry = registry
        self.metrics = SidecarMetrics(list(config.tools))
        self.pool = WorkerPool(config, self.metrics, worker_stderr=worker_stderr)
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.draining = False
        self._quiet = asyncio.Event()

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
        return [
            spec
            for spec in self.registry.specs()
            if spec.get("function", {}).get("name") in self.config.tools
        ]

    # -- sessions ------------------------------------------------------------------------------

    def session(self, key: str, tool: ToolSettings) -> Session | None:
        session = self.sessions.get(key)
        if session is None:
            session = self.sessions[key] = Session(key, tool, self)
            self.metrics.sessions.set(len(self.sessions))
        return session if session.tool.name == tool.name else None

    def drop_session(self, session: Session) -> None:
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]
            self.metrics.sessions.set(len(self.sessions))

    # -- draining ------------------------------------------------------------------------------

    def in_flight(self) -> int:
        return sum(len(c.invocations) for c in self.connections)

    def invocation_ended(self) -> None:
        if self.draining and self.in_flight() == 0:
            self._quiet.set()

    async def drain(self, grace: float) -> None:
        self.draining = True
        if self.in_flight():
            log.info("draining: %d invocations in flight, %g s grace", self.in_flight(), grace)
            try:
                await asyncio.wait_for(self._quiet.wait(), grace)
            except TimeoutError:
                pass
        for conn in list(self.connections):
            for inv in list(conn.invocations.values()):
                inv.cancel(
                    f"cancelled: the sidecar is shutting down (grace period of {grace:g} s over)",
                    reason="shutdown",
                )
            conn.close(1001, "sidecar shutting down")

    async def start(self) -> None:
        await self.pool.start()

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            session.close()
        await self.pool.close()
