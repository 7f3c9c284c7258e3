"""The websocket frames of ``conveyor.tools/v1``: their types, encoding and checked decoding.

Pure: no I/O. Both ends use this module: the client encodes the runtime's frames and decodes
the sidecar's answers; the sidecar decodes the runtime's frames and encodes its answers. Every
frame that breaks the protocol becomes a :class:`ProtocolError` here (with the id when one can
be read), never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict, cast

from conveyor.tools.protocol.reasons import Reason

PROTOCOL = "conveyor.tools/v1"
SUBPROTOCOL = "conveyor.tools.v1"  # the websocket token for PROTOCOL ("/" is not allowed there)
MAX_ID_LENGTH = 128


class ProtocolError(Exception):
    """A frame that breaks the protocol. ``id`` is set when the frame named a usable id."""

    def __init__(self, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.id = id


class Timing(TypedDict, total=False):
    """When the sidecar saw an invocation's steps (``time.time()`` epoch seconds)."""

    opened: float
    started: float
    finished: float
    busy: list[list[float]]  # [start, end] of start(), each feed() and finish(), in order


# -- runtime → sidecar ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    TYPE: ClassVar[str] = "open"
    id: str
    tool: str
    session: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.TYPE, "id": self.id, "tool": self.tool}
        if self.session is not None:
            out["session"] = self.session
        return out


@dataclass(frozen=True, slots=True)
class UnitFrame:
    TYPE: ClassVar[str] = "unit"
    id: str
    unit: dict[str, Any]  # unit_to_json(u)

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "unit": self.unit}


@dataclass(frozen=True, slots=True)
class Finish:
    TYPE: ClassVar[str] = "finish"
    id: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id}


@dataclass(frozen=True, slots=True)
class Cancel:
    TYPE: ClassVar[str] = "cancel"
    id: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id}


@dataclass(frozen=True, slots=True)
class EndSession:
    """The session's owner is done with it: its worker (and the state it holds) is freed.

    ``id`` is the session key. No answer follows.
    """

    TYPE: ClassVar[str] = "end_session"
    id: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id}


ClientFrame = Open | UnitFrame | Finish | Cancel | EndSession


# -- sidecar → runtime ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResultFrame:
    TYPE: ClassVar[str] = "result"
    id: str
    content: str
    is_error: bool = False
    data: dict[str, Any] | None = None
    timing: Timing = field(default_factory=lambda: Timing())

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "content": self.content,
            "is_error": self.is_error,
            "data": self.data,
            "timing": self.timing,
        }


@dataclass(frozen=True, slots=True)
class RejectFrame:
    TYPE: ClassVar[str] = "reject"
    id: str
    reason: str  # the tool's own words, for the model
    timing: Timing = field(default_factory=lambda: Timing())

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "reason": self.reason, "timing": self.timing}


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    TYPE: ClassVar[str] = "error"
    id: str | None
    message: str
    reason: Reason = Reason.PROTOCOL

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "message": self.message,
            "reason": self.reason.value,
        }


ServerFrame = ResultFrame | RejectFrame | ErrorFrame

CLIENT_FRAMES: tuple[type[ClientFrame], ...] = (Open, UnitFrame, Finish, Cancel, EndSession)
SERVER_FRAMES: tuple[type[ServerFrame], ...] = (ResultFrame, RejectFrame, ErrorFrame)


def encode(frame: ClientFrame | ServerFrame) -> str:
    """The frame's JSON text."""
    return json.dumps(frame.to_wire())


# -- decoding ------------------------------------------------------------------------------------


