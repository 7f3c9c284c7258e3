"""A chat request, validated with vLLM's own request model, with Conveyor's options on top.

The body is validated by vLLM's ``ChatCompletionRequest`` (the model vLLM's OpenAI server
runs), so every field vLLM accepts means here what it means there, and its conversion to
``SamplingParams`` is vLLM's too. Conveyor adds its ``conveyor: {...}`` options, the hosted
tools, and the checks that a multi-round tool loop needs. Validation is strict: a string where
a number or a boolean belongs is an error, not a guess. What vLLM's model accepts but Conveyor
cannot honour is refused with a 400 that names the field and says why (``REFUSED``). Options
under ``conveyor`` that an extension registered with the server handles
(``ServerPolicy.extensions``) become the request's ``DecodePolicy``.

``parse_request`` is pure (no engine, no I/O): body in, ``ChatRequest`` or a 4xx error out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from conveyor.runtime.decode_policy import LIVE, DecodePolicy, RequestExtension
from conveyor.runtime.errors import BadRequest, NotFound

if TYPE_CHECKING:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest


class Mode(StrEnum):
    PARTIAL = "partial"  # tools act on units while the model writes the call
    SEQUENTIAL = "sequential"  # baseline: a tool starts once its call is complete


@dataclass(frozen=True)
class ServerPolicy:
    """What the server allows; fixed at start."""

    hosted_tools: dict[str, dict[str, Any]]  # name -> OpenAI tool schema
    mode: Mode = Mode.PARTIAL
    max_rounds: int = 8  # the default and the cap of conveyor.max_rounds
    max_tokens: int = 1024  # per round, when the request sets none
    model_names: tuple[str, ...] = ()
    max_n: int = 8
    extensions: Mapping[str, RequestExtension] = field(default_factory=dict)  # by option
    # Options an extension would handle that this server did not register: why, for the client.
    refused_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatRequest:
    # vLLM's own validated request, its ``tools`` the ones the prompt lists (hosted and client):
    # rendering and sampling parameters come from it, as in vLLM's server.
    openai: ChatCompletionRequest
    hosted: frozenset[str]
    client_tools: frozenset[str]
    mode: Mode
    max_rounds: int
    default_max_tokens: int
    parse_calls: bool = True  # False for tool_choice "none": whatever the model writes is text
    decoding: DecodePolicy = LIVE

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.openai.messages)

    @property
    def stream(self) -> bool:
        return bool(self.openai.stream)

    @property
    def include_usage(self) -> bool:
        options = self.openai.stream_options
        return bool(options and options.include_usage)

    @property
    def logprobs(self) -> bool:
        return bool(self.openai.logprobs)

    @property
    def n(self) -> int:
        return int(self.openai.n or 1)

    @property
    def max_tokens(self) -> int:
        """Tokens per round the request asks for (the context may leave fewer)."""
        request = self.openai
        asked = request.max_completion_tokens
        return int(asked if asked is not None else request.max_tokens or self.default_max_tokens)

    def allows_round(self, index: int) -> bool:
        """Whether round ``index`` (from 0) may run."""
        return index < self.max_rounds and self.decoding.allows(index)

    def choice(self, index: int) -> ChatRequest:
        """The request of choice ``index`` of n: one sample, its own seed (as vLLM seeds n > 1)."""
        seed = self.openai.seed
        update = {"n": 1, "seed": None if seed is None else seed + index}
        return replace(self, openai=self.openai.model_copy(update=update))


ROLES = ("system", "developer", "user", "assistant", "tool")

# Fields of vLLM's request that Conveyor refuses when set to anything but their default.
REFUSED: dict[str, str] = {
    "use_beam_search": "beam search cannot run a tool loop",
    "echo": "a multi-round answer has no single prompt to echo",
    "continue_final_message": "rounds always start a new assistant turn",
    "add_generation_prompt": "rounds always start a new assistant turn",
    "prompt_logprobs": "a multi-round request has several prompts",
    "logprob_token_ids": "not carried through the tool loop",
    "return_token_ids": "token ids are not part of the Conveyor response",
    "return_tokens_as_token_ids": "token ids are not part of the Conveyor response",
    "return_prompt_text": "a multi-round request has several prompts",
    "chat_template": "the server renders with the model's own template",
    "chat_template_kwargs": "the server renders with the model's own template",
    "documents": "the server renders with the model's own template",
    "media_io_kwargs": "Conveyor serves text models",
    "mm_processor_kwargs": "Conveyor serves text models",
    "kv_transfer_params": "disaggregated serving is not supported",
    "ec_transfer_params": "disaggregated serving is not supported",
    "priority": "the engine runs first come, first served",
    "request_id": "Conveyor names its requests itself",
    "vllm_xargs": "custom engine extensions are not enabled",
    "session_id": "Conveyor keeps no sessions",
    "length_penalty": "applies to beam search only",
    "return_token_offsets": "only for vLLM's render endpoints",
    "mm_payload": "only for vLLM's render endpoints",
    "return_mm_kwargs": "only for vLLM's render endpoints",
}
# OpenAI fields that vLLM's model does not know; refused rather than ignored.
REFUSED_OPENAI: dict[str, str] = {
    "functions": "deprecated: use tools",
    "function_call": "deprecated: use tool_choice",
    "audio": "Conveyor serves text models",
    "modalities": "Conveyor serves text models",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "use a hosted search tool instead",
}
# OpenAI bookkeeping fields, accepted and without effect here (documented).
NO_EFFECT = frozenset(
    {"metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
)


class ConveyorOptions(BaseModel):
    """The ``conveyor`` object of a request (extensions' options apart)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Literal["partial", "sequential"] | None = None
    tools: list[str] | None = None
    max_rounds: int | None = Field(default=None, ge=1)


def _request_model() -> type[ChatCompletionRequest]:
    from vllm.entrypoints.openai.chat_completion import protocol

    model: type[ChatCompletionRequest] = protocol.ChatCompletionRequest
    return model


def _union_tag(part: object) -> bool:
    """Pydantic names the member of a union it tried in the error location: drop it."""
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part in _SCALARS)


