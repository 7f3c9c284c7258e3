"""Protocol abuse on a raw websocket: every bad frame gets an error for its id (or a close with
a reason), the connection and the sidecar keep working; a client that vanishes mid-invocation
gets its workers cancelled and recycled."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conftest import SidecarProcess
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conveyor.tools.units import Field, Statement, unit_to_json

SUBPROTOCOL: Any = "conveyor.tools.v1"


async def raw(sidecar: SidecarProcess) -> ClientConnection:
    return await connect(
        sidecar.ws_url, subprotocols=[SUBPROTOCOL], proxy=None, max_size=None, compression=None
    )


async def answer(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def calculator_works(ws: ClientConnection, id: str) -> None:
    await ws.send(json.dumps({"type": "open", "id": id, "tool": "calculator"}))
    unit = {"type": "unit", "id": id, "unit": unit_to_json(Field(("expression",), "1+1"))}
    await ws.send(json.dumps(unit))
    await ws.send(json.dumps({"type": "finish", "id": id}))
    frame = await answer(ws)
    assert (frame["type"], frame["id"], frame["content"]) == ("result", id, "2"), frame


async def test_bad_frames_get_errors_and_the_connection_survives(sidecar: SidecarProcess) -> None:
    ws = await raw(sidecar)
    cases: list[tuple[str | bytes, str | None, str]] = [
        ("{not json", None, "not JSON"),
        ("[1, 2]", None, "JSON object"),
        (json.dumps({"type": "open", "tool": "python"}), None, "'id'"),
        (json.dumps({"type": "dance", "id": "d1"}), "d1", "unknown frame type"),
        (json.dumps({"type": "unit", "id": "ghost", "unit": {}}), "ghost", "unknown id"),
        (json.dumps({"type": "finish", "id": "ghost2"}), "ghost2", "unknown id"),
        (json.dumps({"type": "open", "id": "t1", "tool": "nope"}), "t1", "unknown tool"),
        (
            json.dumps({"type": "unit", "id": "big", "unit": {"x": "y" * 70_000}}),
            "big",
            "too large",
        ),
        (b"\xff\xfe binary garbage", None, "not JSON"),
    ]
    for frame, id, message in cases:
        await ws.send(frame)
        got = await answer(ws)
        assert got["type"] == "error" and got["id"] == id and message in got["message"], got
    await calculator_works(ws, "after-abuse")
    await ws.close()


async def test_out_of_order_frames(sidecar: SidecarProcess) -> None:
    ws = await raw(sidecar)
    # A duplicate open ends the live invocation with an error for its id.
    await ws.send(json.dumps({"type": "open", "id": "dup", "tool": "python"}))
    await ws.send(json.dumps({"type": "open", "id": "dup", "tool": "python"}))
    got = await answer(ws)
    assert got["type"] == "error" and got["id"] == "dup" and "duplicate open" in got["message"]
    # A unit after finish on a live invocation ends it with an error.
    await ws.send(json.dumps({"type": "open", "id": "late", "tool": "python"}))
    stmt = unit_to_json(Statement("import time; time.sleep(0.5)\n", 1))
    await ws.send(json.dumps({"type": "unit", "id": "late", "unit": stmt}))
    await ws.send(json.dumps({"type": "finish", "id": "late"}))
    await ws.send(json.dumps({"type": "unit", "id": "late", "unit": stmt}))
    got = await answer(ws)
    assert got["id"] == "late" and "frame after finish" in got["message"], got
    # A frame after a completed invocation is an error for that id too.
    await calculator_works(ws, "done")
    await ws.send(json.dumps({"type": "finish", "id": "done"}))
    got = await answer(ws)
    assert got["id"] == "done" and "frame after finish" in got["message"], got
    # A malformed unit reaches the worker, which refuses it.
    await ws.send(json.dumps({"type": "open", "id": "badunit", "tool": "calculator"}))
    await ws.send(json.dumps({"type": "unit", "id": "badunit", "unit": {"type": "??"}}))
    got = await answer(ws)
    assert got["id"] == "badunit" and got["type"] == "error" and "malformed unit" in got["message"]
    await calculator_works(ws, "still-fine")
    await ws.close()


async def test_huge_frame_closes_with_a_reason(sidecar: SidecarProcess) -> None:
    ws = await raw(sidecar)
    await ws.send("x" * (4 * 65536 + 10))
    try:
        await asyncio.wait_for(ws.recv(), 10)
        raise AssertionError("the connection should have been closed")
    except ConnectionClosed as e:
        assert e.rcvd is not None and e.rcvd.code == 1009  # message too big
    ws = await raw(sidecar)
    await calculator_works(ws, "next-connection")
    await ws.close()


async def test_unknown_subprotocol_is_refused(sidecar: SidecarProcess) -> None:
    try:
        ws = await connect(sidecar.ws_url, subprotocols=["conveyor.tools.v9"], proxy=None)  # type: ignore[list-item]
    except Exception:
        return  # refused during the handshake
    try:
        await asyncio.wait_for(ws.recv(), 5)
        raise AssertionError("expected a close")
    except ConnectionClosed:
        pass


async def test_disconnect_mid_invocation_cancels_and_recycles(sidecar: SidecarProcess) -> None:
    before = sidecar.metrics()
    ws = await raw(sidecar)
    for n in range(3):
        await ws.send(json.dumps({"type": "open", "id": f"v{n}", "tool": "python"}))
        stmt = unit_to_json(Statement("import time; time.sleep(20)\n", 1))
        await ws.send(json.dumps({"type": "unit", "id": f"v{n}", "unit": stmt}))
    await asyncio.sleep(0.5)
    await ws.close()
    for _ in range(50):
        await asyncio.sleep(0.1)
        after = sidecar.metrics()
        ready, alive = (
            after["conveyor_sidecar_workers_ready"],
            after["conveyor_sidecar_workers_alive"],
        )
        if ready >= 2 and alive == ready:
            break
    cancels = "conveyor_sidecar_disconnect_cancels_total"
    assert after[cancels] - before[cancels] == 3
    key = 'conveyor_sidecar_invocations_total{outcome="cancelled",tool="python"}'
    assert after[key] - before[key] == 3
    assert after['conveyor_sidecar_invocations_in_flight{tool="python"}'] == 0
    # The three workers were killed and replaced: more starts, all processes accounted for.
    starts = "conveyor_sidecar_worker_starts_total"
    assert after[starts] - before[starts] >= 3
    assert after["conveyor_sidecar_workers_alive"] == after["conveyor_sidecar_workers_ready"]


async def test_slow_tool_backpressure_is_per_id(sidecar: SidecarProcess) -> None:
    ws = await raw(sidecar)
    await ws.send(json.dumps({"type": "open", "id": "slow", "tool": "python"}))
    sleep = unit_to_json(Statement("import time; time.sleep(30)\n", 1))
    await ws.send(json.dumps({"type": "unit", "id": "slow", "unit": sleep}))
    filler = unit_to_json(Statement("x = '" + "y" * 60_000 + "'\n", 2))
    text = json.dumps({"type": "unit", "id": "slow", "unit": filler})
    # 24 MB for a tool that is asleep: more than the worker queues (256 units, 15 MB) plus the
    # sidecar's max_pending_bytes (4 MB), whatever the timing.
    for _ in range(400):
        await ws.send(text)
    await ws.send(json.dumps({"type": "open", "id": "other", "tool": "calculator"}))
    unit = unit_to_json(Field(("expression",), "1+1"))
    await ws.send(json.dumps({"type": "unit", "id": "other", "unit": unit}))
    await ws.send(json.dumps({"type": "finish", "id": "other"}))
    frames = {f["id"]: f for f in [await answer(ws), await answer(ws)]}
    assert frames["slow"]["reason"] == "backpressure", frames
    assert frames["other"]["content"] == "2"  # other ids are served all the while
    await ws.close()
