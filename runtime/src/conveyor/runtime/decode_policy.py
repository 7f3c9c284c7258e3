"""The hook through which an extension steers how the rounds of a request decode.

By default every round decodes live: the model writes what it will, up to ``max_tokens``. An
extension registered with the server (the benchmark's and the tests' replay,
``conveyor.runtime.replay``) reads its own option from the request's ``conveyor`` object and
returns a ``DecodePolicy``; before each round the scheduler asks it how that round decodes and
whether the round may run at all. Nothing in the request path knows which extensions exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RoundDecoding:
    """How one round decodes."""

    force: str | None = None  # the engine emits exactly this text (structured outputs)
    token_bias: dict[int, float] | None = None  # logit bias by token id
    # What the round would decode if no tool aborted it, in tokens; None: the request's
    # max_tokens. An early abort counts the rest of it as ``tokens_saved``.
    budget: int | None = None


LIVE_ROUND = RoundDecoding()


class DecodePolicy(Protocol):
    """Per request: how each round decodes, and how many rounds there may be."""

    def round(self, index: int) -> RoundDecoding: ...

    def allows(self, index: int) -> bool:
        """Whether round ``index`` (from 0) may run; ``max_rounds`` applies as well."""
        ...


class LiveDecoding:
    """The default: every round decodes live, as many as ``max_rounds`` allows."""

    def round(self, index: int) -> RoundDecoding:
        return LIVE_ROUND

    def allows(self, index: int) -> bool:
        return True


LIVE = LiveDecoding()


class RequestExtension(Protocol):
    """A request option, ``conveyor.<key>``, handled by an extension that the server registered
    under that key (``ServerPolicy.extensions``)."""

    def parse(self, value: object) -> DecodePolicy:
        """The request's policy from the option's value; raises ``BadRequest`` on bad input."""
        ...
