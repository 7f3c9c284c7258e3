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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.runtime.chat_request import ChatRequest, ServerPolicy, parse_request
from conveyor.runtime.errors import BadRequest
from conveyor.runtime.responses_items import (
    Item,
    bad,
    hosted_name,
    input_items,
    mapping,
    messages,
    string,
    unsupported,
)

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
# Fields that mean what a chat-completions field means (by that field's name there).
_SAME_AS_CHAT = {
    "model": "model",
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_completion_tokens",
    "parallel_tool_calls": "parallel_tool_calls",
    "user": "user",
}
# Request fields the response object repeats as they came.
_ECHOED = (
    "instructions", "metadata", "temperature", "top_p", "max_output_tokens",
    "previous_response_id", "user", "text", "reasoning",
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


def _server_tools(label: str, allowed: Any, hosted: Mapping[str, Any], param: str) -> list[str]:
    served = sorted(n for n in hosted if n.startswith(f"{label}."))
    if not served:
        servers = sorted({n.split(".", 1)[0] for n in hosted if "." in n})
        raise bad(
            f"{param}.server_label",
            f"no MCP server {label!r} is configured on this server "
            f"(configured: {', '.join(servers) or 'none'}; servers are set in tools.yaml)",
        )
    if allowed is None:
        return served
    if isinstance(allowed, dict):
        unknown_keys = sorted(set(allowed) - {"tool_names"})
        if unknown_keys:
            raise unsupported(f"{param}.allowed_tools.{unknown_keys[0]}", "filter by tool_names")
        allowed = allowed.get("tool_names")
    if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
        raise bad(f"{param}.allowed_tools", "must be a list of tool names")
    missing = [n for n in allowed if f"{label}.{n}" not in hosted]
    if missing:
        tools = ", ".join(n.split(".", 1)[1] for n in served)
        raise bad(
            f"{param}.allowed_tools",
            f"server {label!r} has no tool(s) {missing} (its tools: {tools})",
        )
    return [f"{label}.{n}" for n in allowed]


def _tools(value: Any, hosted: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Chat-completions function tools, and the hosted tools the request selects."""
    if not isinstance(value, list):
        raise bad("tools", "must be a list")
    functions: list[dict[str, Any]] = []
    selected: list[str] = []
    for i, raw in enumerate(value):
        param = f"tools[{i}]"
        tool = mapping(raw, param)
        kind = tool.get("type")
        if kind == "function":
            extra = sorted(set(tool) - _FUNCTION_KEYS)
            if extra:
                raise unsupported(f"{param}.{extra[0]}", "not a function tool field here")
            name = string(tool.get("name"), f"{param}.name")
            if name in hosted:
                selected.append(name)  # the server's own spec is the one the model sees
                continue
            function = {k: v for k, v in tool.items() if k != "type" and v is not None}
            functions.append({"type": "function", "function": function})
        elif kind == "mcp":
            for key in _MCP_REFUSED:
                if tool.get(key) is not None:
                    raise unsupported(
                        f"{param}.{key}",
                        "MCP servers are configured by the operator in tools.yaml; "
                        "name one by its server_label",
                    )
            approval = tool.get("require_approval")
            if approval not in (None, "never"):
                raise unsupported(
                    f"{param}.require_approval", "hosted tools run without approval: use 'never'"
                )
            extra = sorted(set(tool) - _MCP_KEYS - set(_MCP_REFUSED))
            if extra:
                raise unsupported(f"{param}.{extra[0]}", "not an mcp tool field here")
            label = string(tool.get("server_label"), f"{param}.server_label")
            selected += _server_tools(label, tool.get("allowed_tools"), hosted, param)
        elif kind in REFUSED_TOOLS:
            raise unsupported(
                f"{param}.type",
                f"{kind!r} is an OpenAI-hosted tool; hosted tools here are the sidecar's "
                "(function tools by name, or type 'mcp' with a server_label)",
            )
        else:
            raise bad(f"{param}.type", f"{kind!r} is not a tool type (function, mcp)")
    return functions, sorted(set(selected))


def _tool_choice(value: Any, hosted: Mapping[str, Any]) -> Any:
    if value in ("auto", "none", "required"):
        return value
    choice = mapping(value, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        name = string(choice.get("name"), "tool_choice.name")
    elif kind == "mcp":
        label = string(choice.get("server_label"), "tool_choice.server_label")
        if choice.get("name") is None:
            raise unsupported("tool_choice.name", "name the server's tool to force")
        name = hosted_name(choice, "tool_choice")
        if name not in hosted:
            raise bad("tool_choice.name", f"server {label!r} has no hosted tool {name!r}")
    else:
        why = f"{kind!r}: use auto, none, required, a function or an mcp tool"
        raise unsupported("tool_choice.type", why)
    return {"type": "function", "function": {"name": name}}


def _text_format(value: Any) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format``."""
    text = mapping(value, "text")
    extra = sorted(set(text) - {"format"})
    if extra:
        raise unsupported(f"text.{extra[0]}", "only text.format is supported")
    form = text.get("format")
    if form is None:
        return None
    form = dict(mapping(form, "text.format"))
    kind = form.pop("type", None)
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": form}
    raise bad("text.format.type", f"{kind!r} is not one of text, json_object, json_schema")


def _reasoning(value: Any) -> str | None:
    reasoning = mapping(value, "reasoning")
    for key, setting in reasoning.items():
        if key != "effort" and setting is not None:
            raise unsupported(f"reasoning.{key}", "no reasoning parser runs here")
    effort = reasoning.get("effort")
    return None if effort is None else string(effort, "reasoning.effort")


def _check_fields(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if name in REFUSED:
            allowed, why = REFUSED[name]
            if value is not None and value not in allowed:
                raise unsupported(name, why)
        elif name not in FIELDS and name not in NO_EFFECT:
            raise bad(name, "unrecognized request argument", "unknown_parameter")
    options = body.get("stream_options")
    if options is not None:
        extra = sorted(set(mapping(options, "stream_options")) - {"include_obfuscation"})
        if extra:
            raise bad(f"stream_options.{extra[0]}", "unrecognized", "unknown_parameter")


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(name, "must be a boolean")
    return value


def parse(body: Any, hosted: Mapping[str, Any]) -> ResponsesRequest:
    """Check a decoded ``/v1/responses`` body; ``hosted``: the server's hosted tools by name."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    _check_fields(body)
    if "input" not in body:
        raise BadRequest("input: required", param="input", code="missing_required_parameter")
    items = input_items(body["input"])
    instructions = body.get("instructions")
    if instructions is not None:
        string(instructions, "instructions")
    previous = body.get("previous_response_id")
    if previous is not None:
        string(previous, "previous_response_id")
    chat: dict[str, Any] = {}
    conveyor = dict(mapping(body.get("conveyor") or {}, "conveyor"))
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
    for name, chat_name in _SAME_AS_CHAT.items():
        if body.get(name) is not None:
            chat[chat_name] = body[name]
    if body.get("text") is not None and (form := _text_format(body["text"])) is not None:
        chat["response_format"] = form
    if body.get("reasoning") is not None and (effort := _reasoning(body["reasoning"])):
        chat["reasoning_effort"] = effort
    echo = {name: body.get(name) for name in _ECHOED}
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
