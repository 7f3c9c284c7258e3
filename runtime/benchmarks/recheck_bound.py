"""Recompute every repetition's ideal bound of a ``bench.json`` with the current bound code.

The JSON keeps every run's per-round record and, per repetition, the jobs of its bound with the
tool time each used; this rebuilds the tool times from those jobs, recomputes the bound from the
runs, and lists every system that is faster than it. Used on the published full run after the
bound learnt to take each unit's earliest arrival among the repetition's runs.

    .venv/bin/python runtime/benchmarks/recheck_bound.py docs/results/bench-4e04471.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from conveyor.runtime.bench.arrivals import CallDurations
from conveyor.runtime.bench.bound import repetition_bound, shortest_decode
from conveyor.runtime.bench.systems import CallRecord, RoundRecord, RunRecord
from conveyor.runtime.bench.workloads import Round, load_all
from conveyor.tools import default_registry


def _run(raw: dict[str, Any]) -> RunRecord:
    rounds = [
        RoundRecord(
            r["decode"], r["tokens"], r["aborted"],
            [CallRecord(c["name"], c["outcome"], c["started"], [tuple(u) for u in c["units"]],
                        c["complete"], [tuple(b) for b in c["busy"]]) for c in r["calls"]],
        )
        for r in raw["round_log"]
    ]  # fmt: skip
    return RunRecord(
        raw["latency"], 0, 0, 0, 0, raw["rounds"], raw["completion_tokens"], round_log=rounds
    )


def _durations(jobs: list[dict[str, Any]], round_: Round) -> list[CallDurations]:
    """A round's tool times from its bound's jobs: per call, start, units, finish (in order)."""
    row, k = [], 0
    for call in round_.calls:
        start, units, rejected, finish = jobs[k]["duration"], [], None, 0.0
        k += 1
        while k < len(jobs) and jobs[k]["label"].startswith(f"{call.name} unit "):
            rejected = len(units) if jobs[k]["rejects"] else rejected
            units.append(jobs[k]["duration"])
            k += 1
        if k < len(jobs) and jobs[k]["label"] == f"{call.name} finish":
            finish = jobs[k]["duration"]
            k += 1
        row.append(CallDurations(start, tuple(units), finish, rejected))
    return row


def main(path: str) -> int:
    specs = {s["function"]["name"]: s for s in default_registry().specs()}
    result = json.loads(open(path).read())
    broken = checked = 0
    for name, w in result["workloads"].items():
        (workload,), _ = load_all([name])
        for i, bound in enumerate(w["bound"]["reps"]):
            if bound is None:
                continue
            durations = [
                _durations(r["jobs"], rd)
                for r, rd in zip(bound["rounds"], workload.rounds, strict=True)
            ]
            runs = {
                s: _run(d["runs"][i]) for s, d in w["systems"].items() if not d["runs"][i]["error"]
            }
            sequential = runs.pop("conveyor-sequential")
            decode = shortest_decode(
                {**runs, "conveyor-sequential": sequential}, len(workload.rounds)
            )
            ideal = repetition_bound(
                workload, sequential, decode, durations, specs, list(runs.values())
            )
            checked += 1
            for system, run in [*runs.items(), ("conveyor-sequential", sequential)]:
                if run.latency < ideal.latency:
                    broken += 1
                    print(
                        f"{name} rep {i}: {system} {run.latency:.3f} s "
                        f"< ideal {ideal.latency:.3f} s"
                    )
    print(f"{checked} repetitions recomputed, {broken} below their ideal")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
