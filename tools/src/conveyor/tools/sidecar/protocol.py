"""The wire protocol ``conveyor.tools/v1``: frame shapes, parsing and the errors it names.

Pure: no I/O. The sidecar parses client frames here and builds its answers here, so every
protocol violation becomes a :class:`ProtocolError` in one place (with the id when one can be
read) and is mapped to an ``error`` frame by the connection, never to a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROTOCOL = "conveyor.tools/v1"
SUBPROTOCOL = "conveyor.tools.v1"  # the websocket token for PROTOCOL ("/" is not allowed there)
MAX_ID_LENGTH = 128


class ProtocolError(Exception):
    """A frame that breaks the protocol. ``id`` is set when the frame named a usable id."""

    def __init__(self, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.id = id


@dataclass(frozen=True, slots=True)
class Open:
    id: str
    tool: str
    session: str | None


@dataclass(frozen=True, slots=True)
class UnitFrame:
    id: str
    unit: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finish:
    id: str


@dataclass(frozen=True, slots=True)
class Cancel:
    id: str


ClientFrame = Open | UnitFrame | Finish | Cancel


def parse_client_frame(text: str | bytes, max_bytes: int) -> ClientFrame:
    """Parse and check one frame from the runtime; raise :class:`ProtocolError` if it is bad."""
    if len(text) > max_bytes:
        raise ProtocolError(
            f"frame too large: {len(text)} bytes (limit {max_bytes})", _peek_id(text)
        )
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed frame: not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed frame: expected a JSON object")
    raw_id = obj.get("id")
    if not isinstance(raw_id, str) or not raw_id or len(raw_id) > MAX_ID_LENGTH:
        raise ProtocolError(f"malformed frame: 'id' must be a string of 1-{MAX_ID_LENGTH} chars")
    kind = obj.get("type")
    if kind == "unit":
        unit = obj.get("unit")
        if not isinstance(unit, dict):
            raise ProtocolError("malformed unit frame: 'unit' must be an object", raw_id)
        return UnitFrame(raw_id, unit)
    if kind == "open":
        tool, session = obj.get("tool"), obj.get("session")
        if not isinstance(tool, str) or not tool:
            raise ProtocolError("malformed open frame: 'tool' must be a string", raw_id)
        if session is not None and (not isinstance(session, str) or not session):
            raise ProtocolError("malformed open frame: 'session' must be a string", raw_id)
        return Open(raw_id, tool, session)
    if kind == "finish":
        return Finish(raw_id)
    if kind == "cancel":
        return Cancel(raw_id)
    raise ProtocolError(f"unknown frame type {kind!r}", raw_id)


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


def result_frame(
    id: str, content: str, is_error: bool, data: dict[str, Any] | None, timing: dict[str, Any]
) -> str:
    return json.dumps(
        {
            "type": "result",
            "id": id,
            "content": content,
            "is_error": is_error,
            "data": data,
            "timing": timing,
        }
    )


def reject_frame(id: str, reason: str, timing: dict[str, Any]) -> str:
    return json.dumps({"type": "reject", "id": id, "reason": reason, "timing": timing})


def error_frame(id: str | None, message: str, reason: str = "protocol") -> str:
    """An ``error``; ``reason`` is a short machine-readable cause (``timeout``, ``cpu limit``)."""
    return json.dumps({"type": "error", "id": id, "message": message, "reason": reason})
