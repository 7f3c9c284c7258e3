"""Every built-in tool through a real sidecar process, units cut by the segmenter it advertises."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import SidecarProcess, start_sidecar
from sidecar_testkit import call, feed_code, python, segmenters

from conveyor.tools.client import SidecarClient
from conveyor.tools.units import Field, Statement


class _SearchHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        results = [{"title": f"About {body['query']}", "url": "http://example/1", "snippet": "s"}][
            : body["k"]
        ]
        payload = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def search_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SearchHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/search"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def database(outside_tmp: Path) -> Path:
    path = outside_tmp / "cities.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE city (name TEXT, population INTEGER)")
        db.executemany("INSERT INTO city VALUES (?, ?)", [("Lyon", 522000), ("Nantes", 320000)])
    db.close()
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def tools_sidecar(
    tmp_path_factory: pytest.TempPathFactory, database: Path, search_endpoint: str
) -> Iterator[SidecarProcess]:
    proc = start_sidecar(
        tmp_path_factory.mktemp("roundtrip"),
        {
            "tools": {
                "python": {},
                "calculator": {},
                "sqlite": {"config": {"database": str(database)}, "validate": True},
                "search": {"config": {"endpoint": search_endpoint, "k": 1}},
                "planner": {},
            }
        },
    )
    yield proc
    proc.stop()


async def test_every_builtin_round_trips(tools_sidecar: SidecarProcess) -> None:
    async with SidecarClient(tools_sidecar.url) as client:
        specs = await segmenters(client)
        assert set(specs) == {"python", "calculator", "sqlite", "search", "planner"}
        outcomes = await asyncio.gather(
            call(client, specs, "python", {"code": "x = 6\nprint(x * 7)\n"}),
            call(client, specs, "calculator", {"expression": "2 * (3 + 4) ** 2"}),
            call(client, specs, "sqlite", {"query": "SELECT name FROM city ORDER BY name"}),
            call(client, specs, "search", {"query": "conveyor belts"}),
            call(client, specs, "planner", {"plan": '$1 = calculator("6 * 7")\n'}),
        )
    py, calc, sql, search, plan = outcomes
    assert (py.kind, py.content, py.is_error) == ("result", "42\n", False)
    assert (calc.kind, calc.content, calc.data) == ("result", "98", {"value": 98})
    assert sql.kind == "result" and sql.content.splitlines() == ["name", "Lyon", "Nantes"]
    assert search.kind == "result" and "About conveyor belts" in search.content
    assert plan.kind == "result" and "42" in plan.content
    for outcome in outcomes:
        timing = outcome.timing
        assert timing["opened"] <= timing["started"] <= timing["finished"]
        assert all(t0 <= t1 for t0, t1 in timing["busy"]) and timing["busy"]


async def test_validated_tool_rejects_before_finish(tools_sidecar: SidecarProcess) -> None:
    async with SidecarClient(tools_sidecar.url) as client:
        inv = await client.open("sqlite")
        await inv.feed(Field(("query",), 42))  # the schema says string
        outcome = await asyncio.wait_for(inv.outcome(), 5)  # no finish was sent
    assert outcome.kind == "reject" and "string" in outcome.content


async def test_units_execute_before_finish(tools_sidecar: SidecarProcess) -> None:
    async with SidecarClient(tools_sidecar.url) as client:
        inv = await client.open("python")
        await inv.feed(Statement("import time\n", 1))
        await inv.feed(Statement("time.sleep(0.2)\n", 2))
        # The model is "still decoding": long enough for a sandboxed worker to boot and run both.
        await asyncio.sleep(2.0)
        finish_sent = time.time()
        await inv.feed(Statement("print('done')\n", 3))
        await inv.finish()
        outcome = await inv.outcome()
    assert outcome.content == "done\n"
    _start, _import, sleep, last, _finish = outcome.timing["busy"]
    # Statement 2 ran (and its 0.2 s sleep ended) while the finish was not yet sent.
    assert sleep[1] - sleep[0] >= 0.2
    assert sleep[1] < finish_sent
    assert last[0] >= finish_sent - 0.05


async def test_error_before_finish_resolves_the_outcome(tools_sidecar: SidecarProcess) -> None:
    """A statement that never ends is stopped by its CPU limit with no finish sent at all."""
    async with SidecarClient(tools_sidecar.url) as client:
        inv = await client.open("python")
        await feed_code(inv, "while True: pass")
        outcome = await asyncio.wait_for(inv.outcome(), 10)
    assert outcome.kind == "error" and outcome.reason == "cpu limit", outcome


async def test_python_session_keeps_state(tools_sidecar: SidecarProcess) -> None:
    async with SidecarClient(tools_sidecar.url) as client:
        first = await python(client, "counter = 40", session="s-1")
        second = await python(client, "counter += 2\nprint(counter)", session="s-1")
        other = await python(client, "print('counter' in globals())", session="s-2")
        plain = await python(client, "print('counter' in globals())")
    assert first.kind == "result" and not first.is_error
    assert second.content == "42\n"
    assert other.content == "False\n"
    assert plain.content == "False\n"


async def test_a_client_session_shares_python_state_and_ends(tools_sidecar: SidecarProcess) -> None:
    """A ``ToolSession`` (one per runtime request): python calls share their globals, other
    tools run beside them, and closing the session frees its worker."""
    active = "conveyor_sidecar_sessions_active"
    before = tools_sidecar.metrics()[active]  # other tests' sessions may still be idle
    async with SidecarClient(tools_sidecar.url) as client:
        async with client.session() as session:
            first = await session.open("python")
            await feed_code(first, "total = 40")
            await first.finish()
            # A stateless tool in the same session neither waits for python nor takes its key.
            calc = await session.open("calculator")
            await calc.feed(Field(("expression",), "6 * 7"))
            await calc.finish()
            second = await session.open("python")
            await feed_code(second, "print(total + 2)")
            await second.finish()
            outcomes = [await i.outcome() for i in (first, calc, second)]
            during = tools_sidecar.metrics()[active]
        assert [o.kind for o in outcomes] == ["result"] * 3, outcomes
        assert outcomes[1].content == "42" and outcomes[2].content == "42\n"
        assert during == before + 1
        assert "total" not in (await python(client, "print(sorted(globals()))")).content
        deadline = asyncio.get_running_loop().time() + 10
        while tools_sidecar.metrics()[active] != before:
            assert asyncio.get_running_loop().time() < deadline, "the ended session lingers"
            await asyncio.sleep(0.05)
