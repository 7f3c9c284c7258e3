"""The sidecar ↔ worker channel: length-prefixed messages over a Unix socket pair.

A 4-byte big-endian length, then the message's UTF-8 JSON (:mod:`conveyor.tools.protocol.worker`).
Length prefixes (not lines) let the sidecar forward a client's frame text to the worker
unchanged, whatever whitespace it contains, and let the reader refuse an oversized message
before reading it.
"""

from __future__ import annotations

import asyncio
import struct

from conveyor.tools.protocol.worker import WorkerMessage, encode_message

HEADER = struct.Struct(">I")


class MessageTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"message of {size} bytes")
        self.size = size


def pack(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def pack_message(msg: WorkerMessage) -> bytes:
    return pack(encode_message(msg))


async def read_payload(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """The next message's bytes, or None at end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    (size,) = HEADER.unpack(header)
    if size > max_bytes:
        raise MessageTooLarge(size)
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
