"""ToolRegistry: tool names mapped to factories, with their OpenAI schemas and segmenter specs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from conveyor.tools._tool import Tool

ToolFactory = Callable[[dict[str, Any]], Tool]
F = TypeVar("F", bound=Callable[..., Any])


class UnknownToolError(KeyError):
    """No tool of that name is registered."""


@dataclass(frozen=True, slots=True)
class _Entry:
    factory: ToolFactory
    schema: dict[str, Any]
    segmenter: dict[str, Any]
    keeps_session_state: bool


class ToolRegistry:
    """Maps tool names to factories ``factory(config) -> Tool``.

    A factory is a ``Tool`` subclass (called as ``cls(config=config)``) or any callable taking
    the config dict. Registering builds one instance with an empty config to learn the tool's
    name, schema and segmenter, so constructors must do no I/O (that belongs in ``start``).
    """

    def __init__(self, tools: Iterable[type[Tool] | ToolFactory] = ()) -> None:
        self._entries: dict[str, _Entry] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: F) -> F:
        """Add ``tool`` (usable as a class decorator); a later tool of the same name wins."""
        factory = _as_factory(tool)
        probe = factory({})
        schema = probe.openai_schema()
        self._entries[probe.name] = _Entry(
            factory, schema, probe.segmenter().spec(), probe.keeps_session_state()
        )
        return tool

    def create(self, name: str, config: dict[str, Any] | None = None) -> Tool:
        """A fresh tool instance for one invocation."""
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownToolError(name)
        tool = entry.factory(dict(config or {}))
        tool.use_registry(self)
        return tool

    def keeps_session_state(self, name: str) -> bool:
        """Whether the tool ``name`` keeps state across the calls of a session."""
        return self._entry(name).keeps_session_state

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def openai_tools(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The schemas in the OpenAI ``tools`` request format."""
        return [self._entry(n).schema for n in self._select(names)]

    def specs(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Each OpenAI tool dict plus ``{"x-conveyor": {"segmenter": <spec>}}``."""
        return [
            {**self._entry(n).schema, "x-conveyor": {"segmenter": self._entry(n).segmenter}}
            for n in self._select(names)
        ]

    def _select(self, names: Iterable[str] | None) -> list[str]:
        return self.names() if names is None else list(names)

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownToolError(name) from None


def _as_factory(tool: Any) -> ToolFactory:
    if isinstance(tool, type) and issubclass(tool, Tool):
        cls = tool
        return lambda config: cls(config=config)
    if callable(tool):
        return cast(ToolFactory, tool)
    raise TypeError(f"not a tool class or factory: {tool!r}")
