"""The messages between the sidecar and one of its worker processes, typed and checked.

The channel under them is a Unix socket pair carrying length-prefixed JSON
(:mod:`conveyor.tools.sidecar.channel`). The sidecar forwards a runtime's ``unit`` and
``finish`` frames to the worker unchanged (no re-encoding on the hot path), so the worker
decodes those with the same types as the wire. A message that breaks these shapes raises
``ValueError``: the sidecar then kills the worker, the worker stops.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, cast

from conveyor.tools.protocol.reasons import Reason
from conveyor.tools.protocol.wire import Finish, Timing, UnitFrame


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """The kernel limits a worker sets on itself at boot."""

    cpu_seconds: float
    session_cpu_seconds: float
    memory_mb: int
    file_size_mb: int
    nproc: int
    open_files: int
    disk_mb: int


@dataclass(frozen=True, slots=True)
class CallLimits:
    """The limits of one call: CPU for it (and for its session), the size of its answer."""

    cpu_seconds: float
    session_cpu_seconds: float
    max_output: int


# -- sidecar → worker ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Boot:
    """The first message: how the worker isolates itself before it imports any tool."""

    TYPE: ClassVar[str] = "boot"
    network: bool
    uid: int
    workdir: str
    hide_paths: list[str]
    validated: list[str]  # tools wrapped in validated() by tools.yaml
    limits: ResourceLimits
    isolation: str = "namespaces"  # or "none" (local development only): see docs/security.md
    expose: list[str] = field(default_factory=list)  # shown read-only in the sandbox
    mcp: bool = False  # MCP servers are configured: load the MCP client before saying ready

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, **asdict(self)}


@dataclass(frozen=True, slots=True)
class StartCall:
    """Run one invocation of ``tool``; ``session``: keep the tool's session state afterwards."""

    TYPE: ClassVar[str] = "open"
    id: str
    tool: str
    config: dict[str, Any]
    session: bool
    opened: float
    limits: CallLimits
    steps: list[str] = field(default_factory=list)  # the tools it may call (plan steps)

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, **asdict(self)}


@dataclass(frozen=True, slots=True)
class StepResult:
    """The answer to a plan step the worker's tool asked for (a :class:`StepCall`)."""

    TYPE: ClassVar[str] = "step_result"
    step: int
    content: str
    is_error: bool
    data: dict[str, Any] | None

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, **asdict(self)}


@dataclass(frozen=True, slots=True)
class CancelCall:
    TYPE: ClassVar[str] = "cancel"
    id: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id}


ToWorker = Boot | StartCall | CancelCall | UnitFrame | Finish | StepResult


# -- worker → sidecar ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    TYPE: ClassVar[str] = "ready"
    applied: list[str]  # the isolation measures in force, by name
    pid: int

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "applied": self.applied, "pid": self.pid}


@dataclass(frozen=True, slots=True)
class CallResult:
    TYPE: ClassVar[str] = "result"
    content: str
    is_error: bool
    data: dict[str, Any] | None
    timing: Timing

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "content": self.content,
            "is_error": self.is_error,
            "data": self.data,
            "timing": self.timing,
        }


@dataclass(frozen=True, slots=True)
class CallReject:
    TYPE: ClassVar[str] = "reject"
    reason: str
    timing: Timing

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "reason": self.reason, "timing": self.timing}


@dataclass(frozen=True, slots=True)
class CallError:
    TYPE: ClassVar[str] = "error"
    message: str
    reason: Reason

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "message": self.message, "reason": self.reason.value}


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The tool's ``cancel()`` has run; a session's worker may serve the next call."""

    TYPE: ClassVar[str] = "cancelled"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE}


@dataclass(frozen=True, slots=True)
class Refused:
    """Instead of ``ready``: the sandbox the boot asked for cannot be set up here, and why."""

    TYPE: ClassVar[str] = "refused"
    reason: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class StepCall:
    """The worker's tool calls another tool: ``step_open`` (with ``tool``), ``step_unit`` (with
    ``unit``), ``step_finish`` or ``step_cancel`` for its step ``step``."""

    TYPES: ClassVar[tuple[str, ...]] = ("step_open", "step_unit", "step_finish", "step_cancel")
    type: str
    step: int
    tool: str = ""
    unit: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "step": self.step}
        if self.tool:
            out["tool"] = self.tool
        if self.unit is not None:
            out["unit"] = self.unit
        return out


FromWorker = Ready | Refused | CallResult | CallReject | CallError | Cancelled | StepCall
WorkerMessage = ToWorker | FromWorker


def encode_message(msg: WorkerMessage) -> bytes:
    return json.dumps(msg.to_wire()).encode()


def _object(payload: bytes) -> dict[str, Any]:
    obj = json.loads(payload)
    if not isinstance(obj, dict):
        raise ValueError("message is not a JSON object")
    return obj


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"{obj.get('type')} message: {key!r} must be {kind}")
    return value


def decode_to_worker(payload: bytes) -> ToWorker:
    obj = _object(payload)
    kind = obj.get("type")
    if kind == UnitFrame.TYPE:
        return UnitFrame(str(obj.get("id")), _get(obj, "unit", dict))
    if kind == Finish.TYPE:
        return Finish(str(obj.get("id")))
    if kind == StartCall.TYPE:
        return StartCall(
            _get(obj, "id", str),
            _get(obj, "tool", str),
            _get(obj, "config", dict),
            _get(obj, "session", bool),
            float(_get(obj, "opened", (int, float))),
            CallLimits(**_get(obj, "limits", dict)),
            [str(n) for n in obj.get("steps") or []],
        )
    if kind == StepResult.TYPE:
        data = obj.get("data")
        return StepResult(
            _get(obj, "step", int),
            _get(obj, "content", str),
            _get(obj, "is_error", bool),
            data if isinstance(data, dict) else None,
        )
    if kind == CancelCall.TYPE:
        return CancelCall(_get(obj, "id", str))
    if kind == Boot.TYPE:
        return Boot(
            _get(obj, "network", bool),
            _get(obj, "uid", int),
            _get(obj, "workdir", str),
            list(_get(obj, "hide_paths", list)),
            list(_get(obj, "validated", list)),
            ResourceLimits(**_get(obj, "limits", dict)),
            _get(obj, "isolation", str),
            [str(p) for p in _get(obj, "expose", list)],
            _get(obj, "mcp", bool),
        )
    raise ValueError(f"unknown message type {kind!r}")


def decode_from_worker(payload: bytes) -> FromWorker:
    obj = _object(payload)
    kind = obj.get("type")
    if kind == CallResult.TYPE:
        data = obj.get("data")
        return CallResult(
            _get(obj, "content", str),
            _get(obj, "is_error", bool),
            data if isinstance(data, dict) else None,
            cast(Timing, _get(obj, "timing", dict)),
        )
    if kind == CallReject.TYPE:
        return CallReject(_get(obj, "reason", str), cast(Timing, _get(obj, "timing", dict)))
    if kind == CallError.TYPE:
        return CallError(_get(obj, "message", str), Reason(_get(obj, "reason", str)))
    if kind == Cancelled.TYPE:
        return Cancelled()
    if kind == Ready.TYPE:
        return Ready([str(a) for a in _get(obj, "applied", list)], _get(obj, "pid", int))
    if kind == Refused.TYPE:
        return Refused(_get(obj, "reason", str))
    if kind in StepCall.TYPES:
        unit = obj.get("unit")
        step, tool = _get(obj, "step", int), str(obj.get("tool") or "")
        return StepCall(kind, step, tool, unit if isinstance(unit, dict) else None)
    raise ValueError(f"unknown message type {kind!r}")
