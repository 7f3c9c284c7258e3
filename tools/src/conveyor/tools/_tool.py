"""The partial-execution tool interface: what a tool is and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from conveyor.tools.units import JsonFields, Segmenter, Unit


@dataclass(frozen=True, slots=True)
class Result:
    """What a finished invocation returns to the model."""

    content: str
    is_error: bool = False
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """A unit that can never succeed: the call is abandoned and decoding stops early."""

    reason: str


class ToolSource(Protocol):
    """What a tool that calls other tools needs of a registry (``ToolRegistry`` is one)."""

    def create(self, name: str, config: dict[str, Any] | None = None) -> Tool: ...

    def __contains__(self, name: object) -> bool: ...


@dataclass(slots=True)
class Tool:
    """A tool that acts on its input while the model is still writing it.

    One instance serves one invocation. The caller guarantees the order
    [``use_session``] → ``start`` → ``feed``* → (``finish`` | ``cancel``), with ``finish`` or
    ``cancel`` exactly once. Subclasses set the class attributes and override the coroutines
    they need.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]

    config: dict[str, Any] = field(default_factory=dict)

    def segmenter(self) -> Segmenter:
        """How this tool's argument text is cut into units (default: every closed JSON field)."""
        return JsonFields()

    def use_registry(self, registry: ToolSource) -> None:
        """Called by ``ToolRegistry.create``; tools that call other tools (the planner) keep it."""

    def use_session(self, state: dict[str, Any]) -> None:
        """Called before ``start`` when this call belongs to a session.

        ``state`` is one dict shared by every call of the session, in turn (never at once),
        for as long as the session lives: keep in it what the next call should see (the python
        tool keeps its globals there, like a notebook). Only tools that override this hook keep
        state: calls of any other tool ignore their session and run in a fresh worker each.
        """

    @classmethod
    def keeps_session_state(cls) -> bool:
        """Whether this tool overrides :meth:`use_session`."""
        return cls.use_session is not Tool.use_session

    async def start(self) -> None:
        """The call has been recognised: warm up (connect, open, import)."""

    async def feed(self, unit: Unit) -> Reject | None:
        """One more complete unit, in order. Return ``Reject`` to abandon the call."""
        return None

    async def finish(self) -> Result:
        """The input is complete: return the result."""
        raise NotImplementedError

    async def cancel(self) -> None:
        """The request went away: release everything."""

    @classmethod
    def openai_schema(cls) -> dict[str, Any]:
        """This tool in the OpenAI ``tools`` format."""
        return {
            "type": "function",
            "function": {
                "name": cls.name,
                "description": cls.description,
                "parameters": cls.parameters,
            },
        }
