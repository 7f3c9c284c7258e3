"""PlanSteps: LLMCompiler-style plans, one ``$n = tool(args)`` step a line."""

from __future__ import annotations

import ast
import re
import warnings
from typing import Any

from conveyor.tools.units._types import ParseError, Ref, Step, Unit

_STEP = re.compile(r"\s*\$(\d+)\s*=\s*([A-Za-z_][\w.]*)\s*\((.*)\)\s*")
# String literals are skipped so that a `$1` inside text stays text (it is substituted later).
_REFS = re.compile(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|\$(\d+)")
_REF_NAME = re.compile(r"_conveyor_ref_(\d+)")
_TEXT_REF = re.compile(r"\$(\d+)")
_JSON_NAMES = {"true": True, "false": False, "null": None}


class PlanSteps:
    """Cuts a plan into ``Step`` units, each the moment its line ends.

    Blank lines, ``#`` comments and ``Thought:`` lines are skipped. A line that is not a step
    gives a ``ParseError`` and ends the plan.
    """

    __slots__ = ("_failed", "_partial")

    def __init__(self) -> None:
        self._partial = ""
        self._failed = False

    def spec(self) -> dict[str, Any]:
        return {"kind": "plan_steps"}

    def feed(self, text: str) -> list[Unit]:
        if self._failed:
            return []
        out: list[Unit] = []
        nl = text.find("\n")
        if nl < 0:
            self._partial += text
            return out
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line, out)
            if self._failed:
                break
        return out

    def close(self) -> list[Unit]:
        out: list[Unit] = []
        if self._partial and not self._failed:
            self._line(self._partial, out)
        self._partial = ""
        return out

    def _line(self, line: str, out: list[Unit]) -> None:
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "Thought:")):
            return
        try:
            out.append(parse_step(stripped))
        except ValueError as exc:
            self._failed = True
            out.append(ParseError(f"bad plan line {stripped[:80]!r}: {exc}"))


def parse_step(line: str) -> Step:
    """Parse one ``$n = tool(args)`` line; ``ValueError`` says why it is not a step."""
    m = _STEP.fullmatch(line)
    if m is None:
        raise ValueError("expected `$n = tool(args)`")
    step_id = int(m.group(1))
    source = _REFS.sub(lambda r: r.group(1) or f"_conveyor_ref_{r.group(2)}", m.group(3))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. an invalid escape in a string literal
            call = ast.parse(f"f({source})", mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"arguments do not parse: {exc}") from None
    assert isinstance(call, ast.Call)
    deps: list[int] = []
    args: dict[str | int, Any] = {}
    for index, node in enumerate(call.args):
        if isinstance(node, ast.Starred):
            raise ValueError("*args is not allowed")
        args[index] = _literal(node, deps)
    for kw in call.keywords:
        if kw.arg is None:
            raise ValueError("**kwargs is not allowed")
        args[kw.arg] = _literal(kw.value, deps)
    for dep in deps:
        if dep >= step_id:
            raise ValueError(f"step ${step_id} cannot depend on the later step ${dep}")
    return Step(step_id, m.group(2), args, tuple(dict.fromkeys(deps)))


def _literal(node: ast.expr, deps: list[int]) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            deps.extend(int(d) for d in _TEXT_REF.findall(node.value))
        if isinstance(node.value, (str, int, float, bool)) or node.value is None:
            return node.value
        raise ValueError(f"unsupported constant {node.value!r}")
    if isinstance(node, ast.Name):
        ref = _REF_NAME.fullmatch(node.id)
        if ref:
            deps.append(int(ref.group(1)))
            return Ref(int(ref.group(1)))
        if node.id in _JSON_NAMES:
            return _JSON_NAMES[node.id]
        raise ValueError(f"unknown name {node.id!r}")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, deps) for e in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                raise ValueError("dict keys must be strings")
            out[k.value] = _literal(v, deps)
        return out
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
        and not isinstance(node.operand.value, bool)
    ):
        number = node.operand.value
        return -number if isinstance(node.op, ast.USub) else number
    raise ValueError(f"unsupported argument {ast.dump(node)[:60]}")
