"""The OpenAI-compatible HTTP API (starlette): chat completions and responses with hosted tools,
and probes.

Handlers stay thin: ``request_body`` reads, ``chat_request`` validates (both off the event loop),
the ``Scheduler`` runs each of the n choices, ``responses`` formats. Every error, unknown paths
and methods included, is answered in OpenAI's error shape.
A client that goes away cancels its request: the engine request is aborted and the tools are
cancelled (a watcher task listens for ``http.disconnect`` while the request runs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from conveyor.runtime.chat_request import ChatRequest, ServerPolicy, parse_request
from conveyor.runtime.completion import Completion
from conveyor.runtime.disconnect import run_watched, start_streamed
from conveyor.runtime.errors import (
    ConveyorError,
    HttpError,
    NotFound,
    NotReady,
    from_exception,
)
from conveyor.runtime.events import Event
from conveyor.runtime.request_body import DEFAULT_MAX_BODY_BYTES, decode, read_body
from conveyor.runtime.response_store import ResponseStore
from conveyor.runtime.responses import ChunkWriter, chat_completion
from conveyor.runtime.responses_endpoint import ResponsesApi, create, retrieve
from conveyor.runtime.scheduler import Scheduler

log = logging.getLogger(__name__)

_STREAM_QUEUE = 256  # events buffered per streamed request before decoding feels backpressure


@dataclass
class ServerState:
    scheduler: Scheduler
    policy: ServerPolicy
    model_name: str
    sidecar_url: str
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    responses: ResponseStore = field(default_factory=ResponseStore)  # stored Responses objects

    @property
    def sidecar(self):
        return self.scheduler.sidecar


def _error_response(error: ConveyorError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


def _parse(raw: bytes, state: ServerState) -> ChatRequest:
    """Blocking (JSON decoding and validation of up to ``max_body_bytes``): runs in a thread."""
    chat = parse_request(decode(raw), state.policy)
    state.scheduler.prompts.check(chat)
    return chat


async def _all(runs: list[Coroutine[Any, Any, Completion]]) -> list[Completion]:
    """Every choice's completion; the first failure cancels the other choices."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(run) for run in runs]
    except* Exception as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def chat_completions(request: Request) -> Response:
    state: ServerState = request.app.state.conveyor
    try:
        raw = await read_body(request, state.max_body_bytes)
        chat = await asyncio.to_thread(_parse, raw, state)
    except ConveyorError as error:
        return _error_response(error)
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    model = chat.openai.model or state.model_name
    if chat.openai.user:
        log.info("request %s for user %s", request_id, chat.openai.user)
    choices = [chat.choice(i) for i in range(chat.n)]
    if chat.stream:
        return await _stream(request, state, chat, choices, request_id, model, created)
    runs = [state.scheduler.run(p, f"{request_id}.{i}") for i, p in enumerate(choices)]
    try:
        completions = await run_watched(request, _all(runs))
    except asyncio.CancelledError:
        return Response(status_code=499)
    except Exception as error:  # mapped in one place
        mapped = from_exception(error)
        if mapped.status >= 500:
            log.exception("request %s failed", request_id)
        return _error_response(mapped)
    return JSONResponse(chat_completion(completions, id=request_id, model=model, created=created))


