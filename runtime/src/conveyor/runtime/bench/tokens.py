"""Same tokens for every system: the peer's logit bias, and the check on ``completion_tokens``.

Conveyor's replayed turns decode with a length bias (``replay.longest_match_bias``) that makes
the forced text come out as its longest-match tokenization whatever the prompt; vLLM's own
server gets the very same bias through the API's ``logit_bias``. Every run records its tokens
per round, and ``agreement`` checks them: a round decoded to its end must have the same count
in every run of every system; a round cut short by an early abort may only have fewer, and the
rest is reported as not decoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.runtime.replay import longest_match_bias


def peer_logit_bias(model: str) -> dict[str, float]:
    """``logit_bias`` for vLLM's OpenAI API: the bias `conveyor serve` applies to replays."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    return {str(i): bias for i, bias in longest_match_bias(tokenizer).items() if bias}


@dataclass(frozen=True)
class RoundTokens:
    tokens: int
    aborted: bool  # decoding was stopped early by a reject


@dataclass
class Agreement:
    planned: list[int | None]  # per round: the tokens of the whole forced text (None: unknown)
    errors: list[str] = field(default_factory=list)
    # Per system, per run: tokens of the planned text that an early abort left undecoded.
    not_decoded: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "errors": self.errors, "not_decoded": self.not_decoded}


def agreement(runs: Mapping[str, Sequence[Sequence[RoundTokens]]], rounds: int) -> Agreement:
    """Check per-round token counts of every run (``runs[system][run][round]``)."""
    planned: list[int | None] = []
    errors: list[str] = []
    for r in range(rounds):
        full = {
            (system, i, run[r].tokens)
            for system, system_runs in runs.items()
            for i, run in enumerate(system_runs)
            if r < len(run) and not run[r].aborted
        }
        counts = sorted({tokens for _, _, tokens in full})
        if len(counts) > 1:
            seen = ", ".join(
                f"{s} run {i}: {t}" for s, i, t in sorted(full, key=lambda x: (x[2], x[0], x[1]))
            )
            errors.append(f"round {r}: systems decoded different token counts ({seen})")
        planned.append(counts[-1] if counts else None)
    not_decoded: dict[str, list[int]] = {}
    for system, system_runs in runs.items():
        for i, run in enumerate(system_runs):
            missing = 0
            for r, got in enumerate(run):
                want = planned[r] if r < len(planned) else None
                if not got.aborted or want is None:
                    continue
                if got.tokens > want:
                    errors.append(
                        f"round {r}: {system} run {i} decoded {got.tokens} tokens after an early "
                        f"abort, more than the {want} of the whole text"
                    )
                missing += max(0, want - got.tokens)
            not_decoded.setdefault(system, []).append(missing)
    return Agreement(planned, errors, not_decoded)
