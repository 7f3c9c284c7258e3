"""The calculator tool: safe arithmetic over the AST, evaluated the moment ``expression`` closes."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any, ClassVar

from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.builtin._fields import top_level_fields
from conveyor.tools.units import ParseError, Unit

MAX_LENGTH = 1000
MAX_EXPONENT = 10_000
MAX_INT_BITS = 100_000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    **{
        n: getattr(math, n)
        for n in (
            "sqrt",
            "exp",
            "log",
            "log2",
            "log10",
            "sin",
            "cos",
            "tan",
            "asin",
            "acos",
            "atan",
            "floor",
            "ceil",
            "factorial",
            "hypot",
            "degrees",
            "radians",
        )  # fmt: skip
    },
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}


class CalculatorError(ValueError):
    """The expression is not safe arithmetic, or too big to compute."""


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression; never runs code, bounded in time and memory."""
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CalculatorError(f"not an expression: {exc}") from None
    try:
        value: int | float = _eval(tree.body)
        return value
    except (ZeroDivisionError, OverflowError, ValueError, TypeError, RecursionError) as exc:
        if isinstance(exc, CalculatorError):
            raise
        raise CalculatorError(f"{type(exc).__name__}: {exc}") from None


def _eval(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        raise CalculatorError(f"not a number: {node.value!r}")
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        if isinstance(node.op, ast.BitXor):
            raise CalculatorError("`^` is not a power here: write `**`")
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalculatorError(f"operator {type(node.op).__name__} is not allowed")
        if op is operator.mul:
            _check_bits(left, right)
        return _bounded(op(left, right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and args and isinstance(args[0], int) and args[0] > 2000:
            raise CalculatorError("factorial argument too large")
        return _bounded(_FUNCTIONS[node.func.id](*args))
    raise CalculatorError(f"not allowed in an expression: {ast.unparse(node)[:40]!r}")


def _power(base: Any, exp: Any) -> Any:
    if abs(exp) > MAX_EXPONENT:
        raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exp, int) and exp > 0:
        if base.bit_length() * exp > MAX_INT_BITS:
            raise CalculatorError("result too large")
    return _bounded(base**exp)


def _check_bits(a: Any, b: Any) -> None:
    if isinstance(a, int) and isinstance(b, int):
        if a.bit_length() + b.bit_length() > MAX_INT_BITS:
            raise CalculatorError("result too large")


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("result too large")
    if isinstance(value, complex):
        raise CalculatorError("complex result")
    return value


class CalculatorTool(Tool):
    """Evaluates one arithmetic expression: + - * / // % **, parentheses, math functions."""

    name: ClassVar[str] = "calculator"
    description: ClassVar[str] = (
        "Evaluate an arithmetic expression (+ - * / // % **, sqrt, log, sin, pi, ...)."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "expression": {"type": "string", "description": "For example `2 * (3 + 4) ** 2`."}
        },
        "required": ["expression"],
    }

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {})
        self._result: Result | None = None

    async def feed(self, unit: Unit) -> Reject | None:
        if isinstance(unit, ParseError):
            return Reject(unit.message)
        for key, value in top_level_fields(unit):
            if key == "expression" and self._result is None:
                if not isinstance(value, str):
                    return Reject("`expression` must be a string")
                try:
                    number = evaluate(value)
                except CalculatorError as exc:
                    self._result = Result(f"error: {exc}", is_error=True)
                else:
                    self._result = Result(str(number), data={"value": number})
        return None

    async def finish(self) -> Result:
        return self._result or Result("missing `expression`", is_error=True)
