"""``validated(tool, rules)``: reject a call at the first field that breaks its schema or a rule.

This is the early abort: the runtime stops decoding the moment a field can never succeed,
instead of letting the model finish writing a call that will fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from conveyor.tools._tool import Reject, Result, Tool, ToolSource
from conveyor.tools.builtin._fields import scalar_leaves
from conveyor.tools.units import Field, ParseError, Path, Segmenter, Unit, Whole

# A rule answers True/None (fine), False (reject) or a string (reject with that reason).
Rule = Callable[[Any], bool | str | None]
RuleKey = str | tuple[str | int, ...] | type

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def validated(tool: type[Tool], rules: Mapping[RuleKey, Rule] | None = None) -> type[Tool]:
    """A tool class like ``tool`` that rejects the first unit breaking the schema or ``rules``.

    ``rules`` keys: a field path (``"city"``, ``"filters.0.name"`` or a tuple), checked on
    that field's value; or a unit class (``Statement``), checked on every unit of that class.
    """
    path_rules: dict[Path, Rule] = {}
    unit_rules: dict[type, Rule] = {}
    for key, rule in (rules or {}).items():
        if isinstance(key, type):
            unit_rules[key] = rule
        elif isinstance(key, str):
            path_rules[tuple(int(p) if p.isdigit() else p for p in key.split("."))] = rule
        else:
            path_rules[tuple(key)] = rule

    class ValidatedTool(Tool):
        name: ClassVar[str] = tool.name
        description: ClassVar[str] = tool.description
        parameters: ClassVar[dict[str, Any]] = tool.parameters

        def __init__(self, config: dict[str, Any] | None = None) -> None:
            super().__init__(config=config or {})
            self.inner = tool(config=self.config)
            self._rejected: Reject | None = None

        def segmenter(self) -> Segmenter:
            return self.inner.segmenter()

        def use_registry(self, registry: ToolSource) -> None:
            self.inner.use_registry(registry)

        if tool.keeps_session_state():

            def use_session(self, state: dict[str, Any]) -> None:
                self.inner.use_session(state)

        async def start(self) -> None:
            await self.inner.start()

        async def feed(self, unit: Unit) -> Reject | None:
            if self._rejected is not None:
                return self._rejected
            reason = _check(unit, self.parameters, path_rules, unit_rules)
            if reason is not None:
                self._rejected = Reject(reason)
                return self._rejected
            return await self.inner.feed(unit)

        async def finish(self) -> Result:
            if self._rejected is not None:
                await self.inner.cancel()
                return Result(f"rejected: {self._rejected.reason}", is_error=True)
            return await self.inner.finish()

        async def cancel(self) -> None:
            await self.inner.cancel()

    ValidatedTool.__name__ = ValidatedTool.__qualname__ = f"Validated{tool.__name__}"
    return ValidatedTool


def _check(
    unit: Unit,
    schema: dict[str, Any],
    path_rules: Mapping[Path, Rule],
    unit_rules: Mapping[type, Rule],
) -> str | None:
    if isinstance(unit, ParseError):
        return unit.message
    rule = unit_rules.get(type(unit))
    if rule is not None and (reason := _apply(rule, unit, type(unit).__name__)):
        return reason
    if isinstance(unit, Field):
        leaves = [(unit.path, unit.value)]
    elif isinstance(unit, Whole):
        leaves = list(scalar_leaves(unit.arguments))
    else:
        return None
    for path, value in leaves:
        where = ".".join(map(str, path)) or "arguments"
        reason = check_value(value, _schema_at(schema, path), where)
        if reason is None and path in path_rules:
            reason = _apply(path_rules[path], value, where)
        if reason is not None:
            return reason
    return None


def _apply(rule: Rule, value: Any, where: str) -> str | None:
    verdict = rule(value)
    if verdict is False:
        return f"`{where}` breaks its rule"
    return verdict if isinstance(verdict, str) else None


def _schema_at(schema: dict[str, Any] | None, path: Path) -> dict[str, Any] | None:
    """The sub-schema for ``path``; ``{"not": {}}`` for a key the schema forbids."""
    for part in path:
        if not schema:
            return None
        if isinstance(part, int):
            schema = schema.get("items")
        elif part in schema.get("properties", {}):
            schema = schema["properties"][part]
        elif schema.get("additionalProperties") is False:
            return {"not": {}}
        else:
            extra = schema.get("additionalProperties")
            schema = extra if isinstance(extra, dict) else None
    return schema


def check_value(value: Any, schema: dict[str, Any] | None, where: str) -> str | None:
    """Why a scalar ``value`` breaks ``schema`` (type, enum, const, pattern, range), or None."""
    if not schema:
        return None
    if schema.get("not") == {}:
        return f"`{where}` is not an allowed field"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_JSON_TYPES.get(t, lambda v: True)(value) for t in names):
            return f"`{where}` must be {' or '.join(names)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"`{where}` must be one of {schema['enum']!r}, got {value!r}"
    if "const" in schema and value != schema["const"]:
        return f"`{where}` must be {schema['const']!r}"
    if isinstance(value, str):
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return f"`{where}` does not match {schema['pattern']!r}"
        if len(value) < schema.get("minLength", 0):
            return f"`{where}` is shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"`{where}` is longer than {schema['maxLength']}"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"`{where}` must be >= {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"`{where}` must be <= {schema['maximum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"`{where}` must be > {schema['exclusiveMinimum']}"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return f"`{where}` must be < {schema['exclusiveMaximum']}"
    return None
