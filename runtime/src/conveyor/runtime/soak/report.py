"""The soak's summary and verdict, from the records and the samples of one run. Pure.

The run fails when a request was lost or hung, got a 5xx or an answer its kind does not expect,
when something is still in flight after the run, or when a long-lived server process (API,
engine, sidecar) exited or grew its resident memory by more than ``RSS_GROWTH_LIMIT`` between
the end of the warm-up and the end of the run.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from conveyor.runtime.soak.processes import STEADY_ROLES, ProcessSample, summarize
from conveyor.runtime.soak.traffic import OUTCOMES, Record

RSS_GROWTH_LIMIT = 0.05
LEAK_METRICS = ("conveyor_sidecar_invocations_in_flight", "vllm:num_requests_running")
# Kinds left out of the latency figures: a malformed request is answered before any work, and a
# disconnecting client ends its request itself.
UNTIMED_KINDS = frozenset({"malformed", "disconnect"})
_EXAMPLES = 3


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency(records: list[Record], start: float, end: float) -> dict[str, Any]:
    """p50/p99 of the timed requests that started in ``[start, end)``."""
    seconds = [
        r.seconds
        for r in records
        if start <= r.started < end
        and r.kind not in UNTIMED_KINDS
        and r.outcome in ("ok", "unexpected")
    ]
    p50, p99 = percentile(seconds, 50), percentile(seconds, 99)
    return {
        "count": len(seconds),
        "p50": None if p50 is None else round(p50, 3),
        "p99": None if p99 is None else round(p99, 3),
    }


def rss_growth(warm: list[ProcessSample], end: list[ProcessSample]) -> tuple[dict, list[str]]:
    """Growth of every steady process from the end of the warm-up to the end, and problems."""
    growth: dict[str, float] = {}
    problems: list[str] = []
    at_end = {s.pid: s for s in end}
    for before in warm:
        if before.role not in STEADY_ROLES:
            continue
        label = f"{before.role}:{before.pid}"
        after = at_end.get(before.pid)
        if after is None:
            problems.append(f"{label} exited during the run")
            continue
        growth[label] = round((after.rss - before.rss) / before.rss * 100, 2)
        if after.rss > before.rss * (1 + RSS_GROWTH_LIMIT):
            problems.append(
                f"{label} resident memory grew {growth[label]} % after the warm-up "
                f"(limit {RSS_GROWTH_LIMIT * 100:.0f} %)"
            )
    return growth, problems


def build(
    records: list[Record],
    *,
    settings: dict[str, Any],
    wall_seconds: float,
    skipped: dict[str, str],
    samples: dict[str, list[ProcessSample] | None],
    after_run: dict[str, float | None],
) -> dict[str, Any]:
    """The JSON summary; ``summary["failures"]`` lists what makes the run fail."""
    by_kind = Counter(r.kind for r in records)
    outcomes = Counter(r.outcome for r in records)
    errors: dict[str, dict[str, int]] = {}
    examples: dict[str, list[str]] = {}
    for r in records:
        if r.outcome in ("ok", "disconnected"):
            continue
        errors.setdefault(r.kind, {}).setdefault(r.outcome, 0)
        errors[r.kind][r.outcome] += 1
        shown = examples.setdefault(r.outcome, [])
        if len(shown) < _EXAMPLES:
            shown.append(f"{r.kind}: {r.detail}")

    failures = []
    for outcome in ("lost", "hung", "server_error", "unexpected"):
        if outcomes[outcome]:
            failures.append(f"{outcomes[outcome]} request(s) {outcome.replace('_', ' ')}")
    for name, value in after_run.items():
        if value:  # None (not scraped) is reported, not failed
            failures.append(f"{name} is {value:g} after the run")

    processes: dict[str, Any] = {
        moment: None if found is None else summarize(found) for moment, found in samples.items()
    }
    growth = None
    warm, end = samples.get("after_warmup"), samples.get("end")
    if warm is not None and end is not None:
        growth, problems = rss_growth(warm, end)
        failures += problems
    if not records:
        failures.append("no request completed")

    minute = 60.0
    return {
        "settings": settings,
        "wall_seconds": round(wall_seconds, 1),
        "kinds_skipped": skipped,
        "requests": {"total": len(records), "by_kind": dict(sorted(by_kind.items()))},
        "outcomes": {o: outcomes[o] for o in OUTCOMES},
        "errors_by_kind": errors,
        "error_examples": examples,
        "lost_or_hung": outcomes["lost"] + outcomes["hung"],
        "latency_seconds": {
            "first_minute": latency(records, 0.0, minute),
            "last_minute": latency(records, max(0.0, wall_seconds - minute), math.inf),
            "kinds_not_timed": sorted(UNTIMED_KINDS),
        },
        "processes": processes,
        "rss_growth_after_warmup_percent": growth,
        "after_run": after_run,
        "failures": failures,
        "passed": not failures,
    }
