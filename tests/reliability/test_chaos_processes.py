"""Chaos on one `conveyor serve` with its embedded sidecar: kill -9 the sidecar, a worker, and
at last the engine, with requests in flight, and see every request end and the server recover
(or, for the engine, say it is unhealthy so that Kubernetes restarts the pod).

The tests share one server and run in file order: the engine test kills it, so it comes last.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import psutil
import pytest
from reliability_kit import (
    SECRET,
    Serve,
    metric,
    nothing_in_flight,
    python_call,
    replayed,
    tool_contents,
    wait_until,
)

pytestmark = pytest.mark.engine

SLEEPER = python_call("import time\ntime.sleep(20)\nprint('slept')\n")


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    serve = Serve(tiny_model, tmp_path_factory.mktemp("chaos"))
    yield serve
    serve.stop()


async def _post_all(server: Serve, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
        return await asyncio.gather(
            *(client.post("/v1/chat/completions", json=body) for body in bodies)
        )


def _in_flight(server: Serve, count: int) -> bool:
    return metric(server.base_url, "conveyor_sidecar_invocations_in_flight") >= count


def test_the_sidecar_gets_an_allow_listed_environment(server) -> None:
    (sidecar,) = server.pids("sidecar")
    environ = psutil.Process(sidecar).environ()
    assert SECRET not in environ and "PATH" in environ
    assert os.environ.get(SECRET) is None  # the secret is only in the server's environment


@pytest.mark.asyncio
async def test_a_killed_sidecar_is_restarted_and_its_calls_end(server) -> None:
    base = server.base_url
    restarts = metric(base, "conveyor_sidecar_restarts_total")
    (sidecar,) = server.pids("sidecar")
    calls = asyncio.ensure_future(
        _post_all(server, [replayed(server.model, [SLEEPER, "done"])] * 8)
    )
    await asyncio.to_thread(wait_until, lambda: _in_flight(server, 8), 120, "8 calls running")

    os.kill(sidecar, signal.SIGKILL)
    # Readiness says so while the sidecar is down (the restart waits a backoff, then boots).
    saw_unready = await asyncio.to_thread(
        wait_until,
        lambda: httpx.get(f"{base}/ready", timeout=5).status_code == 503,
        10,
        "/ready fails while the sidecar is down",
        0.02,
    )
    responses = await asyncio.wait_for(calls, 120)  # none hangs
    for response in responses:
        assert response.status_code == 200
        (content,) = tool_contents(response)
        assert content.startswith("error:") and "tool service restarted" in content, content
        assert response.json()["choices"][0]["message"]["content"] == "done"

    killed = time.monotonic()
    answer = python_call("print(6 * 7)\n")

    def a_tool_call_works() -> bool:
        response = httpx.post(
            f"{base}/v1/chat/completions", json=replayed(server.model, [answer, "ok"]), timeout=60
        )
        return response.status_code == 200 and tool_contents(response) == ["42\n"]

    await asyncio.to_thread(wait_until, a_tool_call_works, 60, "a new tool call works", 0.5)
    print(f"a tool call worked again {time.monotonic() - killed:.1f} s after the calls ended")
    assert saw_unready
    assert (await asyncio.to_thread(httpx.get, f"{base}/ready")).status_code == 200
    assert metric(base, "conveyor_sidecar_restarts_total") == restarts + 1
    (restarted,) = server.pids("sidecar")
    assert restarted != sidecar and SECRET not in psutil.Process(restarted).environ()
    await asyncio.to_thread(wait_until, lambda: nothing_in_flight(base), 30, "nothing in flight")


@pytest.mark.asyncio
async def test_a_killed_worker_fails_its_call_only(server) -> None:
    # The victim holds 200 MiB, so it is the worker to find among the sidecar's children.
    victim = python_call("blob = b'x' * (200 << 20)\nimport time\ntime.sleep(20)\nprint('A')\n")
    others = python_call("import time\ntime.sleep(4)\nprint('B')\n")
    bodies = [replayed(server.model, [victim, "done"])]
    bodies += [replayed(server.model, [others, "done"])] * 3
    calls = asyncio.ensure_future(_post_all(server, bodies))

    def big_worker() -> int | None:
        (sidecar,) = server.pids("sidecar")
        big = []
        for child in psutil.Process(sidecar).children(recursive=True):
            try:
                if child.memory_info().rss > 150 << 20:
                    big.append(child.pid)
            except psutil.NoSuchProcess:  # a worker that ended since the listing
                continue
        return big[0] if big and _in_flight(server, 4) else None

    pid = await asyncio.to_thread(wait_until, big_worker, 120, "the victim's worker is running")
    os.kill(pid, signal.SIGKILL)
    victim_response, *other_responses = await asyncio.wait_for(calls, 120)
    (content,) = tool_contents(victim_response)
    assert content.startswith("error:"), content
    for response in other_responses:
        assert tool_contents(response) == ["B\n"]
    assert metric(server.base_url, "conveyor_sidecar_worker_crashes_total") >= 1


@pytest.mark.asyncio
async def test_a_dead_engine_fails_health_and_ends_its_requests(server) -> None:
    base = server.base_url
    (core,) = [p for p in server.processes() if p.role == "engine" and _is_core(p.pid)]
    body = replayed(server.model, ["z" * 3000], stream=True)

    async def stream() -> list[str]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                return [line async for line in response.aiter_lines() if line]

    running = asyncio.ensure_future(stream())
    await asyncio.to_thread(
        wait_until, lambda: metric(base, "vllm:num_requests_running") >= 1, 60, "decoding"
    )
    os.kill(core.pid, signal.SIGKILL)
    await asyncio.to_thread(
        wait_until,
        lambda: httpx.get(f"{base}/health", timeout=5).status_code != 200,
        60,
        "/health fails once the engine is dead",
        0.2,
    )
    assert (await asyncio.to_thread(httpx.get, f"{base}/ready")).status_code != 200
    lines = await asyncio.wait_for(running, 120)  # ends, with an error instead of [DONE]'s text
    assert any('"error"' in line for line in lines), lines[-3:]


def _is_core(pid: int) -> bool:
    return "EngineCore" in " ".join(psutil.Process(pid).cmdline())
