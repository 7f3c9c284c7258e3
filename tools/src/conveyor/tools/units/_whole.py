"""Whole: the complete arguments object as one unit, for tools that cannot use pieces."""

from __future__ import annotations

import json
from typing import Any

from conveyor.tools.units._json_fields import JsonFields
from conveyor.tools.units._types import ParseError, Unit, Whole


class WholeArguments:
    """Emits one ``Whole`` in the feed whose text closes the arguments object."""

    __slots__ = ("_json", "_sent", "_text")

    def __init__(self) -> None:
        self._json = JsonFields()  # finds where the object ends, and malformed input early
        self._text: list[str] = []
        self._sent = False

    def spec(self) -> dict[str, Any]:
        return {"kind": "whole"}

    def feed(self, text: str) -> list[Unit]:
        if self._sent:
            return [u for u in self._json.feed(text) if isinstance(u, ParseError)]
        self._text.append(text)
        errors: list[Unit] = [u for u in self._json.feed(text) if isinstance(u, ParseError)]
        if errors:
            self._sent = True
            return errors
        if not self._json.done:
            return []
        self._sent = True
        arguments = json.loads("".join(self._text), strict=False)
        return [Whole(arguments)]

    def close(self) -> list[Unit]:
        return self._json.close()
