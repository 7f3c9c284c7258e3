"""What a finished request returns: the answer, the calls for the client, usage and timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.runtime.calls import Call
from conveyor.runtime.chat_request import Mode


@dataclass
class Timing:
    """Per-request timing, reported in ``usage.conveyor``."""

    decode_seconds: float = 0.0
    tool_busy_seconds: float = 0.0
    overlap_seconds: float = 0.0
    exposed_seconds: float = 0.0
    rounds: int = 0
    early_aborts: int = 0
    tokens_saved: int = 0
    tool_chars_cut: int = 0  # tool results cut to fit the context
    # Per round: decoding's start and end (server clock), its tokens, whether it was aborted.
    round_log: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in vars(self).items()}


@dataclass
class Completion:
    """What a finished request returns."""

    content: str
    client_calls: list[Call]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    messages: list[dict[str, Any]]  # intermediate assistant turns and tool results
    timing: Timing
    mode: Mode
    logprobs: list[dict[str, Any]] | None = None  # every decoded token, when asked for
