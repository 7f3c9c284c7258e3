"""MCP servers as hosted tools, through a real sidecar process and real MCP servers.

The servers are ``tests/tools/mcp_servers/srv.py``, written with the SDK's server API: over
stdio it runs inside the sidecar's sandbox (a worker starts it at ``open``); over Streamable
HTTP it runs in a thread of this test, so ``srv.CALLS`` shows when each ``tools/call`` started
and whether ``notifications/cancelled`` reached it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SidecarProcess, free_port, start_sidecar
from sidecar_testkit import call, segmenters

from conveyor.tools.client import Invocation, SidecarClient
from conveyor.tools.units import Field

SERVERS = Path(__file__).resolve().parents[1] / "mcp_servers"
sys.path.insert(0, str(SERVERS))
import srv  # noqa: E402 - the in-process HTTP server, next to the stdio one

SRV = str(SERVERS / "srv.py")
# This module's base limits are cut for quick built-in tool faults; a server process loading
# the SDK gets the sidecar's default memory, processes and CPU back.
# The wall time runs from `finish`, which these calls send at once, while the stdio server is
# still starting (a second alone, far more on a busy machine).
MCP_LIMITS = {"memory_mb": 1024, "nproc": 32, "cpu_seconds": 10, "wall_seconds": 30}


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    port = free_port()
    server, thread = srv.http_server(port)
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def mcp_sidecar(
    tmp_path_factory: pytest.TempPathFactory, http_port: int
) -> Iterator[SidecarProcess]:
    url = f"http://127.0.0.1:{http_port}/mcp"
    stdio = {"transport": "stdio", "command": sys.executable, "limits": MCP_LIMITS}
    config = {
        "tools": ["calculator"],
        # Uids of its own, per test process: a sidecar recycles a worker by killing its uid's
        # processes, and other sidecars on the host (other sessions, the runtime's) use theirs.
        "isolation": {"uid_base": 2_000_000 + (os.getpid() % 4000) * 100},
        "mcp_servers": {
            "srv": {**stdio, "args": [SRV]},
            "web": {
                "transport": "streamable-http",
                "url": url,
                "headers": {"X-Team": "tests"},
                "tools": {"slow": {"start_on": "query"}, "write": {"start_on": "text"}},
            },
            "webplain": {"transport": "streamable-http", "url": url},
            "broken": {**stdio, "args": ["-c", "import sys; sys.exit(3)"]},
            "stuck": {
                **stdio,
                "args": ["-c", "import time; time.sleep(60)"],
                "list_timeout_seconds": 3,
            },  # fmt: skip
            "offline": {"transport": "streamable-http", "url": url, "network": False},
        },
    }
    proc = start_sidecar(tmp_path_factory.mktemp("mcp-sidecar"), config)
    yield proc
    proc.stop()


def _calls(kind: str, query: str) -> list[float]:
    return [t for k, q, t in list(srv.CALLS) if k == kind and q == query]


async def _wait_for(kind: str, query: str) -> float:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if seen := _calls(kind, query):
            return seen[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"the server never saw {kind} {query!r}: {srv.CALLS}")


async def _feed(inv: Invocation, **fields: Any) -> None:
    for name, value in fields.items():
        await inv.feed(Field((name,), value))


def test_listing_serves_each_servers_tools_and_fails_closed(mcp_sidecar: SidecarProcess) -> None:
    specs = {s["function"]["name"]: s for s in httpx.get(mcp_sidecar.url + "/v1/tools").json()}
    for name in ("srv.fast", "srv.slow", "web.slow", "webplain.fast", "calculator"):
        assert name in specs
    slow = specs["srv.slow"]
    assert slow["function"]["parameters"]["required"] == ["query"]
    assert slow["x-conveyor"]["segmenter"] == {"kind": "json_fields", "deltas": False}
    ready = httpx.get(mcp_sidecar.url + "/readyz").json()
    assert ready["ready"] is True  # the other tools are still served
    unavailable = ready["unavailable"]
    assert "cannot list its tools" in unavailable["broken.*"]
    assert "timeout" in unavailable["stuck.*"]
    assert "network: false" in unavailable["offline.*"]
    assert "readOnlyHint or idempotentHint" in unavailable["web.write"]
    for name in ("broken.fast", "web.write", "offline.fast"):
        assert name not in specs
    log = mcp_sidecar.log()
    assert "MCP server srv (stdio): 5 tools" in log
    assert "mcp_servers.web.tools.write.start_on: refused" in log


async def test_a_call_over_each_transport(mcp_sidecar: SidecarProcess) -> None:
    async with SidecarClient(mcp_sidecar.url) as client:
        specs = await segmenters(client)
        over_stdio, over_http = await asyncio.gather(
            call(client, specs, "srv.fast", {"text": "hi"}),
            call(client, specs, "webplain.fast", {"text": "ho"}),
        )
        slow = await call(client, specs, "srv.slow", {"query": "deep", "seconds": 0.1})
        inv = await client.open("broken.fast")  # not offered, but a client may still ask
        await inv.finish()
        unavailable = await inv.outcome()
    assert (over_stdio.kind, over_stdio.content, over_stdio.is_error) == (
        "result",
        "fast:hi",
        False,
    )
    assert over_http.content == "fast:ho"
    assert slow.data is not None and slow.data["answer"] == "slow:deep"  # structured content
    assert unavailable.kind == "error" and "cannot list its tools" in unavailable.content
    metrics = mcp_sidecar.metrics()
    assert metrics['conveyor_sidecar_invocations_total{outcome="result",tool="srv.fast"}'] >= 1
    assert 'conveyor_sidecar_invocations_total{outcome="error",tool="web.slow"}' in metrics


async def test_start_on_sends_the_call_before_finish(mcp_sidecar: SidecarProcess) -> None:
    async with SidecarClient(mcp_sidecar.url) as client:
        inv = await client.open("web.slow")
        await _feed(inv, seconds=0.3, query="early")
        started = await _wait_for("started", "early")  # while the arguments are still open
        finish_sent = time.time()
        await inv.finish()
        outcome = await inv.outcome()
    assert started < finish_sent
    assert outcome.data is not None and outcome.data["answer"] == "slow:early"
    assert len(_calls("started", "early")) == 1  # the early call's result was the result


async def test_without_start_on_the_call_waits_for_finish(mcp_sidecar: SidecarProcess) -> None:
    async with SidecarClient(mcp_sidecar.url) as client:
        inv = await client.open("webplain.slow")
        await _feed(inv, seconds=0.1, query="late")
        await asyncio.sleep(0.5)
        assert _calls("started", "late") == []
        finish_sent = time.time()
        await inv.finish()
        outcome = await inv.outcome()
    assert _calls("started", "late")[0] >= finish_sent
    assert outcome.data is not None and outcome.data["answer"] == "slow:late"


async def test_arguments_that_grow_after_the_early_call_call_again(
    mcp_sidecar: SidecarProcess,
) -> None:
    async with SidecarClient(mcp_sidecar.url) as client:
        inv = await client.open("web.slow")
        await _feed(inv, seconds=1.5, query="grown")
        await _wait_for("started", "grown")
        await _feed(inv, note="!")
        await inv.finish()
        outcome = await inv.outcome()
    assert outcome.data is not None and outcome.data["answer"] == "slow:grown!"
    await _wait_for("cancelled", "grown")  # the call for the prefix was withdrawn
    assert len(_calls("started", "grown")) == 2


@pytest.mark.parametrize("before_finish", [True, False], ids=["early-call", "after-finish"])
async def test_cancel_reaches_the_server(mcp_sidecar: SidecarProcess, before_finish: bool) -> None:
    query = f"cancel-{before_finish}"
    async with SidecarClient(mcp_sidecar.url) as client:
        inv = await client.open("web.slow" if before_finish else "webplain.slow")
        await _feed(inv, seconds=30, query=query)
        if not before_finish:
            await inv.finish()
        await _wait_for("started", query)
        await inv.cancel()
        await _wait_for("cancelled", query)  # notifications/cancelled reached the server
    assert _calls("done", query) == []


# The crash kills a stdio server (in its sandbox); the hang is over HTTP, where no server start
# shares the wall time that bounds it (the test module's 3 s).
@pytest.mark.parametrize("server", ["srv", "web"], ids=["stdio-crash", "http-hang"])
async def test_a_crashing_or_hanging_server_gives_an_error_and_the_next_call_works(
    mcp_sidecar: SidecarProcess, server: str
) -> None:
    async with SidecarClient(mcp_sidecar.url) as client:
        specs = await segmenters(client)
        bad = await call(client, specs, "srv.crash" if server == "srv" else "web.hang", {})
        good = await call(client, specs, f"{server}.fast", {"text": "again"})
    assert bad.is_error
    if server == "web":
        assert bad.kind == "error" and "timeout" in bad.content, bad  # bounded by wall_seconds
    else:
        assert bad.kind == "result" and "MCP server srv failed" in bad.content, bad
    assert good.content == "fast:again"
    assert mcp_sidecar.proc.poll() is None  # the sidecar goes on
