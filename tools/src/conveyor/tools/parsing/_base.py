"""The shape every format parser shares: a buffer of unconsumed text and a state machine."""

from __future__ import annotations

import re
from collections.abc import Callable

from conveyor.tools.parsing._events import Event

WS = re.compile(r"[ \t\r\n]*")


class FormatParser:
    """Subclasses implement ``_run(s, out) -> consumed`` and ``_end(rest, out)``.

    ``_run`` consumes what it can from ``s`` (the unconsumed text so far) and returns how much;
    the rest waits for more text. ``new_id()`` names each call.
    """

    name = ""

    def __init__(self, new_id: Callable[[], str]) -> None:
        self._buf = ""
        self.new_id = new_id

    def feed(self, delta: str) -> list[Event]:
        out: list[Event] = []
        s = self._buf + delta if self._buf else delta
        if s:
            self._buf = s[self._run(s, out) :]
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        self._end(self._buf, out)
        self._buf = ""
        return out

    def _run(self, s: str, out: list[Event]) -> int:
        raise NotImplementedError

    def _end(self, rest: str, out: list[Event]) -> None:
        raise NotImplementedError
