"""A Responses API response, built from the core's events: the streamed events and the object.

``ResponseBuilder`` turns each event of ``events.py`` into Responses stream events, numbered
by ``sequence_number``, and keeps the output items they describe; ``finish`` closes the items
and gives ``response.completed`` (or ``response.incomplete``) with the final object, ``fail``
an ``error`` event and ``response.failed``. A request that does not stream runs the same
builder and returns its final object, so both forms always agree.

Output items: text is a ``message`` with one ``output_text`` part (a new message after each
tool call, as the model wrote it); a client tool's call is a ``function_call``; a call the
server ran is an ``mcp_call`` (``server_label`` the MCP server, or ``"conveyor"`` for a built-in
hosted tool; ``output``, or ``error`` with the text the model read, and ``conveyor``: the
hosted tool's name, outcome, round and timing). Pure.
"""

from __future__ import annotations

import json
import uuid
from copy import deepcopy as copy
from typing import Any

from conveyor.runtime.completion import Completion
from conveyor.runtime.errors import ConveyorError
from conveyor.runtime.events import (
    ClientCallDelta,
    ContentDelta,
    Event,
    HostedCallWritten,
    ToolResult,
)
from conveyor.runtime.responses import conveyor_usage
from conveyor.runtime.responses_items import BUILTIN_LABEL

StreamEvent = dict[str, Any]


def _label_and_name(tool: str) -> tuple[str, str]:
    label, dot, name = tool.partition(".")
    return (label, name) if dot else (BUILTIN_LABEL, tool)


def usage(completion: Completion) -> dict[str, Any]:
    return {
        "input_tokens": completion.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        "conveyor": conveyor_usage([completion]),
    }


