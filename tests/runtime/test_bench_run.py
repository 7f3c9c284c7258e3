"""`conveyor bench` end to end, as a process: tiny runs that produce the JSON and the PNG.

Each run starts its own engine (about 30 s): one run covers conveyor's two modes and the
ideal bound, one the peer (vLLM's own server and the client-side agent loop).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine


def bench(out: Path, model: Path, *args: str) -> dict:
    command = [
        sys.executable, "-m", "conveyor.runtime.cli", "bench", "--model", str(model),
        "--out", str(out), "--reps", "1", "--bound-reps", "1", "--concurrency", "1",
        "--search-latency", "0.2", *args,
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "bench.png").stat().st_size > 0
    assert "emulated" in done.stdout and "core" in done.stdout
    return json.loads((out / "bench.json").read_text())


def test_conveyor_modes_and_the_ideal_bound(tmp_path: Path, tiny_model: Path) -> None:
    result = bench(
        tmp_path, tiny_model, "--workloads", "search",
        "--systems", "conveyor-partial,conveyor-sequential",
    )  # fmt: skip
    search = result["workloads"]["search"]
    for system in ("conveyor-partial", "conveyor-sequential"):
        run = search["systems"][system]["runs"][0]
        assert run["error"] is None and run["rounds"] == 2 and run["latency"] > 0
    assert search["systems"]["conveyor-partial"]["runs"][0]["overlap"] > 0
    assert search["systems"]["conveyor-sequential"]["runs"][0]["overlap"] < 0.05
    bound = search["bound"]
    assert 0 < bound["latency"] and len(bound["rounds"]) == 2
    assert "reduction_vs_sequential" in search["derived"]
    assert result["machine"]["cpu"] and result["settings"]["search_latency_seconds"] == 0.2


def test_the_peer_runs_the_standard_client_loop(tmp_path: Path, tiny_model: Path) -> None:
    result = bench(
        tmp_path, tiny_model, "--workloads", "calculator", "--systems", "vllm-client-loop"
    )
    run = result["workloads"]["calculator"]["systems"]["vllm-client-loop"]["runs"][0]
    assert run["error"] is None and run["rounds"] == 2
    assert run["overlap"] == 0 and run["exposed"] > 0
