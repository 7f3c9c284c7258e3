"""A Responses API request, checked and translated into the chat request that the core runs.

``POST /v1/responses`` is a thin layer over chat completions: ``parse`` checks the fields that
only the Responses API has (input items, tool kinds, ``store``, ``previous_response_id``, ...)
and refuses what Conveyor cannot honour with a 400 that names the field; ``chat_body`` turns the
conversation (stored items, then this request's input) and the rest into a chat-completions
body, which ``chat_request.parse_request`` validates with vLLM's own model as for
``/v1/chat/completions``. Items are kept in one normalized form (``Item``), both for the
prompt and for the response store. Pure: no engine, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.runtime.chat_request import ChatRequest, ServerPolicy, parse_request
from conveyor.runtime.errors import BadRequest

# Output items of a hosted tool whose name has no server part: ``server_label`` is this.
BUILTIN_LABEL = "conveyor"

# Accepted, with no effect on a self-hosted server (OpenAI bookkeeping).
NO_EFFECT = frozenset(
    {"metadata", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier"}
)
# Refused when set to anything but these values (absent and null are always fine).
REFUSED: dict[str, tuple[tuple[Any, ...], str]] = {
    "background": ((False,), "responses run in the request that creates them"),
    "background_options": ((), "responses run in the request that creates them"),
    "conversation": ((), "Conveyor keeps no conversations: use previous_response_id"),
    "context_management": ((), "the context is not compacted"),
    "prompt": ((), "no prompt templates are stored here"),
    "include": (([],), "no extra output data is available"),
    "max_tool_calls": ((), "use conveyor.max_rounds to bound the tool rounds"),
    "top_logprobs": ((0,), "logprobs are served by /v1/chat/completions"),
    "truncation": (("disabled",), "the context is never truncated: a prompt too long is a 400"),
    "moderation": ((), "no moderation runs here"),
    "image": ((), "Conveyor serves text models"),
    "access_programs": ((), "not an option of a self-hosted server"),
    "prompt_cache_options": ((), "vLLM caches prefixes on its own"),
}
FIELDS = frozenset(
    {
        "input", "instructions", "model", "tools", "tool_choice", "max_output_tokens",
        "temperature", "top_p", "store", "previous_response_id", "stream", "stream_options",
        "parallel_tool_calls", "user", "text", "reasoning", "conveyor",
    }
)  # fmt: skip
# Built-in OpenAI tool types: each needs OpenAI's own service.
REFUSED_TOOLS = {
    "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11",
    "file_search", "computer_use_preview", "computer", "computer_use", "code_interpreter",
    "image_generation", "local_shell", "shell", "apply_patch", "custom", "namespace",
    "tool_search",
}  # fmt: skip
_MCP_KEYS = {"type", "server_label", "allowed_tools", "require_approval", "server_description"}
_MCP_REFUSED = ("server_url", "connector_id", "headers", "authorization", "tunnel_id")
_FUNCTION_KEYS = {"type", "name", "description", "parameters", "strict"}
_ROLES = ("user", "system", "developer", "assistant")
_TEXT_PARTS = ("input_text", "output_text", "text")

# A conversation item in normalized form: {"type": "message", "role", "content": str},
# {"type": "function_call", "call_id", "name", "arguments": str},
# {"type": "function_call_output", "call_id", "output": str}, or
# {"type": "hosted_call", "call_id", "name", "arguments": str, "output": str}: a call the
# server ran, with its result as the model read it.
Item = dict[str, Any]


@dataclass(frozen=True)
class ResponsesRequest:
    """The Responses-only parts of a request; ``chat`` is the rest, in chat-completions terms
    but without ``messages`` (``chat_body`` adds them)."""

    input: list[Item]
    instructions: str | None
    previous_response_id: str | None
    store: bool
    stream: bool
    chat: dict[str, Any]
    echo: dict[str, Any]  # request fields the response object repeats


def _bad(param: str, message: str, code: str | None = None) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param, code=code)


def _unsupported(param: str, why: str) -> BadRequest:
    return _bad(param, f"not supported by Conveyor ({why})", "unsupported_parameter")


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _bad(param, "must be a string")
    return value


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(param, "must be an object")
    return value


def _text(content: Any, param: str) -> str:
    """A message's text: a string, or a list of text parts (joined)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(param, "must be a string or a list of content parts")
    texts = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        kind = _object(part, where).get("type")
        if kind not in _TEXT_PARTS:
            raise _unsupported(f"{where}.type", f"{kind!r}: Conveyor serves text models")
        texts.append(_string(part.get("text"), f"{where}.text"))
    return "".join(texts)