def _load(text: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed frame: not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed frame: expected a JSON object")
    return obj


def _id(obj: dict[str, Any]) -> str:
    raw_id = obj.get("id")
    if not isinstance(raw_id, str) or not raw_id or len(raw_id) > MAX_ID_LENGTH:
        raise ProtocolError(f"malformed frame: 'id' must be a string of 1-{MAX_ID_LENGTH} chars")
    return raw_id


def decode_client_frame(text: str | bytes, max_bytes: int) -> ClientFrame:
    """Parse and check one frame from the runtime; raise :class:`ProtocolError` if it is bad."""
    if len(text) > max_bytes:
        raise ProtocolError(
            f"frame too large: {len(text)} bytes (limit {max_bytes})", _peek_id(text)
        )
    obj = _load(text)
    raw_id = _id(obj)
    kind = obj.get("type")
    if kind == UnitFrame.TYPE:
        unit = obj.get("unit")
        if not isinstance(unit, dict):
            raise ProtocolError("malformed unit frame: 'unit' must be an object", raw_id)
        return UnitFrame(raw_id, unit)
    if kind == Open.TYPE:
        tool, session = obj.get("tool"), obj.get("session")
        if not isinstance(tool, str) or not tool:
            raise ProtocolError("malformed open frame: 'tool' must be a string", raw_id)
        if session is not None and (not isinstance(session, str) or not session):
            raise ProtocolError("malformed open frame: 'session' must be a string", raw_id)
        return Open(raw_id, tool, session)
    if kind == Finish.TYPE:
        return Finish(raw_id)
    if kind == Cancel.TYPE:
        return Cancel(raw_id)
    if kind == EndSession.TYPE:
        return EndSession(raw_id)
    raise ProtocolError(f"unknown frame type {kind!r}", raw_id)


def decode_server_frame(text: str | bytes) -> ServerFrame:
    """Parse and check one answer from the sidecar; raise :class:`ProtocolError` if it is bad."""
    obj = _load(text)
    kind = obj.get("type")
    if kind == ErrorFrame.TYPE:
        raw_id = obj.get("id")
        if raw_id is not None and not isinstance(raw_id, str):
            raise ProtocolError("malformed error frame: 'id' must be a string or null")
        try:
            reason = Reason(obj.get("reason", Reason.PROTOCOL))
        except ValueError:
            raise ProtocolError(f"unknown error reason {obj.get('reason')!r}", raw_id) from None
        return ErrorFrame(raw_id, _text(obj, "message", raw_id), reason)
    raw_id = _id(obj)
    timing = obj.get("timing")
    if not isinstance(timing, dict):
        raise ProtocolError(f"malformed {kind} frame: 'timing' must be an object", raw_id)
    if kind == ResultFrame.TYPE:
        data, is_error = obj.get("data"), obj.get("is_error", False)
        if data is not None and not isinstance(data, dict):
            raise ProtocolError("malformed result frame: 'data' must be an object", raw_id)
        if not isinstance(is_error, bool):
            raise ProtocolError("malformed result frame: 'is_error' must be a boolean", raw_id)
        return ResultFrame(
            raw_id, _text(obj, "content", raw_id), is_error, data, cast(Timing, timing)
        )
    if kind == RejectFrame.TYPE:
        return RejectFrame(raw_id, _text(obj, "reason", raw_id), cast(Timing, timing))
    raise ProtocolError(f"unknown frame type {kind!r}", raw_id)


def _text(obj: dict[str, Any], key: str, id: str | None) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"malformed {obj.get('type')} frame: {key!r} must be a string", id)
    return value


def _peek_id(text: str | bytes) -> str | None:
    """The id of an oversized frame, found without parsing it (it may be huge)."""
    head = text[:512] if isinstance(text, str) else text[:512].decode("utf-8", "replace")
    start = head.find('"id"')
    if start < 0:
        return None
    rest = head[start + 4 :].lstrip()
    if not rest.startswith(":"):
        return None
    rest = rest[1:].lstrip()
    if not rest.startswith('"'):
        return None
    end = rest.find('"', 1)
    candidate = rest[1:end] if end > 0 else ""
    if not candidate or "\\" in candidate or len(candidate) > MAX_ID_LENGTH:
        return None
    return candidate
