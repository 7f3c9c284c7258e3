"""Hermes / Qwen2.5 / Qwen3 calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``."""

from __future__ import annotations

from conveyor.tools.parsing._base import WS, FormatParser
from conveyor.tools.parsing._call_object import CallObject
from conveyor.tools.parsing._events import Event, Text
from conveyor.tools.parsing._scan import find_marker

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_TEXT, _CALL, _AFTER, _SKIP = range(4)


class HermesParser(FormatParser):
    name = "hermes"
    _state = _TEXT
    _call: CallObject | None = None

    def _run(self, s: str, out: list[Event]) -> int:
        i = 0
        n = len(s)
        while True:
            st = self._state
            if st == _TEXT:
                safe, found = find_marker(s, OPEN, i)
                if safe > i:
                    out.append(Text(s[i:safe]))
                if found < 0:
                    return safe
                i = found + len(OPEN)
                self._call = CallObject(self.new_id())
                self._state = _CALL
            elif st == _CALL:
                assert self._call is not None
                i = self._call.feed(s, i, out)
                if self._call.failed:
                    self._state = _SKIP  # drop the rest of this call, up to its closing tag
                elif self._call.done:
                    self._state = _AFTER
                else:
                    return i
            elif st == _AFTER:
                i = WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                if i >= n:
                    return i
                if s.startswith(CLOSE, i):
                    i += len(CLOSE)
                    self._state = _TEXT
                elif CLOSE.startswith(s[i:]):
                    return i
                else:
                    self._state = _TEXT  # no closing tag: what follows is text again
            else:  # _SKIP
                safe, found = find_marker(s, CLOSE, i)
                if found < 0:
                    return safe
                i = found + len(CLOSE)
                self._state = _TEXT

    def _end(self, rest: str, out: list[Event]) -> None:
        if self._state == _TEXT and rest:
            out.append(Text(rest))
        elif self._state == _CALL and self._call is not None:
            out.append(self._call.truncated())
        self._state = _TEXT