async def _stream(
    request: Request,
    state: ServerState,
    chat: ChatRequest,
    choices: list[ChatRequest],
    request_id: str,
    model: str,
    created: int,
) -> Response:
    """Start the choices; an error before their first event is a plain error response (the
    status is still ours to choose), a later one an error chunk."""
    writer = ChunkWriter(id=request_id, model=model, created=created)
    queue: asyncio.Queue[tuple[int, Event] | None] = asyncio.Queue(_STREAM_QUEUE)

    def emitter(index: int) -> Callable[[Event], Awaitable[None]]:
        async def emit(event: Event) -> None:
            await queue.put((index, event))

        return emit

    async def work() -> list[Completion]:
        try:
            runs = [
                state.scheduler.run(p, f"{request_id}.{i}", emitter(i))
                for i, p in enumerate(choices)
            ]
            return await _all(runs)
        finally:
            await queue.put(None)

    task, first, error = await start_streamed(request, work(), queue)
    if error is not None:
        return _error_response(from_exception(error))

    async def chunks() -> AsyncIterator[bytes]:
        item = first
        try:
            for index in range(len(choices)):
                yield _sse(writer.start(index))
            while item is not None:
                yield _sse(writer.event(item[1], item[0]))
                item = await queue.get()
            completions = await task
        except asyncio.CancelledError:
            raise
        except Exception as error:
            mapped = from_exception(error)
            if mapped.status >= 500:
                log.exception("streamed request %s failed", request_id)
            yield _sse(mapped.body())
            yield b"data: [DONE]\n\n"
            return
        finally:
            task.cancel()
        for index, completion in enumerate(completions):
            yield _sse(writer.finish(completion, index))
        if chat.include_usage:
            yield _sse(writer.usage(completions))
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        chunks(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def responses(request: Request) -> Response:
    state: ServerState = request.app.state.conveyor
    api = ResponsesApi(
        state.scheduler, state.policy, state.responses, state.model_name, state.max_body_bytes
    )
    return await create(request, api)


async def stored_response(request: Request) -> Response:
    state: ServerState = request.app.state.conveyor
    return await retrieve(request, state.responses)


async def models(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.conveyor
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "conveyor"}
                for name in state.policy.model_names or (state.model_name,)
            ],
        }
    )


async def _engine_trouble(state: ServerState) -> Response | None:
    try:
        await state.scheduler.engine.check_health()
    except Exception as error:
        return _error_response(NotReady(f"engine unhealthy: {error!r}"))
    return None


async def health(request: Request) -> Response:
    state: ServerState = request.app.state.conveyor
    return await _engine_trouble(state) or JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    state: ServerState = request.app.state.conveyor
    if trouble := await _engine_trouble(state):
        return trouble
    if not state.sidecar.connected:
        return _error_response(
            NotReady(f"the tool sidecar at {state.sidecar_url} is not connected")
        )
    # Tools whose sandbox cannot be set up on this host are not served (docs/security.md).
    try:
        async with _sidecar_client(state.sidecar_url) as client:
            sidecar = (await client.get("/readyz", timeout=2.0)).json()
    except (httpx.HTTPError, ValueError) as error:
        return _error_response(NotReady(f"the tool sidecar's /readyz failed: {error!r}"))
    unavailable = sidecar.get("unavailable") or {}
    if not sidecar.get("ready"):
        return _error_response(NotReady(f"the tool sidecar is not ready: {unavailable}"))
    return JSONResponse({"status": "ready", "unavailable_tools": unavailable})


def _sidecar_client(url: str) -> httpx.AsyncClient:
    if url.startswith("unix:"):
        transport = httpx.AsyncHTTPTransport(uds=url[len("unix:") :])
        return httpx.AsyncClient(transport=transport, base_url="http://sidecar")
    return httpx.AsyncClient(base_url=url, trust_env=False)


async def _sidecar_metrics(url: str) -> bytes:
    """The sidecar's own metrics: in a pod it listens on localhost only, so we re-serve them."""
    client = _sidecar_client(url)
    try:
        async with client:
            response = await client.get("/metrics", timeout=2.0)
            response.raise_for_status()
            return response.content
    except httpx.HTTPError as error:
        log.warning("could not scrape the sidecar's metrics: %s", error)
        return b""


async def metrics(request: Request) -> Response:
    state: ServerState = request.app.state.conveyor
    body = generate_latest(REGISTRY) + await _sidecar_metrics(state.sidecar_url)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    where = f"{request.method} {request.url.path}"
    if error.status_code == 404:
        mapped: ConveyorError = NotFound(f"no such path: {where}")
    else:
        mapped = HttpError(error.status_code, f"{error.detail}: {where}")
    return JSONResponse(mapped.body(), status_code=mapped.status, headers=error.headers)


async def _internal_error(request: Request, error: Exception) -> Response:
    log.error("unhandled error on %s", request.url.path, exc_info=error)
    mapped = from_exception(error)
    return JSONResponse(mapped.body(), status_code=mapped.status)


def build_app(state: ServerState, lifespan: Callable[..., Any] | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/responses/{response_id}", stored_response),
            Route("/v1/models", models),
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.conveyor = state
    return app
