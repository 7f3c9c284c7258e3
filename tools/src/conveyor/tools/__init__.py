"""Conveyor's tool SDK: tools that act on their input while the model is still writing it."""

from conveyor.tools._decorator import tool
from conveyor.tools._registry import ToolRegistry, UnknownToolError
from conveyor.tools._tool import Reject, Result, Tool, ToolSource
from conveyor.tools.builtin import (
    CalculatorTool,
    PlannerTool,
    PythonTool,
    SearchTool,
    SqliteTool,
    default_registry,
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
    "ToolSource",
    "UnknownToolError",
    "default_registry",
    "tool",
    "validated",
]
