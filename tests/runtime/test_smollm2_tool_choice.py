"""tool_choice "required" or a named function: validated, and turned into a grammar that only
a well-formed call of an allowed tool satisfies. Pure; the live check on SmolLM2 is in
test_smollm2_serve.py."""

from __future__ import annotations

import json

import pytest
import xgrammar

from conveyor.runtime.chat_request import ServerPolicy, parse_request
from conveyor.runtime.errors import BadRequest
from conveyor.runtime.tool_choice import call_constraint

PYTHON = {
    "type": "function",
    "function": {
        "name": "python",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


def plan(tool_choice, parser: str = "hermes", tools=(PYTHON, ADD)):
    policy = ServerPolicy(hosted_tools={"python": PYTHON}, parser=parser)
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": list(tools),
        "tool_choice": tool_choice,
    }
    return parse_request(body, policy)


def accepts(grammar: str, text: str) -> bool:
    """Whether ``text`` is a complete sentence of the EBNF ``grammar`` (byte-level check)."""
    compiled = xgrammar.GrammarCompiler(
        xgrammar.TokenizerInfo([chr(i) for i in range(256)])
    ).compile_grammar(grammar)
    matcher = xgrammar.GrammarMatcher(compiled, terminate_without_stop_token=True)
    return all(matcher.accept_string(c) for c in text) and matcher.is_terminated()


def test_auto_and_none_force_nothing() -> None:
    assert plan("auto").forced_tools is None
    assert plan("none").forced_tools is None


def test_a_named_function_forces_that_function_with_its_schema() -> None:
    forced = plan({"type": "function", "function": {"name": "add"}}).forced_tools
    assert forced == {"add": ADD["function"]["parameters"]}


def test_required_forces_any_offered_tool() -> None:
    assert set(plan("required").forced_tools) == {"python", "add"}


@pytest.mark.parametrize(
    ("choice", "parser", "message"),
    [
        ({"type": "function", "function": {"name": "nope"}}, "hermes", "'nope' is not offered"),
        ({"type": "function"}, "hermes", "must be 'auto', 'none', 'required'"),
        ("always", "hermes", "must be 'auto', 'none', 'required'"),
        ({"type": "function", "function": {"name": "add"}}, "code", "can only call python"),
        ("required", "mistral", "not 'mistral'"),
    ],
)
def test_bad_choices_are_refused_clearly(choice, parser: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        plan(choice, parser)


def test_the_hermes_grammar_takes_a_valid_call_and_nothing_else() -> None:
    grammar = call_constraint("hermes", plan("required").forced_tools)["grammar"]
    call = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    assert accepts(grammar, call)
    code = {"code": "print(1)\n"}
    assert accepts(grammar, f'<tool_call>\n{{"name": "python", "arguments": {json.dumps(code)}}}'
                   "\n</tool_call>")  # fmt: skip
    assert not accepts(grammar, call.replace('"b": 2', '"b": "two"'))
    assert not accepts(grammar, call.replace("add", "sub"))
    assert not accepts(grammar, "Sure! " + call)


def test_the_code_format_forces_one_fenced_python_block() -> None:
    forced = plan({"type": "function", "function": {"name": "python"}}, "code").forced_tools
    regex = call_constraint("code", forced)["regex"]
    grammar = str(xgrammar.Grammar.from_regex(regex))
    assert accepts(grammar, "```python\nx = 6 * 7\n\nprint(x)\n```")
    assert not accepts(grammar, "Here:\n```python\nprint(1)\n```")
    assert not accepts(grammar, "```python\nprint(1)\n")
    assert not accepts(grammar, "```python\nprint(1)\n  ```\nprint(2)\n```")
