"""A real model answering prompts in-process, with a record of what it wrote and when.

Used by ``conveyor demo`` and ``conveyor bench --live``: one engine, an embedded sidecar that
hosts the python tool, and the scheduler with the ``code`` format (fenced python blocks), as
``conveyor serve`` runs them, minus HTTP. Every decoded delta is recorded with its arrival time,
so a caller can print the text as it streams and say when each statement of a call was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.runtime.chat_request import Mode, ServerPolicy, parse_request
from conveyor.runtime.completion import Completion
from conveyor.runtime.cores import split_cores
from conveyor.runtime.engine import Delta, Engine, EngineOptions
from conveyor.runtime.events import Event
from conveyor.runtime.scheduler import Scheduler
from conveyor.runtime.sidecar_process import EmbeddedSidecar
from conveyor.tools.client import SidecarClient
from conveyor.tools.parsing import ArgumentsDelta, CallStarted, ToolCallStream
from conveyor.tools.units import Statement, segmenter_from_spec

PARSER = "code"
TOOL = "python"


@dataclass
class Round:
    """One assistant turn exactly as decoded: its text, token count and delta arrival times."""

    text: str = ""
    tokens: int = 0
    deltas: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class Answer:
    """A finished request: the scheduler's result and the raw rounds behind it."""

    prompt: str
    started: float  # time.time(), the clock of every other timestamp
    finished: float
    completion: Completion
    rounds: list[Round]


class _RecordingEngine:
    """The engine as the scheduler uses it; every delta is also recorded (and shown)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.rounds: list[Round] = []
        self.on_text: Callable[[str], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def stream(
        self, prompt_ids: list[int], params: Any, request_id: str
    ) -> AsyncIterator[Delta]:
        record = Round()
        self.rounds.append(record)
        async with contextlib.aclosing(
            self._engine.stream(prompt_ids, params, request_id)
        ) as deltas:
            async for delta in deltas:
                record.text += delta.text
                record.tokens += delta.tokens
                record.deltas.append((delta.at, delta.text))
                if self.on_text is not None and delta.text:
                    self.on_text(delta.text)
                yield delta


class LiveModel:
    """A started engine and sidecar; ``ask`` runs one request at a time."""

    def __init__(
        self,
        engine: Engine,
        sidecar: SidecarClient,
        embedded: EmbeddedSidecar,
        specs: dict[str, dict[str, Any]],
    ) -> None:
        self.engine = engine
        self.sidecar = sidecar
        self.embedded = embedded
        self.specs = specs
        self._recorder = _RecordingEngine(engine)
        self._scheduler = Scheduler(self._recorder, sidecar, specs, parser=PARSER)  # type: ignore[arg-type]
        public = {
            name: {k: v for k, v in s.items() if k != "x-conveyor"} for name, s in specs.items()
        }
        self._policy = ServerPolicy(hosted_tools=public)
        self._lock = asyncio.Lock()
        self.engine_start_seconds = 0.0

    @classmethod
    async def start(cls, model: str, *, max_model_len: int = 4096) -> LiveModel:
        cpus = split_cores(None)  # engine threads and the tools on different cores
        embedded = EmbeddedSidecar(cpus=cpus)
        try:
            started = time.perf_counter()
            engine = await asyncio.to_thread(
                Engine.start, EngineOptions(model=model, max_model_len=max_model_len)
            )
            engine_seconds = time.perf_counter() - started
            await asyncio.to_thread(embedded.wait_ready)
            sidecar = SidecarClient(embedded.url)
            await sidecar.connect()
            specs = {s["function"]["name"]: s for s in await sidecar.tools()}
        except BaseException:
            embedded.stop()
            raise
        if TOOL not in specs:
            await sidecar.close()
            embedded.stop()
            engine.shutdown()
            raise RuntimeError(f"the embedded sidecar does not host the {TOOL} tool")
        live = cls(engine, sidecar, embedded, {TOOL: specs[TOOL]})
        live.engine_start_seconds = engine_seconds
        return live

    async def ask(
        self,
        prompt: str,
        *,
        mode: Mode = Mode.PARTIAL,
        max_tokens: int = 200,
        max_rounds: int = 2,
        on_text: Callable[[str], None] | None = None,
        on_event: Callable[[Event], Any] | None = None,
    ) -> Answer:
        """Answer ``prompt`` greedily (temperature 0) with the python tool available."""
        body = {
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": max_tokens,
            "conveyor": {"mode": mode.value, "max_rounds": max_rounds, "tools": [TOOL]},
        }
        plan = parse_request(body, self._policy)

        async def emit(event: Event) -> None:
            if on_event is not None:
                on_event(event)

        async with self._lock:
            self._recorder.rounds = []
            self._recorder.on_text = on_text
            started = time.time()
            try:
                completion = await self._scheduler.run(plan, f"live-{uuid.uuid4().hex}", emit)
            finally:
                self._recorder.on_text = None
            return Answer(prompt, started, time.time(), completion, self._recorder.rounds)

    async def stop(self) -> None:
        await self.sidecar.close()
        self.embedded.stop()
        self.engine.shutdown()

    def statements_written(self, answer: Answer) -> list[list[tuple[float, str]]]:
        """For each python call of the request, in order, when each statement was complete.

        The text is parsed again as the scheduler parsed it, delta by delta, so a statement's
        time is that of the delta that completed it: the moment partial execution can send it.
        """
        spec = self.specs[TOOL]["x-conveyor"]["segmenter"]
        calls: list[list[tuple[float, str]]] = []
        for record in answer.rounds:
            calls += _StatementTimes(spec).of(record, answer.started)
        return calls


class _StatementTimes:
    """The python calls of one round, each as (time complete, code) per statement."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        self._segmenters: dict[str, Any] = {}
        self._found: dict[str, list[tuple[float, str]]] = {}

    def of(self, record: Round, started: float) -> list[list[tuple[float, str]]]:
        stream = ToolCallStream(PARSER)
        for at, text in record.deltas:
            self._take(at, stream.feed(text))
        last = record.deltas[-1][0] if record.deltas else started
        self._take(last, stream.close())
        for call_id, segmenter in self._segmenters.items():
            self._add(call_id, last, segmenter.close())
        return list(self._found.values())

    def _take(self, at: float, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, CallStarted) and event.name == TOOL:
                self._segmenters[event.call_id] = segmenter_from_spec(self._spec)
                self._found[event.call_id] = []
            elif isinstance(event, ArgumentsDelta) and event.call_id in self._segmenters:
                self._add(event.call_id, at, self._segmenters[event.call_id].feed(event.text))

    def _add(self, call_id: str, at: float, units: list[Any]) -> None:
        self._found[call_id] += [(at, u.code) for u in units if isinstance(u, Statement)]
