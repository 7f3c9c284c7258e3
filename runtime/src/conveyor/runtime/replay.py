"""Replay: an extension that makes the real engine decode scripted assistant turns.

The tiny test model has random weights; the tests and the benchmark need turns with exact text
that still cost real decode steps. A server started with ``--allow-replay`` registers
``ReplayExtension``; a request then carries ``"conveyor": {"replay": [text, ...]}``, one text
per round, and round ``i`` decodes exactly ``text[i]`` (structured outputs), biased so that it
is cut into the same tokens whatever the prompt. The request has at most one round per text.

Public API: ``OPTION``, ``parse_replay`` (pure validation), ``longest_match_bias``,
``ReplayExtension`` (registered with the server) and ``ReplayedTurns`` (one request's policy).
"""

from __future__ import annotations

import functools
from typing import Protocol

from conveyor.runtime.decode_policy import RoundDecoding
from conveyor.runtime.errors import BadRequest

OPTION = "replay"

# Per character of a token: well above the tiny model's logits (|logit| < 1); capped at the ±100
# that vLLM's API accepts for logit_bias.
BIAS_PER_CHAR = 4.0


class Tokenizer(Protocol):
    """What replay needs of a Hugging Face tokenizer (``Engine.tokenizer``)."""

    def __len__(self) -> int: ...

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]: ...

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


def parse_replay(value: object) -> tuple[str, ...]:
    """The texts of ``conveyor.replay``; ``BadRequest`` unless a non-empty list of strings."""
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise BadRequest(f"conveyor.{OPTION}: must be a non-empty list of strings")
    return tuple(value)


def longest_match_bias(tokenizer: Tokenizer) -> dict[int, float]:
    """A logit bias that makes a forced text decode as its longest-match tokenization.

    Structured outputs fix the characters, not the tokens: the model picks among every
    tokenization of the text, and a random model picks differently for every prompt, so the
    same replayed turn would cost a different number of decode steps in each system compared.
    Biasing each token by its length makes the longest allowed token win, which is close to how
    a trained model writes the text, and the same whatever the prompt.
    """
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return {i: min(100.0, BIAS_PER_CHAR * len(t or "")) for i, t in enumerate(tokens)}


class ReplayedTurns:
    """One request's policy: round ``i`` decodes exactly ``texts[i]``; no round past the last."""

    def __init__(self, texts: tuple[str, ...], tokenizer: Tokenizer, bias: dict[int, float]):
        self.texts = texts
        self._tokenizer = tokenizer
        self._bias = bias

    def round(self, index: int) -> RoundDecoding:
        text = self.texts[index]
        # Unaborted, the round would decode the whole text: its tokens are the budget.
        budget = len(self._tokenizer.encode(text, add_special_tokens=False))
        return RoundDecoding(force=text, token_bias=self._bias, budget=budget)

    def allows(self, index: int) -> bool:
        return index < len(self.texts)


class ReplayExtension:
    """The ``conveyor.replay`` option, for a server whose engine uses ``tokenizer``."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    @functools.cached_property
    def _bias(self) -> dict[int, float]:
        return longest_match_bias(self._tokenizer)

    def parse(self, value: object) -> ReplayedTurns:
        return ReplayedTurns(parse_replay(value), self._tokenizer, self._bias)