_SCALARS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _param(loc: tuple[Any, ...], prefix: str = "") -> str:
    text = prefix
    for part in loc:
        if _union_tag(part):
            continue
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "body"


def _role_member(role: object) -> str:
    return {"developer": "Developer", "system": "System", "user": "User"}.get(
        str(role), str(role).title()
    )


def validation_error(error: pydantic.ValidationError, body: Any, prefix: str = "") -> BadRequest:
    """One 400 from pydantic's errors: the first field at fault, every reason given for it."""
    errors = error.errors(include_url=False, include_context=False)
    # A message is a union of one model per role: keep the errors of the member for its role.
    first = errors[0]
    loc = first["loc"]
    if not prefix and len(loc) > 2 and loc[0] == "messages" and isinstance(loc[1], int):
        messages = body.get("messages") if isinstance(body, dict) else None
        message = messages[loc[1]] if isinstance(messages, list) else None
        role = message.get("role") if isinstance(message, dict) else None
        member = _role_member(role)
        matching = [e for e in errors if e["loc"][:2] == loc[:2] and member in str(e["loc"][2])]
        if matching:
            first = matching[0]
            loc = first["loc"]
    if not prefix and loc and isinstance(loc[0], int):
        # vLLM reads an assistant message's ``tool_calls`` lazily: the location lost its start.
        prefix = _tool_calls_owner(body, loc[0])
        errors = [e for e in errors if e["loc"][:1] == loc[:1]]
    param = _param(loc, prefix)
    reasons = list(
        dict.fromkeys(e["msg"] for e in errors if _param(e["loc"], prefix) == param)
    ) or [first["msg"]]
    code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
    return BadRequest(f"{param}: {'; or '.join(reasons)}", param=param, code=code)


def _tool_calls_owner(body: Any, index: int) -> str:
    for i, message in enumerate(body.get("messages") or []):
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if isinstance(calls, list) and len(calls) > index:
            return f"messages[{i}].tool_calls"
    return "messages"