class ResponseBuilder:
    """The events and the output items of one response."""

    def __init__(
        self, *, id: str, model: str, created_at: int, store: bool, echo: dict[str, Any]
    ) -> None:
        self.id = id
        self._head = {"id": id, "object": "response", "created_at": created_at, "model": model}
        self._echo = {
            **echo,
            "text": echo.get("text") or {"format": {"type": "text"}},
            "store": store,
            "truncation": "disabled",
            "background": False,
        }
        self.output: list[dict[str, Any]] = []
        self.status = "in_progress"
        self._usage: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._incomplete: dict[str, Any] | None = None
        self._sequence = 0
        self._message: int | None = None  # the output index of the open message
        self._client_call: int | None = None  # the output index of the call being written
        self._hosted: dict[str, int] = {}  # call id -> output index

    def response(self) -> dict[str, Any]:
        return {
            **self._head,
            "status": self.status,
            "output": self.output,
            "error": self._error,
            "incomplete_details": self._incomplete,
            **self._echo,
            "usage": self._usage,
        }

    def _event(self, type: str, **fields: Any) -> StreamEvent:
        event = {"type": type, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _snapshot(self, type: str) -> StreamEvent:
        return self._event(type, response=json.loads(json.dumps(self.response())))

    def start(self) -> list[StreamEvent]:
        return [self._snapshot("response.created"), self._snapshot("response.in_progress")]

    def _add(self, item: dict[str, Any]) -> tuple[int, StreamEvent]:
        self.output.append(item)
        index = len(self.output) - 1
        added = self._event("response.output_item.added", output_index=index, item=copy(item))
        return index, added

    def _done(self, index: int) -> StreamEvent:
        item = self.output[index]
        if item["status"] in ("in_progress", "calling"):
            item["status"] = "completed"
        return self._event("response.output_item.done", output_index=index, item=copy(item))

    def on(self, event: Event) -> list[StreamEvent]:
        if isinstance(event, ContentDelta):
            return self._text(event.text) if event.text else []
        if isinstance(event, ClientCallDelta):
            return self._client(event)
        if isinstance(event, HostedCallWritten):
            return self._hosted_call(event.call_id, event.name, json.dumps(event.arguments))
        return self._result(event)

    # -- text ----------------------------------------------------------------------------------

    def _text(self, text: str) -> list[StreamEvent]:
        events = self._close_call()
        if self._message is None:
            item: dict[str, Any] = {
                "id": f"msg_{uuid.uuid4().hex}",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            self._message, added = self._add(item)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item["content"].append(dict(part))
            where = {"item_id": item["id"], "output_index": self._message, "content_index": 0}
            events += [added, self._event("response.content_part.added", **where, part=part)]
        item = self.output[self._message]
        item["content"][0]["text"] += text
        where = {"item_id": item["id"], "output_index": self._message, "content_index": 0}
        events.append(self._event("response.output_text.delta", **where, delta=text, logprobs=[]))
        return events

    def _close_message(self) -> list[StreamEvent]:
        if self._message is None:
            return []
        index, self._message = self._message, None
        item = self.output[index]
        part = item["content"][0]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **where, text=part["text"], logprobs=[]),
            self._event("response.content_part.done", **where, part=part),
            self._done(index),
        ]

    # -- calls ---------------------------------------------------------------------------------

    def _client(self, event: ClientCallDelta) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if event.call_id is not None:
            events += self._close_message() + self._close_call()
            item: dict[str, Any] = {
                "id": f"fc_{uuid.uuid4().hex}",
                "type": "function_call",
                "call_id": event.call_id,
                "name": event.name,
                "arguments": "",
                "status": "in_progress",
            }
            self._client_call, added = self._add(item)
            events.append(added)
        if event.arguments and self._client_call is not None:
            item = self.output[self._client_call]
            item["arguments"] += event.arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._client_call,
                    delta=event.arguments,
                )
            )
        return events

    def _close_call(self) -> list[StreamEvent]:
        if self._client_call is None:
            return []
        index, self._client_call = self._client_call, None
        item = self.output[index]
        done = self._event(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=index,
            name=item["name"],
            arguments=item["arguments"],
        )
        return [done, self._done(index)]

    def _hosted_call(self, call_id: str, tool: str, arguments: str) -> list[StreamEvent]:
        events = self._close_message() + self._close_call()
        label, name = _label_and_name(tool)
        item = {
            "id": f"mcp_{call_id}",
            "type": "mcp_call",
            "server_label": label,
            "name": name,
            "arguments": arguments,
            "status": "calling",
            "output": None,
            "error": None,
            "conveyor": {"tool": tool},
        }
        index, added = self._add(item)
        self._hosted[call_id] = index
        where = {"item_id": item["id"], "output_index": index}
        return [*events, added, self._event("response.mcp_call.in_progress", **where)]

    def _result(self, event: ToolResult) -> list[StreamEvent]:
        # Results come once their round is decoded: the model's next text answers them, in a
        # message of its own (not glued to the end of this round's).
        events = self._close_message()
        if event.call_id not in self._hosted:  # a call too malformed to be announced
            events += self._hosted_call(event.call_id, event.name, "{}")
        index = self._hosted.pop(event.call_id)
        item = self.output[index]
        ok = event.outcome == "ok"
        item["status"] = "completed" if ok else "failed"
        if ok:
            item["output"] = event.content
        else:
            item["error"] = {"type": "mcp_tool_execution_error", "content": event.content}
        item["conveyor"] |= {"outcome": event.outcome, "round": event.round}
        if event.cut_chars:
            item["conveyor"]["cut_chars"] = event.cut_chars
        where = {"item_id": item["id"], "output_index": index}
        kind = "response.mcp_call.completed" if ok else "response.mcp_call.failed"
        return [*events, self._event(kind, **where), self._done(index)]

    # -- the end -------------------------------------------------------------------------------

    def finish(self, completion: Completion) -> list[StreamEvent]:
        events = self._close_message() + self._close_call()
        if not self.output:  # the model wrote nothing: an empty message, as OpenAI's
            events += self._text("")[:-1] + self._close_message()
        client_calls = {call.call_id for call in completion.client_calls}
        timing = {
            m["tool_call_id"]: m["timing"] for m in completion.messages if m["role"] == "tool"
        }
        for item in self.output:
            if item["type"] == "mcp_call" and (tool_call_id := item["id"][4:]) in timing:
                item["conveyor"]["timing"] = timing[tool_call_id]
            elif item["type"] == "function_call" and item["call_id"] not in client_calls:
                item["status"] = "incomplete"  # it turned out malformed: the model read an error
        self._usage = usage(completion)
        if completion.finish_reason == "length":
            self.status = "incomplete"
            self._incomplete = {"reason": "max_output_tokens"}
            return [*events, self._snapshot("response.incomplete")]
        self.status = "completed"
        return [*events, self._snapshot("response.completed")]

    def fail(self, error: ConveyorError) -> list[StreamEvent]:
        """A failure once the stream has begun: an ``error`` event, then ``response.failed``."""
        self.status = "failed"
        code = "server_error" if error.status >= 500 else "invalid_prompt"
        self._error = {"code": code, "message": str(error)}
        fields = {"code": error.code or error.type, "message": str(error), "param": error.param}
        return [self._event("error", **fields), self._snapshot("response.failed")]
