"""The Responses request's checks and its translation into the chat request the core runs, and
the bounded response store. Pure: no engine, no server."""

from __future__ import annotations

import pytest

from conveyor.runtime.chat_request import ServerPolicy
from conveyor.runtime.errors import BadRequest, ConveyorError
from conveyor.runtime.response_store import ResponseStore
from conveyor.runtime.responses_items import messages, output_items
from conveyor.runtime.responses_request import REFUSED, chat_request, parse, responses_error


def spec(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


HOSTED = {name: spec(name) for name in ("python", "files.read", "files.write", "web.fetch")}
POLICY = ServerPolicy(hosted_tools=HOSTED, model_names=("tiny",))
WEATHER = {"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": None}


def chat(body: dict, history: list | None = None):
    return chat_request(parse(body, HOSTED), history or [], POLICY)


def refusal(body: dict) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        chat(body)
    return caught.value


def test_a_string_input_and_instructions_become_system_and_user_messages() -> None:
    request = chat({"model": "tiny", "input": "hi", "instructions": "Be brief."})
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert request.hosted == set(HOSTED)  # no tools: every hosted tool, as chat completions


def test_sampling_fields_map_onto_the_chat_request() -> None:
    request = chat(
        {"input": "hi", "max_output_tokens": 7, "temperature": 0.5, "top_p": 0.9, "user": "u"}
    )
    assert request.max_tokens == 7
    assert (request.openai.temperature, request.openai.top_p) == (0.5, 0.9)


def test_function_tools_are_client_tools_unless_hosted_and_mcp_selects_a_server() -> None:
    request = chat(
        {
            "input": "hi",
            "tools": [
                WEATHER,
                {"type": "function", "name": "python", "parameters": {}, "strict": None},
                {"type": "mcp", "server_label": "files", "require_approval": "never"},
            ],
        }
    )
    assert request.client_tools == {"weather"}
    assert request.hosted == {"python", "files.read", "files.write"}
    allowed = {"type": "mcp", "server_label": "files", "allowed_tools": ["read"]}
    assert chat({"input": "hi", "tools": [allowed]}).hosted == {"files.read"}
    filtered = {**allowed, "allowed_tools": {"tool_names": ["write"]}}
    assert chat({"input": "hi", "tools": [filtered]}).hosted == {"files.write"}
    assert chat({"input": "hi", "tools": []}).hosted == set()


def test_tool_choice_names_a_function_or_an_mcp_tool() -> None:
    choice = {"type": "mcp", "server_label": "files", "name": "read"}
    request = chat({"input": "hi", "tool_choice": choice})
    assert request.openai.tool_choice.function.name == "files.read"
    request = chat({"input": "hi", "tools": [WEATHER], "tool_choice": "required"})
    assert request.openai.tool_choice == "required"


def test_a_conversation_of_items_becomes_turns_with_calls_and_results() -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A"}]},
        {"type": "mcp_call", "id": "mcp_1", "server_label": "files", "name": "read",
         "arguments": "{}", "output": "data", "status": "completed"},
        {"type": "function_call", "call_id": "c2", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c2", "output": "sunny"},
    ]  # fmt: skip
    assert messages(parse({"input": items}, HOSTED).input) == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "A",
            "tool_calls": [
                {
                    "id": "mcp_1",
                    "type": "function",
                    "function": {"name": "files.read", "arguments": "{}"},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                },
            ],
        },  # fmt: skip
        {"role": "tool", "tool_call_id": "mcp_1", "content": "data"},
        {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
    ]


def test_a_function_call_output_continues_the_stored_conversation() -> None:
    output = [
        {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "weather",
         "arguments": '{"city": "Paris"}', "status": "completed"},
    ]  # fmt: skip
    history = [{"type": "message", "role": "user", "content": "hi"}, *output_items(output)]
    answer = {"input": [{"type": "function_call_output", "call_id": "c1", "output": "sunny"}]}
    request = chat({**answer, "tools": [WEATHER]}, history)
    assert [m["role"] for m in request.messages] == ["user", "assistant", "tool"]
    # Without the stored turn the output answers no call: the chat layer's own 400.
    error = refusal({**answer, "tools": [WEATHER]})
    assert error.param == "input" and "must answer a call" in str(error)


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_every_refused_field_is_a_400_naming_it(field: str) -> None:
    error = refusal({"input": "hi", field: {"x": 1}})
    assert error.param == field and error.code == "unsupported_parameter"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "truncation": "auto"}, "truncation"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "include": ["reasoning.encrypted_content"]}, "include"),
        ({"input": "hi", "reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"input": "hi", "frobnicate": 1}, "frobnicate"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [{"type": "computer_use_preview"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [{"type": "mcp", "server_label": "files",
                                    "server_url": "https://x"}]}, "tools[0].server_url"),
        ({"input": "hi", "tools": [{"type": "mcp", "server_label": "files",
                                    "headers": {"a": "b"}}]}, "tools[0].headers"),
        ({"input": "hi", "tools": [{"type": "mcp", "server_label": "files",
                                    "authorization": "t"}]}, "tools[0].authorization"),
        ({"input": "hi", "tools": [{"type": "mcp", "server_label": "files",
                                    "require_approval": "always"}]}, "tools[0].require_approval"),
        ({"input": "hi", "tools": [{"type": "mcp", "server_label": "mail"}]},
         "tools[0].server_label"),
        ({"input": "hi", "tools": [{"type": "mcp", "server_label": "files",
                                    "allowed_tools": ["delete"]}]}, "tools[0].allowed_tools"),
        ({"input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice.type"),
        ({"input": "hi", "max_output_tokens": "many"}, "max_output_tokens"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "store": "yes"}, "store"),
    ],
)  # fmt: skip
def test_what_cannot_be_honoured_is_a_400_naming_the_field(body: dict, param: str) -> None:
    assert refusal(body).param == param


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([], "input"),
        ([{"role": "robot", "content": "x"}], "input[0].role"),
        ([{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}],
         "input[0].content[0].type"),
        ([{"role": "user", "content": 3}], "input[0].content"),
        ([{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}],
         "input[0].arguments"),
        ([{"type": "function_call_output", "output": "x"}], "input[0].call_id"),
        ([{"type": "reasoning", "summary": []}], "input[0].type"),
        (["hi"], "input[0]"),
    ],
)  # fmt: skip
def test_malformed_input_items_are_a_400_naming_the_item(items: list, param: str) -> None:
    assert refusal({"input": items}).param == param


def test_chat_layer_errors_speak_of_responses_fields() -> None:
    error = responses_error(
        BadRequest("max_completion_tokens: too big", param="max_completion_tokens")
    )
    assert (error.param, str(error)) == ("max_output_tokens", "max_output_tokens: too big")
    with pytest.raises(ConveyorError) as caught:
        chat({"input": "hi", "max_output_tokens": 1.5})
    assert caught.value.param == "max_output_tokens"


def test_the_store_is_bounded_in_entries_and_time() -> None:
    now = [0.0]
    store = ResponseStore(max_entries=2, ttl_seconds=10, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        store.put({"id": name}, [])
    assert store.get("a") is None and store.get("b") is not None and len(store) == 2
    now[0] = 10.0
    assert store.get("c") is None and len(store) == 0  # expired
    with pytest.raises(ValueError):
        ResponseStore(max_entries=0)
