"""Mistral calls: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``, and the v11+
form ``[TOOL_CALLS]name[ARGS]{...}`` (optionally ``name[CALL_ID]id[ARGS]{...}``)."""

from __future__ import annotations

import json
import re

from conveyor.tools.parsing._base import WS, FormatParser
from conveyor.tools.parsing._call_object import CallObject
from conveyor.tools.parsing._events import (
    ArgumentsDelta,
    CallFinished,
    CallMalformed,
    CallStarted,
    Event,
    Text,
)
from conveyor.tools.parsing._scan import JsonSpan, find_marker

TAG = "[TOOL_CALLS]"
_NAME = re.compile(r"([A-Za-z0-9_.\-]+)(\[CALL_ID\][^\[]*)?\[ARGS\]")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]+")
_TEXT, _AFTER_TAG, _ITEM, _CALL, _ITEM_SEP, _V11_NAME, _V11_ARGS_START, _V11_ARGS, _SKIP = range(9)


class MistralParser(FormatParser):
    name = "mistral"
    _state = _TEXT
    _call: CallObject | None = None
    _in_array = False
    _v11_id = ""
    _v11_name = ""
    _v11_args: list[str]
    _span: JsonSpan

    def _run(self, s: str, out: list[Event]) -> int:
        i = 0
        n = len(s)
        while True:
            st = self._state
            if st == _TEXT:
                safe, found = find_marker(s, TAG, i)
                if safe > i:
                    out.append(Text(s[i:safe]))
                if found < 0:
                    return safe
                i = found + len(TAG)
                self._state = _AFTER_TAG
            elif st == _AFTER_TAG or st == _ITEM or st == _ITEM_SEP:
                j = WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                if j >= n:
                    return i
                c = s[j]
                if st == _ITEM_SEP:
                    if c == ",":
                        self._state, i = _ITEM, j + 1
                    else:  # `]` ends the list; anything else is text again
                        self._state, i = _TEXT, (j + 1 if c == "]" else j)
                elif c == "{":
                    self._in_array = st == _ITEM
                    self._call = CallObject(self.new_id())
                    self._state, i = _CALL, j
                elif st == _AFTER_TAG and c == "[":
                    self._state, i = _ITEM, j + 1
                elif st == _ITEM and c == "]":
                    self._state, i = _TEXT, j + 1
                elif st == _AFTER_TAG and _NAME_CHARS.match(s, j):
                    self._state, i = _V11_NAME, j
                else:
                    self._state, i = _TEXT, j
            elif st == _CALL:
                assert self._call is not None
                i = self._call.feed(s, i, out)
                if self._call.failed:
                    self._state = _SKIP
                elif self._call.done:
                    self._state = _ITEM_SEP if self._in_array else _TEXT
                else:
                    return i
            elif st == _V11_NAME:
                m = _NAME.match(s, i)
                if m is None:
                    if _may_be_head(s[i:]):
                        return i  # the name or its [ARGS] is still being written
                    self._state = _TEXT
                    continue
                self._v11_id = self.new_id()
                self._v11_name = m.group(1)
                self._v11_args = []
                out.append(CallStarted(self._v11_id, self._v11_name))
                self._state, i = _V11_ARGS_START, m.end()
            elif st == _V11_ARGS_START:
                j = WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                if j >= n:
                    return i
                if s[j] != "{":
                    out.append(CallMalformed(self._v11_id, "expected a JSON object after [ARGS]"))
                    self._state, i = _SKIP, j
                    continue
                self._span = JsonSpan()
                self._state, i = _V11_ARGS, j
            elif st == _V11_ARGS:
                end, closed = self._span.scan(s, i)
                if end > i:
                    self._v11_args.append(s[i:end])
                    out.append(ArgumentsDelta(self._v11_id, s[i:end]))
                if self._span.error:
                    out.append(
                        CallMalformed(self._v11_id, f"malformed arguments: {self._span.error}")
                    )
                    self._state, i = _SKIP, end
                    continue
                i = end
                if not closed:
                    return i
                self._state = _TEXT
                self._finish_v11(out)
            else:  # _SKIP: the rest of a malformed call, up to the line's end or the next call
                k = min((x for x in (s.find("\n", i), s.find(TAG, i)) if x >= 0), default=-1)
                if k < 0:
                    safe, _ = find_marker(s, TAG, i)
                    return safe
                self._state, i = _TEXT, (k + 1 if s[k] == "\n" else k)

    def _finish_v11(self, out: list[Event]) -> None:
        try:
            arguments = json.loads("".join(self._v11_args), strict=False)
        except ValueError as exc:
            out.append(CallMalformed(self._v11_id, f"malformed arguments: {exc}"))
            return
        if not isinstance(arguments, dict):
            out.append(CallMalformed(self._v11_id, "the arguments must be a JSON object"))
            return
        out.append(CallFinished(self._v11_id, self._v11_name, arguments))

    def _end(self, rest: str, out: list[Event]) -> None:
        st = self._state
        if st in (_TEXT, _AFTER_TAG, _ITEM_SEP) and rest:
            out.append(Text(rest))
        elif st == _CALL and self._call is not None:
            out.append(self._call.truncated())
        elif st in (_V11_ARGS_START, _V11_ARGS):
            out.append(CallMalformed(self._v11_id, "truncated tool call"))
        elif st == _V11_NAME and rest:
            out.append(Text(rest))
        self._state = _TEXT


def _may_be_head(text: str) -> bool:
    """Whether ``text`` can still grow into ``name[ARGS]`` or ``name[CALL_ID]id[ARGS]``."""
    m = _NAME_CHARS.match(text)
    if m is None:
        return False
    rest = text[m.end() :]
    if "[ARGS]".startswith(rest) or "[CALL_ID]".startswith(rest):
        return True
    if rest.startswith("[CALL_ID]"):
        k = rest.find("[", len("[CALL_ID]"))
        return k < 0 or "[ARGS]".startswith(rest[k:])
    return False
