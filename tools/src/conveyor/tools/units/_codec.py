"""The wire form of units and segmenters: exact JSON round trips, tuples and int keys kept."""

from __future__ import annotations

from typing import Any

from conveyor.tools.units._code import CodeStatements
from conveyor.tools.units._field_text import FieldText
from conveyor.tools.units._json_fields import JsonFields
from conveyor.tools.units._plan import PlanSteps
from conveyor.tools.units._types import (
    Field,
    FieldDelta,
    ParseError,
    Ref,
    Segmenter,
    Statement,
    Step,
    Unit,
    Whole,
)
from conveyor.tools.units._whole import WholeArguments


def unit_to_json(unit: Unit) -> dict[str, Any]:
    """A JSON-able dict for ``unit``; ``unit_from_json`` gives back an equal unit."""
    if isinstance(unit, Field):
        return {"type": "field", "path": list(unit.path), "value": _enc(unit.value)}
    if isinstance(unit, FieldDelta):
        return {"type": "field_delta", "path": list(unit.path), "text": unit.text}
    if isinstance(unit, Statement):
        return {"type": "statement", "code": unit.code, "first_line": unit.first_line}
    if isinstance(unit, Step):
        return {
            "type": "step",
            "id": unit.id,
            "tool": unit.tool,
            "args": _enc(unit.args),
            "deps": list(unit.deps),
        }
    if isinstance(unit, Whole):
        return {"type": "whole", "arguments": _enc(unit.arguments)}
    if isinstance(unit, ParseError):
        return {"type": "parse_error", "message": unit.message}
    raise TypeError(f"not a unit: {unit!r}")


def unit_from_json(obj: dict[str, Any]) -> Unit:
    """The unit that ``unit_to_json`` described; ``ValueError`` for anything else."""
    try:
        kind = obj["type"]
        if kind == "field":
            return Field(tuple(obj["path"]), _dec(obj["value"]))
        if kind == "field_delta":
            return FieldDelta(tuple(obj["path"]), obj["text"])
        if kind == "statement":
            return Statement(obj["code"], obj["first_line"])
        if kind == "step":
            return Step(obj["id"], obj["tool"], _dec(obj["args"]), tuple(obj["deps"]))
        if kind == "whole":
            return Whole(_dec(obj["arguments"]))
        if kind == "parse_error":
            return ParseError(obj["message"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed unit {obj!r}: {exc}") from None
    raise ValueError(f"unknown unit type {kind!r}")


# Values: JSON scalars and lists stand for themselves; every JSON object is a one-key tag, so
# decoding is unambiguous: {"object": {...}} (str keys), {"dict": [[k, v], ...]} (other keys),
# {"tuple": [...]}, {"ref": n}.
def _enc(v: Any) -> Any:
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, tuple):
        return {"tuple": [_enc(x) for x in v]}
    if isinstance(v, Ref):
        return {"ref": v.id}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {"object": {k: _enc(x) for k, x in v.items()}}
        return {"dict": [[_enc(k), _enc(x)] for k, x in v.items()]}
    raise TypeError(f"cannot encode {type(v).__name__} in a unit")


def _dec(v: Any) -> Any:
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict):
        return v
    if len(v) != 1:
        raise ValueError(f"bad tagged value {v!r}")
    ((tag, body),) = v.items()
    if tag == "object":
        return {k: _dec(x) for k, x in body.items()}
    if tag == "dict":
        return {_dec(k): _dec(x) for k, x in body}
    if tag == "tuple":
        return tuple(_dec(x) for x in body)
    if tag == "ref":
        return Ref(int(body))
    raise ValueError(f"unknown value tag {tag!r}")


def segmenter_from_spec(spec: dict[str, Any]) -> Segmenter:
    """A fresh segmenter from the dict its ``spec()`` returned."""
    kind = spec.get("kind")
    if kind == "json_fields":
        deltas = spec.get("deltas", False)
        return JsonFields(deltas if isinstance(deltas, bool) else [tuple(p) for p in deltas])
    if kind == "code_statements":
        return CodeStatements()
    if kind == "plan_steps":
        return PlanSteps()
    if kind == "whole":
        return WholeArguments()
    if kind == "field_text":
        return FieldText(spec["field"], segmenter_from_spec(spec["inner"]))
    raise ValueError(f"unknown segmenter spec {spec!r}")
