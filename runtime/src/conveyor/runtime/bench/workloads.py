"""Benchmark workloads: a conversation, its tools, and the scripted assistant text of each round.

A workload file (``workloads/<name>.yaml`` shipped in the package, or any ``*.yaml`` of
``--workloads-dir``) gives the messages, the hosted tools the request enables, and every
assistant round as parts: plain text, or a tool call whose arguments are written in the given
key order. ``Round.text`` renders a round in the hermes format exactly as the model writes it;
the benchmark forces the real engine to emit that text, so decoding costs what it really costs.
``expect`` says what each call's tool result must contain, or that the tool must refuse it;
every run is checked against it (``expect_errors``), and every call not listed must succeed.
``unfavourable`` names what makes a workload a poor case for partial execution (reported apart).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from conveyor.tools.parsing import CallFinished, CallMalformed, CallStarted, parse_all

KNOWN_TOOLS = frozenset({"python", "sqlite", "search", "calculator", "planner"})


_KEYS = {
    "name", "summary", "tools", "messages", "rounds", "expect", "overlap", "emulated", "tags",
    "unfavourable",
}  # fmt: skip


class WorkloadError(ValueError):
    """A workload file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any]

    def render(self) -> str:
        payload = json.dumps({"name": self.name, "arguments": self.arguments}, ensure_ascii=False)
        return f"<tool_call>\n{payload}\n</tool_call>"


@dataclass(frozen=True)
class Round:
    parts: tuple[str | Call, ...]

    @property
    def calls(self) -> list[Call]:
        return [p for p in self.parts if isinstance(p, Call)]

    def text(self) -> str:
        return "".join(p.render() if isinstance(p, Call) else p for p in self.parts)


@dataclass(frozen=True)
class Expect:
    round: int
    call: int
    contains: tuple[str, ...]
    rejected: bool = False  # the tool must refuse the call (early abort workloads)


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    tools: tuple[str, ...]
    messages: list[dict[str, Any]]
    rounds: tuple[Round, ...]
    expect: tuple[Expect, ...] = ()
    overlap: bool = True  # False: partial execution can gain nothing (must lose nothing)
    emulated: str | None = None  # what is emulated rather than real, said in every output
    tags: tuple[str, ...] = field(default_factory=tuple)
    unfavourable: str | None = None  # why partial execution can gain little here
    source: str = "shipped"  # or the file it was read from

    def texts(self) -> list[str]:
        return [r.text() for r in self.rounds]

    def plain(self) -> Workload:
        """The same conversation answered with the final text alone: no tool, one round."""
        return replace(
            self, name=f"{self.name}-plain", tools=(), rounds=self.rounds[-1:], expect=()
        )


# A call's outcome as a system saw it: (``ok`` | ``error`` | ``rejected`` | ..., result text).
Outcome = tuple[str, str]


def expect_errors(workload: Workload, outcomes: Sequence[Sequence[Outcome]]) -> list[str]:
    """What in a run's tool outcomes (per round, per call) breaks the workload's ``expect``."""
    wanted = {(e.round, e.call): e for e in workload.expect}
    errors = []
    for r, round_ in enumerate(workload.rounds[:-1]):
        got = list(outcomes[r]) if r < len(outcomes) else []
        if len(got) != len(round_.calls):
            errors.append(f"round {r}: {len(got)} tool result(s), expected {len(round_.calls)}")
            continue
        for c, (label, text) in enumerate(got):
            e = wanted.get((r, c))
            want = "rejected" if e is not None and e.rejected else "ok"
            if label != want:
                errors.append(f"round {r} call {c}: {label}, expected {want}: {text[:200]!r}")
            for piece in e.contains if e is not None else ():
                if piece not in text:
                    errors.append(f"round {r} call {c}: result lacks {piece!r}")
    return errors


def _part(raw: Any, where: str) -> str | Call:
    if isinstance(raw, dict) and set(raw) == {"text"} and isinstance(raw["text"], str):
        return raw["text"]
    if isinstance(raw, dict) and set(raw) == {"call"} and isinstance(raw["call"], dict):
        call = raw["call"]
        if not isinstance(call.get("name"), str) or not isinstance(call.get("arguments"), dict):
            raise WorkloadError(f"{where}.call: needs a name and an arguments mapping")
        return Call(call["name"], dict(call["arguments"]))
    raise WorkloadError(f"{where}: expected {{text: ...}} or {{call: {{name, arguments}}}}")


