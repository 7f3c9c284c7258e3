"""Replay, the extension the tests and the benchmark register: its request option, the rounds
it allows, and the bias that fixes how a replayed text is cut into tokens. The tokenizer is the
tiny model's own; no engine runs."""

from __future__ import annotations

import pytest

from conveyor.runtime.chat_request import ServerPolicy, parse_request
from conveyor.runtime.errors import BadRequest
from conveyor.runtime.replay import OPTION, ReplayExtension, longest_match_bias

HELLO = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
REFUSED = ServerPolicy(
    hosted_tools={}, refused_options={OPTION: "this server was not started with --allow-replay"}
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def allowed(tokenizer) -> ServerPolicy:
    return ServerPolicy(hosted_tools={}, extensions={OPTION: ReplayExtension(tokenizer)})


def test_replay_is_refused_unless_the_server_registered_it() -> None:
    with pytest.raises(BadRequest, match="conveyor.replay: .*--allow-replay"):
        parse_request({**HELLO, "conveyor": {"replay": ["x"]}}, REFUSED)
    with pytest.raises(BadRequest, match="unknown option"):
        parse_request({**HELLO, "conveyor": {"replay": ["x"]}}, ServerPolicy(hosted_tools={}))


def test_each_round_decodes_its_text_and_no_round_runs_past_the_last(allowed, tokenizer) -> None:
    chat = parse_request({**HELLO, "conveyor": {"replay": ["a", "Done here."]}}, allowed)
    second = chat.decoding.round(1)
    assert second.force == "Done here." and second.token_bias
    assert second.budget == len(tokenizer.encode("Done here.", add_special_tokens=False))
    assert chat.allows_round(1) and not chat.allows_round(2)
    capped = parse_request({**HELLO, "conveyor": {"replay": ["a", "b"], "max_rounds": 1}}, allowed)
    assert not capped.allows_round(1)


@pytest.mark.parametrize("bad", [[], "text", [1], {"0": "a"}, ["a", None]])
def test_anything_but_a_list_of_texts_is_refused(allowed, bad) -> None:
    with pytest.raises(BadRequest, match="conveyor.replay: must be a non-empty list of strings"):
        parse_request({**HELLO, "conveyor": {"replay": bad}}, allowed)


def test_two_extension_options_in_one_request_are_refused(tokenizer) -> None:
    extension = ReplayExtension(tokenizer)
    policy = ServerPolicy(hosted_tools={}, extensions={OPTION: extension, "script": extension})
    with pytest.raises(BadRequest, match="cannot be combined"):
        parse_request({**HELLO, "conveyor": {"replay": ["a"], "script": ["b"]}}, policy)


def test_the_bias_favours_longer_tokens(tokenizer) -> None:
    bias = longest_match_bias(tokenizer)
    assert len(bias) == len(tokenizer) and all(0 <= b <= 100 for b in bias.values())
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    short = next(i for i, t in enumerate(tokens) if len(t) == 1)
    long = max(range(len(tokens)), key=lambda i: len(tokens[i]))
    assert bias[long] > bias[short]
