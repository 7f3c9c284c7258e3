"""The shared harness: replay a reply's text in chunks and compare the events.

Text and ArgumentsDelta pieces depend on where the chunks fall, so events are compared
after merging neighbouring pieces; everything else must be identical for any chunking.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.tools.parsing import (
    ArgumentsDelta,
    CallFinished,
    CallMalformed,
    CallStarted,
    Event,
    Text,
    ToolCallStream,
)
from conveyor.tools.units import FieldDelta, Unit


def merge_events(events: Sequence[Event]) -> list[Event]:
    out: list[Event] = []
    for e in events:
        last = out[-1] if out else None
        if isinstance(e, Text) and isinstance(last, Text):
            out[-1] = Text(last.text + e.text)
        elif (
            isinstance(e, ArgumentsDelta)
            and isinstance(last, ArgumentsDelta)
            and last.call_id == e.call_id
        ):
            out[-1] = ArgumentsDelta(e.call_id, last.text + e.text)
        else:
            out.append(e)
    return out


def merge_units(units: Sequence[Unit]) -> list[Unit]:
    out: list[Unit] = []
    for u in units:
        last = out[-1] if out else None
        if isinstance(u, FieldDelta) and isinstance(last, FieldDelta) and last.path == u.path:
            out[-1] = FieldDelta(u.path, last.text + u.text)
        else:
            out.append(u)
    return out


def pieces(text: str, cuts: Sequence[int]) -> list[str]:
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(text))), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def replay(fmt: str, chunks: Sequence[str]) -> list[Event]:
    stream = ToolCallStream(fmt)
    events: list[Event] = []
    for chunk in chunks:
        events += stream.feed(chunk)
    return events + stream.close()


def check_invariants(events: Sequence[Event]) -> None:
    """What holds for every stream: call ids, order, and arguments text is the arguments JSON."""
    args: dict[str, str] = {}
    started: set[str] = set()
    ended: set[str] = set()
    for e in events:
        if isinstance(e, CallMalformed):
            assert not e.message.startswith("internal"), e.message  # the safety net never fires
            assert e.call_id not in ended
            ended.add(e.call_id)
        elif isinstance(e, CallStarted):
            assert e.call_id not in started
            started.add(e.call_id)
            args[e.call_id] = ""
        elif isinstance(e, ArgumentsDelta):
            assert e.call_id in started and e.call_id not in ended
            args[e.call_id] += e.text
        elif isinstance(e, CallFinished):
            assert e.call_id in started and e.call_id not in ended
            ended.add(e.call_id)
            assert json.loads(args[e.call_id]) == e.arguments
    assert started <= ended, "every started call finishes or fails"


def T(text: str) -> Text:
    return Text(text)


def S(n: int, name: str) -> CallStarted:
    return CallStarted(f"call_{n}", name)


def A(n: int, text: str) -> ArgumentsDelta:
    return ArgumentsDelta(f"call_{n}", text)


def F(n: int, name: str, arguments: dict[str, object]) -> CallFinished:
    return CallFinished(f"call_{n}", name, arguments)


@dataclass(frozen=True)
class E:
    """An expected CallMalformed: the call id, and a word its message must contain."""

    n: int
    says: str = ""


@dataclass
class Golden:
    fmt: str
    name: str
    text: str
    expected: list[object] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.fmt}-{self.name}"


def assert_matches(events: Sequence[Event], expected: Sequence[object]) -> None:
    got = merge_events(events)
    assert len(got) == len(expected), (got, expected)
    for g, x in zip(got, expected, strict=True):
        if isinstance(x, E):
            assert isinstance(g, CallMalformed) and g.call_id == f"call_{x.n}", (g, x)
            assert x.says in g.message, (g.message, x.says)
        else:
            assert g == x, (got, expected)
