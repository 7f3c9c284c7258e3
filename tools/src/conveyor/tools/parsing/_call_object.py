"""CallObject: one ``{"name": ..., "arguments": {...}}`` object, parsed as it streams.

Shared by the JSON formats (hermes, llama3_json, mistral). The arguments object's raw text
is passed on as ``ArgumentsDelta`` while it arrives; the call starts when its name is known.
"""

from __future__ import annotations

import json
import re

from conveyor.tools.parsing._events import (
    ArgumentsDelta,
    CallFinished,
    CallMalformed,
    CallStarted,
    Event,
)
from conveyor.tools.parsing._scan import JsonSpan

_WS = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_SCALAR = re.compile(r"[^,}\] \t\r\n]*")
_START, _KEY_OR_END, _KEY, _COLON, _VALUE, _ARGS, _SKIP, _AFTER, _DONE, _ERROR = range(10)


class CallObject:
    """Feeds on a buffer: ``feed(s, i, out) -> i`` consumes what it can from ``s[i:]``.

    ``done`` is set after the closing brace (a ``CallFinished`` or ``CallMalformed`` was emitted),
    ``failed`` when the object was malformed (a ``CallMalformed`` was emitted).
    """

    __slots__ = (
        "_args",
        "_args_sent",
        "_key",
        "_name",
        "_span",
        "_state",
        "arg_keys",
        "call_id",
    )

    def __init__(self, call_id: str, arg_keys: tuple[str, ...] = ("arguments", "parameters")):
        self.call_id = call_id
        self.arg_keys = arg_keys
        self._state = _START
        self._key = ""
        self._name: str | None = None
        self._args: list[str] = []
        self._args_sent = 0  # pieces of _args already emitted (after the name is known)
        self._span = JsonSpan()

    @property
    def done(self) -> bool:
        return self._state >= _DONE

    @property
    def failed(self) -> bool:
        return self._state == _ERROR

    @property
    def started(self) -> bool:
        return self._name is not None

    def truncated(self) -> CallMalformed:
        self._state = _ERROR
        return CallMalformed(self.call_id, "truncated tool call")

    def _fail(self, out: list[Event], message: str) -> None:
        self._state = _ERROR
        out.append(CallMalformed(self.call_id, message))

    def feed(self, s: str, i: int, out: list[Event]) -> int:
        n = len(s)
        while i < n and self._state < _DONE:
            st = self._state
            if st == _ARGS:
                end, closed = self._span.scan(s, i)
                # Pass on the text up to an error too, so that chunking never changes events.
                self._args.append(s[i:end])
                self._send_args(out)
                if self._span.error:
                    self._fail(out, f"malformed arguments: {self._span.error}")
                    return end
                i = end
                if closed:
                    self._state = _AFTER
                continue
            if st == _SKIP:
                end, closed = self._span.scan(s, i)
                if self._span.error:
                    self._fail(out, f"malformed tool call: {self._span.error}")
                    return end
                i = end
                if closed:
                    self._state = _AFTER
                continue
            i = _WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
            if i >= n:
                break
            c = s[i]
            if st == _START:
                if c != "{":
                    self._fail(out, f"expected a JSON object, got {c!r}")
                    return i
                self._state = _KEY_OR_END
                i += 1
            elif st == _KEY_OR_END or st == _KEY:
                if c == "}" and st == _KEY_OR_END:
                    self._finish(out)
                    return i + 1
                if c != '"':
                    self._fail(out, f"expected a key, got {c!r}")
                    return i
                m = _STRING.match(s, i)
                if m is None:
                    break  # the key is still being written
                self._key = json.loads(m.group(), strict=False)
                self._state = _COLON
                i = m.end()
            elif st == _COLON:
                if c != ":":
                    self._fail(out, f"expected ':', got {c!r}")
                    return i
                self._state = _VALUE
                i += 1
            elif st == _VALUE:
                j = self._value(s, i, c, out)
                if j < 0:
                    break
                if self._state == _ERROR:
                    return j
                i = j
            else:  # _AFTER
                if c == ",":
                    self._state = _KEY
                    i += 1
                elif c == "}":
                    self._finish(out)
                    return i + 1
                else:
                    self._fail(out, f"expected ',' or '}}', got {c!r}")
                    return i
        return i

    def _value(self, s: str, i: int, c: str, out: list[Event]) -> int:
        """Start (or read) the value of ``self._key``; -1 when more text is needed."""
        key = self._key
        if key in self.arg_keys and not self._args:
            if c == "{":
                self._state = _ARGS
                self._span = JsonSpan()
                return i
            if c == '"':  # arguments given as a JSON string holding the object
                m = _STRING.match(s, i)
                if m is None:
                    return -1
                self._args.append(json.loads(m.group(), strict=False))
                self._send_args(out)
                self._state = _AFTER
                return m.end()
        if key == "name" and self._name is None:
            if c != '"':
                self._fail(out, "the tool name must be a string")
                return i
            m = _STRING.match(s, i)
            if m is None:
                return -1
            self._name = json.loads(m.group(), strict=False)
            out.append(CallStarted(self.call_id, self._name))
            self._send_args(out)
            self._state = _AFTER
            return m.end()
        # Any other member is skipped.
        if c == "{" or c == "[":
            self._state = _SKIP
            self._span = JsonSpan()
            return i
        if c == '"':
            m = _STRING.match(s, i)
            if m is None:
                return -1
            self._state = _AFTER
            return m.end()
        j = _SCALAR.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
        if j >= len(s):
            return -1
        self._state = _AFTER
        return j

    def _send_args(self, out: list[Event]) -> None:
        if self._name is None:
            return  # held until the name is known: CallStarted comes first
        if len(self._args) > self._args_sent:
            text = "".join(self._args[self._args_sent :])
            self._args_sent = len(self._args)
            if text:
                out.append(ArgumentsDelta(self.call_id, text))

    def _finish(self, out: list[Event]) -> None:
        self._state = _DONE
        if self._name is None:
            self._fail(out, "tool call without a name")
            return
        if not self._args:
            self._args.append("{}")
            self._send_args(out)
        try:
            arguments = json.loads("".join(self._args), strict=False)
        except ValueError as exc:
            self._fail(out, f"malformed arguments: {exc}")
            return
        if not isinstance(arguments, dict):
            self._fail(out, "the arguments must be a JSON object")
            return
        out.append(CallFinished(self.call_id, self._name, arguments))
