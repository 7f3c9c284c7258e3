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
    expect_errors,
    load_all,
    parse_workload,
    workload_names,
)
from conveyor.runtime.calls import outcome_label, result_text
from conveyor.runtime.sidecar_process import EmbeddedSidecar
from conveyor.tools import default_registry
from conveyor.tools.client import SidecarClient


def test_every_workload_loads_and_the_required_kinds_exist() -> None:
    workloads, notes = load_all()
    assert notes == []
    names = {w.name for w in workloads}
    assert set(ORDER) <= names
    assert any(len(r.calls) >= 2 for w in workloads for r in w.rounds), "a multi-call workload"
    assert any(len(w.rounds) >= 3 for w in workloads), "a multi-round workload"
    assert sorted(names) == workload_names()
    for w in workloads:
        assert w.expect, f"{w.name} checks its tool results"


def test_the_planning_workload_has_parallel_and_dependent_steps() -> None:
    (planning,), _ = load_all(["planning"])
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
    (workload,), _ = load_all([name])

    async def run() -> None:
        async with SidecarClient(bench_sidecar) as client:
            specs = {s["function"]["name"]: s for s in await client.tools()}
            outcomes = []
            for round_ in workload.rounds[:-1]:
                outcomes.append([])
                for call in round_.calls:
                    arguments = json.dumps(call.arguments)
                    # Spaced: a reject lands before the next frame (docs/benchmark.md).
                    result = await tools.run_call(
                        client, specs, call.name, arguments, spacing=0.005
                    )
                    label = outcome_label(result.outcome)
                    outcomes[-1].append((label, result_text(result.outcome)))
            assert expect_errors(workload, outcomes) == []

    asyncio.run(run())


def test_shipped_workloads_follow_each_tools_schema() -> None:
    """Only declared fields, in the schema's order: nothing padded in to favour partial runs."""
    specs = {s["function"]["name"]: s for s in default_registry().specs()}
    workloads, _ = load_all()
    for w in workloads:
        for round_ in w.rounds:
            for call in round_.calls:
                declared = list(specs[call.name]["function"]["parameters"]["properties"])
                written = list(call.arguments)
                assert written == [k for k in declared if k in written], (w.name, written)
    kinds = {w.unfavourable.split(" (")[0] for w in workloads if w.unfavourable}
    assert {"trigger field last", "heavy statement last"} <= kinds
    assert any("faster than decoding" in k for k in kinds)


def test_expect_is_checked_on_every_call() -> None:
    (workload,), _ = load_all(["validation"])
    assert expect_errors(workload, [[("rejected", "rejected: expression must be a string")]]) == []
    assert "expected rejected" in expect_errors(workload, [[("ok", "1067.54")]])[0]
    (calc,), _ = load_all(["calculator"])
    assert "lacks '16050'" in expect_errors(calc, [[("ok", "16049")]])[0]
    assert "expected ok" in expect_errors(calc, [[("error", "boom 16050")]])[0]
    assert "0 tool result(s)" in expect_errors(calc, [])[0]


def _write(directory: Path, name: str, answer: str) -> None:
    (directory / f"{name}.yaml").write_text(
        yaml.safe_dump(
            {
                "name": name, "summary": "s", "tools": ["calculator"],
                "messages": [{"role": "user", "content": "2+2?"}],
                "rounds": [[{"call": {"name": "calculator", "arguments": {"expression": "2+2"}}}],
                           [{"text": answer}]],
                "expect": [{"round": 0, "call": 0, "contains": ["4"]}],
            }
        )
    )  # fmt: skip


def test_a_workloads_directory_adds_and_replaces_by_name(tmp_path: Path) -> None:
    _write(tmp_path, "mine", "4.")
    _write(tmp_path, "calculator", "Four.")
    workloads, notes = load_all(None, tmp_path)
    by_name = {w.name: w for w in workloads}
    assert "mine" in by_name and set(workload_names()) <= set(by_name)
    assert by_name["calculator"].rounds[-1].text() == "Four."
    assert by_name["calculator"].source == str(tmp_path / "calculator.yaml")
    assert notes == [f"calculator: from {tmp_path / 'calculator.yaml'}, replacing the shipped one"]
    (only,), _ = load_all(["mine"], tmp_path)
    assert only.source.endswith("mine.yaml")


def test_a_bad_workloads_directory_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no \\*.yaml"):
        load_all(None, tmp_path)
    (tmp_path / "broken.yaml").write_text("name: [unclosed")
    with pytest.raises(WorkloadError, match="broken.yaml: not YAML"):
        load_all(None, tmp_path)
    (tmp_path / "broken.yaml").write_text("name: x\nsummary: s\ntools: []\nmessages: []\n"
                                          "rounds: []\npurpose: padding\n")  # fmt: skip
    with pytest.raises(WorkloadError, match="unknown key"):
        load_all(None, tmp_path)
