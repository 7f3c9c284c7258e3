"""The format registry: one module per tool-call format, imported only when first used."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from conveyor.tools.parsing._base import FormatParser

_FORMATS: dict[str, str] = {
    "hermes": "conveyor.tools.parsing.hermes:HermesParser",
    "llama3_json": "conveyor.tools.parsing.llama3_json:Llama3JsonParser",
    "mistral": "conveyor.tools.parsing.mistral:MistralParser",
    "pythonic": "conveyor.tools.parsing.pythonic:PythonicParser",
    "code": "conveyor.tools.parsing.code:CodeParser",
    "plan": "conveyor.tools.parsing.plan:PlanParser",
}
_ALIASES = {"qwen": "hermes", "qwen3": "hermes", "llama3": "llama3_json"}


def formats() -> list[str]:
    """The names a ``ToolCallStream`` accepts (aliases not included)."""
    return sorted(_FORMATS)


def register_format(name: str, target: str | type[FormatParser]) -> None:
    """Add a format: a ``FormatParser`` subclass or ``"module:Class"`` (imported lazily)."""
    if isinstance(target, str):
        _FORMATS[name] = target
    else:
        _FORMATS[name] = f"{target.__module__}:{target.__qualname__}"


def parser_class(name: str) -> Callable[[Callable[[], str]], FormatParser]:
    target = _FORMATS.get(_ALIASES.get(name, name))
    if target is None:
        raise ValueError(f"unknown tool-call format {name!r}; known: {', '.join(formats())}")
    module, _, attr = target.partition(":")
    cls: Callable[[Callable[[], str]], FormatParser] = getattr(
        importlib.import_module(module), attr
    )
    return cls
