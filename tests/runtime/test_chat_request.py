"""Request parsing with vLLM's request model: which tools run where, Conveyor's options, and the
refusals that name their field. Pure: no engine, no server."""

from __future__ import annotations

import pytest

from conveyor.runtime.chat_request import REFUSED, Mode, ServerPolicy, parse_request
from conveyor.runtime.decode_policy import LIVE
from conveyor.runtime.errors import ConveyorError

PYTHON = {"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}
SQLITE = {"type": "function", "function": {"name": "sqlite", "parameters": {"type": "object"}}}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
POLICY = ServerPolicy(hosted_tools={"python": PYTHON, "sqlite": SQLITE}, model_names=("tiny",))
HELLO = [{"role": "user", "content": "hi"}]


def body(**extra):
    return {"model": "tiny", "messages": HELLO, **extra}


def names(chat) -> list[str]:
    return [t.function.name for t in chat.openai.tools or ()]


def refusal(request, policy=POLICY) -> dict:
    with pytest.raises(ConveyorError) as caught:
        parse_request(request, policy)
    return {"status": caught.value.status, **caught.value.body()["error"]}


def test_no_tools_named_means_every_hosted_tool() -> None:
    chat = parse_request(body(), POLICY)
    assert chat.hosted == {"python", "sqlite"} and not chat.client_tools
    assert names(chat) == ["python", "sqlite"] and chat.openai.tool_choice == "auto"
    assert chat.mode is Mode.PARTIAL and chat.decoding is LIVE


def test_request_tools_split_into_hosted_and_client() -> None:
    chat = parse_request(body(tools=[PYTHON, WEATHER]), POLICY)
    assert chat.hosted == {"python"} and chat.client_tools == {"weather"}
    assert names(chat) == ["python", "weather"]


def test_conveyor_tools_selects_hosted_tools_and_none_leaves_the_prompt_bare() -> None:
    assert names(parse_request(body(conveyor={"tools": ["sqlite"]}), POLICY)) == ["sqlite"]
    assert parse_request(body(conveyor={"tools": []}), POLICY).openai.tools is None


def test_tool_choice_none_hides_hosted_tools_and_parses_nothing() -> None:
    chat = parse_request(body(tool_choice="none"), POLICY)
    assert not chat.hosted and not chat.parse_calls and chat.openai.tools is None


def test_a_forced_call_follows_its_tools_schema() -> None:
    named = {"type": "function", "function": {"name": "python"}}
    for choice in ("required", named):
        chat = parse_request(body(tool_choice=choice), POLICY)
        assert all(t.function.strict for t in chat.openai.tools)
    assert not any(t.function.strict for t in parse_request(body(), POLICY).openai.tools)


def test_sampling_fields_reach_vllms_sampling_params() -> None:
    chat = parse_request(
        body(
            stop=["END"],
            stop_token_ids=[7],
            logit_bias={"5": 2.5},
            presence_penalty=0.5,
            frequency_penalty=0.25,
            repetition_penalty=1.1,
            min_tokens=2,
            ignore_eos=True,
            seed=3,
            logprobs=True,
            top_logprobs=2,
            response_format={"type": "json_object"},
        ),
        POLICY,
    )
    params = chat.openai.to_sampling_params(16, {})
    assert params.stop == ["END"] and params.stop_token_ids == [7]
    assert params.logit_bias == {5: 2.5} and params.min_tokens == 2 and params.ignore_eos
    assert (params.presence_penalty, params.frequency_penalty) == (0.5, 0.25)
    assert params.repetition_penalty == 1.1 and params.logprobs == 2
    assert params.structured_outputs is not None and params.structured_outputs.json_object


def test_choices_get_their_own_seed_as_in_vllm() -> None:
    chat = parse_request(body(n=3, seed=10), POLICY)
    assert [chat.choice(i).openai.seed for i in range(3)] == [10, 11, 12]
    assert {chat.choice(i).openai.n for i in range(3)} == {1}


def test_max_rounds_bounds_the_rounds_up_to_the_servers_cap() -> None:
    chat = parse_request(body(conveyor={"max_rounds": 2}), POLICY)
    assert chat.allows_round(1) and not chat.allows_round(2) and chat.decoding is LIVE
    assert refusal(body(conveyor={"max_rounds": 9}))["param"] == "conveyor.max_rounds"


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_every_refused_field_is_named(field: str) -> None:
    value = {"add_generation_prompt": False, "priority": 1}.get(field, True)
    if field in {"chat_template", "request_id"}:
        value = "x"
    elif field in {"chat_template_kwargs", "kv_transfer_params", "ec_transfer_params"}:
        value = {"a": 1}
    elif field in {"media_io_kwargs", "mm_processor_kwargs", "vllm_xargs"}:
        value = {"a": {"b": 1}} if field == "media_io_kwargs" else {"a": 1}
    elif field == "documents":
        value = [{"title": "t", "text": "x"}]
    elif field == "prompt_logprobs":
        value = 1
    elif field == "logprob_token_ids":
        return  # needs logprobs: covered by the server suite
    error = refusal(body(**{field: value}))
    assert error["status"] == 400 and error["param"] == field, error


def test_bookkeeping_fields_are_accepted() -> None:
    parse_request(body(metadata={"k": "v"}, store=False, user="u-1"), POLICY)


def test_tool_messages_answer_structured_calls_or_follow_a_turn_that_wrote_them() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    answered = [*HELLO, {"role": "assistant", "tool_calls": [call]}]
    tool = {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    parse_request(body(messages=[*answered, tool], tools=[WEATHER]), POLICY)
    # As Conveyor's rounds (and the benchmark) send it: the call written in the turn's text.
    written = {"role": "assistant", "content": '<tool_call>{"name": "weather"}</tool_call>'}
    parse_request(body(messages=[*HELLO, written, tool], tools=[WEATHER]), POLICY)
    for bad in (
        [*HELLO, tool],
        [*answered, tool, tool],
        [*answered, {**tool, "tool_call_id": "x"}],
    ):
        assert refusal(body(messages=bad, tools=[WEATHER]))["param"].endswith("tool_call_id")


def test_forcing_a_call_with_no_tool_at_all_is_a_400() -> None:
    error = refusal(body(tool_choice="required", conveyor={"tools": []}))
    assert error["param"] == "tool_choice" and "at least one tool" in error["message"]
