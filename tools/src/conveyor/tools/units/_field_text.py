"""FieldText: a JSON arguments object whose one long string field is cut by another segmenter.

The python tool's ``code`` and the planner's ``plan`` arrive as JSON string fields; the tool
wants statements and steps, so the field's growing text is fed, as it is decoded, to
``CodeStatements`` or ``PlanSteps``. Units of the other fields pass through unchanged.
"""

from __future__ import annotations

from typing import Any

from conveyor.tools.units._code import CodeStatements
from conveyor.tools.units._json_fields import JsonFields
from conveyor.tools.units._plan import PlanSteps
from conveyor.tools.units._types import Field, FieldDelta, ParseError, Segmenter, Unit


class FieldText:
    """Runs ``JsonFields`` and cuts the string field ``field`` with ``inner``."""

    __slots__ = ("_field", "_inner", "_inner_closed", "_json", "_path")

    def __init__(self, field: str, inner: Segmenter) -> None:
        self._field = field
        self._path = (field,)
        self._inner = inner
        self._inner_closed = False
        self._json = JsonFields(deltas=[self._path])

    def spec(self) -> dict[str, Any]:
        return {"kind": "field_text", "field": self._field, "inner": self._inner.spec()}

    def feed(self, text: str) -> list[Unit]:
        return self._route(self._json.feed(text))

    def close(self) -> list[Unit]:
        return self._route(self._json.close())

    def _route(self, units: list[Unit]) -> list[Unit]:
        if not units:
            return units
        out: list[Unit] = []
        for u in units:
            if isinstance(u, FieldDelta) and u.path == self._path:
                if not self._inner_closed:
                    out.extend(self._inner.feed(u.text))
            elif isinstance(u, Field) and u.path == self._path:
                if not isinstance(u.value, str):
                    out.append(ParseError(f"`{self._field}` must be a string"))
                elif not self._inner_closed:
                    out.extend(self._inner.close())
                self._inner_closed = True
            else:
                out.append(u)
        return out


def code_field(field: str = "code") -> FieldText:
    """The python tool's segmenter: statements of the JSON string field ``field``."""
    return FieldText(field, CodeStatements())


def plan_field(field: str = "plan") -> FieldText:
    """The planner's segmenter: steps of the JSON string field ``field``."""
    return FieldText(field, PlanSteps())
