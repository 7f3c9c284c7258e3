"""The sidecar ↔ worker channel: length-prefixed JSON messages over a Unix socket pair.

A 4-byte big-endian length, then UTF-8 JSON. Length prefixes (not lines) let the sidecar
forward a client's frame text to the worker unchanged, whatever whitespace it contains, and let
the reader refuse an oversized message before reading it.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

HEADER = struct.Struct(">I")


class MessageTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"message of {size} bytes")
        self.size = size


def pack(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def pack_json(obj: dict[str, Any]) -> bytes:
    return pack(json.dumps(obj).encode())


async def read_message(reader: asyncio.StreamReader, max_bytes: int) -> dict[str, Any] | None:
    """The next message, or None at end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    (size,) = HEADER.unpack(header)
    if size > max_bytes:
        raise MessageTooLarge(size)
    try:
        payload = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    obj = json.loads(payload)
    if not isinstance(obj, dict):
        raise ValueError("message is not a JSON object")
    return obj
