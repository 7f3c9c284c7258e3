"""The tools a sidecar serves: the built-ins, some wrapped in ``validated`` by ``tools.yaml``."""

from __future__ import annotations

from conveyor.tools._registry import ToolRegistry
from conveyor.tools.builtin import BUILTIN_TOOLS, default_registry, validated


def tool_registry(validated_names: list[str] | tuple[str, ...] = ()) -> ToolRegistry:
    """The built-in tools, those named wrapped in ``validated`` (the worker builds the same)."""
    registry = default_registry()
    by_name = {cls.name: cls for cls in BUILTIN_TOOLS}
    for name in validated_names:
        registry.register(validated(by_name[name]))
    return registry
