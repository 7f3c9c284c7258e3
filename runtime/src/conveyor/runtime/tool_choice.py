"""``tool_choice: "required"`` or a named function: decoding constrained to a valid call.

The first round of such a request is decoded under structured outputs whose grammar is the
server's tool-call format around the tool's JSON schema, so whatever the model writes parses as
a call of an allowed tool with arguments that match its parameters (later rounds are free, as
in the OpenAI API, or a hosted tool would be called again and again):

- ``hermes``: ``<tool_call>\\n{"name": NAME, "arguments": ARGS}\\n</tool_call>``, ``ARGS`` held
  to the tool's ``parameters`` schema (one alternative per allowed tool);
- ``code``: a fenced ``python`` block (the only tool that format calls; its one argument is the
  code itself, so the fence is the whole call).

Other formats answer with a clear error rather than an unconstrained call.
"""

from __future__ import annotations

import json
from typing import Any

from conveyor.runtime.errors import BadRequest

# A fenced block: code lines, then the closing fence. A line indented less than four spaces
# must not start with a backtick, or the parser would read it as the closing fence.
_CODE_BLOCK = r"```python\n(( {0,3}[^ `\n]| {4})[^\n]*\n| *\n)+```"


def constrained_formats() -> tuple[str, ...]:
    return ("code", "hermes")


def chosen_tools(tool_choice: Any, offered: list[str]) -> tuple[str, ...] | None:
    """The tools a call must be of: None for "auto"/"none", all offered for "required".

    Raises ``BadRequest`` for a malformed choice or a function that is not offered.
    """
    if tool_choice in (None, "auto", "none"):
        return None
    if tool_choice == "required":
        if not offered:
            raise BadRequest("tool_choice: 'required' needs at least one tool")
        return tuple(offered)
    function = tool_choice.get("function") if isinstance(tool_choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(tool_choice, dict) or tool_choice.get("type") != "function" or not name:
        raise BadRequest(
            "tool_choice: must be 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}"
        )
    if name not in offered:
        available = ", ".join(sorted(offered)) or "none"
        raise BadRequest(f"tool_choice: function {name!r} is not offered (tools: {available})")
    return (name,)


def check_forceable(parser: str, tools: tuple[str, ...]) -> None:
    """Raise ``BadRequest`` unless a call of one of ``tools`` can be forced in ``parser``."""
    if parser not in constrained_formats():
        raise BadRequest(
            "tool_choice: forcing a call is supported with the "
            f"{' and '.join(constrained_formats())} tool-call formats, not {parser!r}"
        )
    if parser == "code" and "python" not in tools:
        raise BadRequest(
            "tool_choice: the code tool-call format can only call python "
            f"(asked for {', '.join(tools)})"
        )


def call_constraint(parser: str, tools: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Keyword arguments of vLLM's ``StructuredOutputsParams`` that force one call.

    ``tools`` maps each allowed tool to its JSON-schema ``parameters``; ``check_forceable``
    has passed for them.
    """
    if parser == "code":
        return {"regex": _CODE_BLOCK}
    return {"grammar": _hermes_grammar(tools)}


def _hermes_grammar(tools: dict[str, dict[str, Any]]) -> str:
    import xgrammar

    def literal(text: str) -> Any:
        return xgrammar.Grammar.from_ebnf(f"root ::= {json.dumps(text)}")

    calls = []
    for name, schema in tools.items():
        schema = schema or {"type": "object"}
        calls.append(
            xgrammar.Grammar.concat(
                literal('<tool_call>\n{"name": ' + json.dumps(name) + ', "arguments": '),
                xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False),
                literal("}\n</tool_call>"),
            )
        )
    grammar = calls[0] if len(calls) == 1 else xgrammar.Grammar.union(*calls)
    return str(grammar)
