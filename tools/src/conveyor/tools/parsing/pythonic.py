"""Pythonic calls: ``[get_weather(city="Paris"), search(query="x", k=3)]``.

Keyword arguments only, each a Python (or JSON) literal. Each argument is passed on as JSON
the moment it closes: ``{"city": "Paris"``, then ``, "k": 3``, then ``}``.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any

from conveyor.tools.parsing._base import WS, FormatParser
from conveyor.tools.parsing._events import (
    ArgumentsDelta,
    CallFinished,
    CallMalformed,
    CallStarted,
    Event,
    Text,
)

_CALL_LIST = re.compile(r"\[[ \t\r\n]*[A-Za-z_][\w.]*[ \t\r\n]*\(")
_CALL_LIST_PREFIX = re.compile(r"\[[ \t\r\n]*(?:[A-Za-z_][\w.]*[ \t\r\n]*)?")
_HEAD = re.compile(r"[ \t\r\n]*([A-Za-z_][\w.]*)[ \t\r\n]*\(")
_HEAD_PREFIX = re.compile(r"[ \t\r\n]*(?:[A-Za-z_][\w.]*[ \t\r\n]*)?")
_KWARG = re.compile(r"([A-Za-z_]\w*)[ \t\r\n]*=(?!=)[ \t\r\n]*")
_KWARG_PREFIX = re.compile(r"[A-Za-z_]\w*[ \t\r\n]*")
_OUTSIDE = re.compile(r"[\"'()\[\]{},]")
_TEXT, _HEAD_S, _ARG, _VALUE, _ARG_SEP, _AFTER_CALL, _SKIP = range(7)


class PythonicParser(FormatParser):
    name = "pythonic"
    _state = _TEXT
    _call_id = ""
    _call_name = ""
    _key = ""
    _json: list[str]
    _value: _PyValue

    def _run(self, s: str, out: list[Event]) -> int:
        i = 0
        n = len(s)
        while True:
            st = self._state
            if st == _TEXT:
                k = s.find("[", i)
                if k < 0:
                    if n > i:
                        out.append(Text(s[i:]))
                    return n
                if k > i:
                    out.append(Text(s[i:k]))
                if _CALL_LIST.match(s, k):
                    self._state, i = _HEAD_S, k + 1
                elif _CALL_LIST_PREFIX.match(s, k).end() == n:  # type: ignore[union-attr]  # s[k] is [
                    return k  # may still become a call list
                else:
                    out.append(Text("["))
                    i = k + 1
            elif st == _HEAD_S:
                m = _HEAD.match(s, i)
                if m is None:
                    if _HEAD_PREFIX.match(s, i).end() == n:  # type: ignore[union-attr]  # `*`: always matches
                        return i
                    self._fail(out, self.new_id(), "expected a call `name(...)`")
                    continue
                self._call_id, self._call_name = self.new_id(), m.group(1)
                self._json = []
                out.append(CallStarted(self._call_id, self._call_name))
                self._state, i = _ARG, m.end()
            elif st == _ARG or st == _ARG_SEP or st == _AFTER_CALL:
                j = WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                if j >= n:
                    return i
                c = s[j]
                if st == _AFTER_CALL:
                    if c == ",":
                        self._state, i = _HEAD_S, j + 1
                    else:  # `]` ends the list; anything else is text again
                        self._state, i = _TEXT, (j + 1 if c == "]" else j)
                elif c == ")":
                    self._finish_call(out)
                    i = j + 1
                elif st == _ARG_SEP:
                    if c != ",":
                        self._fail(out, self._call_id, f"expected ',' or ')', got {c!r}")
                        i = j
                    else:
                        self._state, i = _ARG, j + 1
                else:
                    m = _KWARG.match(s, j)
                    if m is None:
                        if (p := _KWARG_PREFIX.match(s, j)) is not None and p.end() == n:
                            return i
                        self._fail(out, self._call_id, "only keyword arguments are supported")
                        i = j
                        continue
                    self._key = m.group(1)
                    self._value = _PyValue()
                    self._state, i = _VALUE, m.end()
            elif st == _VALUE:
                end, done = self._value.scan(s, i)
                if self._value.error:
                    self._fail(out, self._call_id, self._value.error)
                    i = end
                    continue
                self._value.parts.append(s[i:end])
                i = end
                if not done:
                    return i
                self._close_value(out)
            else:  # _SKIP: the rest of a malformed call list, up to `]` or the line's end
                k = min((x for x in (s.find("]", i), s.find("\n", i)) if x >= 0), default=-1)
                if k < 0:
                    return n
                self._state, i = _TEXT, k + 1

    def _fail(self, out: list[Event], call_id: str, message: str) -> None:
        out.append(CallMalformed(call_id, message))
        self._state = _SKIP

    def _close_value(self, out: list[Event]) -> None:
        text = "".join(self._value.parts).strip()
        try:
            value = _literal(text)
            encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (ValueError, TypeError) as exc:
            self._fail(out, self._call_id, f"argument {self._key!r}: {exc}")
            return
        piece = ("{" if not self._json else ", ") + json.dumps(self._key) + ": " + encoded
        self._json.append(piece)
        out.append(ArgumentsDelta(self._call_id, piece))
        self._state = _ARG_SEP

    def _finish_call(self, out: list[Event]) -> None:
        piece = "}" if self._json else "{}"
        self._json.append(piece)
        out.append(ArgumentsDelta(self._call_id, piece))
        arguments = json.loads("".join(self._json))
        out.append(CallFinished(self._call_id, self._call_name, arguments))
        self._state = _AFTER_CALL

    def _end(self, rest: str, out: list[Event]) -> None:
        st = self._state
        if st == _TEXT and rest:
            out.append(Text(rest))
        elif st in (_ARG, _VALUE, _ARG_SEP):
            out.append(CallMalformed(self._call_id, "truncated tool call"))
        elif st == _HEAD_S:
            out.append(CallMalformed(self.new_id(), "truncated tool call"))
        self._state = _TEXT


def _literal(text: str) -> Any:
    if not text:
        raise ValueError("missing value")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. an invalid escape in a string literal
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)  # models sometimes write true/false/null
    except ValueError:
        raise ValueError(f"not a literal: {text[:40]!r}") from None


class _PyValue:
    """Finds where a Python literal ends: at a `,` or `)` outside brackets and strings."""

    __slots__ = ("depth", "error", "escape", "parts", "quote")

    def __init__(self) -> None:
        self.depth = 0
        self.quote = ""
        self.escape = False
        self.parts: list[str] = []
        self.error: str | None = None

    def scan(self, s: str, i: int) -> tuple[int, bool]:
        n = len(s)
        if self.escape and i < n:
            self.escape = False
            i += 1
        while i < n:
            quote = self.quote
            if quote:
                q = quote[0]
                k = _first(s, q, "\\", i)
                if k < 0:
                    return n, False
                if s[k] == "\\":
                    if k + 1 < n:
                        i = k + 2
                    else:
                        self.escape = True
                        return n, False
                elif len(quote) == 1:
                    self.quote, i = "", k + 1
                elif s.startswith(quote, k):
                    self.quote, i = "", k + 3
                elif quote.startswith(s[k:]):
                    return k, False  # may be the closing triple quote
                else:
                    i = k + 1
                continue
            m = _OUTSIDE.search(s, i)
            if m is None:
                return n, False
            c = m.group()
            k = m.start()
            if c == '"' or c == "'":
                if s.startswith(c * 3, k):
                    self.quote, i = c * 3, k + 3
                elif (c * 3).startswith(s[k:]):
                    return k, False  # one quote or three?
                else:
                    self.quote, i = c, k + 1
            elif c in "([{":
                self.depth += 1
                i = k + 1
            elif c in ")]}" and self.depth:
                self.depth -= 1
                i = k + 1
            elif c == "," and self.depth:
                i = k + 1
            elif c == ")" or c == ",":
                return k, True
            else:
                self.error = f"unbalanced {c!r}"
                return k, False
        return n, False


def _first(s: str, a: str, b: str, i: int) -> int:
    ka = s.find(a, i)
    kb = s.find(b, i)
    if ka < 0:
        return kb
    if kb < 0:
        return ka
    return min(ka, kb)
