"""JsonFields: an incremental JSON parser that emits each scalar field the moment it closes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from conveyor.tools.units._types import Field, FieldDelta, ParseError, Path, Unit

_WS = re.compile(r"[ \t\n\r]*")
_STR_RUN = re.compile(r'[^"\\]*')
_NUM_RUN = re.compile(r"[-+0-9.eE]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = (("true", True), ("false", False), ("null", None))

# Parser states. Strings are handled first in the loop because they are the hot path.
_VALUE, _OBJ_FIRST, _OBJ_KEY, _COLON, _AFTER, _ARR_FIRST, _STRING, _END, _ERR = range(9)


class JsonFields:
    """Cuts a JSON arguments object into ``Field`` units, at any depth.

    ``deltas`` chooses the string values that are also streamed as ``FieldDelta`` while they
    grow: ``True`` for all, or an iterable of paths. The ``FieldDelta`` texts of a path always
    concatenate to its final ``Field`` value (how they are split depends on the chunking).
    Raw control characters inside strings are accepted, as models write them.
    """

    __slots__ = (
        "_buf",
        "_consumed",
        "_delta_all",
        "_delta_paths",
        "_delta_sent",
        "_parts",
        "_stack",
        "_state",
        "_str_is_key",
        "_str_path",
        "_str_streams",
    )

    def __init__(self, deltas: bool | Iterable[Path] = False) -> None:
        self._delta_all = deltas is True
        self._delta_paths: frozenset[Path] = (
            frozenset() if isinstance(deltas, bool) else frozenset(tuple(p) for p in deltas)
        )
        self._state = _VALUE
        self._stack: list[list[Any]] = []  # [is_object, key or index]
        self._buf = ""
        self._consumed = 0
        self._parts: list[str] = []
        self._str_is_key = False
        self._str_path: Path = ()
        self._str_streams = False
        self._delta_sent = 0

    def spec(self) -> dict[str, Any]:
        deltas: bool | list[list[str | int]] = (
            True if self._delta_all else sorted((list(p) for p in self._delta_paths), key=repr)
        )
        if deltas == []:
            deltas = False
        return {"kind": "json_fields", "deltas": deltas}

    @property
    def done(self) -> bool:
        """The arguments object has closed (or the input was found malformed)."""
        return self._state >= _END

    def feed(self, text: str) -> list[Unit]:
        if self._state == _ERR or not text:
            return []
        s = self._buf + text if self._buf else text
        self._buf = ""
        out: list[Unit] = []
        try:
            self._scan(s, out)
        except _Malformed as exc:
            self._state = _ERR
            out.append(ParseError(str(exc)))
        return out

    def close(self) -> list[Unit]:
        if self._state >= _END:
            return []
        self._state = _ERR
        return [ParseError("truncated JSON arguments: the object never closed")]

    def _path(self) -> Path:
        return tuple([f[1] for f in self._stack])

    def _fail(self, s: str, i: int, what: str) -> _Malformed:
        return _Malformed(f"malformed JSON arguments at offset {self._consumed + i}: {what}")

    def _value_done(self) -> None:
        self._state = _AFTER if self._stack else _END

    def _scan(self, s: str, out: list[Unit]) -> None:
        i = 0
        n = len(s)
        stack = self._stack
        while i < n:
            st = self._state
            if st == _STRING:
                j = _STR_RUN.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                if j > i:
                    self._parts.append(s[i:j])
                    i = j
                    if i >= n:
                        break
                if s[i] == '"':
                    i += 1
                    self._string_closed(out)
                    continue
                # A backslash escape; keep it for the next feed if it is cut.
                if i + 1 >= n:
                    break
                e = s[i + 1]
                if e == "u":
                    if i + 6 > n:
                        break
                    hx = s[i + 2 : i + 6]
                    if not _HEX4.fullmatch(hx):
                        raise self._fail(s, i, "bad \\u escape")
                    cp = int(hx, 16)
                    if 0xD800 <= cp < 0xDC00:
                        rest = s[i + 6 : i + 12]
                        if len(rest) < 6 and "\\u".startswith(rest[:2]):
                            break  # a low surrogate may still follow
                        if rest[:2] == "\\u" and _HEX4.fullmatch(rest[2:6]):
                            low = int(rest[2:6], 16)
                            if 0xDC00 <= low < 0xE000:
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                                self._parts.append(chr(cp))
                                i += 12
                                continue
                    self._parts.append(chr(cp))
                    i += 6
                    continue
                ch = _ESCAPES.get(e)
                if ch is None:
                    raise self._fail(s, i, f"bad escape \\{e}")
                self._parts.append(ch)
                i += 2
                continue

            i = _WS.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
            if i >= n:
                break
            c = s[i]
            if st == _AFTER:
                frame = stack[-1]
                if c == ",":
                    if frame[0]:
                        self._state = _OBJ_KEY
                    else:
                        frame[1] += 1
                        self._state = _VALUE
                elif c == ("}" if frame[0] else "]"):
                    stack.pop()
                    self._value_done()
                else:
                    raise self._fail(s, i, f"unexpected {c!r} after a value")
                i += 1
            elif st == _VALUE or st == _ARR_FIRST:
                if not stack and c != "{":
                    raise self._fail(s, i, "the arguments must be a JSON object")
                if c == '"':
                    self._string_open(False)
                    i += 1
                elif c == "{":
                    stack.append([True, None])
                    self._state = _OBJ_FIRST
                    i += 1
                elif c == "[":
                    stack.append([False, 0])
                    self._state = _ARR_FIRST
                    i += 1
                elif c == "]" and st == _ARR_FIRST:
                    stack.pop()
                    self._value_done()
                    i += 1
                elif c == "-" or "0" <= c <= "9":
                    j = _NUM_RUN.match(s, i).end()  # type: ignore[union-attr]  # `*`: always matches
                    if j >= n:
                        break  # the number may go on in the next feed
                    m = _NUMBER.fullmatch(s, i, j)
                    if m is None:
                        raise self._fail(s, i, f"bad number {s[i:j]!r}")
                    try:
                        value: Any = float(s[i:j]) if m.group(1) or m.group(2) else int(s[i:j])
                    except ValueError as exc:
                        raise self._fail(s, i, str(exc)) from None
                    out.append(Field(self._path(), value))
                    self._value_done()
                    i = j
                else:
                    cut = False
                    for word, lit in _LITERALS:
                        if s.startswith(word, i):
                            out.append(Field(self._path(), lit))
                            self._value_done()
                            i += len(word)
                            break
                        if word.startswith(s[i:]):
                            cut = True  # the literal goes on in the next feed
                            break
                    else:
                        raise self._fail(s, i, f"unexpected {c!r}")
                    if cut:
                        break
            elif st == _OBJ_FIRST or st == _OBJ_KEY:
                if c == '"':
                    self._string_open(True)
                    i += 1
                elif c == "}" and st == _OBJ_FIRST:
                    stack.pop()
                    self._value_done()
                    i += 1
                else:
                    raise self._fail(s, i, f"expected a key, got {c!r}")
            elif st == _COLON:
                if c != ":":
                    raise self._fail(s, i, f"expected ':', got {c!r}")
                self._state = _VALUE
                i += 1
            else:  # _END
                raise self._fail(s, i, "text after the arguments object")
        self._consumed += i
        if i < n:
            self._buf = s[i:]
        if self._state == _STRING and self._str_streams:
            self._emit_delta(out)

    def _string_open(self, is_key: bool) -> None:
        self._state = _STRING
        self._str_is_key = is_key
        self._parts = []
        self._delta_sent = 0
        if is_key:
            self._str_streams = False
        else:
            self._str_path = self._path()
            self._str_streams = self._delta_all or self._str_path in self._delta_paths

    def _emit_delta(self, out: list[Unit]) -> None:
        parts = self._parts
        if len(parts) > self._delta_sent:
            out.append(FieldDelta(self._str_path, "".join(parts[self._delta_sent :])))
            # Collapse what was sent so long strings do not keep many small parts.
            joined = "".join(parts)
            self._parts = [joined]
            self._delta_sent = 1

    def _string_closed(self, out: list[Unit]) -> None:
        if self._str_is_key:
            self._stack[-1][1] = "".join(self._parts)
            self._state = _COLON
            return
        if self._str_streams:
            self._emit_delta(out)
        out.append(Field(self._str_path, "".join(self._parts)))
        self._parts = []
        self._value_done()


class _Malformed(Exception):
    pass
