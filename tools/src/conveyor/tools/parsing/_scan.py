"""Small scanners the format parsers share: marker search with hold-back, JSON value extents."""

from __future__ import annotations

import re

_JSON_OUTSIDE = re.compile(r'[{}\[\]"]|[^ \t\r\n{}\[\],:"0-9a-zA-Z+\-.]')
_JSON_INSIDE = re.compile(r'["\\]')


def find_marker(buf: str, marker: str, start: int = 0) -> tuple[int, int]:
    """``(safe, found)``: ``found`` is where ``marker`` starts in ``buf[start:]`` or -1; text
    before ``safe`` can be emitted, the rest may be a marker that is still being written.
    """
    k = buf.find(marker, start)
    if k >= 0:
        return k, k
    first = marker[0]
    j = buf.find(first, max(start, len(buf) - len(marker) + 1))
    while j >= 0:
        if marker.startswith(buf[j:]):
            return j, -1
        j = buf.find(first, j + 1)
    return len(buf), -1


class JsonSpan:
    """Finds where a JSON object or array that starts at a ``{`` or ``[`` ends.

    It validates only lightly (bracket nesting, and no character that JSON never has outside
    strings), which is enough to find the end and to notice a tag such as ``</tool_call>``
    where a value should be. Full validation happens once the text is complete.
    """

    __slots__ = ("depth", "error", "escape", "in_string")

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escape = False
        self.error: str | None = None

    def scan(self, s: str, i: int) -> tuple[int, bool]:
        """Consume ``s`` from ``i``; returns ``(end, closed)``. On error, ``error`` is set and
        ``end`` is the offending index."""
        n = len(s)
        if self.escape and i < n:
            self.escape = False
            i += 1
        while i < n:
            if self.in_string:
                m = _JSON_INSIDE.search(s, i)
                if m is None:
                    return n, False
                i = m.end()
                if m.group() == '"':
                    self.in_string = False
                elif i < n:
                    i += 1
                else:
                    self.escape = True
                continue
            m = _JSON_OUTSIDE.search(s, i)
            if m is None:
                return n, False
            c = m.group()
            i = m.end()
            if c == '"':
                self.in_string = True
            elif c == "{" or c == "[":
                self.depth += 1
            elif c == "}" or c == "]":
                self.depth -= 1
                if self.depth == 0:
                    return i, True
            else:
                self.error = f"unexpected {c!r} in JSON"
                return i - 1, False
        return n, False
