"""Reading a JSON request body safely: bounded in size, depth, numbers and text.

The size is checked before the body is read (``Content-Length``) and while it streams in, so an
oversized body costs neither memory nor time. Decoding runs in a worker thread, off the event
loop. What JSON allows but nothing downstream can handle is refused here with a 400 that names
the place: nesting deeper than ``MAX_DEPTH``, integers outside 64 bits, ``NaN``/``Infinity``,
and strings holding lone surrogates (``"\\ud800"``), which cannot be encoded to UTF-8.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from conveyor.runtime.errors import BadRequest, HttpError

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
_INT64 = (-(2**63), 2**63 - 1)


def too_large(limit: int) -> HttpError:
    return HttpError(
        413, f"the request body is larger than {limit} bytes", code="request_too_large"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("the client went away while sending the body") from None
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"the request body holds {name}, which JSON numbers cannot be")


def _path(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "body"


def check_values(value: Any) -> None:
    """Refuse what JSON allows but the request path cannot carry (iterative: no recursion)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise BadRequest(
                f"the request body is nested deeper than {MAX_DEPTH} levels", param=_path(path[:8])
            )
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, path)
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, int) and not isinstance(item, bool):
            if not _INT64[0] <= item <= _INT64[1]:
                raise BadRequest(
                    f"{_path(path)}: integer {item} does not fit in 64 bits", param=_path(path)
                )


def _check_text(text: str, path: tuple[str | int, ...]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            f"{_path(path)}: the text holds a lone surrogate (\\ud800-\\udfff), "
            "which is not valid Unicode",
            param=_path(path),
        ) from None


def decode(raw: bytes) -> Any:
    """Parse and check a JSON body (blocking: call it in a thread)."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest(f"the request body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the request body is not valid JSON ({error})") from None
    check_values(value)
    return value


async def read_json(request: Request, limit: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """The request's JSON body, bounded and checked, decoded off the event loop."""
    raw = await read_body(request, limit)
    return await asyncio.to_thread(decode, raw)
