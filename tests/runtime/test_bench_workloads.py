"""Workload files load and validate; their tools give the expected results on a real sidecar."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml

from conveyor.runtime.bench import database, tools
from conveyor.runtime.bench.search_backend import SearchBackend
from conveyor.runtime.bench.workloads import (
    ORDER,
    WorkloadError,
    load_all,
    parse_workload,
    workload_names,
)
from conveyor.runtime.sidecar_process import EmbeddedSidecar
from conveyor.tools.client import SidecarClient


def test_every_workload_loads_and_the_required_kinds_exist() -> None:
    workloads = load_all()
    names = {w.name for w in workloads}
    assert set(ORDER) <= names
    assert any(len(r.calls) >= 2 for w in workloads for r in w.rounds), "a multi-call workload"
    assert any(len(w.rounds) >= 3 for w in workloads), "a multi-round workload"
    assert sorted(names) == workload_names()
    for w in workloads:
        assert w.expect, f"{w.name} checks its tool results"


def test_the_planning_workload_has_parallel_and_dependent_steps() -> None:
    (planning,) = load_all(["planning"])
    plan = planning.rounds[0].calls[0].arguments["plan"]
    steps = [line for line in plan.splitlines() if line.startswith("$")]
    assert len(steps) >= 4 and sum("search(" in s for s in steps) >= 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "x"}, "missing key"),
        ({"name": "x", "summary": "", "tools": ["shell"], "messages": [], "rounds": []}, "unknown"),
        (
            {"name": "x", "summary": "", "tools": ["calculator"], "messages": [],
             "rounds": [[{"text": "no call in a non-final round"}], [{"text": "end"}]]},
            "every other one calls a tool",
        ),
        (
            {"name": "x", "summary": "", "tools": ["python"], "messages": [],
             "rounds": [[{"call": {"name": "calculator", "arguments": {}}}], [{"text": "end"}]]},
            "not in tools",
        ),
    ],
)  # fmt: skip
def test_bad_workloads_are_refused_with_the_reason(raw: dict, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        parse_workload(raw, "bad.yaml")


@pytest.fixture(scope="module")
def bench_sidecar(tmp_path_factory: pytest.TempPathFactory):
    backend = SearchBackend(0.05).start()
    db, share = database.shareable(database.cached())
    config = tmp_path_factory.mktemp("bench-tools") / "tools.yaml"
    config.write_text(yaml.safe_dump(tools.tools_config(db, backend.endpoint, warm_workers=4)))
    sidecar = EmbeddedSidecar(config=config)
    try:
        # Until the socket exists, httpx's failed UDS connects leak a socket (a ResourceWarning,
        # an error here): wait for it first.
        deadline = time.monotonic() + 60
        while not sidecar.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        sidecar.wait_ready()
        yield sidecar.url
    finally:
        sidecar.stop()
        backend.stop()
        if share is not None:
            for f in Path(share).iterdir():
                f.unlink()
            Path(share).rmdir()


@pytest.mark.parametrize("name", workload_names())
def test_each_workload_tool_gives_the_expected_result(bench_sidecar: str, name: str) -> None:
    (workload,) = load_all([name])

    async def run() -> None:
        async with SidecarClient(bench_sidecar) as client:
            specs = {s["function"]["name"]: s for s in await client.tools()}
            for expect in workload.expect:
                call = workload.rounds[expect.round].calls[expect.call]
                result = await tools.run_call(client, specs, call.name, json.dumps(call.arguments))
                text = tools.result_text(result.outcome)
                assert (result.outcome.kind == "reject") == expect.rejected, text
                for piece in expect.contains:
                    assert piece in text, (piece, text[:500])
                if name == "planning":
                    assert "ERROR" not in text, text

    asyncio.run(run())
