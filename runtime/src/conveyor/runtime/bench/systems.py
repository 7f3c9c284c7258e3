"""The three systems compared, each as a client that runs one workload request end to end.

- ``conveyor-partial`` / ``conveyor-sequential``: one request to `conveyor serve`; the server
  runs every round and every tool, in the mode the request names.
- ``vllm-client-loop``: the standard agent loop of the ``openai`` client against vLLM's own
  server: each response's ``tool_calls`` run on the sidecar after the response (the calls of
  one response concurrently), the results are appended, and the next request goes out.

Every system's output is forced to the workload's scripted text, so all decode the same tokens.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import openai

from conveyor.runtime.bench.tools import result_text, run_call
from conveyor.runtime.bench.workloads import Workload
from conveyor.runtime.engine import literal_regex
from conveyor.runtime.timeline import total
from conveyor.tools.client import SidecarClient

SYSTEMS = ("conveyor-partial", "conveyor-sequential", "vllm-client-loop")


@dataclass
class RunRecord:
    """One request of one system: its latency and where the time went (seconds)."""

    latency: float
    decode: float
    tool: float
    overlap: float
    exposed: float
    rounds: int
    early_aborts: int = 0
    tokens_saved: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600.0
    )


class ConveyorSystem:
    """`conveyor serve`, in the mode each request names."""

    def __init__(self, base_url: str, model: str) -> None:
        self.client = _client(base_url)
        self.model = model

    async def run(self, workload: Workload, mode: str) -> RunRecord:
        started = time.perf_counter()
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=workload.messages,  # type: ignore[arg-type]
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
        record = RunRecord(
            latency=latency,
            decode=float(usage.get("decode_seconds", 0.0)),
            tool=float(usage.get("tool_busy_seconds", 0.0)),
            overlap=float(usage.get("overlap_seconds", 0.0)),
            exposed=float(usage.get("exposed_seconds", 0.0)),
            rounds=int(usage.get("rounds", 0)),
            early_aborts=int(usage.get("early_aborts", 0)),
            tokens_saved=int(usage.get("tokens_saved", 0)),
        )
        if record.rounds != len(workload.rounds):
            record.error = f"ran {record.rounds} rounds, the workload has {len(workload.rounds)}"
        return record

    async def close(self) -> None:
        await self.client.close()


class ClientLoopSystem:
    """vLLM's OpenAI server plus the client-side agent loop running the tools on the sidecar."""

    def __init__(
        self, base_url: str, model: str, sidecar: SidecarClient, specs: dict[str, dict[str, Any]]
    ) -> None:
        self.client = _client(base_url)
        self.model = model
        self.sidecar = sidecar
        self.specs = specs

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
        error = None
        started = time.perf_counter()
        for index, round_ in enumerate(workload.rounds):
            text = round_.text()
            sent = time.perf_counter()
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                tools=tools,  # type: ignore[arg-type]
                temperature=0.0,
                max_tokens=len(text.encode()) + 2,
                extra_body={
                    "structured_outputs": {"regex": literal_regex(text)},
                    "skip_special_tokens": False,
                },
            )
            answered = time.perf_counter()
            decode += answered - sent
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
            messages.append(message.model_dump(exclude_none=True))
            messages += [
                {"role": "tool", "tool_call_id": c.id, "content": result_text(run.outcome)}
                for c, run in zip(calls, runs, strict=True)
            ]
        latency = time.perf_counter() - started
        return RunRecord(
            latency=latency,
            decode=decode,
            tool=total(busy),
            overlap=0.0,  # by construction: tools run after each response
            exposed=exposed,
            rounds=index + 1,
            error=error,
        )

    async def close(self) -> None:
        await self.client.close()
