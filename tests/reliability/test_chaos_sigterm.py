"""SIGTERM under load: readiness fails at once, new requests get 503, the requests in flight
complete, and the server leaves no engine, sidecar or worker process behind."""

from __future__ import annotations

import asyncio
import signal

import httpx
import psutil
import pytest
from reliability_kit import Serve, metric, python_call, replayed, tool_contents, wait_until

pytestmark = pytest.mark.engine


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.asyncio
async def test_sigterm_drains_then_leaves_nothing_behind(tiny_model, tmp_path) -> None:
    server = Serve(tiny_model, tmp_path, "--drain-seconds", "60")
    base = server.base_url
    try:
        tool = replayed(server.model, [python_call("import time\ntime.sleep(4)\nprint(1)\n"), "ok"])
        streamed = replayed(server.model, ["z" * 2000], stream=True)

        async with httpx.AsyncClient(base_url=base, timeout=120) as client:

            async def stream() -> list[str]:
                async with client.stream("POST", "/v1/chat/completions", json=streamed) as response:
                    return [line async for line in response.aiter_lines() if line]

            calls = [client.post("/v1/chat/completions", json=tool) for _ in range(4)]
            load = asyncio.ensure_future(asyncio.gather(*calls, stream(), stream()))
            await asyncio.to_thread(
                wait_until,
                lambda: metric(base, "conveyor_sidecar_invocations_in_flight") >= 4,
                120,
                "4 tool calls running",
            )
            tree = server.processes()
            roles = {s.role for s in tree}
            assert {"api", "engine", "sidecar", "worker"} <= roles, tree

            server.process.send_signal(signal.SIGTERM)
            assert (await client.get("/ready")).status_code == 503
            late = await client.post("/v1/chat/completions", json=tool)
            assert late.status_code == 503
            assert (await client.get("/health")).status_code == 200  # alive while draining

            *tool_responses, stream_a, stream_b = await asyncio.wait_for(load, 120)
        for response in tool_responses:
            assert response.status_code == 200 and tool_contents(response) == ["1\n"]
        for lines in (stream_a, stream_b):
            assert lines[-1] == "data: [DONE]" and not any('"error"' in x for x in lines)

        assert await asyncio.to_thread(server.process.wait, 120) == 0
        # multiprocessing's resource tracker cleans up after the server has exited.
        await asyncio.to_thread(
            wait_until,
            lambda: not any(_alive(s.pid) for s in tree),
            30,
            f"none of the server's {len(tree)} processes is left",
        )
    finally:
        server.stop()
