"""The protocol module against its documentation, and its encoding against its decoding."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conveyor.tools.protocol import (
    CLIENT_FRAMES,
    SERVER_FRAMES,
    Cancel,
    EndSession,
    ErrorFrame,
    Finish,
    Open,
    ProtocolError,
    Reason,
    RejectFrame,
    ResultFrame,
    Timing,
    UnitFrame,
    decode_client_frame,
    decode_server_frame,
    encode,
)
from conveyor.tools.protocol import worker as channel

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(f"## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end >= 0 else None]


def test_every_documented_frame_exists_and_every_frame_is_documented() -> None:
    documented = set(re.findall(r'`\{"type": "(\w+)"', _section("Frames")))
    in_code = {cls.TYPE for cls in (*CLIENT_FRAMES, *SERVER_FRAMES)}
    assert documented == in_code


def test_every_documented_reason_exists_and_every_reason_is_documented() -> None:
    table = _section("Frames").split("`error.reason`", 1)[1].split("## ")[0]
    documented = {
        name
        for row in re.findall(r"^\| (.+?) \|", table, re.M)
        for name in re.findall(r"`([^`]+)`", row)
    }
    documented -= {"crashed: signal N", "crashed: exit code N"}  # examples of `crashed` messages
    assert documented == {r.value for r in Reason}


def test_every_documented_worker_message_exists_and_the_reverse() -> None:
    rows = re.findall(r"^\| (.+?) \| (sidecar|worker) → ", _section("The worker channel"), re.M)
    documented = {name for cell, _ in rows for name in re.findall(r"`(\w+)`", cell)}
    in_code = {
        cls.TYPE
        for cls in (
            channel.Boot,
            channel.StartCall,
            channel.CancelCall,
            UnitFrame,
            Finish,
            channel.Ready,
            channel.CallResult,
            channel.CallReject,
            channel.CallError,
            channel.Cancelled,
        )
    }
    assert documented == in_code


TIMING = Timing(opened=1.0, started=1.5, finished=2.0, busy=[[1.5, 1.6]])


@pytest.mark.parametrize(
    "frame",
    [
        Open("a", "python"),
        Open("a", "python", session="s-1"),
        UnitFrame("a", {"type": "field", "path": ["x"], "value": 1}),
        Finish("a"),
        Cancel("a"),
        EndSession("s-1"),
    ],
)
def test_client_frames_round_trip(frame: object) -> None:
    assert decode_client_frame(encode(frame), 1 << 20) == frame  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "frame",
    [
        ResultFrame("a", "42", False, {"value": 42}, TIMING),
        ResultFrame("a", "boom", True, None, TIMING),
        RejectFrame("a", "`x` must be integer", TIMING),
        ErrorFrame("a", "cpu limit: used 1.0 s", Reason.CPU_LIMIT),
        ErrorFrame(None, "malformed frame: not JSON"),
    ],
)
def test_server_frames_round_trip(frame: ResultFrame | RejectFrame | ErrorFrame) -> None:
    assert decode_server_frame(encode(frame)) == frame


def test_the_wire_text_is_what_the_docs_show() -> None:
    assert json.loads(encode(Open("a", "python"))) == {"type": "open", "id": "a", "tool": "python"}
    error = json.loads(encode(ErrorFrame("a", "timeout: slow", Reason.TIMEOUT)))
    assert error == {"type": "error", "id": "a", "message": "timeout: slow", "reason": "timeout"}


@pytest.mark.parametrize(
    ("text", "message", "id"),
    [
        ("{", "not JSON", None),
        ("[]", "expected a JSON object", None),
        ('{"type": "open", "id": ""}', "'id' must be a string", None),
        ('{"type": "open", "id": "a"}', "'tool' must be a string", "a"),
        ('{"type": "open", "id": "a", "tool": "t", "session": 3}', "'session'", "a"),
        ('{"type": "unit", "id": "a", "unit": []}', "'unit' must be an object", "a"),
        ('{"type": "nope", "id": "a"}', "unknown frame type 'nope'", "a"),
        ('{"type": "finish", "id": "big", "pad": "' + "x" * 200 + '"}', "frame too large", "big"),
    ],
)
def test_bad_client_frames_say_why(text: str, message: str, id: str | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_frame(text, 128)
    assert message in caught.value.message and caught.value.id == id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "result", "id": "a", "content": "x", "timing": {}, "data": 3}', "'data'"),
        ('{"type": "result", "id": "a", "content": 1, "timing": {}}', "'content'"),
        ('{"type": "reject", "id": "a", "reason": "r"}', "'timing'"),
        ('{"type": "error", "id": "a", "message": "m", "reason": "gremlins"}', "gremlins"),
    ],
)
def test_bad_server_frames_say_why(text: str, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_server_frame(text)
    assert message in caught.value.message and caught.value.id == "a"


def test_worker_messages_round_trip() -> None:
    limits = channel.CallLimits(cpu_seconds=1, session_cpu_seconds=5, max_output=10)
    start = channel.StartCall("a", "python", {"k": 1}, True, 1.0, limits)
    assert channel.decode_to_worker(channel.encode_message(start)) == start
    result = channel.CallResult("out", False, None, TIMING)
    assert channel.decode_from_worker(channel.encode_message(result)) == result
    error = channel.CallError("memory limit: out", Reason.MEMORY_LIMIT)
    assert channel.decode_from_worker(channel.encode_message(error)) == error
    with pytest.raises(ValueError, match="'is_error'"):
        channel.decode_from_worker(b'{"type": "result", "content": "", "is_error": 1}')
