"""OpenAI ``logprobs.content`` entries from vLLM's per-token logprobs, as vLLM's server makes them.

Pure, apart from the ``decode`` callable used for a token that has no decoded text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

_FLOOR = -9999.0  # what vLLM's server reports for -inf (JSON has no infinity)


class Logprob(Protocol):
    logprob: float
    decoded_token: str | None


def _entry(token: str, logprob: float | None) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": _FLOOR if logprob is None else max(logprob, _FLOOR),
        "bytes": list(token.encode("utf-8", errors="replace")),
    }


def _text(logprob: Logprob, token_id: int, decode: Callable[[list[int]], str]) -> str:
    return logprob.decoded_token if logprob.decoded_token is not None else decode([token_id])


def entries(
    token_ids: Sequence[int],
    steps: Sequence[Mapping[int, Logprob] | None],
    top: int,
    decode: Callable[[list[int]], str],
) -> list[dict[str, Any]]:
    """One entry per sampled token, with up to ``top`` alternatives (-1: all vLLM returned)."""
    out = []
    for token_id, step in zip(token_ids, steps, strict=True):
        chosen = step.get(token_id) if step else None
        if chosen is None:
            out.append({**_entry(decode([token_id]), None), "top_logprobs": []})
            continue
        alternatives = [
            _entry(_text(lp, tid, decode), lp.logprob)
            for i, (tid, lp) in enumerate(step.items())  # type: ignore[union-attr]
            if top == -1 or i < top
        ]
        entry = _entry(_text(chosen, token_id, decode), chosen.logprob)
        if chosen.decoded_token is None:
            entry["bytes"] = None
        out.append({**entry, "top_logprobs": alternatives})
    return out
