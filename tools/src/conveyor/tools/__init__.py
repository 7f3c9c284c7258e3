"""Conveyor's tool SDK: tools that act on their input while the model is still writing it."""

from conveyor.tools._tool import Reject, Result, Tool

__all__ = ["Reject", "Result", "Tool"]