def _options(body: dict[str, Any], policy: ServerPolicy) -> tuple[ConveyorOptions, DecodePolicy]:
    raw = body.pop("conveyor", None)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest("conveyor: must be an object", param="conveyor")
    known = set(ConveyorOptions.model_fields) | set(policy.extensions) | set(policy.refused_options)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BadRequest(
            f"conveyor: unknown option(s) {', '.join(unknown)}", param=f"conveyor.{unknown[0]}"
        )
    core = {k: v for k, v in raw.items() if k in ConveyorOptions.model_fields}
    try:
        options = ConveyorOptions.model_validate(core)
    except pydantic.ValidationError as error:
        raise validation_error(error, core, prefix="conveyor") from None
    return options, _decoding(raw, policy)


def _decoding(options: dict[str, Any], policy: ServerPolicy) -> DecodePolicy:
    """The policy of the one extension option the request uses, if any."""
    used = sorted(
        key for key in options if key in policy.extensions or key in policy.refused_options
    )
    for key in used:
        if key in policy.refused_options:
            raise BadRequest(
                f"conveyor.{key}: {policy.refused_options[key]}", param=f"conveyor.{key}"
            )
    if len(used) > 1:
        raise BadRequest(f"conveyor: the options {', '.join(used)} cannot be combined")
    return policy.extensions[used[0]].parse(options[used[0]]) if used else LIVE


def _tool_names(tools: Any) -> list[str] | None:
    """The names of well-formed tools, or None when the list is malformed (validation says how)."""
    if not isinstance(tools, list):
        return None
    names = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            return None
        names.append(name)
    return names


def _hosted(
    body: dict[str, Any], options: ConveyorOptions, policy: ServerPolicy
) -> frozenset[str] | None:
    """The hosted tools this request may use; None when ``tools`` is malformed."""
    if options.tools is not None:
        missing = [n for n in options.tools if n not in policy.hosted_tools]
        if missing:
            hosted = ", ".join(sorted(policy.hosted_tools)) or "none"
            raise BadRequest(
                f"conveyor.tools: unknown hosted tool(s) {missing} (hosted: {hosted})",
                param="conveyor.tools",
            )
        return frozenset(options.tools)
    if "tools" not in body or body["tools"] is None:
        return frozenset(policy.hosted_tools)
    names = _tool_names(body["tools"])
    return None if names is None else frozenset(n for n in names if n in policy.hosted_tools)


def _prompt_tools(body: dict[str, Any], hosted: frozenset[str], policy: ServerPolicy) -> None:
    """List the hosted tools in ``tools`` (their specs win over a client's of the same name)."""
    client = [t for t in body.get("tools") or [] if t["function"]["name"] not in hosted]
    tools = [policy.hosted_tools[n] for n in sorted(hosted)] + client
    if tools:
        body["tools"] = tools
    forced = body.get("tool_choice") == "required" or isinstance(body.get("tool_choice"), dict)
    if forced and not tools:
        raise BadRequest(
            "tool_choice: forcing a call needs at least one tool, in `tools` or hosted here",
            param="tool_choice",
        )
    if forced:
        # A forced call must be one the tool accepts: its arguments follow its schema.
        body["tools"] = [
            {**t, "function": {"strict": True, **t["function"]}} for t in body["tools"]
        ]


def _check_fields(body: dict[str, Any], request: ChatCompletionRequest) -> None:
    fields = type(request).model_fields
    for name in body:
        if name in REFUSED_OPENAI:
            raise BadRequest(
                f"{name}: not supported ({REFUSED_OPENAI[name]})",
                param=name,
                code="unsupported_parameter",
            )
        if name not in fields and name not in NO_EFFECT:
            raise BadRequest(
                f"{name}: unrecognized request argument", param=name, code="unknown_parameter"
            )
    for name, why in REFUSED.items():
        if name in body and body[name] != fields[name].get_default(call_default_factory=False):
            raise BadRequest(
                f"{name}: not supported by Conveyor ({why})",
                param=name,
                code="unsupported_parameter",
            )


