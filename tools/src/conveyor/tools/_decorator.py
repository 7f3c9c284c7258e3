"""``@tool``: a plain sync or async function becomes a (non-partial) tool.

The JSON Schema comes from the type hints and the docstring (first paragraph: description;
``Args:`` entries or ``:param x:`` lines: parameter descriptions). The function runs at
``finish`` with the whole arguments object; the tool still gains the early ``start``.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar

from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.units import ParseError, Segmenter, Unit, Whole, WholeArguments

_PARAM_DOC = re.compile(r"^\s*(?::param\s+)?(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Turn ``fn`` into a ``Tool`` subclass; use as ``@tool`` or ``@tool(name="x")``."""

    def wrap(f: Callable[..., Any]) -> type[Tool]:
        return _function_tool(f, name or f.__name__)

    return wrap(fn) if fn is not None else wrap


def _function_tool(fn: Callable[..., Any], tool_name: str) -> type[Tool]:
    description, param_docs = _parse_doc(inspect.getdoc(fn) or "")
    parameters = schema_for(fn, param_docs)
    is_async = inspect.iscoroutinefunction(fn)

    class FunctionTool(Tool):
        name: ClassVar[str] = tool_name
        parameters: ClassVar[dict[str, Any]]
        function: ClassVar[Callable[..., Any]] = staticmethod(fn)
        _arguments: dict[str, Any] | None = None

        def segmenter(self) -> Segmenter:
            return WholeArguments()

        async def feed(self, unit: Unit) -> Reject | None:
            if isinstance(unit, ParseError):
                return Reject(unit.message)
            if isinstance(unit, Whole):
                self._arguments = unit.arguments
            return None

        async def finish(self) -> Result:
            args = self._arguments or {}
            try:
                if is_async:
                    value = await fn(**args)
                else:
                    # A plain function may block: keep it off the event loop.
                    value = await asyncio.to_thread(fn, **args)
            except Exception as exc:  # the tool's failure is the model's information
                return Result(f"{type(exc).__name__}: {exc}", is_error=True)
            return _to_result(value)

    FunctionTool.description = description or tool_name
    FunctionTool.parameters = parameters
    FunctionTool.__name__ = FunctionTool.__qualname__ = f"{tool_name}_tool"
    FunctionTool.__doc__ = fn.__doc__
    return FunctionTool


def _to_result(value: Any) -> Result:
    if isinstance(value, Result):
        return value
    if isinstance(value, str):
        return Result(value)
    try:
        return Result(json.dumps(value), data={"value": value})
    except (TypeError, ValueError):
        return Result(str(value))


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    paragraphs = doc.split("\n\n")
    description = " ".join(paragraphs[0].split()) if doc else ""
    params: dict[str, str] = {}
    for line in doc.splitlines()[1:]:
        m = _PARAM_DOC.match(line)
        if m and m.group(1) not in ("Args", "Returns", "Raises"):
            params[m.group(1)] = m.group(2).strip()
    return description, params


def schema_for(fn: Callable[..., Any], docs: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON Schema of ``fn``'s parameters, from its type hints."""
    hints = typing.get_type_hints(fn)
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        prop = _type_schema(hints.get(p.name, Any))
        if docs and p.name in docs:
            prop["description"] = docs[p.name]
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        elif p.default is None or isinstance(p.default, (str, int, float, bool)):
            prop["default"] = p.default
        props[p.name] = prop
    return {"type": "object", "properties": props, "required": required}


_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_schema(tp: Any) -> dict[str, Any]:
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if tp is type(None):
        return {"type": "null"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1:
            return _type_schema(non_null[0])
        return {"anyOf": [_type_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
        item = args[0] if args and args[0] is not Ellipsis else Any
        return {"type": "array", "items": _type_schema(item)}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    return {}
