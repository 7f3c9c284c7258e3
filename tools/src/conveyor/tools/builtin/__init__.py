"""The built-in tools, one module each."""

from __future__ import annotations

from conveyor.tools._registry import ToolRegistry
from conveyor.tools._tool import Tool
from conveyor.tools.builtin.calculator import CalculatorTool
from conveyor.tools.builtin.planner import PlannerTool
from conveyor.tools.builtin.python import PythonTool
from conveyor.tools.builtin.search import SearchTool
from conveyor.tools.builtin.sqlite import SqliteTool
from conveyor.tools.builtin.validated import validated

BUILTIN_TOOLS: tuple[type[Tool], ...] = (
    PythonTool,
    SqliteTool,
    CalculatorTool,
    SearchTool,
    PlannerTool,
)


def default_registry() -> ToolRegistry:
    """A registry holding every built-in tool."""
    return ToolRegistry(BUILTIN_TOOLS)


__all__ = [
    "BUILTIN_TOOLS",
    "CalculatorTool",
    "PlannerTool",
    "PythonTool",
    "SearchTool",
    "SqliteTool",
    "default_registry",
    "validated",
]
