"""The tools a sidecar serves: the built-ins, some wrapped in ``validated`` by ``tools.yaml``."""

from __future__ import annotations

from typing import Any


def tool_registry(validated_names: list[str] | tuple[str, ...] = ()) -> Any:
    """The built-in tools, those named wrapped in ``validated`` (the worker builds the same)."""
    from conveyor.tools import default_registry, validated
    from conveyor.tools.builtin import BUILTIN_TOOLS

    registry = default_registry()
    by_name = {cls.name: cls for cls in BUILTIN_TOOLS}
    for name in validated_names:
        registry.register(validated(by_name[name]))
    return registry
