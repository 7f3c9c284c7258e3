"""Llama 3.x JSON calls: ``{"name": ..., "parameters": {...}}``, optionally after
``<|python_tag|>``, several separated by ``;``. A reply that starts with anything else is text.
"""

from __future__ import annotations

from conveyor.tools.parsing._base import WS, FormatParser
from conveyor.tools.parsing._call_object import CallObject
from conveyor.tools.parsing._events import Event, Text
from conveyor.tools.parsing._scan import find_marker

TAG = "<|python_tag|>"
_BEGIN, _TEXT, _CALL_START, _CALL, _SEP, _SKIP = range(6)


class Llama3JsonParser(FormatParser):
    name = "llama3_json"
    _state = _BEGIN
    _call: CallObject | None = None

    def _run(self, s: str, out: list[Event]) -> int:
        i = 0
        n = len(s)
        while True:
            st = self._state
            if st == _BEGIN:
                j = WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                if j >= n:
                    return i  # leading whitespace: undecided yet
                if s[j] == "{":
                    self._state = _CALL_START
                    i = j
                elif s.startswith(TAG, j):
                    self._state = _CALL_START
                    i = j + len(TAG)
                elif TAG.startswith(s[j:]):
                    return i
                else:
                    self._state = _TEXT
            elif st == _TEXT:
                safe, found = find_marker(s, TAG, i)
                if safe > i:
                    out.append(Text(s[i:safe]))
                if found < 0:
                    return safe
                i = found + len(TAG)
                self._state = _CALL_START
            elif st == _CALL_START:
                j = WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                if j >= n:
                    return i
                if s[j] == "{":
                    self._call = CallObject(self.new_id())
                    self._state = _CALL
                    i = j
                else:
                    self._state = _TEXT
            elif st == _CALL:
                assert self._call is not None
                i = self._call.feed(s, i, out)
                if self._call.failed:
                    self._state = _SKIP
                elif self._call.done:
                    self._state = _SEP
                else:
                    return i
            elif st == _SEP:
                j = WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                if j >= n:
                    return i
                if s[j] == ";":
                    self._state = _CALL_START
                    i = j + 1
                elif s[j] == "{":
                    self._state = _CALL_START
                    i = j
                else:
                    self._state = _TEXT
            else:  # _SKIP: the malformed call ends at the next `;` or line
                k = min((x for x in (s.find(";", i), s.find("\n", i)) if x >= 0), default=-1)
                if k < 0:
                    return n
                self._state = _CALL_START if s[k] == ";" else _TEXT
                i = k + 1

    def _end(self, rest: str, out: list[Event]) -> None:
        if self._state in (_TEXT, _BEGIN, _CALL_START, _SEP) and rest:
            out.append(Text(rest))
        elif self._state == _CALL and self._call is not None:
            out.append(self._call.truncated())
        self._state = _BEGIN