def _arguments(value: Any, param: str) -> str:
    text = _string(value, param)
    try:
        json.loads(text)
    except ValueError:
        raise _bad(param, "must be a JSON text (the call's arguments)") from None
    return text


def _hosted_name(item: dict[str, Any], param: str) -> str:
    label = _string(item.get("server_label"), f"{param}.server_label")
    name = _string(item.get("name"), f"{param}.name")
    return name if label == BUILTIN_LABEL else f"{label}.{name}"


def _item(raw: Any, param: str) -> Item:
    item = _object(raw, param)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise _bad(f"{param}.role", f"{role!r} is not one of {', '.join(_ROLES)}")
        return {"type": "message", "role": role, "content": _text(item.get("content"), param)}
    if kind == "function_call":
        return {
            "type": "function_call",
            "call_id": _string(item.get("call_id"), f"{param}.call_id"),
            "name": _string(item.get("name"), f"{param}.name"),
            "arguments": _arguments(item.get("arguments"), f"{param}.arguments"),
        }
    if kind == "function_call_output":
        return {
            "type": "function_call_output",
            "call_id": _string(item.get("call_id"), f"{param}.call_id"),
            "output": _text(item.get("output"), f"{param}.output"),
        }
    if kind == "mcp_call":  # a hosted call from an earlier response, sent back as input
        error = item.get("error")
        output = item.get("output")
        if output is None and isinstance(error, dict):
            output = error.get("content") or error.get("message")  # as the model read it
        return {
            "type": "hosted_call",
            "call_id": _string(item.get("id"), f"{param}.id"),
            "name": _hosted_name(item, param),
            "arguments": _arguments(item.get("arguments"), f"{param}.arguments"),
            "output": _string(output if output is not None else "", f"{param}.output"),
        }
    raise _unsupported(
        f"{param}.type",
        f"{kind!r}: input items are messages, function_call, function_call_output and mcp_call",
    )


def _input(value: Any) -> list[Item]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _bad("input", "must be a string or a non-empty list of items")
    return [_item(raw, f"input[{i}]") for i, raw in enumerate(value)]


def _server_tools(label: str, allowed: Any, hosted: Mapping[str, Any], param: str) -> list[str]:
    served = sorted(n for n in hosted if n.startswith(f"{label}."))
    if not served:
        servers = sorted({n.split(".", 1)[0] for n in hosted if "." in n})
        raise _bad(
            f"{param}.server_label",
            f"no MCP server {label!r} is configured on this server "
            f"(configured: {', '.join(servers) or 'none'}; servers are set in tools.yaml)",
        )
    if allowed is None:
        return served
    if isinstance(allowed, dict):
        unknown_keys = sorted(set(allowed) - {"tool_names"})
        if unknown_keys:
            raise _unsupported(f"{param}.allowed_tools.{unknown_keys[0]}", "filter by tool_names")
        allowed = allowed.get("tool_names")
    if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
        raise _bad(f"{param}.allowed_tools", "must be a list of tool names")
    missing = [n for n in allowed if f"{label}.{n}" not in hosted]
    if missing:
        tools = ", ".join(n.split(".", 1)[1] for n in served)
        raise _bad(
            f"{param}.allowed_tools",
            f"server {label!r} has no tool(s) {missing} (its tools: {tools})",
        )
    return [f"{label}.{n}" for n in allowed]


