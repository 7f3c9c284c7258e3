"""``POST /v1/responses`` and ``GET /v1/responses/{id}``: the Responses API over the same core.

The request is checked and translated (``responses_request``, off the event loop) into the
chat request that ``chat_request.parse_request`` validates, and runs on the same ``Scheduler``
as a chat completion; ``responses_stream.ResponseBuilder`` turns its events into the Responses
events and object. A response with ``store`` (the default) is kept in the ``ResponseStore``
with its conversation, for ``previous_response_id``. As for chat completions, an error before
the first event is a plain error response and a later one an ``error`` event (then
``response.failed``), and a client that goes away cancels the engine request and its tools.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from conveyor.runtime import responses_request
from conveyor.runtime.chat_request import ChatRequest, ServerPolicy
from conveyor.runtime.completion import Completion
from conveyor.runtime.disconnect import run_watched, start_streamed
from conveyor.runtime.errors import BadRequest, ConveyorError, NotFound, from_exception
from conveyor.runtime.events import Event
from conveyor.runtime.request_body import decode, read_body
from conveyor.runtime.response_store import ResponseStore
from conveyor.runtime.responses_items import Item, output_items
from conveyor.runtime.responses_request import ResponsesRequest
from conveyor.runtime.responses_stream import ResponseBuilder, StreamEvent
from conveyor.runtime.scheduler import Scheduler

log = logging.getLogger(__name__)

_STREAM_QUEUE = 256  # events buffered per streamed response before decoding feels backpressure


@dataclass(frozen=True)
class ResponsesApi:
    """What the two routes use of the server."""

    scheduler: Scheduler
    policy: ServerPolicy
    store: ResponseStore
    model_name: str
    max_body_bytes: int


def _error(error: ConveyorError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _mapped(error: BaseException) -> ConveyorError:
    """Any error, mapped as for chat completions, its field named in Responses terms."""
    mapped = from_exception(error)
    return responses_request.responses_error(mapped) if isinstance(mapped, BadRequest) else mapped


def _sse(event: StreamEvent) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


def _history(store: ResponseStore, response_id: str | None) -> list[Item]:
    if response_id is None:
        return []
    stored = store.get(response_id)
    if stored is None:
        raise BadRequest(
            f"previous_response_id: no stored response {response_id!r}: unknown, stored with "
            f"store: false, or gone (this server keeps up to {store.max_entries} responses for "
            f"{store.ttl_seconds:g} s, in memory)",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return stored.conversation


def _chat(call: ResponsesRequest, history: list[Item], api: ResponsesApi) -> ChatRequest:
    """Blocking (validation, as for chat completions): runs in a thread."""
    chat = responses_request.chat_request(call, history, api.policy)
    api.scheduler.prompts.check(chat)
    return chat


async def create(request: Request, api: ResponsesApi) -> Response:
    try:
        raw = await read_body(request, api.max_body_bytes)
        hosted = api.policy.hosted_tools
        call = await asyncio.to_thread(lambda: responses_request.parse(decode(raw), hosted))
        history = _history(api.store, call.previous_response_id)
        chat = await asyncio.to_thread(_chat, call, history, api)
    except ConveyorError as error:
        return _error(error)
    builder = ResponseBuilder(
        id=f"resp_{uuid.uuid4().hex}",
        model=chat.openai.model or api.model_name,
        created_at=int(time.time()),
        store=call.store,
        echo=call.echo,
    )

    def keep(response: dict[str, Any]) -> None:
        if call.store:
            output = output_items(response["output"])
            api.store.put(response, [*history, *call.input, *output])

    if call.stream:
        return await _stream(request, api.scheduler, chat, builder, keep)

    async def emit(event: Event) -> None:
        builder.on(event)

    try:
        completion = await run_watched(request, api.scheduler.run(chat, builder.id, emit))
    except asyncio.CancelledError:
        return Response(status_code=499)
    except Exception as error:  # mapped in one place
        mapped = _mapped(error)
        if mapped.status >= 500:
            log.exception("response %s failed", builder.id)
        return _error(mapped)
    builder.finish(completion)
    keep(builder.response())
    return JSONResponse(builder.response())


async def _stream(
    request: Request,
    scheduler: Scheduler,
    chat: ChatRequest,
    builder: ResponseBuilder,
    keep: Callable[[dict[str, Any]], None],
) -> Response:
    queue: asyncio.Queue[Event | None] = asyncio.Queue(_STREAM_QUEUE)

    async def work() -> Completion:
        try:
            return await scheduler.run(chat, builder.id, queue.put)
        finally:
            await queue.put(None)

    task, first, error = await start_streamed(request, work(), queue)
    if error is not None:
        return _error(_mapped(error))

    async def events() -> AsyncIterator[bytes]:
        item = first
        try:
            for event in builder.start():
                yield _sse(event)
            while item is not None:
                for event in builder.on(item):
                    yield _sse(event)
                item = await queue.get()
            completion = await task
        except asyncio.CancelledError:
            raise
        except Exception as error:
            mapped = _mapped(error)
            if mapped.status >= 500:
                log.exception("streamed response %s failed", builder.id)
            for event in builder.fail(mapped):
                yield _sse(event)
            return
        finally:
            task.cancel()
        for event in builder.finish(completion):
            yield _sse(event)
        keep(builder.response())

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def retrieve(request: Request, store: ResponseStore) -> Response:
    response_id = request.path_params["response_id"]
    stored = store.get(response_id)
    if stored is None:
        return _error(
            NotFound(
                f"no stored response {response_id!r} (unknown, store: false, or gone)",
                param="response_id",
            )
        )
    return JSONResponse(stored.response)
