"""The OpenAI-compatible HTTP API (starlette): chat completions with hosted tools, and probes.

Handlers stay thin: ``chat_request.parse_request`` validates, the ``Scheduler`` runs,
``responses`` formats. A client that goes away cancels its request: the engine request is
aborted and the tools are cancelled (a watcher task listens for ``http.disconnect`` while the
request runs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from conveyor.runtime.chat_request import ChatRequest, ServerPolicy, parse_request
from conveyor.runtime.completion import Completion
from conveyor.runtime.errors import BadRequest, ConveyorError, NotReady, from_exception
from conveyor.runtime.events import Event
from conveyor.runtime.responses import ChunkWriter, chat_completion
from conveyor.runtime.scheduler import Scheduler

log = logging.getLogger(__name__)

_STREAM_QUEUE = 256  # events buffered per streamed request before decoding feels backpressure


@dataclass
class ServerState:
    scheduler: Scheduler
    policy: ServerPolicy
    model_name: str
    sidecar_url: str

    @property
    def sidecar(self):
        return self.scheduler.sidecar


def _error_response(error: ConveyorError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _run_watched(request: Request, work: Awaitable[Any]) -> Any:
    """Run ``work``; cancel it the moment the client disconnects."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            log.info("client went away: request cancelled")
            task.cancel()
        return await task
    finally:
        watcher.cancel()
        task.cancel()


def _sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


async def chat_completions(request: Request) -> Response:
    state: ServerState = request.app.state.conveyor
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as error:
        return _error_response(BadRequest(f"the request body is not valid JSON ({error})"))
    try:
        chat = parse_request(body, state.policy)
    except BadRequest as error:
        return _error_response(error)
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    model = str(body.get("model") or state.model_name)
    if chat.stream:
        return StreamingResponse(
            _stream(request, state, chat, request_id, model, created),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        completion = await _run_watched(request, state.scheduler.run(chat, request_id))
    except asyncio.CancelledError:
        return Response(status_code=499)
    except Exception as error:  # mapped in one place
        log.exception("request %s failed", request_id)
        return _error_response(from_exception(error))
    return JSONResponse(chat_completion(completion, id=request_id, model=model, created=created))


async def _stream(
    request: Request,
    state: ServerState,
    chat: ChatRequest,
    request_id: str,
    model: str,
    created: int,
) -> AsyncIterator[bytes]:
    writer = ChunkWriter(id=request_id, model=model, created=created)
    queue: asyncio.Queue[Event | None] = asyncio.Queue(_STREAM_QUEUE)

    async def emit(event: Event) -> None:
        await queue.put(event)

    async def work() -> Completion:
        try:
            return await state.scheduler.run(chat, request_id, emit)
        finally:
            await queue.put(None)

    task = asyncio.ensure_future(_run_watched(request, work()))
    try:
        yield _sse(writer.start())
        while (event := await queue.get()) is not None:
            yield _sse(writer.event(event))
        completion = await task
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log.exception("streamed request %s failed", request_id)
        yield _sse(from_exception(error).body())
        yield b"data: [DONE]\n\n"
        return
    finally:
        task.cancel()
    yield _sse(writer.finish(completion))
    if chat.include_usage:
        yield _sse(writer.usage(completion))
    yield b"data: [DONE]\n\n"


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
    return JSONResponse({"status": "ready"})


async def _sidecar_metrics(url: str) -> bytes:
    """The sidecar's own metrics: in a pod it listens on localhost only, so we re-serve them."""
    if url.startswith("unix:"):
        transport = httpx.AsyncHTTPTransport(uds=url[len("unix:") :])
        client = httpx.AsyncClient(transport=transport, base_url="http://sidecar")
    else:
        client = httpx.AsyncClient(base_url=url, trust_env=False)
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


def build_app(state: ServerState, lifespan: Callable[..., Any] | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models),
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
    app.state.conveyor = state
    return app
