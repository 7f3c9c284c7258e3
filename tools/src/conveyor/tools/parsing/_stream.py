"""ToolCallStream: one model reply's text deltas in, text and tool-call events out."""

from __future__ import annotations

import itertools
import logging

from conveyor.tools.parsing._events import CallMalformed, Event
from conveyor.tools.parsing._registry import parser_class

log = logging.getLogger(__name__)


class ToolCallStream:
    """Parses a reply in the tool-call ``format`` as it streams.

    ``feed(delta)`` returns the events that ``delta`` completes, ``close()`` the rest (a
    truncated call gives a ``CallMalformed``). Call ids are ``f"{id_prefix}{n}"``, n from 0.
    Nothing raises on any input: a parser bug is logged, reported as a ``CallMalformed`` for
    the call in progress, and the parser starts over.
    """

    def __init__(self, format: str, id_prefix: str = "call_") -> None:
        self.format = format
        self._cls = parser_class(format)
        self._counter = itertools.count()
        self._prefix = id_prefix
        self._last_id = ""
        self._parser = self._cls(self._new_id)

    def _new_id(self) -> str:
        self._last_id = f"{self._prefix}{next(self._counter)}"
        return self._last_id

    def feed(self, delta: str) -> list[Event]:
        try:
            return self._parser.feed(delta)
        except Exception as exc:  # the safety net; the tests check it never catches
            return self._recover(exc)

    def close(self) -> list[Event]:
        try:
            return self._parser.close()
        except Exception as exc:
            return self._recover(exc)

    def _recover(self, exc: Exception) -> list[Event]:
        log.exception("tool-call parser %s failed; starting over", self.format)
        self._parser = self._cls(self._new_id)
        return [CallMalformed(self._last_id, f"internal parser error: {exc!r}")]


def parse_all(format: str, text: str) -> list[Event]:
    """All the events of a complete reply (handy in tests and offline tools)."""
    stream = ToolCallStream(format)
    return stream.feed(text) + stream.close()
