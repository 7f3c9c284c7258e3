"""One round of a request, and what happens at its end: pure decisions over the finished turn.

The scheduler decodes a turn and settles its calls; ``end_round`` then decides, from the turn
alone, the finish reason (or that another round follows), what goes back into the prompt, what
the client is shown, how long the request waited on tools after decoding stopped, and how many
tokens an early abort saved. No engine, no sidecar, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.runtime.calls import Call, CallKind, UnitCutter
from conveyor.runtime.decode_policy import RoundDecoding
from conveyor.runtime.timeline import Interval


@dataclass
class Turn:
    """One assistant turn as it is decoded."""

    index: int
    request_id: str
    decoding: RoundDecoding
    units: UnitCutter
    text: str = ""
    content: str = ""
    tokens: int = 0
    finish_reason: str | None = None
    calls: dict[str, Call] = field(default_factory=dict)
    rejected_by: Call | None = None
    still_decoding: bool = True
    decode: Interval = (0.0, 0.0)
    tool_session: str | None = None  # the request's session on the sidecar
    logprobs: list[dict[str, Any]] = field(default_factory=list)  # when the request asked
    unsent_logprobs: list[dict[str, Any]] = field(default_factory=list)  # not yet streamed
    last_delta_at: float = 0.0  # when the latest engine output arrived (time.time())


@dataclass(frozen=True)
class RoundEnd:
    """What the end of a round decides."""

    finish_reason: str | None  # None: another round follows
    client_calls: list[Call]  # for the client to run (then the request finishes)
    prompt: list[dict[str, Any]]  # appended to the conversation for the next round
    shown: list[dict[str, Any]]  # intermediate turn and tool results for the client
    exposed_seconds: float  # waiting on tools after decoding stopped
    tokens_saved: int  # what an early abort left of the round's budget


def end_round(turn: Turn, *, budget: int, next_round_allowed: bool) -> RoundEnd:
    """Decide the end of ``turn``, whose calls are all settled.

    ``budget``: tokens the round would have decoded had no tool aborted it (its ``max_tokens``,
    or a replayed text's length). ``next_round_allowed``: whether ``max_rounds`` and the
    request's decode policy allow one more round.
    """
    decode_end = turn.decode[1]
    client_calls = [c for c in turn.calls.values() if c.kind is CallKind.CLIENT]
    server_calls = [c for c in turn.calls.values() if c.kind is not CallKind.CLIENT]
    tool_messages = [tool_message(call) for call in server_calls]
    # What the client sees also says when each tool worked against the decode.
    shown = [assistant_message(turn)] + [
        {**message, "outcome": call.outcome_label(), "timing": call.timing(decode_end)}
        for message, call in zip(tool_messages, server_calls, strict=True)
    ]
    last_result = max(
        [decode_end]
        + [c.ended_at for c in server_calls if c.kind is CallKind.HOSTED and c.ended_at is not None]
    )
    saved = max(0, budget - turn.tokens) if turn.rejected_by is not None else 0
    finish: str | None = None
    prompt: list[dict[str, Any]] = []
    if client_calls or not tool_messages or not next_round_allowed:
        finish = "tool_calls" if client_calls else turn.finish_reason or "stop"
        if finish == "abort":
            finish = "stop"
    else:
        # The raw turn text goes back verbatim so the next prompt shares its prefix (cache).
        prompt = [{"role": "assistant", "content": turn.text}, *tool_messages]
    return RoundEnd(
        finish_reason=finish,
        client_calls=client_calls,
        prompt=prompt,
        shown=shown if tool_messages else [],
        exposed_seconds=last_result - decode_end,
        tokens_saved=saved,
    )


def tool_message(call: Call) -> dict[str, Any]:
    """A server-side call's result as the model reads it."""
    return {
        "role": "tool",
        "tool_call_id": call.call_id,
        "name": call.name,
        "content": call.result_text(),
    }


def assistant_message(turn: Turn) -> dict[str, Any]:
    """The turn as an OpenAI assistant message with structured ``tool_calls``."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.content or None}
    calls = [c.as_openai() for c in turn.calls.values()]
    if calls:
        message["tool_calls"] = calls
    return message
