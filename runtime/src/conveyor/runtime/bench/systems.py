"""The three systems compared, each as a client that runs one workload request end to end.

- ``conveyor-partial`` / ``conveyor-sequential``: one request to `conveyor serve`; the server
  runs every round and every tool, in the mode the request names, and reports per round when
  decoding ran, its tokens, and when each unit of each call was complete.
- ``vllm-client-loop``: the standard agent loop of the ``openai`` client against vLLM's own
  server: each response's ``tool_calls`` run on the sidecar after the response (the calls of
  one response concurrently), the results are appended, and the next request goes out.

Every system's output is forced to the workload's scripted text with the same length bias
(``tokens``), so all decode the same tokens; every run records them, and its tool outcomes are
checked against the workload's ``expect``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import openai

from conveyor.runtime.bench.tools import run_call
from conveyor.runtime.bench.workloads import Outcome, Workload, expect_errors
from conveyor.runtime.calls import outcome_label, result_text
from conveyor.runtime.engine import literal_regex
from conveyor.runtime.timeline import total
from conveyor.tools.client import SidecarClient

SYSTEMS = ("conveyor-partial", "conveyor-sequential", "vllm-client-loop")


def server_of(system: str) -> str:
    """The server a system runs on: every ``conveyor-*`` mode shares `conveyor serve`."""
    return "conveyor" if system.startswith("conveyor-") else system


@dataclass
class CallRecord:
    """One call of a round; the times (seconds from the round's decode start) are Conveyor's."""

    name: str
    outcome: str
    started: float | None = None  # its name was parsed
    units: list[tuple[float, int]] = field(default_factory=list)  # complete at, tokens by then
    complete: float | None = None  # the whole call was written
    busy: list[tuple[float, float]] = field(default_factory=list)  # the sidecar's timing.busy


@dataclass
class RoundRecord:
    decode: float  # seconds decoding (the peer: the whole response, as its client sees it)
    tokens: int
    aborted: bool = False
    calls: list[CallRecord] = field(default_factory=list)


@dataclass
class RunRecord:
    """One request of one system: its latency, where the time went (seconds), its tokens."""

    latency: float
    decode: float
    tool: float
    overlap: float
    exposed: float
    rounds: int
    completion_tokens: int
    early_aborts: int = 0
    error: str | None = None
    round_log: list[RoundRecord] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return _rounded(asdict(self))


Runner = Callable[[Workload], Awaitable[RunRecord]]


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600.0
    )


def _check(record: RunRecord, workload: Workload, outcomes: list[list[Outcome]]) -> RunRecord:
    if record.error is None and record.rounds != len(workload.rounds):
        record.error = f"ran {record.rounds} rounds, the workload has {len(workload.rounds)}"
    if record.error is None:
        problems = expect_errors(workload, outcomes)
        if problems:
            record.error = "expect: " + "; ".join(problems)
    return record


def _conveyor_rounds(
    usage: dict[str, Any], messages: list[dict[str, Any]]
) -> tuple[list[RoundRecord], list[list[Outcome]]]:
    """Per round: the server's decode span, tokens, abort, and each call's unit times."""
    rounds = []
    for log in usage.get("round_log", []):
        start, end = log["decode"]
        rounds.append(RoundRecord(end - start, int(log["tokens"]), bool(log["aborted"])))
    outcomes: list[list[Outcome]] = []
    index = -1
    for message in messages:
        if message.get("role") == "assistant":
            index += 1
            outcomes.append([])
            continue
        timing = message.get("timing") or {}
        outcomes[index].append((message.get("outcome", "ok"), message.get("content") or ""))
        if index >= len(rounds):
            continue
        start = usage["round_log"][index]["decode"][0]
        complete = timing.get("call_complete")
        rounds[index].calls.append(
            CallRecord(
                message.get("name", ""),
                message.get("outcome", "ok"),
                timing["call_started"] - start,
                [(at - start, tokens) for at, tokens in timing.get("units", [])],
                None if complete is None else complete - start,
                [(float(a), float(b)) for a, b in timing.get("busy", [])],
            )
        )
    return rounds, outcomes


class ConveyorSystem:
    """`conveyor serve`, in the mode each request names."""

    def __init__(self, base_url: str, model: str) -> None:
        self.client = _client(base_url)
        self.model = model

    async def run(self, workload: Workload, mode: str) -> RunRecord:
        started = time.perf_counter()
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=workload.messages,  # type: ignore[arg-type]  # plain dicts, as sent
            temperature=0.0,
            extra_body={
                "conveyor": {
                    "mode": mode,
                    "replay": workload.texts(),
                    "tools": list(workload.tools),
                }
            },
        )
        latency = time.perf_counter() - started
        usage = (response.usage.model_extra or {}).get("conveyor", {}) if response.usage else {}
        extra = response.model_extra or {}
        rounds, outcomes = _conveyor_rounds(
            usage, (extra.get("conveyor") or {}).get("messages", [])
        )
        record = RunRecord(
            latency=latency,
            decode=float(usage.get("decode_seconds", 0.0)),
            tool=float(usage.get("tool_busy_seconds", 0.0)),
            overlap=float(usage.get("overlap_seconds", 0.0)),
            exposed=float(usage.get("exposed_seconds", 0.0)),
            rounds=int(usage.get("rounds", 0)),
            completion_tokens=response.usage.completion_tokens if response.usage else 0,
            early_aborts=int(usage.get("early_aborts", 0)),
            round_log=rounds,
        )
        return _check(record, workload, outcomes)

    async def close(self) -> None:
        await self.client.close()


class ClientLoopSystem:
    """vLLM's OpenAI server plus the client-side agent loop running the tools on the sidecar."""

    def __init__(
        self,
        base_url: str,
        model: str,
        sidecar: SidecarClient,
        specs: dict[str, dict[str, Any]],
        logit_bias: dict[str, float],
    ) -> None:
        self.client = _client(base_url)
        self.model = model
        self.sidecar = sidecar
        self.specs = specs
        self.logit_bias = logit_bias

    def _tools(self, workload: Workload) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in self.specs[name].items() if k != "x-conveyor"}
            for name in workload.tools
        ]

    async def run(self, workload: Workload, mode: str = "") -> RunRecord:
        messages: list[dict[str, Any]] = list(workload.messages)
        tools = self._tools(workload)
        decode = exposed = 0.0
        busy: list[tuple[float, float]] = []
        rounds: list[RoundRecord] = []
        outcomes: list[list[Outcome]] = []
        error = None
        started = time.perf_counter()
        for index, round_ in enumerate(workload.rounds):
            text = round_.text()
            sent = time.perf_counter()
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]  # plain dicts, as sent
                tools=tools or openai.NOT_GIVEN,  # type: ignore[arg-type]  # plain dicts
                temperature=0.0,
                max_tokens=len(text.encode()) + 2,
                logit_bias=self.logit_bias,
                extra_body={
                    "structured_outputs": {"regex": literal_regex(text)},
                    "skip_special_tokens": False,
                },
            )
            answered = time.perf_counter()
            decode += answered - sent
            tokens = response.usage.completion_tokens if response.usage else 0
            rounds.append(RoundRecord(answered - sent, tokens))
            message = response.choices[0].message
            calls = message.tool_calls or []
            if [c.function.name for c in calls] != [c.name for c in round_.calls]:
                error = (
                    f"round {index}: vLLM parsed {len(calls)} call(s), expected {len(round_.calls)}"
                )
                break
            if not calls:
                break
            runs = await asyncio.gather(
                *(
                    run_call(self.sidecar, self.specs, c.function.name, c.function.arguments)
                    for c in calls
                )
            )
            exposed += time.perf_counter() - answered
            for run in runs:
                busy += run.busy
            outcomes.append([(outcome_label(r.outcome), result_text(r.outcome)) for r in runs])
            rounds[-1].calls = [
                CallRecord(c.function.name, o, busy=r.busy)
                for c, (o, _), r in zip(calls, outcomes[-1], runs, strict=True)
            ]
            messages.append(message.model_dump(exclude_none=True))
            messages += [
                {"role": "tool", "tool_call_id": c.id, "content": result_text(run.outcome)}
                for c, run in zip(calls, runs, strict=True)
            ]
        latency = time.perf_counter() - started
        record = RunRecord(
            latency=latency,
            decode=decode,
            tool=total(busy),
            overlap=0.0,  # by construction: tools run after each response
            exposed=exposed,
            rounds=len(rounds),
            completion_tokens=sum(r.tokens for r in rounds),
            error=error,
            round_log=rounds,
        )
        return _check(record, workload, outcomes)

    async def close(self) -> None:
        await self.client.close()
