"""CodeStatements: Python source arriving in pieces, cut into complete top-level statements."""

from __future__ import annotations

import re
from typing import Any

from conveyor.tools.units._types import Statement, Unit

# A line that can continue the statement before it at column 0.
_CONTINUES = re.compile(r"(?:else|elif|except|finally)\b")
# Logical lines that open a compound statement: they stay open until a later column-0 line.
# `match` is a soft keyword, so any line starting with it waits (safe, at most one line late).
_COMPOUND = re.compile(r"(?:if|for|while|try|with|def|class|async|match)\b|@")
_LEXEMES = re.compile(r"\"\"\"|'''|[\"'#\\()\[\]{}]")


class CodeStatements:
    """Cuts Python source into top-level ``Statement`` units.

    A simple statement (an assignment, a call, an import) is complete at the newline that ends
    its logical line. A compound statement (``if``, ``def``, a decorated ``def``...) is complete
    when a later line starts at column 0 and does not continue it (``else``, ``elif``,
    ``except``, ``finally``, the ``def`` after a decorator). Open brackets, open triple-quoted
    strings and backslashes continue a logical line. Blank and comment lines between statements
    are dropped; line numbers still count them.
    """

    __slots__ = (
        "_compound",
        "_decorators",
        "_depth",
        "_first",
        "_lineno",
        "_lines",
        "_partial",
        "_quote",
    )

    def __init__(self) -> None:
        self._partial = ""  # the current line, not yet ended by a newline
        self._lines: list[str] = []  # lines of the pending statement
        self._first = 0  # its first line number
        self._compound = False
        self._decorators = False  # the pending statement is decorators only, so far
        self._lineno = 0  # lines seen so far
        self._depth = 0  # open brackets
        self._quote = ""  # open string quote, or "" outside strings

    def spec(self) -> dict[str, Any]:
        return {"kind": "code_statements"}

    def feed(self, text: str) -> list[Unit]:
        out: list[Unit] = []
        start = 0
        nl = text.find("\n")
        if nl < 0:
            self._partial += text
            self._early_flush(out)
            return out
        partial = self._partial
        while nl >= 0:
            line = text[start : nl + 1]
            if partial:
                line = partial + line
                partial = ""
            self._line(line, out)
            start = nl + 1
            nl = text.find("\n", start)
        self._partial = text[start:]
        self._early_flush(out)
        return out

    def close(self) -> list[Unit]:
        out: list[Unit] = []
        if self._partial:
            self._line(self._partial, out)
            self._partial = ""
        self._flush(out)
        return out

    def _early_flush(self, out: list[Unit]) -> None:
        # A compound statement is complete as soon as the next line visibly starts a new one at
        # column 0: no need to wait for that line's newline.
        p = self._partial
        if (
            p
            and self._lines
            and not self._decorators
            and not self._depth
            and not self._quote
            and p[0] not in " \t\r#"
            and not _may_continue(p)
        ):
            self._flush(out)

    def _flush(self, out: list[Unit]) -> None:
        if self._lines:
            out.append(Statement("".join(self._lines), self._first))
            self._lines = []

    def _line(self, line: str, out: list[Unit]) -> None:
        self._lineno += 1
        if self._depth or self._quote:
            self._lines.append(line)  # inside brackets or a string: always a continuation
        else:
            stripped = line.lstrip()
            if not stripped or stripped[0] == "#":
                if self._lines:
                    self._lines.append(line)
                return
            if line[0] not in " \t":
                if self._lines and not self._decorators and not _CONTINUES.match(line):
                    self._flush(out)
                if not self._lines:
                    self._first = self._lineno
                    self._compound = _COMPOUND.match(line) is not None
                self._decorators = line[0] == "@" and (self._decorators or not self._lines)
            elif not self._lines:  # an indented first line: Python will say what is wrong
                self._first = self._lineno
                self._compound = True
                self._decorators = False
            self._lines.append(line)
        continued = self._scan(line)
        if not continued and not self._compound and self._lines:
            self._flush(out)

    def _scan(self, line: str) -> bool:
        """Track brackets and strings through ``line``; True when the logical line goes on."""
        quote = self._quote
        depth = self._depth
        i = 0
        n = len(line)
        while i < n:
            if quote:
                end = _find_close(line, i, quote)
                if end < 0:
                    if len(quote) == 1 and not line.rstrip("\r\n").endswith("\\"):
                        quote = ""  # an unterminated one-line string ends with its line
                    i = n
                    break
                quote = ""
                i = end
                continue
            m = _LEXEMES.search(line, i)
            if m is None:
                break
            tok = m.group()
            i = m.end()
            if tok == "#":
                break
            if tok == "\\":
                if i >= len(line.rstrip("\r\n")):
                    self._quote, self._depth = quote, depth
                    return True
                i += 1
            elif tok in "([{":
                depth += 1
            elif tok in ")]}":
                depth = max(0, depth - 1)
            else:
                quote = tok
        self._quote, self._depth = quote, depth
        return bool(quote or depth)


def _may_continue(partial: str) -> bool:
    """Whether a column-0 line that starts with ``partial`` may continue the statement above."""
    for kw in ("else", "elif", "except", "finally"):
        if kw.startswith(partial):
            return True
        if partial.startswith(kw) and not (
            partial[len(kw) :][:1].isalnum() or partial[len(kw) :][:1] == "_"
        ):
            return True
    return False


def _find_close(line: str, i: int, quote: str) -> int:
    """Index just past the closing ``quote`` in ``line`` from ``i`` (escapes skipped), or -1."""
    n = len(line)
    q = quote[0]
    while i < n:
        j = line.find(q, i)
        k = line.find("\\", i)
        if k >= 0 and (j < 0 or k < j):
            i = k + 2
            continue
        if j < 0:
            return -1
        if line.startswith(quote, j):
            return j + len(quote)
        i = j + 1
    return -1
