"""Why an invocation ended the way it did: every error reason of the protocol, as one enum."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """The machine-readable cause carried by an ``error`` frame (and a worker's exit).

    The values are the strings on the wire; an error's message starts with its reason.
    """

    CPU_LIMIT = "cpu limit"
    MEMORY_LIMIT = "memory limit"
    TIMEOUT = "timeout"
    OUTPUT_LIMIT = "output limit"
    CRASHED = "crashed"
    TOOL_ERROR = "tool error"
    CANCELLED = "cancelled"
    SHUTDOWN = "shutdown"
    BACKPRESSURE = "backpressure"
    PROTOCOL = "protocol"
    UNKNOWN_TOOL = "unknown tool"
    OVERLOADED = "overloaded"
    SESSION = "session"
    INTERNAL = "internal"
    # Set by the client, never sent: the websocket to the sidecar went away.
    CONNECTION_LOST = "connection lost"
    # A worker's exit with no invocation to answer: never sent.
    RECYCLED = "recycled"
    START_FAILED = "start failed"

    @property
    def limit(self) -> str | None:
        """The ``limit`` label of ``conveyor_sidecar_limit_kills_total`` for a limit's reason."""
        return _LIMIT_LABELS.get(self)


_LIMIT_LABELS = {
    Reason.CPU_LIMIT: "cpu",
    Reason.MEMORY_LIMIT: "memory",
    Reason.TIMEOUT: "timeout",
    Reason.OUTPUT_LIMIT: "output",
}
LIMITS = tuple(_LIMIT_LABELS.values())
