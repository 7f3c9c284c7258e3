"""Sending one request of the mix and recording how it ended.

Every request ends in exactly one outcome: ``ok`` (the answer the kind expects), ``unexpected``
(an answer, but not that one), ``server_error`` (a 5xx), ``lost`` (the connection failed or a
stream stopped without ``[DONE]``), ``hung`` (no end within the deadline) or ``disconnected``
(the client hung up on purpose).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass

import httpx

from conveyor.runtime.soak.mix import Answer, Kind, body_bytes

OUTCOMES = ("ok", "unexpected", "server_error", "lost", "hung", "disconnected")
_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class Record:
    kind: str
    started: float  # seconds since the run started
    seconds: float
    outcome: str
    status: int = 0
    detail: str | None = None


class _HungUp(Exception):
    """The disconnecting kind hung up where it meant to."""


async def _read_stream(response: httpx.Response, kind: Kind, rng: random.Random) -> Answer:
    # Where a disconnecting client hangs up: after a few chunks, or once a tool call is running.
    hang_up_after = rng.randint(1, 12) if kind.disconnect else None
    at_tool_call = kind.disconnect and rng.random() < 0.5
    chunks: list[dict] = []
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        if data == "[DONE]":
            return Answer(response.status_code, None, tuple(chunks))
        chunks.append(json.loads(data))
        if hang_up_after is not None:
            tool_running = (chunks[-1].get("conveyor") or {}).get("event") == "tool_call"
            if (at_tool_call and tool_running) or (
                not at_tool_call and len(chunks) >= hang_up_after
            ):
                raise _HungUp
    raise httpx.RemoteProtocolError("the stream ended without [DONE]")


async def _send(
    client: httpx.AsyncClient, kind: Kind, content: bytes, rng: random.Random
) -> Answer:
    if not kind.stream:
        response = await client.post("/v1/chat/completions", content=content, headers=_HEADERS)
        return Answer(response.status_code, _json(response.content))
    async with client.stream(
        "POST", "/v1/chat/completions", content=content, headers=_HEADERS
    ) as response:
        if response.status_code != 200:
            return Answer(response.status_code, _json(await response.aread()))
        return await _read_stream(response, kind, rng)


def _json(content: bytes) -> dict | None:
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def run_one(
    client: httpx.AsyncClient,
    kind: Kind,
    model: str,
    rng: random.Random,
    *,
    t0: float,
    deadline: float,
) -> Record:
    """Send one request of ``kind`` and classify how it ended."""
    content = body_bytes(kind.build(rng), model)
    started = time.monotonic()

    def record(outcome: str, status: int = 0, detail: str | None = None) -> Record:
        return Record(kind.name, started - t0, time.monotonic() - started, outcome, status, detail)

    try:
        async with asyncio.timeout(deadline):
            answer = await _send(client, kind, content, rng)
    except _HungUp:
        return record("disconnected")
    except TimeoutError:
        return record("hung", detail=f"no end within {deadline:.0f} s")
    except (httpx.TransportError, ValueError) as error:
        return record("lost", detail=f"{type(error).__name__}: {error}")
    if answer.status >= 500:
        return record("server_error", answer.status, json.dumps(answer.body)[:300])
    problem = kind.check(answer)
    if problem is not None:
        return record("unexpected", answer.status, problem)
    return record("ok", answer.status)