def parse_workload(raw: Any, source: str) -> Workload:
    """Build and check a workload from a parsed YAML document."""
    if not isinstance(raw, dict):
        raise WorkloadError(f"{source}: expected a mapping")
    for key in ("name", "summary", "tools", "messages", "rounds"):
        if key not in raw:
            raise WorkloadError(f"{source}: missing key {key!r}")
    unknown_keys = set(raw) - _KEYS
    if unknown_keys:
        raise WorkloadError(f"{source}: unknown key(s) {sorted(unknown_keys)}")
    tools = tuple(raw["tools"])
    unknown = set(tools) - KNOWN_TOOLS
    if unknown:
        raise WorkloadError(f"{source}.tools: unknown tool(s) {sorted(unknown)}")
    rounds = tuple(
        Round(tuple(_part(p, f"{source}.rounds[{i}][{j}]") for j, p in enumerate(parts)))
        for i, parts in enumerate(raw["rounds"])
    )
    expect = tuple(
        Expect(
            int(e["round"]), int(e["call"]), tuple(e.get("contains", ())), e.get("rejected", False)
        )
        for e in raw.get("expect", ())
    )
    workload = Workload(
        name=str(raw["name"]),
        summary=str(raw["summary"]),
        tools=tools,
        messages=list(raw["messages"]),
        rounds=rounds,
        expect=expect,
        overlap=bool(raw.get("overlap", True)),
        emulated=raw.get("emulated"),
        tags=tuple(raw.get("tags", ())),
        unfavourable=raw.get("unfavourable"),
    )
    check(workload, source)
    return workload


def check(workload: Workload, source: str) -> None:
    """Every round but the last calls hosted tools; each rendered round parses back to its calls."""
    if not workload.rounds:
        raise WorkloadError(f"{source}.rounds: at least one round")
    for i, round_ in enumerate(workload.rounds):
        last = i == len(workload.rounds) - 1
        if bool(round_.calls) == last:
            raise WorkloadError(
                f"{source}.rounds[{i}]: the last round is plain text, every other one calls a tool"
            )
        for call in round_.calls:
            if call.name not in workload.tools:
                raise WorkloadError(f"{source}.rounds[{i}]: {call.name!r} is not in tools")
        events = parse_all("hermes", round_.text())
        errors = [e for e in events if isinstance(e, CallMalformed)]
        if errors:
            raise WorkloadError(f"{source}.rounds[{i}]: does not parse: {errors[0].message}")
        started = [e.name for e in events if isinstance(e, CallStarted)]
        finished = [e.arguments for e in events if isinstance(e, CallFinished)]
        if started != [c.name for c in round_.calls] or finished != [
            c.arguments for c in round_.calls
        ]:
            raise WorkloadError(f"{source}.rounds[{i}]: parses to other calls than written")
    for e in workload.expect:
        if e.round >= len(workload.rounds) or e.call >= len(workload.rounds[e.round].calls):
            raise WorkloadError(f"{source}.expect: no call {e.call} in round {e.round}")


def workload_names() -> list[str]:
    files = resources.files("conveyor.runtime.bench") / "workloads"
    return sorted(p.name[: -len(".yaml")] for p in files.iterdir() if p.name.endswith(".yaml"))


def _read(text: str, source: str) -> Workload:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise WorkloadError(f"{source}: not YAML: {error}") from None
    return parse_workload(raw, source)


def load(name: str) -> Workload:
    path = resources.files("conveyor.runtime.bench") / "workloads" / f"{name}.yaml"
    if not path.is_file():
        raise WorkloadError(f"no workload {name!r} (known: {', '.join(workload_names())})")
    return _read(path.read_text(), f"{name}.yaml")


def load_dir(directory: Path) -> dict[str, Workload]:
    """Every ``*.yaml`` of a directory, by workload name."""
    if not directory.is_dir():
        raise WorkloadError(f"--workloads-dir {directory}: not a directory")
    found: dict[str, Workload] = {}
    for path in sorted(directory.glob("*.yaml")):
        workload = replace(_read(path.read_text(), str(path)), source=str(path))
        if workload.name in found:
            raise WorkloadError(
                f"{path}: workload {workload.name!r} is also in {found[workload.name].source}"
            )
        found[workload.name] = workload
    if not found:
        raise WorkloadError(f"--workloads-dir {directory}: no *.yaml file")
    return found


# The order of the paper's six, then the multi-call and multi-round ones.
ORDER = ("codegen", "search", "planning", "validation", "sqlite", "calculator")


def _order(name: str) -> tuple[int, str]:
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def load_all(
    names: list[str] | None = None, directory: Path | None = None
) -> tuple[list[Workload], list[str]]:
    """The chosen workloads (default: every shipped one, and every one of ``directory``).

    A workload of ``directory`` replaces a shipped one of the same name; the notes say so.
    """
    external = load_dir(directory) if directory is not None else {}
    shipped = workload_names()
    if names is None:
        names = sorted(set(shipped) | set(external), key=_order)
    chosen, notes = [], []
    for name in names:
        if name in external:
            chosen.append(external[name])
            if name in shipped:
                notes.append(f"{name}: from {external[name].source}, replacing the shipped one")
        else:
            chosen.append(load(name))
    return chosen, notes