def _tools(value: Any, hosted: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Chat-completions function tools, and the hosted tools the request selects."""
    if not isinstance(value, list):
        raise _bad("tools", "must be a list")
    functions: list[dict[str, Any]] = []
    selected: list[str] = []
    for i, raw in enumerate(value):
        param = f"tools[{i}]"
        tool = _object(raw, param)
        kind = tool.get("type")
        if kind == "function":
            extra = sorted(set(tool) - _FUNCTION_KEYS)
            if extra:
                raise _unsupported(f"{param}.{extra[0]}", "not a function tool field here")
            name = _string(tool.get("name"), f"{param}.name")
            if name in hosted:
                selected.append(name)  # the server's own spec is the one the model sees
                continue
            function = {k: v for k, v in tool.items() if k != "type" and v is not None}
            functions.append({"type": "function", "function": function})
        elif kind == "mcp":
            for key in _MCP_REFUSED:
                if tool.get(key) is not None:
                    raise _unsupported(
                        f"{param}.{key}",
                        "MCP servers are configured by the operator in tools.yaml; "
                        "name one by its server_label",
                    )
            approval = tool.get("require_approval")
            if approval not in (None, "never"):
                raise _unsupported(
                    f"{param}.require_approval", "hosted tools run without approval: use 'never'"
                )
            extra = sorted(set(tool) - _MCP_KEYS - set(_MCP_REFUSED))
            if extra:
                raise _unsupported(f"{param}.{extra[0]}", "not an mcp tool field here")
            label = _string(tool.get("server_label"), f"{param}.server_label")
            selected += _server_tools(label, tool.get("allowed_tools"), hosted, param)
        elif kind in REFUSED_TOOLS:
            raise _unsupported(
                f"{param}.type",
                f"{kind!r} is an OpenAI-hosted tool; hosted tools here are the sidecar's "
                "(function tools by name, or type 'mcp' with a server_label)",
            )
        else:
            raise _bad(f"{param}.type", f"{kind!r} is not a tool type (function, mcp)")
    return functions, sorted(set(selected))


def _tool_choice(value: Any, hosted: Mapping[str, Any]) -> Any:
    if value in ("auto", "none", "required"):
        return value
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        name = _string(choice.get("name"), "tool_choice.name")
    elif kind == "mcp":
        label = _string(choice.get("server_label"), "tool_choice.server_label")
        if choice.get("name") is None:
            raise _unsupported("tool_choice.name", "name the server's tool to force")
        name = _hosted_name(choice, "tool_choice")
        if name not in hosted:
            raise _bad("tool_choice.name", f"server {label!r} has no hosted tool {name!r}")
    else:
        raise _unsupported("tool_choice.type", f"{kind!r}: use auto, none, required, a function "
                           "or an mcp tool")  # fmt: skip
    return {"type": "function", "function": {"name": name}}


def _text_format(value: Any) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format``."""
    text = _object(value, "text")
    extra = sorted(set(text) - {"format"})
    if extra:
        raise _unsupported(f"text.{extra[0]}", "only text.format is supported")
    form = text.get("format")
    if form is None:
        return None
    form = dict(_object(form, "text.format"))
    kind = form.pop("type", None)
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": form}
    raise _bad("text.format.type", f"{kind!r} is not one of text, json_object, json_schema")


def _reasoning(value: Any) -> str | None:
    reasoning = _object(value, "reasoning")
    for key, setting in reasoning.items():
        if key != "effort" and setting is not None:
            raise _unsupported(f"reasoning.{key}", "no reasoning parser runs here")
    effort = reasoning.get("effort")
    return None if effort is None else _string(effort, "reasoning.effort")


def _check_fields(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if name in REFUSED:
            allowed, why = REFUSED[name]
            if value is not None and value not in allowed:
                raise _unsupported(name, why)
        elif name not in FIELDS and name not in NO_EFFECT:
            raise _bad(name, "unrecognized request argument", "unknown_parameter")
    options = body.get("stream_options")
    if options is not None:
        extra = sorted(set(_object(options, "stream_options")) - {"include_obfuscation"})
        if extra:
            raise _bad(f"stream_options.{extra[0]}", "unrecognized", "unknown_parameter")


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(name, "must be a boolean")
    return value


def parse(body: Any, hosted: Mapping[str, Any]) -> ResponsesRequest:
    """Check a decoded ``/v1/responses`` body; ``hosted``: the server's hosted tools by name."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    _check_fields(body)
    if "input" not in body:
        raise BadRequest("input: required", param="input", code="missing_required_parameter")
    items = _input(body["input"])
    instructions = body.get("instructions")
    if instructions is not None:
        _string(instructions, "instructions")
    previous = body.get("previous_response_id")
    if previous is not None:
        _string(previous, "previous_response_id")
    chat: dict[str, Any] = {}
    conveyor = dict(_object(body.get("conveyor") or {}, "conveyor"))
    if body.get("tools") is not None:
        functions, selected = _tools(body["tools"], hosted)
        if functions:
            chat["tools"] = functions
        named = conveyor.get("tools")
        # conveyor.tools adds to the selection (a malformed value is the chat layer's 400).
        conveyor["tools"] = sorted({*selected, *named}) if isinstance(named, list) else selected
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"], hosted)
    if conveyor:
        chat["conveyor"] = conveyor
    renamed = {"max_output_tokens": "max_completion_tokens"}
    for name in ("model", "temperature", "top_p", "max_output_tokens", "parallel_tool_calls",
                 "user"):  # fmt: skip
        if body.get(name) is not None:
            chat[renamed.get(name, name)] = body[name]
    if body.get("text") is not None and (form := _text_format(body["text"])) is not None:
        chat["response_format"] = form
    if body.get("reasoning") is not None and (effort := _reasoning(body["reasoning"])):
        chat["reasoning_effort"] = effort
    echo = {
        name: body.get(name)
        for name in ("instructions", "metadata", "temperature", "top_p", "max_output_tokens",
                     "previous_response_id", "user", "text", "reasoning")
    }  # fmt: skip
    echo["tools"] = body.get("tools") or []
    echo["tool_choice"] = body.get("tool_choice") or "auto"
    echo["parallel_tool_calls"] = _flag(body, "parallel_tool_calls", True)
    return ResponsesRequest(
        input=items,
        instructions=instructions,
        previous_response_id=previous,
        store=_flag(body, "store", True),
        stream=_flag(body, "stream", False),
        chat=chat,
        echo=echo,
    )


def messages(items: list[Item]) -> list[dict[str, Any]]:
    """Chat messages for a conversation of items. Calls join the assistant message before them
    (one turn); a hosted call's result follows its turn, as the model read it then."""
    out: list[dict[str, Any]] = []
    turn: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []

    def close() -> None:
        nonlocal turn
        if turn is not None:
            out.append(turn)
            out.extend(results)
            results.clear()
            turn = None

    for item in items:
        kind = item["type"]
        if kind == "message":
            close()
            if item["role"] == "assistant":
                turn = {"role": "assistant", "content": item["content"]}
            else:
                out.append({"role": item["role"], "content": item["content"]})
        elif kind in ("function_call", "hosted_call"):
            if turn is None:
                turn = {"role": "assistant", "content": None}
            function = {"name": item["name"], "arguments": item["arguments"]}
            call = {"id": item["call_id"], "type": "function", "function": function}
            turn.setdefault("tool_calls", []).append(call)
            if kind == "hosted_call":
                results.append(
                    {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
                )
        else:
            close()
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    close()
    return out


def output_items(output: list[dict[str, Any]]) -> list[Item]:
    """A response's output items in normalized form, for the conversation that continues it."""
    return [_item(raw, f"output[{i}]") for i, raw in enumerate(output)]


def chat_body(request: ResponsesRequest, history: list[Item]) -> dict[str, Any]:
    """The chat-completions body of ``request``, continuing the stored ``history``."""
    system = [{"role": "system", "content": request.instructions}] if request.instructions else []
    return {**request.chat, "messages": system + messages([*history, *request.input])}


def chat_request(
    request: ResponsesRequest, history: list[Item], policy: ServerPolicy
) -> ChatRequest:
    """The core's request, validated as a chat completion; its 400s name Responses fields."""
    try:
        return parse_request(chat_body(request, history), policy)
    except BadRequest as error:
        raise responses_error(error) from None


# Chat fields whose errors name the Responses field they came from.
_CHAT_PARAMS = {
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "messages": "input",
}


def responses_error(error: BadRequest) -> BadRequest:
    """A chat-layer 400 in the Responses request's own terms. The messages of the chat body
    are the conversation, not this request's ``input``: their errors keep their own words."""
    param = error.param
    head = (param or "").partition(".")[0].partition("[")[0]
    if param is None or head not in _CHAT_PARAMS:
        return error
    if head == "messages":
        return BadRequest(f"input: {error} (in the conversation's messages)", param="input")
    renamed = _CHAT_PARAMS[head] + param[len(head) :]
    return BadRequest(str(error).replace(param, renamed, 1), param=renamed, code=error.code)