def _check_messages(messages: list[Any]) -> None:
    """Roles, and tool messages that answer calls. An assistant turn may also write its calls
    in its text (as Conveyor's own rounds do, to share the prompt's prefix): the tool messages
    after it cannot be matched to ids then, and are taken as they come."""
    if not messages:
        raise BadRequest("messages: must hold at least one message", param="messages")
    seen: set[str] = set()
    # Calls of the latest assistant turn not yet answered; None: written in its text.
    open_calls: set[str] | None = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise BadRequest(
                f"messages[{i}].role: {role!r} is not one of {', '.join(ROLES)}",
                param=f"messages[{i}].role",
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if open_calls is not None and call_id not in open_calls:
                raise BadRequest(
                    f"messages[{i}]: a tool message must answer a call of the assistant "
                    f"message before it; {call_id!r} is not one (or was answered already)",
                    param=f"messages[{i}].tool_call_id",
                )
            if open_calls is not None:
                open_calls.discard(call_id)
            continue
        calls = message.get("tool_calls") or ()
        open_calls = None if role == "assistant" and not calls else set()
        ids: set[str] = set()
        for j, call in enumerate(calls):
            call_id = call.get("id")
            if call_id in seen:
                raise BadRequest(
                    f"messages[{i}].tool_calls[{j}].id: {call_id!r} is used by another call",
                    param=f"messages[{i}].tool_calls[{j}].id",
                )
            seen.add(call_id)
            ids.add(call_id)
        if calls:
            open_calls = ids


def parse_request(body: Any, policy: ServerPolicy) -> ChatRequest:
    """A validated ``ChatRequest`` from a decoded JSON body, or a 4xx ``ConveyorError``."""
    from vllm.exceptions import VLLMClientError

    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    body = dict(body)
    options, decoding = _options(body, policy)
    model = body.get("model")
    if policy.model_names and model is not None and model not in policy.model_names:
        raise NotFound(
            f"The model `{model}` does not exist (served: {', '.join(policy.model_names)}).",
            param="model",
            code="model_not_found",
        )
    hosted = _hosted(body, options, policy)
    choice = body.get("tool_choice")
    if hosted is not None and choice != "none" and body.get("tools") != []:
        _prompt_tools(body, hosted, policy)
    checked = {k: v for k, v in body.items() if k not in NO_EFFECT}
    try:
        # Strict JSON mode: JSON objects still fill vLLM's dataclasses; no type is coerced.
        request = _request_model().model_validate_json(json.dumps(checked), strict=True)
    except pydantic.ValidationError as error:
        raise validation_error(error, body) from None
    except (ValueError, VLLMClientError) as error:  # vLLM's own checks
        message = error.args[0] if error.args else str(error)
        raise BadRequest(message, param=getattr(error, "parameter", None)) from None
    _check_fields(body, request)
    _check_messages(body["messages"])
    hosted = hosted or frozenset()

    n = request.n or 1
    if not 1 <= n <= policy.max_n:
        raise BadRequest(f"n: must be between 1 and {policy.max_n}", param="n")
    max_rounds = options.max_rounds or policy.max_rounds
    if max_rounds > policy.max_rounds:
        raise BadRequest(
            f"conveyor.max_rounds: {max_rounds} is above this server's cap of "
            f"{policy.max_rounds} (--max-rounds)",
            param="conveyor.max_rounds",
        )
    names = {t.function.name for t in request.tools or ()}
    parse_calls = request.tool_choice != "none"
    return ChatRequest(
        openai=request,
        hosted=hosted if parse_calls else frozenset(),
        client_tools=frozenset(names - hosted) if parse_calls else frozenset(),
        mode=Mode(options.mode or policy.mode),
        max_rounds=max_rounds,
        default_max_tokens=policy.max_tokens,
        parse_calls=parse_calls,
        decoding=decoding,
    )
