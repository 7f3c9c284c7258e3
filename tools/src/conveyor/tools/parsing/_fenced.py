"""Fenced blocks that become one call each: the block's text is one JSON string argument.

A block opens with a whole line (```` ```python ````, ``>>>``) and closes at a line that
starts with its closing fence (```` ``` ````, ``<<<``). The argument text is emitted as
``{"<field>": "`` + the block's text, JSON-escaped, as it arrives + ``"}``.
"""

from __future__ import annotations

import json
import re

from conveyor.tools.parsing._base import FormatParser
from conveyor.tools.parsing._events import (
    ArgumentsDelta,
    CallFinished,
    CallMalformed,
    CallStarted,
    Event,
    Text,
)

_LINE_START, _MID_LINE = range(2)


def _escape(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


class FencedParser(FormatParser):
    """Subclasses set ``tool``, ``field``, and four regexes: ``opener`` (a whole opening
    line), ``opener_prefix`` (every prefix of such a line), ``closer`` (what a closing line
    starts with) and ``closer_prefix`` (every prefix of that). The prefixes keep text back only
    while it may still become a fence, so that any chunking gives the same events.
    """

    tool = ""
    field = ""
    opener: re.Pattern[str]
    opener_prefix: re.Pattern[str]
    closer: re.Pattern[str]
    closer_prefix: re.Pattern[str]

    _in_block = False
    _line = _LINE_START
    _call_id = ""
    _code: list[str]

    def _run(self, s: str, out: list[Event]) -> int:
        i = 0
        n = len(s)
        while i < n:
            nl = s.find("\n", i)
            if self._line == _MID_LINE:
                end = n if nl < 0 else nl + 1
                self._emit(out, s[i:end])
                i = end
                if nl >= 0:
                    self._line = _LINE_START
                continue
            if self._in_block:
                m = self.closer.match(s, i)
                if m is not None:
                    self._finish(out)
                    i = m.end()
                    self._line = _MID_LINE  # the rest of the fence line is text
                    continue
                if nl < 0 and self.closer_prefix.fullmatch(s, i):
                    return i  # may still become the closing fence
            else:
                if nl < 0:
                    if self.opener_prefix.fullmatch(s, i):
                        return i
                elif self.opener.fullmatch(s, i, nl):
                    self._open(out)
                    i = nl + 1
                    continue
            # Not a fence: emit up to the end of this line.
            end = n if nl < 0 else nl + 1
            self._emit(out, s[i:end])
            i = end
            self._line = _LINE_START if nl >= 0 else _MID_LINE
        return i

    def _open(self, out: list[Event]) -> None:
        self._in_block = True
        self._call_id = self.new_id()
        self._code = []
        out.append(CallStarted(self._call_id, self.tool))
        out.append(ArgumentsDelta(self._call_id, "{" + json.dumps(self.field) + ': "'))

    def _emit(self, out: list[Event], text: str) -> None:
        if not text:
            return
        if self._in_block:
            self._code.append(text)
            out.append(ArgumentsDelta(self._call_id, _escape(text)))
        else:
            out.append(Text(text))

    def _finish(self, out: list[Event]) -> None:
        self._in_block = False
        out.append(ArgumentsDelta(self._call_id, '"}'))
        out.append(CallFinished(self._call_id, self.tool, {self.field: "".join(self._code)}))

    def _end(self, rest: str, out: list[Event]) -> None:
        if self._in_block:
            if self._line == _LINE_START and (closing := self.closer.match(rest)):
                self._finish(out)
                rest = rest[closing.end() :]
            else:
                self._in_block = False
                out.append(CallMalformed(self._call_id, f"truncated {self.tool} block"))
                rest = ""
        if rest:
            out.append(Text(rest))
        self._line = _LINE_START
