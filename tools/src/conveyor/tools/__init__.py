"""Conveyor's tool SDK: tools that act on their input while the model is still writing it."""

from conveyor.tools._decorator import tool
from conveyor.tools._registry import ToolRegistry, UnknownToolError, default_registry
from conveyor.tools._tool import Reject, Result, Tool
from conveyor.tools.builtin import (
    CalculatorTool,
    PlannerTool,
    PythonTool,
    SearchTool,
    SqliteTool,
    validated,
)

__all__ = [
    "CalculatorTool",
    "PlannerTool",
    "PythonTool",
    "Reject",
    "Result",
    "SearchTool",
    "SqliteTool",
    "Tool",
    "ToolRegistry",
    "UnknownToolError",
    "default_registry",
    "tool",
    "validated",
]
